"""`glimpse demo` owns its servers: they stop with it, and a taken port is reported, not trusted."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def demo_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("GLIMPSE_")} | {"GLIMPSE_WORKERS": "1"}


def start_demo(
    data_dir: Path, port: int, ui_port: int, log: Path, background: bool = False
) -> subprocess.Popen[bytes]:
    """``background``: started as a shell starts a background job, with SIGINT ignored."""
    args = ["--data-dir", str(data_dir), "demo", "--items", "6", "--videos", "0"]
    args += ["--port", str(port), "--ui-port", str(ui_port)]
    with log.open("w") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "glimpse", *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=demo_env(),
            preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if background else None,
        )


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code < 500
    except httpx.HTTPError:
        return False


def wait_until(condition, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return False


@pytest.mark.parametrize(
    ("signum", "background"),
    [(signal.SIGTERM, False), (signal.SIGINT, False), (signal.SIGINT, True)],
    ids=["SIGTERM", "SIGINT", "SIGINT-to-a-background-job"],
)
def test_the_api_and_the_ui_stop_with_the_demo(
    tmp_path: Path, signum: signal.Signals, background: bool
) -> None:
    port, ui_port = free_port(), free_port()
    demo = start_demo(tmp_path / "data", port, ui_port, tmp_path / "demo.log", background)
    try:
        up = wait_until(lambda: answers(f"http://127.0.0.1:{ui_port}/_stcore/health"), 240)
        assert up, (tmp_path / "demo.log").read_text()[-3000:]
        assert answers(f"http://127.0.0.1:{port}/readyz")
        demo.send_signal(signum)
        assert demo.wait(timeout=60) == 0
        # Nothing answers any more, and both ports are free for the next demo.
        assert not answers(f"http://127.0.0.1:{port}/healthz")
        assert not answers(f"http://127.0.0.1:{ui_port}/_stcore/health")
    finally:
        if demo.poll() is None:
            demo.kill()


def test_a_port_in_use_is_reported_before_anything_is_built(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "glimpse",
                "--data-dir",
                str(tmp_path / "data"),
                "demo",
                "--port",
                str(taken),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=demo_env(),
        )
    assert result.returncode != 0
    assert f"port {taken}" in result.stderr and "already in use" in result.stderr
    assert not (tmp_path / "data" / "demo-media").exists()
