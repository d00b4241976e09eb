"""``glimpse search``: ask the library's running API when there is one, else search in process.

A search in a fresh process spends most of its time importing PyTorch and open_clip and loading
the model (measured on the 2-core development machine: ~6.6 s of CPU for the demo library, of which
~5 s are imports), while a running ``glimpse serve`` answers in milliseconds. So the command first
asks the API at ``GLIMPSE_API_URL`` (default ``http://127.0.0.1:GLIMPSE_PORT``) whether it serves
this library (the same ``library.id`` in the data folder), and if it does, searches through it;
otherwise, or with ``--local``, it loads the model itself. Both print the same rows.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx

from glimpse.core.identity import read_library_id
from glimpse.core.settings import Settings

PROBE_SECONDS = 0.5  # how long to wait for an API to say which library it serves


class SearchFailed(RuntimeError):
    """The search could not run; the message says why (for the CLI to print)."""


def api_address(settings: Settings) -> str:
    return (os.environ.get("GLIMPSE_API_URL") or f"http://127.0.0.1:{settings.port}").rstrip("/")


def search_via_api(
    settings: Settings, body: dict[str, Any], image: Path | None
) -> list[dict[str, Any]] | None:
    """The results from the running API if it serves this library, else None (search locally).

    ``body`` is a SearchQuery as JSON. Raises SearchFailed when the API refuses the search (its
    own message), never when no API answers.
    """
    library_id = read_library_id(settings.data_dir.resolve())
    if library_id is None:
        return None
    key = os.environ.get("GLIMPSE_API_KEY") or (settings.api_keys[0] if settings.api_keys else None)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        with httpx.Client(base_url=api_address(settings), headers=headers, timeout=60) as client:
            stats = client.get("/v1/stats", timeout=PROBE_SECONDS)
            served = stats.json().get("library", {}).get("id") if stats.status_code == 200 else None
            if served != library_id:
                return None
            if image is None:
                answer = client.post("/v1/search", json=body)
            else:
                params = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in body.items()}
                with image.open("rb") as fh:
                    answer = client.post("/v1/search/image", params=params, files={"file": (image.name, fh)})
    except (httpx.HTTPError, ValueError, OSError):
        return None  # nothing (usable) answers: search in this process
    if answer.status_code != 200:
        raise SearchFailed(_error_message(answer))
    rows = answer.json()["results"]
    return [dict(row, source="api") for row in rows]


def _error_message(answer: httpx.Response) -> str:
    try:
        return str(answer.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"the API answered {answer.status_code}"
