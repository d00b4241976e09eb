"""``glimpse serve``: refuse unsafe binds, then run the app under uvicorn."""

from __future__ import annotations

import ipaddress
import logging

from glimpse.core.runtime import let_idle_threads_sleep
from glimpse.core.settings import Settings

log = logging.getLogger("glimpse.api")


class UnsafeBind(RuntimeError):
    """Listening beyond this machine without API keys (and without ``--insecure``)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything: not loopback


def check_bind(settings: Settings, insecure: bool = False) -> None:
    """Raise :class:`UnsafeBind` for a non-loopback address without keys, unless ``insecure``."""
    if is_loopback(settings.host) or settings.api_keys or insecure:
        return
    raise UnsafeBind(
        f"refusing to listen on {settings.host} without API keys: anyone who can reach this address "
        "could search the library and read its files. Set GLIMPSE_API_KEYS (comma-separated keys "
        "clients send as `Authorization: Bearer <key>`), bind to 127.0.0.1, or pass --insecure if "
        "another layer protects this port."
    )


def run_server(settings: Settings, insecure: bool = False) -> None:
    """Serve the API on ``settings.host:settings.port`` until interrupted."""
    check_bind(settings, insecure)
    let_idle_threads_sleep()  # before torch and FAISS load
    import uvicorn

    from glimpse.core.runtime import keep_blas_in_calling_thread
    from glimpse.search.api.app import create_app

    app = create_app(settings)
    keep_blas_in_calling_thread()  # a query's small products stay on its own thread
    if not is_loopback(settings.host) and not settings.api_keys:
        log.warning("serving on %s without API keys (--insecure)", settings.host)
    # One process: the model and the index are loaded once and shared by all requests
    # (the thread pool and the micro-batchers give the concurrency).
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        server_header=False,
        timeout_graceful_shutdown=10,
    )
