"""Fixtures for the web UI tests: a real generated library served by a real `glimpse serve` process."""

from __future__ import annotations

import csv
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from glimpse.core.encoder import Encoder
from glimpse.core.library import Library
from glimpse.core.models import DEMO_CHECKPOINT
from glimpse.core.settings import Settings
from glimpse.indexer.manifest import import_manifest
from glimpse.indexer.pipeline import Indexer
from videos import BLUE, RED, Scene, coloured_video

REPO = Path(__file__).resolve().parents[2]


def _root_conftest():
    """tests/conftest.py under its own name: `from conftest import` finds whichever conftest.py
    pytest loaded last (tests/training has one too), so it is not a stable way to reach it."""
    spec = importlib.util.spec_from_file_location(
        "glimpse_tests_root_conftest", REPO / "tests" / "conftest.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


save_image = _root_conftest().save_image
GLIMPSE = [sys.executable, "-m", "glimpse.cli"]
# The trained demo checkpoint makes "red" mean red; without it the random tiny model still
# exercises every path (ranking is then arbitrary, so tests never depend on it).
MODEL = "glimpse-demo" if DEMO_CHECKPOINT.is_file() else "glimpse-tiny"

# (file, colour, title, price, category): two categories with different price ranges.
PRODUCTS = [
    ("red-sneaker.jpg", "red", "Red running sneaker", 59.0, "shoes"),
    ("blue-boot.jpg", "blue", "Blue leather boot", 89.5, "shoes"),
    ("black-loafer.png", "black", "Black loafer", 75.0, "shoes"),
    ("green-dress.jpg", "green", "Green summer dress", 35.0, "dresses"),
    ("yellow-dress.jpg", "yellow", "Yellow sun dress", 25.0, "dresses"),
    ("white-dress.png", "white", "White linen dress", 42.0, "dresses"),
]
VIDEO_NAME = "harbour.mp4"
# One product links to its shop page with a long unbroken URL, as real catalogues do: the detail
# table must wrap it rather than scroll sideways.
PRODUCT_URLS = {
    "blue-boot.jpg": "https://shop.example/catalogue/shoes/boots/blue-leather-boot-hand-stitched-"
    "goodyear-welted-oiled-calfskin?colour=midnight-blue&size=42&utm_source=glimpse-search-results"
}


@dataclass(frozen=True)
class Api:
    url: str
    data_dir: Path
    process: subprocess.Popen
    key: str | None = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child process, without GLIMPSE_* settings leaking in from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLIMPSE_")}
    env.update(extra)
    return env


def wait_for_http(url: str, process: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(
                f"{process.args} exited with {process.returncode} before {url} answered:\n{out}"
            )
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def build_library(root: Path) -> Path:
    """Six catalogue products (titles, prices, categories via a manifest) and one two-scene video."""
    media = root / "media"
    for i, (name, colour, *_rest) in enumerate(PRODUCTS):
        save_image(media / "products" / name, colour, size=(160, 120), seed=i)
    manifest = media / "products" / "catalogue.csv"
    with open(manifest, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "sku", "title", "price", "currency", "category", "url"])
        for i, (name, _colour, title, price, category) in enumerate(PRODUCTS):
            writer.writerow([name, f"SKU-{i:03d}", title, price, "USD", category, PRODUCT_URLS.get(name, "")])
    (media / "clips").mkdir(parents=True)
    coloured_video(media / "clips" / VIDEO_NAME, [Scene(3.0, RED), Scene(3.0, BLUE)], fps=10, size=(160, 120))
    data_dir = root / "library"
    settings = Settings(
        data_dir=data_dir, model=MODEL, pretrained=None, device="cpu", batch_size=16, workers=1, video_fps=2.0
    )
    library = Library(settings)
    try:
        encoder = Encoder(MODEL, None, device="cpu")
        summary = Indexer(library, encoder, settings).run([media])
        assert not summary.failed, summary.failed
        report = import_manifest(library, manifest)
        assert report.updated == len(PRODUCTS), report.as_dict()
    finally:
        library.close()
    return data_dir


def launch(args: list[str], port: int, health: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    """Run ``glimpse ARGS`` and wait until it answers on ``port`` at ``health``; stop it if it never does.

    Its output goes to ``log``, not to a pipe: a pipe nobody reads blocks a chatty server once full.
    """
    with log.open("w") as sink:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [*GLIMPSE, *args], env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=REPO
        )
    try:
        wait_for_http(f"http://127.0.0.1:{port}{health}", process, log)
    except Exception:
        stop(process)
        raise
    return process


def start_api(data_dir: Path, key: str | None = None) -> Api:
    port = free_port()
    env = child_env(GLIMPSE_MODEL=MODEL, **({"GLIMPSE_API_KEYS": key} if key else {}))
    args = [
        "--data-dir",
        str(data_dir),
        "--device",
        "cpu",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    process = launch(args, port, "/healthz", env, data_dir.parent / f"serve-{port}.log")
    return Api(f"http://127.0.0.1:{port}", data_dir, process, key)


# Test modules import these fixtures; each module then holds its own session-scoped copy, so the
# library and the servers are shared through these module-level registries instead of built twice.
_servers: dict[tuple[Path, str | None], list] = {}


@contextmanager
def shared_api(data_dir: Path, key: str | None = None) -> Iterator[Api]:
    entry = _servers.get((data_dir, key))
    if entry is None:
        entry = _servers[(data_dir, key)] = [start_api(data_dir, key), 0]
    entry[1] += 1
    try:
        yield entry[0]
    finally:
        entry[1] -= 1
        if entry[1] == 0:
            stop(entry[0].process)
            del _servers[(data_dir, key)]


@pytest.fixture(scope="session")
def catalogue_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.getbasetemp() / "webui-catalogue"
    done = root / "built"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir()
        build_library(root)
        done.touch()
    return root / "library"


@pytest.fixture(scope="session")
def api(catalogue_dir: Path) -> Iterator[Api]:
    """`glimpse serve` over the generated catalogue, for the whole session."""
    with shared_api(catalogue_dir) as server:
        yield server


@pytest.fixture(scope="session")
def keyed_api(catalogue_dir: Path) -> Iterator[Api]:
    """`glimpse serve` over the same catalogue, answering only requests that carry its API key."""
    with shared_api(catalogue_dir, key="webui-test-key") as server:
        yield server


@pytest.fixture(scope="session")
def empty_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """`glimpse serve` over a library folder that nothing has been indexed into."""
    data_dir = tmp_path_factory.getbasetemp() / "webui-empty" / "library"
    data_dir.mkdir(parents=True, exist_ok=True)
    with shared_api(data_dir) as server:
        yield server


def unused_url() -> str:
    """A loopback URL where nothing listens (the port was free a moment ago)."""
    return f"http://127.0.0.1:{free_port()}"
