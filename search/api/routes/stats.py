"""What the library holds, and the limits clients should know before they send something."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from glimpse.search import reads
from glimpse.search.api.deps import EngineDep, SettingsDep
from glimpse.search.api.schemas import StatsOut

router = APIRouter(tags=["library"])


@router.get("/stats", response_model=StatsOut, summary="Items, model, index, filter facets and limits")
def stats(engine: EngineDep, settings: SettingsDep) -> dict[str, Any]:
    limit = settings.max_upload_bytes
    return {
        **reads.library_stats(engine.library, engine.snapshot),
        "library": {"id": engine.library.library_id},
        "limits": {"max_upload_bytes": limit, "max_upload_mb": round(limit / 1_000_000, 1)},
    }
