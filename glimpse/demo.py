"""`glimpse demo`: a fully offline demo library (generated catalogue + videos), indexed with the
shipped `glimpse-demo` model, then served by the API and the web UI."""

from __future__ import annotations

import os
import signal
import socket
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


class PortTaken(RuntimeError):
    """Something else already listens on a port the demo needs."""


def check_port_free(port: int, what: str, host: str = "127.0.0.1") -> None:
    """Raise PortTaken, naming ``what`` needs the port, when anything listens on it already: an
    earlier demo's server would otherwise answer the readiness check in place of the new one."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            raise PortTaken(
                f"port {port} ({what}) is already in use on {host}, perhaps by an earlier "
                f"`glimpse demo` still running; stop it (e.g. `fuser -k {port}/tcp`) or pick "
                "another port (--port / --ui-port)"
            ) from None


def serve_demo(settings: Settings, port: int, ui_port: int) -> int:
    """Run `glimpse serve` and `glimpse ui` side by side until Ctrl-C or a termination signal;
    returns an exit code. Both children stop with this process: SIGTERM, SIGHUP and SIGINT end
    the wait, and the children are terminated (then killed) before this returns.
    Raises PortTaken before starting anything when a port is in use."""
    check_port_free(port, "the search API")
    check_port_free(ui_port, "the web UI")
    env = {**os.environ, "GLIMPSE_DATA_DIR": str(settings.data_dir.resolve())}
    if settings.database_url:
        env["GLIMPSE_DATABASE_URL"] = settings.database_url
    api_url = f"http://127.0.0.1:{port}"
    env["GLIMPSE_API_URL"] = api_url
    glimpse = [sys.executable, "-m", "glimpse"]
    children: list[subprocess.Popen[bytes]] = []
    # SIGINT too, not left to Python's KeyboardInterrupt: a shell starts a background job with
    # SIGINT ignored, and Python then installs no handler, so `kill -INT` did nothing.
    stops = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
    previous = {sig: signal.signal(sig, _stop_waiting) for sig in stops}
    try:
        api = subprocess.Popen([*glimpse, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env)
        children.append(api)
        if not _wait_healthy(f"{api_url}/readyz", api, timeout=120):
            print("error: the API did not become ready; see its log above", file=sys.stderr)
            return 1
        ui = subprocess.Popen(
            [*glimpse, "ui", "--host", "127.0.0.1", "--port", str(ui_port), "--api-url", api_url], env=env
        )
        children.append(ui)
        print(
            f"\n  Search API:  {api_url}/docs\n  Web UI:      http://127.0.0.1:{ui_port}\n\n"
            "  Ctrl-C stops both.\n",
            flush=True,
        )
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        return next((child.returncode for child in children if child.returncode), 0)
    except (KeyboardInterrupt, _Stopped):
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop_all(children)


class _Stopped(Exception):
    """A termination signal arrived while the demo was serving."""


def _stop_waiting(signum: int, _frame: object) -> None:
    raise _Stopped(signal.Signals(signum).name)


def _stop_all(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


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
