"""Several API replicas over one library (PostgreSQL catalogue + one data folder), as behind a load
balancer, while an indexer on a Ray cluster adds items and a later run removes some: each replica
picks up every new index version by itself, none ever serves an item the catalogue does not know,
and no request fails."""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from conftest import save_image

pytestmark = pytest.mark.slow

REPLICAS = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _glimpse(env: dict, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "glimpse", *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr
    return done


class Replica:
    """One `glimpse serve` process; its output goes to a file that failure messages quote."""

    def __init__(self, env: dict, log: Path) -> None:
        self.port = _free_port()
        self.log = log
        with log.open("w") as sink:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "glimpse", "serve", "--port", str(self.port)],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)

    def said(self) -> str:
        return f"\n--- replica :{self.port} (tail) ---\n" + self.log.read_text(errors="replace")[-2500:]

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.said()
            try:
                if self.client.get("/readyz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError("the replica never became ready" + self.said())

    def hits(self, q: str = "a coloured square", k: int = 200) -> list[tuple[int, str]]:
        r = self.client.get("/v1/search", params={"q": q, "k": k})
        r.raise_for_status()
        return [(hit["id"], hit["path"]) for hit in r.json()["results"]]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Balancer(threading.Thread):
    """What a round-robin load balancer does to the replicas: each search goes to the next one.
    Counts the answers that are not a 200 and records every (item id, path) served."""

    def __init__(self, replicas: list[Replica]) -> None:
        super().__init__(daemon=True)
        self.replicas = replicas
        self.stop = threading.Event()
        self.ok = dict.fromkeys(range(len(replicas)), 0)
        self.errors: list[str] = []
        self.served: set[tuple[int, str]] = set()

    def run(self) -> None:
        queries = itertools.cycle(["red", "green square", "blue", "something yellow", "black and white"])
        for turn in itertools.cycle(range(len(self.replicas))):
            if self.stop.is_set():
                return
            replica = self.replicas[turn]
            try:
                r = replica.client.get("/v1/search", params={"q": next(queries), "k": 50})
            except httpx.HTTPError as exc:
                self.errors.append(f"replica {turn}: {exc!r}")
                continue
            if r.status_code != 200:
                self.errors.append(f"replica {turn}: {r.status_code} {r.text[:200]}")
                continue
            self.ok[turn] += 1
            self.served |= {(hit["id"], hit["path"]) for hit in r.json()["results"]}


def _catalogue(database_url: str) -> set[tuple[int, str]]:
    """(asset id, path) of every indexed item, read straight from the catalogue."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, path FROM assets WHERE status = 'indexed'"))
            return {(row.id, row.path) for row in rows}
    finally:
        engine.dispose()


def _wait_for(condition, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.3)
    return False


def test_replicas_behind_a_balancer_serve_a_live_ray_indexers_results_and_never_an_unknown_item(
    postgres_url, tmp_path, ray_cluster
):
    media = tmp_path / "media"
    first = [save_image(media / "first" / f"{i}.png", ("red", "blue")[i % 2], seed=i) for i in range(6)]
    env = {
        **os.environ,
        **ray_cluster.env,
        "GLIMPSE_DATA_DIR": str(tmp_path / "data"),  # the shared data folder
        "GLIMPSE_DATABASE_URL": postgres_url,
        "GLIMPSE_MODEL": "glimpse-tiny",
        "GLIMPSE_PRETRAINED": "none",
        "GLIMPSE_WORKERS": "1",
        "GLIMPSE_FULL_PATHS": "true",  # results name files as the test made them
        "GLIMPSE_COMMIT_UNITS": "4",  # several commits, so the replicas see the run progress
        "GLIMPSE_BATCH_SIZE": "4",
    }
    _glimpse(env, "db", "upgrade")
    _glimpse(env, "index", str(media))
    replicas = [Replica(env, tmp_path / f"replica-{i}.log") for i in range(REPLICAS)]
    balancer = Balancer(replicas)

    def said() -> str:
        return "".join(r.said() for r in replicas)

    known = _catalogue(postgres_url)
    try:
        for replica in replicas:
            replica.wait_ready()
            assert {p for _, p in replica.hits()} == {str(p) for p in first}, said()
        balancer.start()

        # An indexer on the Ray cluster adds items, some from a folder the library never had,
        # while both replicas serve...
        more = tmp_path / "more"
        added = [
            save_image((media / "added", more)[i % 2] / f"{i}.jpg", ("green", "yellow")[i % 2], seed=100 + i)
            for i in range(16)
        ]
        _glimpse(env, "index", str(media), str(more), "--ray", ray_cluster.address)
        known |= _catalogue(postgres_url)
        expected = {str(p) for p in first + added}
        for replica in replicas:
            assert _wait_for(lambda r=replica: {p for _, p in r.hits()} == expected), (
                f"replica :{replica.port} never served the added items" + said()
            )

        # ...then a run removes some: both replicas drop them without a restart.
        shutil.rmtree(media / "first")
        _glimpse(env, "index", str(media), str(more), "--ray", ray_cluster.address)
        final = _catalogue(postgres_url)
        for replica in replicas:
            assert _wait_for(lambda r=replica: set(r.hits()) == final), (
                f"replica :{replica.port} still serves removed items" + said()
            )

        balancer.stop.set()
        balancer.join(timeout=60)
        assert balancer.errors == [], said()
        assert all(n >= 20 for n in balancer.ok.values()), f"searches per replica: {balancer.ok}" + said()
        # Everything ever served was, at that time, an item of the catalogue with that path.
        assert balancer.served <= known | final, said()
        for replica in replicas:
            assert replica.proc.poll() is None, said()  # the same processes served throughout
            ready = replica.client.get("/readyz")
            assert ready.status_code == 200, ready.text  # the index it holds is the catalogue's
            for item_id, path in replica.hits():
                assert replica.client.get(f"/v1/items/{item_id}").json()["path"] == path
            # Files of the folder added while it ran, and the thumbnails the indexer wrote to
            # the shared data folder, are served too: nothing of the library is cached per process.
            hit = next(
                h
                for h in replica.client.get("/v1/search", params={"q": "x", "k": 200}).json()["results"]
                if h["path"].startswith(str(more))
            )
            assert replica.client.get(hit["media_url"]).content == Path(hit["path"]).read_bytes()
            assert replica.client.get(hit["thumbnail_url"]).headers["content-type"] == "image/jpeg"
    finally:
        balancer.stop.set()
        for replica in replicas:
            replica.stop()
