"""Liveness and readiness probes (no API key: orchestrators call them)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from glimpse.search.api.deps import ServiceDep
from glimpse.search.api.errors import error_body
from glimpse.search.api.schemas import ErrorResponse, HealthOut, ReadyOut

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut, summary="Liveness: the process answers")
async def healthz() -> HealthOut:
    return HealthOut(status="ok")


@router.get(
    "/readyz",
    response_model=ReadyOut,
    summary="Readiness: database reachable, model loaded, index agrees with the catalogue",
    responses={503: {"model": ErrorResponse, "description": "Not ready; `checks` says which part"}},
)
def readyz(service: ServiceDep) -> ReadyOut | JSONResponse:
    ready, checks = service.readiness()  # reading the snapshot picks up a newly published index
    if ready:
        return ReadyOut(status="ready", checks=checks)
    failing = "; ".join(f"{name}: {c.get('error', 'failing')}" for name, c in checks.items() if not c["ok"])
    return JSONResponse({**error_body(503, "not_ready", failing), "checks": checks}, status_code=503)
