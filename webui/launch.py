"""``glimpse ui``: run the Streamlit app as a child process pointed at the search API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

APP = Path(__file__).resolve().parent / "app.py"
# Look and feel for people searching, not developing: no "Deploy" menu, one calm accent colour.
PRESENTATION = ["--client.toolbarMode", "minimal", "--theme.primaryColor", "#4f46e5"]


def streamlit_command(host: str, port: int) -> list[str]:
    """The ``streamlit run`` command line for the UI (headless, no usage statistics)."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        *PRESENTATION,
    ]


def run_ui(host: str, port: int, api_url: str | None) -> int:
    """Serve the web UI until it stops or this process is told to; returns Streamlit's exit code."""
    env = dict(os.environ)
    if api_url:
        env["GLIMPSE_API_URL"] = api_url
    process = subprocess.Popen(streamlit_command(host, port), env=env)
    restore = _forward_termination(process)
    try:
        return _exit_code(process.wait())
    except KeyboardInterrupt:  # only where the signals could not be forwarded (not the main thread)
        try:
            return _exit_code(process.wait(timeout=10))
        except subprocess.TimeoutExpired:
            process.kill()
            return _exit_code(process.wait())
    finally:
        restore()


def _exit_code(returncode: int) -> int:
    """A child killed by signal N (``returncode`` -N) exits as a shell reports it: 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def _forward_termination(process: subprocess.Popen[bytes]) -> Callable[[], None]:
    """Pass SIGTERM, SIGHUP and SIGINT on to Streamlit, so stopping ``glimpse ui`` never leaves it
    running; ``glimpse ui`` then exits when Streamlit does.

    SIGINT too, not left to KeyboardInterrupt: a shell starts a background job with SIGINT ignored,
    Python then installs no handler, and ``kill -INT`` did nothing. A Ctrl-C at a terminal reaches
    Streamlit twice (from the terminal and from here); its handler only asks the server to stop.
    SIGHUP goes on as SIGTERM: Streamlit stops cleanly on SIGTERM but has no handler for SIGHUP."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    names = ("SIGTERM", "SIGHUP", "SIGINT")
    signals = [s for s in (getattr(signal, name, None) for name in names) if s is not None]

    def forward(signum: int, _frame: FrameType | None) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM if signum == getattr(signal, "SIGHUP", None) else signum)

    previous = {s: signal.signal(s, forward) for s in signals}

    def restore() -> None:
        for s, handler in previous.items():
            signal.signal(s, handler)

    return restore
