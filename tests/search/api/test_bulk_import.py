"""Bulk import of precomputed vectors: items land whole, searchable through the API, invariants kept."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api_fixtures import api_settings, assert_error
from glimpse.core.library import Library, ModelMismatch
from glimpse.core.models import ModelRef
from glimpse.indexer.bulk import BulkImportError, import_vectors
from glimpse.search.api.app import create_app

TINY = ModelRef("glimpse-tiny", None)


def _vectors(n: int, dim: int = 128, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


@pytest.fixture
def library(tmp_path, database_url):
    lib = Library(api_settings(tmp_path / "bulk", database_url))
    yield lib
    lib.close()


def test_imported_vectors_are_searchable_exactly(library, tiny_encoder):
    vectors = _vectors(300)
    fields = [
        {
            "title": f"thing {i}",
            "price": float(i),
            "category": "even" if i % 2 == 0 else "odd",
            "colour": "n/a",
        }
        for i in range(300)
    ]
    summary = import_vectors(
        library, TINY, [f"/elsewhere/{i}.jpg" for i in range(300)], vectors, fields=fields
    )
    assert (summary.items, summary.units, summary.index_size) == (300, 300, 300)
    assert np.array_equal(np.sort(library.open_index().index.ids()), library.live_unit_ids())
    query = tiny_encoder.encode_texts(["a red thing"])[0]
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    expected = np.argsort(-(unit @ query))[:5]
    with TestClient(create_app(library.settings)) as c:
        body = c.post("/v1/search", json={"q": "a red thing", "k": 5, "mode": "vector"}).json()
        assert [r["title"] for r in body["results"]] == [f"thing {i}" for i in expected]
        assert body["results"][0]["metadata"]["colour"] == "n/a"
        odd = c.post(
            "/v1/search", json={"q": "x", "k": 200, "filters": {"category": "odd", "price": {"lt": 20}}}
        ).json()
        assert sorted(r["metadata"]["price"] for r in odd["results"]) == [float(i) for i in range(1, 20, 2)]
        assert_error(c.get(f"/v1/media/{body['results'][0]['id']}"), 404, "file_missing")


def test_a_second_import_appends_and_a_duplicate_path_imports_nothing(library):
    import_vectors(library, TINY, ["/a/1.jpg", "/a/2.jpg"], _vectors(2))
    import_vectors(library, TINY, ["/a/3.jpg"], _vectors(1, seed=1))
    with pytest.raises(BulkImportError, match="already in the library"):
        import_vectors(library, TINY, ["/a/4.jpg", "/a/1.jpg"], _vectors(2, seed=2))
    assert len(library.live_unit_ids()) == 3 and len(library.open_index().index) == 3
    assert library.vector_store().stored_count() == 3  # no orphan shard from the refused import


@pytest.mark.parametrize(
    ("paths", "vectors", "message"),
    [
        (["/a.jpg", "/b.jpg"], np.ones((3, 128), np.float32), "shape"),
        (["/a.jpg"], np.full((1, 128), np.nan, np.float32), "NaN"),
        (["/a.jpg"], np.zeros((1, 128), np.float32), "zeros"),
        (["/a.jpg", "/a.jpg"], np.ones((2, 128), np.float32), "unique"),
    ],
)
def test_bad_input_is_refused_with_a_reason(library, paths, vectors, message):
    with pytest.raises(BulkImportError, match=message):
        import_vectors(library, TINY, paths, vectors)
    assert library.model_info() is None


def test_vectors_of_another_model_or_size_are_refused(library):
    import_vectors(library, TINY, ["/a.jpg"], _vectors(1))
    with pytest.raises(ModelMismatch):
        import_vectors(library, ModelRef("ViT-B-32", None), ["/b.jpg"], _vectors(1, dim=512))
    with pytest.raises(BulkImportError, match="dimensions"):
        import_vectors(library, TINY, ["/c.jpg"], _vectors(1, dim=64))
