"""``glimpse serve``: safe binds, and the real command answering over real HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from api_fixtures import catalogue, module_database_url, served  # noqa: F401
from glimpse.core.settings import Settings
from glimpse.search.api.server import UnsafeBind, check_bind, is_loopback


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_loopback_addresses(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "example.com", "my-host"])
def test_other_addresses_are_not_loopback(host):
    assert not is_loopback(host)


def test_serve_refuses_a_public_bind_without_keys(tmp_path):
    with pytest.raises(UnsafeBind, match="GLIMPSE_API_KEYS"):
        check_bind(Settings(data_dir=tmp_path, host="0.0.0.0"))
    check_bind(Settings(data_dir=tmp_path, host="0.0.0.0", api_keys=["k"]))
    check_bind(Settings(data_dir=tmp_path, host="0.0.0.0"), insecure=True)
    check_bind(Settings(data_dir=tmp_path, host="127.0.0.1"))


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLIMPSE_")}
    env.update(extra)
    return env


def test_the_serve_command_refuses_0_0_0_0_without_keys(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "glimpse",
            "--data-dir",
            str(tmp_path),
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "1",
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "refusing to listen on 0.0.0.0 without API keys" in " ".join(done.stderr.split())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"glimpse serve exited early: {proc.stdout.read() if proc.stdout else ''}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError("glimpse serve did not become ready")


@pytest.mark.slow
def test_glimpse_serve_answers_over_http(served):
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "glimpse", "--data-dir", str(served.settings.data_dir)]
    if served.settings.database_url:
        args += ["--database-url", served.settings.database_url]
    proc = subprocess.Popen(
        [*args, "serve", "--port", str(port)],
        env=_env(GLIMPSE_API_KEYS="secret-key", GLIMPSE_DEVICE="cpu"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_ready(url, proc)
        headers = {"Authorization": "Bearer secret-key"}
        assert httpx.get(f"{url}/v1/stats", timeout=10).status_code == 401
        found = httpx.get(
            f"{url}/v1/search", params={"q": "shoes", "category": "shoes"}, headers=headers, timeout=30
        )
        assert found.status_code == 200 and len(found.json()["results"]) == 3
        video = served.ids["scenes.mp4"]
        size = (served.catalogue.clips / "scenes.mp4").stat().st_size
        part = httpx.get(f"{url}/v1/media/{video}", headers={**headers, "Range": "bytes=0-99"}, timeout=10)
        assert part.status_code == 206 and part.headers["content-range"] == f"bytes 0-99/{size}"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, proc.stdout.read() if proc.stdout else ""
