"""`glimpse ui` owns its Streamlit child: every way of stopping it stops the UI and frees the port."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_demo_processes import answers, demo_env, free_port, wait_until

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("signum", "background"),
    [(signal.SIGTERM, False), (signal.SIGHUP, False), (signal.SIGINT, False), (signal.SIGINT, True)],
    ids=["SIGTERM", "SIGHUP", "SIGINT", "SIGINT-to-a-background-job"],
)
def test_the_ui_stops_with_glimpse_ui(tmp_path: Path, signum: signal.Signals, background: bool) -> None:
    port = free_port()
    log = tmp_path / "ui.log"
    with log.open("w") as sink:
        ui = subprocess.Popen(
            [sys.executable, "-m", "glimpse", "ui", "--host", "127.0.0.1", "--port", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=demo_env(),
            # As a shell starts a background job: SIGINT ignored, so Python installs no handler.
            preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if background else None,
        )
    health = f"http://127.0.0.1:{port}/_stcore/health"
    try:
        assert wait_until(lambda: answers(health), 120), log.read_text()[-3000:]
        ui.send_signal(signum)  # to `glimpse ui` only, as `kill` sends it
        assert ui.wait(timeout=60) == 0, log.read_text()[-3000:]
        assert wait_until(lambda: not answers(health), 10), "Streamlit outlived `glimpse ui`"
    finally:
        if ui.poll() is None:
            ui.kill()
