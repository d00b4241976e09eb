"""A real Ray cluster on this machine for tests: its head node, and the node's processes.

The node is a ``ray start --block`` process in a session of its own, so the test can find the
node's workers (they stay in the session) and stop it without touching any other Ray on the
machine (never ``ray stop``, which stops every Ray of the user). Everything binds to the loopback
address and its own ports, and the cluster has its own token and temp folder.

Ray runs a cluster on the loopback address only as a single node (its macOS mode; a second node
would need the machine's network address). A node that cannot see the media is made by giving
the head its own mount namespace, in which an empty filesystem covers one folder (``hidden``):
files the tests write there exist for them and not for the node, as for a node whose shared
filesystem is not mounted.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
START_SECONDS = 180  # a loaded 2-core machine starts a node in 10-30 s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cluster_env() -> dict[str, str]:
    """Settings every process of the test cluster (nodes and drivers) must share."""
    return {
        # Ray treats a cluster as one machine on the loopback address (as on macOS) instead of
        # resolving 127.0.0.1 to the machine's network address: nothing leaves the loopback.
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        # A token of its own: other Ray instances on the machine share ~/.ray/auth_token.
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
        "RAY_USAGE_STATS_ENABLED": "0",
        # Ray kills its own workers when the machine's memory passes 95%, whoever uses it; on a
        # machine shared with other work that turns into retries and slow, flaky tests.
        "RAY_memory_monitor_refresh_ms": "0",
    }


@dataclass
class Node:
    """One ``ray start --block`` process (the session leader of that node's processes)."""

    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def session(self) -> int:
        return self.proc.pid

    def pids(self, title: str = "") -> list[int]:
        """Live processes of this node whose command line (a Ray worker's is its title, e.g.
        ``ray::MapWorker(MapBatches(EmbedActor))``) contains ``title``."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            state, session = fields[0], int(fields[3])
            if session == self.session and state != "Z" and title in cmdline:
                found.append(int(entry.name))
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        for pid in self.pids():  # what the node's own shutdown left behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=20)


@dataclass
class RayCluster:
    env: dict[str, str] = field(default_factory=cluster_env)
    temp_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="glr", dir="/tmp")))
    nodes: list[Node] = field(default_factory=list)
    address: str = ""
    hidden: Path | None = None  # a folder the node does not see (None: it sees everything)

    @property
    def head(self) -> Node:
        return self.nodes[0]

    def start_head(self, num_cpus: int = 2, object_store_bytes: int = 300 * 10**6) -> str:
        port = free_port()
        self.address = f"127.0.0.1:{port}"
        hidden = Path(tempfile.mkdtemp(prefix="hidden", dir=self.temp_dir))
        wrap = None
        if can_unshare_mounts():
            mount = 'mount -t tmpfs tmpfs "$0" && exec "$@"'
            wrap = ["unshare", "-m", "--propagation", "private", "sh", "-c", mount, str(hidden)]
            self.hidden = hidden
        args = ["--head", f"--port={port}", "--include-dashboard=false"]
        self._start("head", args, num_cpus, object_store_bytes, wrap)
        return self.address

    def _start(
        self, name: str, args: list[str], num_cpus: int, store: int, wrap: list[str] | None = None
    ) -> Node:
        log = self.temp_dir / f"{name}.log"
        command = [
            RAY,
            "start",
            "--block",
            *args,
            f"--num-cpus={num_cpus}",
            "--num-gpus=0",
            f"--object-store-memory={store}",
            f"--temp-dir={self.temp_dir}",
            f"--dashboard-agent-listen-port={free_port()}",
            "--disable-usage-stats",
        ]
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                [*(wrap or []), *command],
                env={**os.environ, **self.env},
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        node = Node(proc, log)
        self.nodes.append(node)
        deadline = time.monotonic() + START_SECONDS
        while b"Ray runtime started" not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                node.stop()
                raise RuntimeError(
                    f"ray node {name} did not start:\n{log.read_text(errors='replace')[-3000:]}"
                )
            time.sleep(0.3)
        return node

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
        self.nodes.clear()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def can_unshare_mounts() -> bool:
    """Whether this process may make a mount namespace (root, or a kernel that lets users)."""
    try:
        return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0
    except OSError:
        return False
