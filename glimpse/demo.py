"""`glimpse demo`: a fully offline demo library (generated catalogue + videos), indexed with the
shipped `glimpse-demo` model, then served by the API and the web UI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from glimpse.core.encoder import Encoder
from glimpse.core.library import Library
from glimpse.core.models import DEMO_MODEL
from glimpse.core.settings import Settings
from glimpse.indexer.manifest import import_manifest
from glimpse.indexer.pipeline import Indexer, IndexSummary


@dataclass
class DemoLibrary:
    media: Path
    manifest: Path
    summary: IndexSummary
    manifest_rows: int


def build_demo_library(settings: Settings, items: int = 120, videos: int = 3, seed: int = 7) -> DemoLibrary:
    """Generate the demo media once (kept in the data dir) and index it incrementally."""
    from glimpse.training.synthetic import make_catalogue, make_videos

    media = settings.data_dir.resolve() / "demo-media"
    catalogue_dir, video_dir = media / "catalogue", media / "videos"
    manifest = catalogue_dir / "catalogue.csv"
    if not manifest.exists():
        make_catalogue(catalogue_dir, items, seed)
    if not video_dir.exists() and videos:
        make_videos(video_dir, seed, count=videos)
    settings = settings.model_copy(update={"model": DEMO_MODEL, "pretrained": None})
    library = Library(settings)
    try:
        encoder = Encoder(DEMO_MODEL, None, device=settings.device)
        summary = Indexer(library, encoder, settings).run([media])
        report = import_manifest(library, manifest)
    finally:
        library.close()
    return DemoLibrary(media, manifest, summary, report.updated)


def serve_demo(settings: Settings, port: int, ui_port: int) -> int:
    """Run `glimpse serve` and `glimpse ui` side by side until Ctrl-C; returns an exit code."""
    env = {**os.environ, "GLIMPSE_DATA_DIR": str(settings.data_dir.resolve())}
    if settings.database_url:
        env["GLIMPSE_DATABASE_URL"] = settings.database_url
    api_url = f"http://127.0.0.1:{port}"
    env["GLIMPSE_API_URL"] = api_url
    glimpse = [sys.executable, "-m", "glimpse"]
    api = subprocess.Popen([*glimpse, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env)
    ui = None
    try:
        if not _wait_healthy(f"{api_url}/readyz", api, timeout=120):
            print("error: the API did not become ready; see its log above", file=sys.stderr)
            return 1
        ui = subprocess.Popen(
            [*glimpse, "ui", "--host", "127.0.0.1", "--port", str(ui_port), "--api-url", api_url], env=env
        )
        print(
            f"\n  Search API:  {api_url}/docs\n  Web UI:      http://127.0.0.1:{ui_port}\n\n  Ctrl-C stops both.\n",
            flush=True,
        )
        while api.poll() is None and ui.poll() is None:
            time.sleep(0.5)
        return api.returncode or (ui.returncode if ui else 0) or 0
    except KeyboardInterrupt:
        return 0
    finally:
        for proc in (ui, api):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False
