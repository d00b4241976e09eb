"""The web UI's settings: every ``GLIMPSE_*`` variable it reads, read afresh on every page run.

- ``GLIMPSE_API_URL`` (default ``http://127.0.0.1:8000``): where this UI server calls the API.
- ``GLIMPSE_API_KEY`` (default none): the key it sends, when the API has ``GLIMPSE_API_KEYS``.
- ``GLIMPSE_PUBLIC_API_URL`` (default: ``GLIMPSE_API_URL``): the API's address as the *browser*
  reaches it. Videos and original images are played and shown straight from there (the API answers
  range requests, so videos seek); the UI server never relays them. With an API key, the browser
  gets a short-lived signed link from ``/v1/media/{id}/link`` instead of the key. Set it whenever
  the browser sees the API under another name than the UI server does (Docker, a proxy).
- ``GLIMPSE_UI_MAX_VIDEO_MB`` (default 200): only for an API with keys but without signed links
  (older than this UI): the UI then relays each original itself, videos up to this size.
- ``GLIMPSE_UI_PAGE_SIZE`` (default 24, 1 to 200): results per page ("Load more" adds a page).

Reading them on every run (it costs microseconds) means a changed environment needs no restart
of an imported module, and tests can point the same process at different APIs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from glimpse.webui.client import DEFAULT_API_URL

DEFAULT_PAGE_SIZE = 24
MAX_PAGE_SIZE = 200  # the API's own K_MAX
DEFAULT_MAX_VIDEO_MB = 200.0


@dataclass(frozen=True)
class UiConfig:
    api_url: str
    api_key: str | None
    public_api_url: str
    page_size: int
    max_relay_video_bytes: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> UiConfig:
        env = os.environ if environ is None else environ
        api_url = (env.get("GLIMPSE_API_URL") or DEFAULT_API_URL).rstrip("/")
        return cls(
            api_url=api_url,
            api_key=env.get("GLIMPSE_API_KEY") or None,
            public_api_url=(env.get("GLIMPSE_PUBLIC_API_URL") or api_url).rstrip("/"),
            page_size=max(1, min(MAX_PAGE_SIZE, int(env.get("GLIMPSE_UI_PAGE_SIZE") or DEFAULT_PAGE_SIZE))),
            max_relay_video_bytes=int(
                float(env.get("GLIMPSE_UI_MAX_VIDEO_MB") or DEFAULT_MAX_VIDEO_MB) * 1_000_000
            ),
        )
