"""Embeddings: a text or an image into the library's vector space."""

from __future__ import annotations

import time

import numpy as np
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from glimpse.core.models import ModelRef
from glimpse.search.api.deps import ServiceDep, embedder_or_503
from glimpse.search.api.errors import ApiError
from glimpse.search.api.schemas import EmbedRequest, EmbedResponse, ErrorResponse, ModelOut
from glimpse.search.api.service import SearchService
from glimpse.search.api.uploads import decode_upload, read_upload

router = APIRouter(tags=["embed"])

_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": EmbedRequest.model_json_schema(),
                "example": {"text": "a red circle"},
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary", "description": "An image"}},
                    "required": ["file"],
                    "additionalProperties": False,
                }
            },
        },
    }
}


@router.post(
    "/embed",
    response_model=EmbedResponse,
    openapi_extra=_BODY_DOC,
    summary="Embed a text (JSON) or an image (multipart `file`)",
    responses={
        413: {
            "model": ErrorResponse,
            "description": "The body, the file or its pixel count is over the limit",
        },
        415: {"model": ErrorResponse, "description": "Neither JSON nor multipart, or not an accepted image"},
        422: {"model": ErrorResponse, "description": "Blank text, a corrupt image, or invalid fields"},
        503: {"model": ErrorResponse, "description": "The library has no model yet (`library_empty`)"},
    },
)
async def embed(request: Request, service: ServiceDep) -> EmbedResponse:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        async with request.form(max_files=1, max_fields=4) as form:
            unknown = sorted(set(form.keys()) - {"file"})
            if unknown:
                raise ApiError(
                    422,
                    "invalid_request",
                    f"unknown form field(s): {', '.join(unknown)}; send the image as `file`",
                )
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise ApiError(422, "invalid_request", "multipart body needs an image in the field `file`")
            return await run_in_threadpool(_embed_image, service, upload)
    if content_type in ("application/json", ""):
        body = EmbedRequest.model_validate_json(await request.body() or b"{}")
        return await run_in_threadpool(_embed_text, service, body.text)
    raise ApiError(
        415,
        "unsupported_media_type",
        'send JSON {"text": ...} with Content-Type: application/json, or multipart/form-data with an '
        f"image in `file` (this request sent {request.headers.get('content-type')!r})",
    )


def _embed_text(service: SearchService, text: str) -> EmbedResponse:
    started = time.perf_counter()
    embedder = embedder_or_503(service)
    return _response(embedder.ref, embedder.text(text), started)


def _embed_image(service: SearchService, upload: UploadFile) -> EmbedResponse:
    started = time.perf_counter()
    embedder = embedder_or_503(service)
    s = service.settings
    image = decode_upload(read_upload(upload, s.max_upload_bytes), s.max_image_pixels, upload.filename)
    return _response(embedder.ref, embedder.image(image), started)


def _response(ref: ModelRef, vector: np.ndarray, started: float) -> EmbedResponse:
    return EmbedResponse(
        model=ModelOut(name=ref.name, pretrained=ref.pretrained),
        dim=len(vector),
        vector=[float(x) for x in vector],
        took_ms=round((time.perf_counter() - started) * 1000, 2),
    )
