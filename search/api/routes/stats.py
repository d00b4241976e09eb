"""What the library holds."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from glimpse.search.api.deps import EngineDep
from glimpse.search.api.schemas import StatsOut

router = APIRouter(tags=["library"])


@router.get("/stats", response_model=StatsOut, summary="Items, model, index and filter facets")
def stats(engine: EngineDep) -> dict[str, Any]:
    return engine.stats()
