"""Every error leaves the API in one JSON shape: ``{"error": {"code", "message", "status"}}``.

Clients branch on ``code`` (stable, snake_case) and show ``message`` (says what was wrong and how to
fix it). Validation errors add ``details`` (one entry per offending field). Nothing, not even an
unexpected exception, answers with an HTML page or a bare ``{"detail": ...}``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from glimpse.core.library import ModelMismatch
from glimpse.core.media import ImageDecodeError, ImageTooLarge
from glimpse.search.api.methods import allowed_methods
from glimpse.search.engine import ModelNotLoaded
from glimpse.search.filters import FilterError
from glimpse.search.query import CursorError, QueryError
from glimpse.search.reads import ItemNotFound

log = logging.getLogger("glimpse.api")

# Codes for errors Starlette itself raises (unknown route, wrong method...).
_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "invalid_request",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An error the API reports as is: HTTP status, stable code, human message."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.extra = extra


def error_body(status: int, code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status, **extra}}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(
        jsonable_encoder(error_body(status, code, message, **extra)), status_code=status, headers=headers
    )


# Engine and decoding errors, mapped once here so routes stay thin.
_DOMAIN_ERRORS: list[tuple[type[Exception], int, str]] = [
    (FilterError, 422, "invalid_filter"),
    (CursorError, 422, "invalid_cursor"),  # before its base class QueryError
    (QueryError, 422, "invalid_query"),
    (ModelNotLoaded, 503, "library_empty"),
    (ItemNotFound, 404, "not_found"),
    (ImageTooLarge, 413, "image_too_large"),  # before its base class ImageDecodeError
    (ImageDecodeError, 422, "invalid_image"),
    (ModelMismatch, 409, "model_mismatch"),
]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers, **exc.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        headers = getattr(exc, "headers", None)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such route: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            # The path exists but no route takes this method: OPTIONS is answered here, and both
            # list every method of the path (Starlette's Allow names only the first route's).
            allow = {"Allow": ", ".join(allowed_methods(app, request.scope))}
            if request.method == "OPTIONS":
                return Response(status_code=204, headers=allow)
            message = f"method {request.method} is not allowed on {request.url.path}"
            headers = {**(headers or {}), **allow}
        return error_response(exc.status_code, code, message, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        sent = request.headers.get("content-type")
        if sent is not None and not _is_json(sent) and any(_whole_body(e) for e in errors):
            # FastAPI parses a body as JSON only when it says it is (or says nothing): a JSON
            # body sent as a form (curl -d) was never read, and "must be a JSON object" misled.
            return error_response(
                415,
                "unsupported_media_type",
                f"send the body as JSON, with Content-Type: application/json (this request sent {sent!r})",
            )
        return _invalid(errors)

    @app.exception_handler(ValidationError)
    async def _pydantic_error(_request: Request, exc: ValidationError) -> JSONResponse:
        return _invalid(exc.errors())

    for exc_type, status, code in _DOMAIN_ERRORS:
        app.add_exception_handler(exc_type, _domain_handler(status, code))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal server error (the server log has the details)")


def _domain_handler(status: int, code: str) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handler(_request: Request, exc: Exception) -> JSONResponse:
        message = str(exc.args[0]) if isinstance(exc, LookupError) and exc.args else str(exc)
        return error_response(status, code, message)

    return handler


def _invalid(errors: Any) -> JSONResponse:
    details = [_detail(e) for e in errors]
    message = "; ".join(f"{d['field']}: {d['message']}" if d["field"] else d["message"] for d in details)
    # A body that is not JSON at all is a 400 (it cannot be parsed), as the README and the
    # OpenAPI document say, whichever route parsed it (FastAPI for a model body, a route itself).
    if any(d["type"] == "json_invalid" for d in details):
        return error_response(400, "invalid_json", message, details=details)
    return error_response(422, "invalid_request", message or "invalid request", details=details)


def _is_json(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


def _whole_body(error: dict[str, Any]) -> bool:
    """The body as a whole is missing or of the wrong type (not one field of it)."""
    return tuple(error.get("loc", ())) == ("body",) and error.get("type") in _BODY_TYPES


_BODY_TYPES = ("missing", "model_attributes_type", "dict_type", "model_type", "json_invalid")


def _detail(error: dict[str, Any]) -> dict[str, Any]:
    """One validation error as {field, message, type}: the field as a dotted path without 'body'/'query'."""
    loc = [str(p) for p in error.get("loc", ())]
    if error.get("type") == "json_invalid":
        # FastAPI puts the character where parsing failed in the location, pydantic's own
        # parser says where in its message: neither is a field.
        reason = str((error.get("ctx") or {}).get("error") or error.get("msg", "invalid JSON"))
        at = f" (at character {loc[1]})" if len(loc) == 2 and loc[0] == "body" else ""
        return {"field": "", "message": f"the body is not valid JSON: {reason}{at}", "type": "json_invalid"}
    if loc == ["body"] and error.get("type") == "missing":
        return {"field": "", "message": "a JSON object body is required", "type": "missing"}
    if loc == ["body"] and error.get("type") in ("model_attributes_type", "dict_type", "model_type"):
        return {"field": "", "message": "the body must be a JSON object", "type": str(error.get("type"))}
    if loc and loc[0] in ("body", "query", "path", "header", "form"):
        loc = loc[1:]
    return {
        "field": ".".join(loc),
        "message": str(error.get("msg", "invalid")),
        "type": error.get("type", ""),
    }
