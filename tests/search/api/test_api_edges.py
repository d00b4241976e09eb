"""The edges of every route, found by walking the app's own OpenAPI document (so a route or field
added later is covered without touching these tests), on SQLite and PostgreSQL:

- every id (path, query string, form or JSON body) is bounded in the schema: past 2^63-1 a 422 that
  names it, an unused one in range a 404, never a 500 from a driver overflow;
- a NUL character in any text (parameter, form field, body field, filter value) is a 422 naming the
  field, the same on both backends (PostgreSQL's driver refuses NUL, SQLite compared it);
- HEAD answers wherever GET does, with GET's headers and no body; OPTIONS and a 405 list every
  method of the path in ``Allow``;
- Range errors come in the JSON error shape, and a Range in an unknown unit is ignored.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from api_fixtures import api_settings, assert_error, module_database_url  # noqa: F401
from conftest import save_image
from glimpse.core.catalogue import Asset, Unit
from glimpse.core.library import Library
from glimpse.indexer.pipeline import Indexer
from glimpse.search.api.app import create_app
from glimpse.search.query import ID_MAX

HUGE = 96829330464771049259008  # the id from the report: 77 bits, a driver overflow before the fix


@dataclass
class Small:
    client: TestClient
    item: int  # an image item
    unit: int  # its unit


@pytest.fixture(scope="module")
def small(module_database_url, tiny_encoder, tmp_path_factory) -> Iterator[Small]:
    root = tmp_path_factory.mktemp("edges")
    for i, colour in enumerate(["red", "green", "blue"]):
        save_image(root / "photos" / f"{colour}.png", colour, seed=i)
    settings = api_settings(root / "library", module_database_url)
    library = Library(settings)
    try:
        Indexer(library, tiny_encoder, settings).run([root / "photos"])
        with library.Session() as s:
            item, unit = s.execute(select(Asset.id, Unit.id).join(Unit, Unit.asset_id == Asset.id)).first()
    finally:
        library.close()
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield Small(client, item, unit)


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


# -- walking the OpenAPI document ---------------------------------------------------------------
@dataclass(frozen=True)
class Field:
    method: str
    path: str
    where: str  # path | query | json | form
    name: str
    schema: dict[str, Any]


def _resolve(doc: dict, schema: dict) -> dict:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = doc["components"]["schemas"][name]
    return schema


def _types(doc: dict, schema: dict) -> set[str]:
    """The JSON types a (resolved) schema admits, looking through anyOf (Optional)."""
    schema = _resolve(doc, schema)
    if "anyOf" in schema:
        return set().union(*(_types(doc, s) for s in schema["anyOf"]))
    kind = schema.get("type")
    if kind == "array":
        return {f"array:{t}" for t in _types(doc, schema.get("items", {}))}
    if kind is None and "enum" in schema:
        return {"string"}
    return {kind} if kind else set()


def _scalar(doc: dict, schema: dict) -> dict:
    """The non-null branch of an Optional schema."""
    schema = _resolve(doc, schema)
    for branch in schema.get("anyOf", []):
        if _resolve(doc, branch).get("type") != "null":
            return _resolve(doc, branch)
    return schema


def walk_fields(doc: dict) -> list[Field]:
    fields = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for p in op.get("parameters", []):
                fields.append(Field(method.upper(), path, p["in"], p["name"], p["schema"]))
            for media_type, content in op.get("requestBody", {}).get("content", {}).items():
                where = "json" if media_type == "application/json" else "form"
                body = _resolve(doc, content["schema"])
                for name, schema in body.get("properties", {}).items():
                    fields.append(Field(method.upper(), path, where, name, schema))
    return fields


def is_id(field: Field) -> bool:
    return field.name == "id" or field.name.endswith("_id")


def request_for(small: Small, field: Field, value: Any) -> Any:
    """Send ``value`` in ``field`` of its operation, every other part valid."""
    path_values = {"item_id": small.item, "unit_id": small.unit}
    if field.where == "path":
        path_values[field.name] = value
    url = field.path.format(**path_values)
    query: dict[str, Any] = {}
    if field.where == "query":
        query[field.name] = value
    if (field.method == "POST" and field.where == "form") or field.path == "/v1/search/image":
        form = {field.name: value} if field.where == "form" and field.name != "file" else {}
        files = {"file": ("query.png", _png(), "image/png")}
        return small.client.post(url, params=query, data=form, files=files)
    if field.where == "json":
        return small.client.post(url, params=query, json={field.name: value})
    if field.method == "POST":
        return small.client.post(url, params=query, json={"text": "a red circle"})
    return small.client.request(field.method, url, params=query)


def test_the_walk_finds_every_id_the_api_takes(small):
    """The walk itself: the ids the report named (and those beside them) are all found, as integers."""
    doc = small.client.get("/openapi.json").json()
    found = {(f.method, f.path, f.name) for f in walk_fields(doc) if is_id(f)}
    expected = {
        ("GET", "/v1/items/{item_id}", "item_id"),
        ("GET", "/v1/items/{item_id}/similar", "item_id"),
        ("GET", "/v1/items/{item_id}/similar", "unit_id"),
        ("GET", "/v1/media/{item_id}", "item_id"),
        ("GET", "/v1/media/{item_id}/link", "item_id"),
        ("GET", "/v1/thumbnails/{unit_id}", "unit_id"),
        ("GET", "/v1/search", "image_id"),
        ("GET", "/v1/search", "unit_id"),
        ("POST", "/v1/search", "image_id"),
        ("POST", "/v1/search", "unit_id"),
        ("POST", "/v1/search/image", "image_id"),
    }
    assert expected <= found, expected - found


def test_every_integer_in_the_schema_is_bounded_and_ids_by_the_one_id_bound(small):
    doc = small.client.get("/openapi.json").json()
    for field in walk_fields(doc):
        if "integer" not in _types(doc, field.schema):
            continue
        schema = _scalar(doc, field.schema)
        assert "maximum" in schema, f"{field}: an unbounded integer reaches the database or a driver"
        if is_id(field):
            assert (schema.get("minimum"), schema["maximum"]) == (1, ID_MAX), field


def test_an_id_past_64_bits_is_422_naming_it_and_an_unused_id_is_404_in_every_route(small):
    doc = small.client.get("/openapi.json").json()
    ids = [f for f in walk_fields(doc) if is_id(f)]
    assert len(ids) >= 11
    for field in ids:
        for too_big in (ID_MAX + 1, HUGE):
            error = assert_error(request_for(small, field, too_big), 422, "invalid_request")
            assert field.name in [d["field"] for d in error["details"]], (field, error)
        unused = request_for(small, field, ID_MAX)
        assert_error(unused, 404, "not_found")


def test_a_forged_cursor_past_the_deepest_page_is_422(small):
    import base64
    import json

    raw = json.dumps({"o": HUGE, "f": "0" * 16}).encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert_error(small.client.get("/v1/search", params={"q": "red", "cursor": cursor}), 422, "invalid_cursor")


# -- NUL in text -------------------------------------------------------------------------------
def _nul_value(doc: dict, field: Field) -> Any:
    types = _types(doc, field.schema)
    if "string" in types:
        return "a\x00b"
    if "array:string" in types:
        return ["ok", "a\x00b"] if field.where == "json" else "a\x00b"
    if "object" in types and "properties" not in _scalar(doc, field.schema):  # a free-form object
        return {"title": {"contains": "a\x00b"}}
    return None


def test_a_nul_in_any_text_field_of_any_route_is_422_naming_the_field(small):
    doc = small.client.get("/openapi.json").json()
    checked = []
    for field in walk_fields(doc):
        value = _nul_value(doc, field)
        if value is None or field.name == "file" or _scalar(doc, field.schema).get("format") == "binary":
            continue
        error = assert_error(request_for(small, field, value), 422, "invalid_request")
        assert field.name in [d["field"] for d in error["details"]], (field, error)
        checked.append((field.method, field.path, field.name))
    # The walk reached the fields the report named, and the texts beside them.
    assert {
        ("GET", "/v1/search", "q"),
        ("GET", "/v1/search", "category"),
        ("GET", "/v1/search", "filters"),
        ("POST", "/v1/search", "filters"),
        ("POST", "/v1/search", "then"),
        ("POST", "/v1/search/image", "q"),
        ("POST", "/v1/embed", "text"),
        ("GET", "/v1/media/{item_id}", "token"),
    } <= set(checked)


@pytest.mark.parametrize(
    ("filters", "named"),
    [
        ('{"title": {"contains": "a\\u0000b"}}', "title.contains"),
        ('{"category": "\\u0000"}', "category"),
        ('{"sku": ["ok", "x\\u0000"]}', "sku.1"),
    ],
)
def test_a_nul_decoded_from_the_filters_string_is_the_same_422_on_both_backends(small, filters, named):
    """The NUL is an escape in the `filters` JSON string (no NUL in the parameter itself): refused
    once decoded, before the database (PostgreSQL's driver would raise, SQLite would compare)."""
    response = small.client.get("/v1/search", params={"q": "red", "filters": filters})
    error = assert_error(response, 422, "invalid_request")
    assert error["details"][0]["field"] == "filters" and named in error["message"], error


@pytest.mark.parametrize(
    "body",
    [
        b'{"q": "red", "filters": {"title": {"contains": "\\udc00"}}}',
        b'{"q": "red", "filters": {"category": ["ok", "\\ud800x"]}}',
        b'{"q": "red", "filters": {"sku": {"in": ["a\\u0000"]}}}',
    ],
)
def test_text_postgresql_cannot_hold_is_the_same_422_in_a_json_filter(small, body):
    """A lone surrogate (valid JSON, not valid Unicode) or a NUL in a filter value: PostgreSQL's
    driver raised (a 500) where SQLite compared; now a 422 naming the place, on both."""
    response = small.client.post("/v1/search", content=body, headers={"content-type": "application/json"})
    error = assert_error(response, 422, "invalid_request")
    assert error["details"][0]["field"] == "filters" and "found at" in error["message"], error
    flat = body.decode().split('"filters": ', 1)[1].rsplit("}", 1)[0]
    response = small.client.get("/v1/search", params={"q": "red", "filters": flat})
    assert_error(response, 422, "invalid_request")


@pytest.mark.parametrize(
    ("value", "fault"), [("a\x00b", "NUL"), (["ok", "\x00"], "NUL"), ("\udc00", "surrogate")]
)
def test_the_filter_builder_refuses_text_a_backend_cannot_hold(value, fault):
    """Every caller (the API, `glimpse search`, the engine) builds SQL through it."""
    from glimpse.search.filters import FilterError, build_conditions

    with pytest.raises(FilterError, match=rf"'title'.*{fault}"):
        build_conditions({"title": value})


# -- HEAD and OPTIONS --------------------------------------------------------------------------
def _get_urls(small: Small, doc: dict) -> list[str]:
    urls = ["/docs", "/redoc", "/openapi.json"]
    for path, ops in doc["paths"].items():
        if "get" in ops:
            url = path.format(item_id=small.item, unit_id=small.unit)
            urls.append(url + ("?q=red" if path == "/v1/search" else ""))
    return urls


def test_head_answers_wherever_get_does_with_its_headers_and_no_body(small):
    doc = small.client.get("/openapi.json").json()
    urls = _get_urls(small, doc)
    assert {"/healthz", "/readyz", f"/v1/media/{small.item}", f"/v1/thumbnails/{small.unit}"} <= set(urls)
    for url in urls:
        got, head = small.client.get(url), small.client.head(url)
        assert got.status_code == 200, (url, got.text)
        assert head.status_code == 200, (url, head.text)
        assert head.content == b"", url
        skip = {"date", "content-length"}
        assert {k: v for k, v in head.headers.items() if k not in skip} == {
            k: v for k, v in got.headers.items() if k not in skip
        }, url
        if "took_ms" not in got.text:  # a search's own timing changes its length
            assert head.headers["content-length"] == str(len(got.content)), url


def test_options_and_405_list_every_method_of_the_path(small):
    doc = small.client.get("/openapi.json").json()
    for path, ops in doc["paths"].items():
        url = path.format(item_id=small.item, unit_id=small.unit)
        documented = {m.upper() for m in ops}
        expected = documented | {"OPTIONS"} | ({"HEAD"} if "GET" in documented else set())
        options = small.client.options(url)
        assert options.status_code == 204, (url, options.text)
        assert set(options.headers["allow"].split(", ")) == expected, url
        refused = small.client.request("PATCH", url)
        assert_error(refused, 405, "method_not_allowed")
        assert set(refused.headers["allow"].split(", ")) == expected, url
    assert small.client.options("/v1/search").headers["allow"] == "GET, HEAD, OPTIONS, POST"
    assert_error(small.client.options("/v1/no-such-route"), 404, "not_found")


def test_options_needs_no_api_key(tmp_path):
    """OPTIONS says what a path takes, the same with and without keys (it reads nothing)."""
    settings = api_settings(tmp_path / "keyed", None, api_keys=["k-" + uuid.uuid4().hex])
    with TestClient(create_app(settings)) as keyed:
        assert keyed.options("/v1/search").headers["allow"] == "GET, HEAD, OPTIONS, POST"
        refused = keyed.head("/v1/stats")  # HEAD is GET without the body: a key is still needed
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")


# -- Range ---------------------------------------------------------------------------------------
def _file_urls(small: Small) -> list[str]:
    return [f"/v1/media/{small.item}", f"/v1/thumbnails/{small.unit}"]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_backwards_range_is_400_in_the_json_error_shape(small, method):
    for url in _file_urls(small):
        r = small.client.request(method, url, headers={"Range": "bytes=5-4"})
        assert r.status_code == 400 and r.headers["content-type"] == "application/json", url
        if method == "GET":
            assert_error(r, 400, "invalid_range")


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_range_past_the_end_is_416_json_with_the_size(small, method):
    for url in _file_urls(small):
        size = len(small.client.get(url).content)
        r = small.client.request(method, url, headers={"Range": f"bytes={size + 5}-"})
        assert r.status_code == 416 and r.headers["content-type"] == "application/json", url
        assert r.headers["content-range"] == f"bytes */{size}"
        if method == "GET":
            assert_error(r, 416, "range_not_satisfiable")


@pytest.mark.parametrize("header", ["items=0-5", "pages=1-2, 4", "Items=0-5"])
def test_a_range_in_an_unknown_unit_is_ignored(small, header):
    for url in _file_urls(small):
        whole = small.client.get(url)
        r = small.client.get(url, headers={"Range": header})
        assert r.status_code == 200 and r.content == whole.content, url
        assert "content-range" not in r.headers


def test_a_valid_range_still_gives_206_and_if_range_of_an_old_copy_the_whole_file(small):
    url = _file_urls(small)[0]
    whole = small.client.get(url)
    part = small.client.get(url, headers={"Range": "bytes=0-3"})
    assert part.status_code == 206 and part.content == whole.content[:4]
    stale = small.client.get(url, headers={"Range": "bytes=5-4", "If-Range": '"not-the-etag"'})
    assert stale.status_code == 200 and stale.content == whole.content


# -- blank text --------------------------------------------------------------------------------
@pytest.mark.parametrize("blank", [" ", "\t\n ", "\u3000\u2003", "\x1c\x1f"])
def test_whitespace_only_text_is_refused_alike_by_search_and_embed(small, blank):
    """Only white space (str.isspace: Unicode spaces and separators) is no text at all, everywhere."""
    assert_error(small.client.post("/v1/embed", json={"text": blank}), 422, "invalid_request")
    assert_error(small.client.get("/v1/search", params={"q": blank}), 422, "invalid_query")
    assert_error(small.client.post("/v1/search", json={"q": blank}), 422, "invalid_query")
    assert_error(small.client.post("/v1/search", json={"q": "red", "then": [blank]}), 422, "invalid_request")


# -- bodies that are not JSON objects -------------------------------------------------------------
NOT_JSON = [b'{"q": "a red circle", "k": 5', b"not json at all", b'{"q": "red",}']


@pytest.mark.parametrize("body", NOT_JSON)
@pytest.mark.parametrize("route", ["/v1/search", "/v1/embed"])
def test_a_body_that_is_not_json_is_a_400_saying_so_on_every_route(small, route, body):
    """Whichever parser meets it (FastAPI's for a model body, the route's own), the same answer:
    400 invalid_json, no position passed off as a field name."""
    r = small.client.post(route, content=body, headers={"Content-Type": "application/json"})
    error = assert_error(r, 400, "invalid_json")
    assert error["message"].startswith("the body is not valid JSON: "), error
    assert all(d["field"] == "" for d in error["details"]), error


@pytest.mark.parametrize(
    ("body", "says"), [(b"", "a JSON object body is required"), (b"[1, 2]", "must be a JSON object")]
)
def test_a_search_body_that_is_no_object_says_what_is_wanted(small, body, says):
    r = small.client.post("/v1/search", content=body, headers={"Content-Type": "application/json"})
    error = assert_error(r, 422, "invalid_request")
    assert says in error["message"], error


@pytest.mark.parametrize("sent", ["application/x-www-form-urlencoded", "text/plain"])
@pytest.mark.parametrize("body", [b'{"q": "red", "k": 1}', b'{"q": "red"'])
@pytest.mark.parametrize("route", ["/v1/search", "/v1/embed"])
def test_a_body_sent_as_something_other_than_json_is_a_415_naming_the_content_type(small, route, body, sent):
    # `curl -d` sends a form's type: the body was never read as JSON, so no 422 about its shape.
    r = small.client.post(route, content=body, headers={"Content-Type": sent})
    error = assert_error(r, 415, "unsupported_media_type")
    assert "application/json" in error["message"] and sent in error["message"], error
    # ...and the OpenAPI document says so, with the error shape's `details` described.
    doc = small.client.get("/openapi.json").json()
    assert "415" in doc["paths"][route]["post"]["responses"]
    assert "details" in doc["components"]["schemas"]["ErrorDetail"]["properties"]


# -- extreme aspect ratios -----------------------------------------------------------------------
STRIPS = [(1, 40_000, "PNG"), (40_000, 1, "PNG"), (3, 29_000, "PNG"), (30_000, 2, "JPEG")]


def _strip(width: int, height: int, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (30, 160, 40)).save(buf, fmt)
    return buf.getvalue()


@pytest.fixture
def resized(monkeypatch) -> list[tuple[int, int]]:
    """Every size Pillow is asked to resample to, in this process (decode, preprocessing, thumbnail):
    the real resize runs, unless the size is past the bound, which fails at once instead of
    allocating gigabytes (what a 1 x 40,000 px strip cost before: its short side scaled to the
    model's input made it 224 x 8,960,000 px)."""
    from glimpse.core.media import THUMBNAIL_SIZE

    # A few times the largest model input in use (224 px) or the thumbnail, whichever is larger;
    # stated here, not read from the code under test.
    bound = max(4 * 224 * 224, THUMBNAIL_SIZE * THUMBNAIL_SIZE)
    sizes: list[tuple[int, int]] = []
    real = Image.Image.resize

    def spy(self, size, *args, **kwargs):
        sizes.append((int(size[0]), int(size[1])))
        assert size[0] * size[1] <= bound, f"resampling to {size}: unbounded by the model's input"
        return real(self, size, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", spy)
    return sizes


@pytest.mark.parametrize(("width", "height", "fmt"), STRIPS)
def test_an_extreme_strip_is_embedded_with_work_bounded_by_the_models_input(
    small, resized, width, height, fmt
):
    data = _strip(width, height, fmt)
    embedded = small.client.post("/v1/embed", files={"file": (f"strip.{fmt.lower()}", data)})
    assert embedded.status_code == 200, embedded.text
    assert len(embedded.json()["vector"]) == embedded.json()["dim"]
    found = small.client.post("/v1/search/image", files={"file": (f"strip.{fmt.lower()}", data)})
    assert found.status_code == 200, found.text
    assert resized, "the spy saw no resampling: it measured nothing"


@pytest.mark.parametrize(("width", "height", "fmt"), STRIPS)
def test_the_indexers_decode_step_bounds_an_extreme_strip(
    tmp_path, resized, tiny_encoder, width, height, fmt
):
    """What each decode worker runs per file: the model input comes out at its size, with no
    intermediate larger than a few times it."""
    from glimpse.indexer.decode import decode_image_file

    path = tmp_path / f"strip.{fmt.lower()}"
    path.write_bytes(_strip(width, height, fmt))
    cfg = tiny_encoder.preprocess_config()
    decoded = decode_image_file(str(path), cfg, max_pixels=89_478_485)
    assert decoded.error is None, decoded.error
    assert decoded.pixels.shape == (3, cfg.image_size, cfg.image_size)
    assert (decoded.width, decoded.height) == (width, height) and decoded.thumbnail
    assert resized


def test_a_folder_of_extreme_strips_is_indexed_and_served(tmp_path, tiny_encoder):
    """The whole run, worker processes included: every strip indexed, none failed, each searchable."""
    photos = tmp_path / "strips"
    photos.mkdir()
    for width, height, fmt in STRIPS:
        (photos / f"strip-{width}x{height}.{fmt.lower()}").write_bytes(_strip(width, height, fmt))
    settings = api_settings(tmp_path / "library", None)
    library = Library(settings)
    try:
        summary = Indexer(library, tiny_encoder, settings).run([photos])
    finally:
        library.close()
    assert not summary.failed, summary.failed
    with TestClient(create_app(settings)) as client:
        stats = client.get("/v1/stats").json()
        assert stats["items"].get("image") == len(STRIPS) and stats["failed"] == 0, stats


# -- the document --------------------------------------------------------------------------------
def test_the_document_gives_every_error_the_one_shape_and_forms_no_null(small):
    """What the server sends: ErrorResponse for 422 (never FastAPI's HTTPValidationError), a 400
    for every body that may not parse, and form fields typed as a form carries them (no null)."""
    doc = small.client.get("/openapi.json").json()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for status, response in op["responses"].items():
                if status >= "400":
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path, status)
            if "requestBody" in op:
                assert "400" in op["responses"], (method, path)
            form = op.get("requestBody", {}).get("content", {}).get("multipart/form-data")
            if form:
                props = _resolve(doc, form["schema"]).get("properties", {})
                for name, prop in props.items():
                    assert "null" not in str(_types(doc, prop)), (path, name, prop)
    image = doc["paths"]["/v1/media/{item_id}"]["get"]["responses"]
    assert {"206", "400", "416"} <= set(image) and "Content-Range" in image["416"]["headers"]
