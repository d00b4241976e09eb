"""`glimpse index --ray` on a real local Ray cluster: the same library as the local indexer, a
killed worker retried, a killed driver resumed, a node without the media reported, never a hang."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from conftest import save_image, tiny_settings
from glimpse.core.catalogue import Asset, IndexRun, Unit
from glimpse.core.library import Library
from glimpse.core.vocabulary import RunStatus, Status
from glimpse.indexer.pipeline import Indexer
from glimpse.indexer.ray_runner import ClusterError, RayEmbedding
from glimpse.search.embedding import QueryEmbedder
from glimpse.search.engine import SearchEngine
from glimpse.search.query import SearchQuery
from videos import BLUE, GREEN, RED, YELLOW, Scene, coloured_video, not_a_video, scene_frames

pytestmark = pytest.mark.slow

SCENES = [Scene(3.0, RED), Scene(3.0, GREEN), Scene(3.0, BLUE)]
COLOURS = ["red", "green", "blue", "yellow", "black", "white"]
RUN_SECONDS = 300  # a run that takes longer than this on the test cluster is a hang


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 images (one broken file), two good videos and one that is not a video."""
    root = tmp_path_factory.mktemp("ray-media")
    for i in range(24):
        suffix = "png" if i % 4 == 0 else "jpg"
        save_image(root / "shop" / f"{i:02d}.{suffix}", COLOURS[i % 6], size=(96 + i, 72), seed=i)
    (root / "shop" / "broken.jpg").write_bytes(b"not an image")
    (root / "clips").mkdir()
    coloured_video(root / "clips" / "scenes.mp4", SCENES)
    coloured_video(root / "clips" / "static.avi", [Scene(4.0, YELLOW)], codec="mpeg4")
    not_a_video(root / "clips" / "fake.mp4")
    return root


def _settings(folder: Path, database_url: str | None = None, **overrides):
    return tiny_settings(folder, database_url, batch_size=4, commit_units=8, **overrides)


@dataclass
class Stored:
    """What the catalogue and the data folder hold for one file (ids left out: they differ)."""

    status: str
    fields: tuple
    units: list[tuple[float | None, float | None, float | None]]
    vectors: np.ndarray
    thumbnails: list[bytes]


def stored(library: Library) -> dict[str, Stored]:
    snapshot = library.open_index(repair=False)
    out = {}
    with library.Session() as s:
        for a in s.scalars(select(Asset)):
            units = list(s.scalars(select(Unit).where(Unit.asset_id == a.id).order_by(Unit.t_start)))
            ids = np.array([u.id for u in units], dtype=np.int64)
            out[a.path] = Stored(
                status=a.status,
                fields=(a.kind, a.size, a.width, a.height, a.duration, a.fps, a.content_hash, a.error),
                units=[(u.t_start, u.t_end, u.t_best) for u in units],
                vectors=snapshot.index.vectors(ids) if a.status == Status.INDEXED else np.zeros((0,)),
                thumbnails=[(library.root / u.thumbnail).read_bytes() for u in units if u.thumbnail],
            )
    return out


def assert_same_library(got: Library, expected: Library) -> None:
    a, b = stored(got), stored(expected)
    assert sorted(a) == sorted(b)
    for path in b:
        assert (a[path].status, a[path].fields) == (b[path].status, b[path].fields), path
        # Start, end and best time of each unit (None for an image: NaN here).
        np.testing.assert_allclose(
            np.array(a[path].units, dtype=float), np.array(b[path].units, dtype=float), err_msg=path
        )
        # float16 shards on both sides: a different batch composition may move the last bit.
        np.testing.assert_allclose(a[path].vectors, b[path].vectors, atol=2e-3, err_msg=path)
        assert a[path].thumbnails == b[path].thumbnails, path
    assert_index_matches_catalogue(got)


def assert_index_matches_catalogue(library: Library) -> None:
    snapshot = library.open_index(repair=False)
    assert np.array_equal(np.sort(snapshot.index.ids()), library.live_unit_ids())


def results(library: Library, settings, encoder, query: SearchQuery, image=None) -> tuple[list, list]:
    """(path, start, end) of each hit, best first, and the scores."""
    engine = SearchEngine(library, settings, QueryEmbedder(encoder))
    page = engine.search(query, image=image).results
    return [(r.path, r.start, r.end) for r in page], [r.score for r in page]


def ray_index(library, encoder, settings, address, paths, progress=None, **stage_options):
    stage = RayEmbedding(encoder, settings, address, **stage_options)
    return Indexer(library, encoder, settings, progress=progress, stage=stage).run(list(paths))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, media, tiny_encoder):
    """The media indexed by the local indexer: what every Ray run must reproduce."""
    settings = _settings(tmp_path_factory.mktemp("local-library"))
    library = Library(settings)
    summary = Indexer(library, tiny_encoder, settings).run([media])
    yield library, settings, summary
    library.close()


def test_ray_indexes_the_same_items_units_vectors_and_results_as_the_local_indexer(
    tmp_path, media, tiny_encoder, reference, ray_cluster
):
    local, local_settings, local_summary = reference
    settings = _settings(tmp_path / "library")
    library = Library(settings)
    summary = ray_index(library, tiny_encoder, settings, ray_cluster.address, [media])

    assert (summary.indexed, summary.units) == (local_summary.indexed, local_summary.units)
    assert sorted(summary.failed) == sorted(local_summary.failed)
    assert {p.rsplit("/", 1)[-1] for p, _ in summary.failed} == {"broken.jpg", "fake.mp4"}
    assert_same_library(library, local)

    frame = Image.fromarray(list(scene_frames(SCENES, 10, 160, 120))[45])  # 4.5 s: the green scene
    for query, image in [
        (SearchQuery(q="a red square", k=20), None),
        (SearchQuery(media="video", k=5), frame),
        (SearchQuery(k=10), Image.open(media / "shop" / "03.jpg").convert("RGB")),
    ]:
        hits, scores = results(library, settings, tiny_encoder, query, image)
        local_hits, local_scores = results(local, local_settings, tiny_encoder, query, image)
        assert hits and hits == local_hits
        assert scores == pytest.approx(local_scores, abs=2e-3)

    # A re-run skips everything, and with nothing to embed it does not even need the cluster.
    stored_vectors = library.vector_store().stored_count()
    again = ray_index(library, tiny_encoder, settings, "127.0.0.1:1", [media])
    assert (again.indexed, again.units, again.unchanged) == (0, 0, summary.indexed + len(summary.failed))
    assert library.vector_store().stored_count() == stored_vectors
    library.close()


class Killer(threading.Thread):
    """Watches one node's processes and SIGKILLs the first whose title contains ``title``."""

    def __init__(self, node, title: str) -> None:
        super().__init__(daemon=True)
        self.node, self.title = node, title
        self.killed: list[int] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and not self.killed:
            for pid in self.node.pids(self.title):
                os.kill(pid, signal.SIGKILL)
                self.killed.append(pid)
                break
            time.sleep(0.02)


def test_killed_workers_are_retried_and_the_run_completes_with_the_same_result(
    tmp_path, media, tiny_encoder, reference, ray_cluster
):
    local, _, local_summary = reference
    settings = _settings(tmp_path / "library")
    library = Library(settings)
    head = ray_cluster.head
    decoder = Killer(head, "ray::MapBatches(decode_unit)")  # a decode task, while it runs
    actor = Killer(head, "ray::MapWorker(MapBatches(EmbedActor))")
    commits = []

    def progress(event: str, n: int) -> None:
        commits.append(n)
        if len(commits) == 1:
            # Mid-run: the first chunk is committed, the rest is still on its way.
            assert not head.pids("decode_unit)->"), "the decode tasks were fused into the actor"
            actor.start()
            actor.join(timeout=30)

    decoder.start()
    summary = ray_index(library, tiny_encoder, settings, ray_cluster.address, [media], progress=progress)
    decoder.stop.set()
    actor.stop.set()
    assert decoder.killed, "no decode task was running to be killed"
    assert actor.killed, "the embedding actor was not found"
    assert len(commits) > 2  # the kill came with most of the run still to do
    assert (summary.indexed, summary.units) == (local_summary.indexed, local_summary.units)
    assert sorted(summary.failed) == sorted(local_summary.failed)
    assert_same_library(library, local)
    library.close()


def _glimpse(settings, *args: str) -> list[str]:
    base = [sys.executable, "-m", "glimpse", "--data-dir", str(settings.data_dir)]
    if settings.database_url:
        base += ["--database-url", settings.database_url]
    return base + list(args)


def test_a_driver_killed_mid_run_leaves_a_library_that_opens_and_the_next_run_resumes(
    tmp_path, postgres_url, tiny_encoder, ray_cluster
):
    root = tmp_path / "many"
    for i in range(160):
        save_image(root / f"{i:03d}.png", COLOURS[i % 3], size=(64, 48), seed=i)
    settings = tiny_settings(tmp_path / "library", postgres_url)
    env = {**os.environ, **ray_cluster.env, "GLIMPSE_COMMIT_UNITS": "8", "GLIMPSE_BATCH_SIZE": "8"}
    command = _glimpse(settings, "index", str(root), "--model", "glimpse-tiny", "--pretrained", "none")
    proc = subprocess.Popen(
        [*command, "--ray", ray_cluster.address], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    library = Library(settings)
    deadline = time.monotonic() + RUN_SECONDS
    committed = 0
    while time.monotonic() < deadline and proc.poll() is None and committed < 16:
        with library.Session() as s:
            committed = s.scalar(select(func.count()).select_from(Asset)) or 0
        time.sleep(0.05)
    assert proc.poll() is None, f"the indexer ended before it could be killed: {proc.stderr.read()}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    # The library opens and serves exactly what was committed (the index is repaired on open).
    snapshot = library.open_index()
    assert 0 < len(snapshot.index) < 160
    assert_index_matches_catalogue(library)
    with library.Session() as s:
        assert s.scalar(select(IndexRun.status).order_by(IndexRun.id.desc()).limit(1)) == RunStatus.RUNNING

    # The next run, on the same cluster, finishes the job without duplicating anything.
    done = subprocess.run(
        [*_glimpse(settings, "index", str(root), "--json"), "--ray", ray_cluster.address],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["indexed"] + report["unchanged"] == 160 and report["failed"] == []
    with library.Session() as s:
        assert s.scalar(select(func.count()).select_from(Asset)) == 160
        assert s.scalar(select(func.count()).select_from(Unit)) == 160
    assert len(library.open_index().index) == 160
    assert_index_matches_catalogue(library)
    library.close()


def test_actors_that_would_take_every_cpu_are_refused_before_the_run(tmp_path, tiny_encoder, ray_cluster):
    import ray

    settings = _settings(tmp_path / "library", ray_actors=2)  # the head has 2 CPUs
    stage = RayEmbedding(tiny_encoder, settings, ray_cluster.address)
    ray.init(address=ray_cluster.address)
    try:
        with pytest.raises(ClusterError, match="leave none for decoding"):
            stage.actor_plan()
    finally:
        ray.shutdown()


@pytest.fixture
def hidden_media(ray_cluster) -> Path:
    """Media the cluster's node cannot see (see tests/raycluster.py), though this process can."""
    if ray_cluster.hidden is None:
        reason = "cannot make a mount namespace here (unshare -m needs root): no node can be blinded"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    root = ray_cluster.hidden / f"media-{time.monotonic_ns()}"
    for i in range(6):
        save_image(root / f"{i}.jpg", COLOURS[i], seed=i)
    (root / "clips").mkdir()
    coloured_video(root / "clips" / "scenes.mp4", SCENES)
    return root


def _head_node_id(address: str) -> str:
    import ray

    ray.init(address=address)
    try:
        return next(n["NodeID"] for n in ray.nodes() if n["Alive"])[:12]
    finally:
        ray.shutdown()


def test_a_node_that_cannot_see_the_media_fails_the_run_at_the_start_naming_it_and_the_path(
    tmp_path, hidden_media, tiny_encoder, ray_cluster
):
    node = _head_node_id(ray_cluster.address)
    settings = _settings(tmp_path / "library")
    library = Library(settings)
    with pytest.raises(ClusterError) as caught:
        ray_index(library, tiny_encoder, settings, ray_cluster.address, [hidden_media])
    message = str(caught.value)
    assert f"Ray node {node}" in message and str(hidden_media) in message
    assert "same paths" in message
    with library.Session() as s:
        assert s.scalar(select(func.count()).select_from(Asset)) == 0  # nothing half-done
        run = s.scalars(select(IndexRun)).one()
        assert run.status == RunStatus.FAILED and node in (run.message or "")
    library.close()


def test_files_a_node_cannot_open_are_reported_per_file_and_left_for_the_next_run(
    tmp_path, hidden_media, tiny_encoder, ray_cluster
):
    # As if the node had joined after the check (an autoscaled node): each file is reported.
    node = _head_node_id(ray_cluster.address)
    settings = _settings(tmp_path / "library")
    library = Library(settings)
    summary = ray_index(
        library, tiny_encoder, settings, ray_cluster.address, [hidden_media], check_media=False
    )
    every = {str(p) for p in hidden_media.rglob("*") if p.is_file()}
    failed = dict(summary.failed)
    assert set(failed) == every and summary.indexed == 0
    for reason in failed.values():
        assert f"Ray node {node}" in reason and "cannot open the file" in reason and "same path" in reason
    with library.Session() as s:
        assert s.scalar(select(func.count()).select_from(Asset)) == 0  # not recorded as broken
    assert_index_matches_catalogue(library)
    # The next run, where the media can be read, indexes every one of them.
    again = Indexer(library, tiny_encoder, settings).run([hidden_media])
    assert again.indexed == len(every) and again.failed == []
    library.close()
