"""Live updates: an API process on PostgreSQL keeps serving while another process indexes, and
serves the indexer's result without a restart (what the compose `api` + `indexer` services do)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from conftest import save_image

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _glimpse(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "glimpse", *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr
    return done


def _paths(client: httpx.Client) -> set[str]:
    r = client.get("/v1/search", params={"q": "a coloured square", "k": 200})
    r.raise_for_status()
    return {hit["path"] for hit in r.json()["results"]}


class Prober(threading.Thread):
    """Searches back to back until stopped, counting every answer that is not a 200."""

    def __init__(self, base_url: str) -> None:
        super().__init__(daemon=True)
        self.client = httpx.Client(base_url=base_url, timeout=30)
        self.stop = threading.Event()
        self.ok = 0
        self.errors: list[str] = []

    def run(self) -> None:
        queries = ["red", "green square", "blue", "something yellow", "black and white"]
        while not self.stop.is_set():
            try:
                r = self.client.get("/v1/search", params={"q": queries[self.ok % len(queries)], "k": 20})
                if r.status_code == 200:
                    self.ok += 1
                else:
                    self.errors.append(f"{r.status_code}: {r.text[:200]}")
            except httpx.HTTPError as exc:
                self.errors.append(repr(exc))


def test_api_serves_through_an_indexing_run_and_picks_up_its_result_without_restart(postgres_url, tmp_path):
    media = tmp_path / "media"
    first = [save_image(media / "first" / f"{i}.png", ("red", "blue")[i % 2], seed=i) for i in range(6)]
    env = {
        **os.environ,
        "GLIMPSE_DATA_DIR": str(tmp_path / "data"),
        "GLIMPSE_DATABASE_URL": postgres_url,
        "GLIMPSE_MODEL": "glimpse-tiny",
        "GLIMPSE_PRETRAINED": "none",
        "GLIMPSE_WORKERS": "1",
        "GLIMPSE_FULL_PATHS": "true",  # results name files as the test made them
    }
    _glimpse(env, "db", "upgrade")  # what the compose `migrate` service runs
    _glimpse(env, "index", str(media))
    port = _free_port()
    # The server's output goes to a file, not a pipe nobody reads (a full pipe would block it),
    # and every failure message below ends with its tail.
    api_log = tmp_path / "api.log"
    with api_log.open("w") as sink:
        api = subprocess.Popen(
            [sys.executable, "-m", "glimpse", "serve", "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )

    def server_said() -> str:
        return "\n--- glimpse serve output (tail) ---\n" + api_log.read_text(errors="replace")[-3000:]

    base = f"http://127.0.0.1:{port}"
    prober = Prober(base)
    try:
        client = httpx.Client(base_url=base, timeout=30)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if client.get("/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert api.poll() is None, server_said()
            time.sleep(0.3)
        assert _paths(client) == {str(p) for p in first}, server_said()
        prober.start()

        # Another process adds items...
        added = [
            save_image(media / "added" / f"{i}.jpg", ("green", "yellow")[i % 2], seed=100 + i)
            for i in range(8)
        ]
        _glimpse(env, "index", str(media))
        expected = {str(p) for p in first + added}
        assert _wait_for(lambda: _paths(client) == expected), (
            "the API never served the added items" + server_said()
        )

        # ...then removes some; they disappear from results without a restart.
        shutil.rmtree(media / "first")
        _glimpse(env, "index", str(media))
        assert _wait_for(lambda: _paths(client) == {str(p) for p in added}), (
            "removed items are still served" + server_said()
        )

        prober.stop.set()
        prober.join(timeout=30)
        assert prober.errors == [], server_said()
        assert prober.ok >= 100, f"only {prober.ok} searches ran during the indexing runs" + server_said()
        assert api.poll() is None, server_said()  # the same process served throughout
    finally:
        prober.stop.set()
        api.terminate()
        api.wait(timeout=20)


def _wait_for(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False
