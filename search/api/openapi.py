"""The OpenAPI document says what the server does: two corrections to what FastAPI generates.

- Every 422 has the API's one error shape (``ErrorResponse``), not FastAPI's ``HTTPValidationError``
  (which the server never sends: ``errors.py`` turns validation errors into that shape).
- A body that cannot be parsed at all (JSON that is not UTF-8, a multipart without its boundary or
  with too many parts) is a 400 on every route that takes a body; a JSON body sent under another
  Content-Type is a 415.
- A multipart form has no null: a field left out is None, and the text ``null`` is not a number.
  FastAPI documents an optional form field as ``anyOf: [number, null]``, which invites clients
  (and schemathesis) to send ``null``; the form's schema lists the non-null type alone.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

_ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
_INVALID_TEXT = "Invalid parameters or body: `details` names each offending field"
_INVALID = {
    "description": _INVALID_TEXT,
    "content": {"application/json": {"schema": _ERROR_REF}},
}

_UNPARSABLE = {
    "description": "A body that cannot be parsed (not UTF-8 JSON; a multipart without its boundary "
    "or with too many parts)",
    "content": {"application/json": {"schema": _ERROR_REF}},
}


_NOT_JSON = {
    "description": "The body was sent with a Content-Type other than JSON (`application/json`)",
    "content": {"application/json": {"schema": _ERROR_REF}},
}


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the corrected document (built once, then cached)."""
    generate: Callable[[], dict[str, Any]] = app.openapi
    built: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        if not built:
            built.append(correct(copy.deepcopy(generate())))
            app.openapi_schema = built[0]
        return built[0]

    app.openapi = openapi  # type: ignore[method-assign]


def correct(doc: dict[str, Any]) -> dict[str, Any]:
    schemas = doc.get("components", {}).get("schemas", {})
    forms: set[str] = set()
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if "422" in responses:
                description = responses["422"].get("description", "")
                responses["422"] = {**_INVALID, "description": _better(description)}
            if "requestBody" in operation and "400" not in responses:
                responses["400"] = _UNPARSABLE
            if "application/json" in operation.get("requestBody", {}).get("content", {}):
                responses.setdefault("415", _NOT_JSON)
            form = operation.get("requestBody", {}).get("content", {}).get("multipart/form-data")
            if form is not None:
                ref = form["schema"].get("$ref", "")
                if ref:
                    forms.add(ref.rsplit("/", 1)[-1])
                else:
                    _drop_null(form["schema"])
    for name in forms:
        _drop_null(schemas[name])
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused not in str(doc.get("paths")):
            schemas.pop(unused, None)
    return doc


def _better(description: str) -> str:
    return _INVALID_TEXT if description in ("", "Validation Error") else description


def _drop_null(form_schema: dict[str, Any]) -> None:
    for name, prop in list(form_schema.get("properties", {}).items()):
        branches = prop.get("anyOf")
        if not branches:
            continue
        kept = [b for b in branches if b.get("type") != "null"]
        if len(kept) == len(branches):
            continue
        rest = {
            k: v
            for k, v in prop.items()
            if k not in ("anyOf", "default") or (k == "default" and v is not None)
        }
        form_schema["properties"][name] = {**kept[0], **rest} if len(kept) == 1 else {**rest, "anyOf": kept}
