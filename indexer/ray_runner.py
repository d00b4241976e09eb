"""Indexing on a Ray cluster: the same run, with reading, decoding and embedding spread over nodes.

``glimpse index PATHS --ray auto|local|ADDRESS`` runs :class:`~glimpse.indexer.pipeline.Indexer`
exactly as on one machine — writer lock, run record, scan plan, removals, commits and the index
stay with this process, the driver — with :class:`RayEmbedding` as its embedding stage::

    driver: scan plan -> work units (a batch of images, or one video)
      -> Ray Data, CPU tasks (decode_unit): read, hash, decode, sample videos, crop to the model's
         input as uint8 (a quarter of the float bytes to move), thumbnails
      -> Ray Data, actor pool (EmbedActor): the library's model, loaded once per actor; one GPU
         each when the cluster has GPUs, CPU actors otherwise
      -> driver: rows regrouped into one Embedded per file (a video's frames together) and
         streamed to the single CatalogueWriter, which commits them as the local indexer does.

Failures: Ray retries a task whose worker died and restarts a dead actor (its batch is retried),
and rows that arrive twice are counted once, so a killed worker does not change the result. A
killed driver is a crash like any other: what was committed stays, the next run carries on.

Every node must see the media under the same paths as the driver (a shared filesystem mounted
at the same place). A run checks it first (a task on each node stats a sample of the files), and
a file that a node cannot open is reported as :class:`~glimpse.indexer.writer.Deferred`: listed
with the run's failures, not recorded as broken, tried again by the next run.

This module imports neither ray nor torch when it is imported: Ray workers import it to run the
decode tasks, which need neither (the actor imports torch itself).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from glimpse.core.models import BUNDLED_MODELS, is_local_file
from glimpse.core.settings import Settings
from glimpse.core.vocabulary import Kind
from glimpse.indexer.decode import DecodedImage, VideoDone
from glimpse.indexer.ray_tasks import EmbedActor, decode_unit, stat_paths
from glimpse.indexer.scan import FileEntry
from glimpse.indexer.writer import Deferred, Embedded

if TYPE_CHECKING:
    from glimpse.core.encoder import Encoder
    from glimpse.indexer.pipeline import Streamed

__all__ = ["ClusterError", "RayEmbedding", "Regrouper", "connect", "work_units"]

log = logging.getLogger("glimpse.indexer")

RAY_EXTRA = "pip install 'glimpse-search[ray]'"
# A local cluster started by `--ray auto|local` keeps at most this much in its object store: the
# stream holds a few batches of uint8 crops at a time, and the machine's memory is the model's.
LOCAL_OBJECT_STORE_BYTES = 512 << 20
CONNECT_SECONDS = 10.0  # how long the head's address may take to accept a connection
MEDIA_SAMPLE = 16  # files each node opens before a run
MEDIA_CHECK_SECONDS = 120.0  # a node that has not answered by then fails the check (never a hang)
POLL_SECONDS = 0.5  # the stream yields None this often while waiting, so chunks commit on time
# Rows a decode task emits per block: small blocks stream to the actors as they are produced.
BLOCK_BYTES = 8 << 20


class ClusterError(RuntimeError):
    """The Ray cluster cannot be reached, cannot see the media, or broke during the run."""


# -- connecting ------------------------------------------------------------------------------
def connect(address: str) -> bool:
    """Make this process a Ray driver; returns whether it connected (False: it already was).

    ``auto``: the cluster that ``RAY_ADDRESS`` or this machine's ``ray start`` names, else a new
    local one; ``local``: always a new local one; anything else: the head's ``HOST:PORT``.
    Raises :class:`ClusterError` without the ray extra, for a Ray Client (``ray://``) address,
    or when the cluster cannot be reached.
    """
    try:
        import ray
    except ImportError as exc:
        raise ClusterError(f"--ray needs Ray, which is an optional extra: {RAY_EXTRA}") from exc
    if ray.is_initialized():
        return False
    # The address `auto` resolves to first, when one is given in the environment.
    target = os.environ.get("RAY_ADDRESS", "") if address == "auto" else address
    if target.startswith("ray://"):
        raise ClusterError(
            f"{target} is a Ray Client address, and Ray Data does not run over Ray Client. Run the "
            "indexer on a node of the cluster instead: `ray start --address=HEAD:6379 --num-cpus=0 "
            "--num-gpus=0` on this machine, then `glimpse index ... --ray HEAD:6379` (see the "
            "README's cluster section)"
        )
    if target and target != "local":
        # Ray retries an address that does not answer for many minutes: fail fast instead.
        check_reachable(target)
    quiet: dict[str, Any] = {"logging_level": logging.WARNING}
    local: dict[str, Any] = {
        **quiet,
        "include_dashboard": False,
        "object_store_memory": LOCAL_OBJECT_STORE_BYTES,
    }
    try:
        if address == "local":
            ray.init(address="local", **local)
        elif address == "auto":
            try:
                ray.init(address="auto", **quiet)
            except ConnectionError:
                ray.init(address="local", **local)
        else:
            ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(f"cannot connect to the Ray cluster at {address}: {exc}") from exc
    return True


def check_reachable(address: str, timeout: float = CONNECT_SECONDS) -> None:
    """Raise :class:`ClusterError` unless something accepts connections at ``HOST:PORT``."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout):
            return
    except (OSError, ValueError) as exc:
        raise ClusterError(
            f"cannot reach the Ray cluster at {address} ({exc}): is its head running "
            "(`ray start --head`), and is its port open from here?"
        ) from None


# -- the driver's side -----------------------------------------------------------------------------
@dataclass
class _File:
    """A file whose rows are arriving: its frames by index, and its closing row once seen."""

    entry: FileEntry
    frames: dict[int, tuple[float, np.ndarray, bytes, bool]] = field(default_factory=dict)
    meta: dict[str, Any] | None = None
    expected: int = -1
    deferred: bool = False


class Regrouper:
    """Turns the cluster's rows, in any order and possibly repeated, into one result per file."""

    def __init__(self, entries: dict[str, FileEntry]) -> None:
        self.entries = entries
        self.files: dict[str, _File] = {}
        self.done: set[str] = set()

    def add(self, batch: dict[str, np.ndarray]) -> Iterator[Embedded | Deferred]:
        """The files that ``batch`` completes (a row of a finished file is a retry's repeat)."""
        for i, path in enumerate(batch["path"]):
            path = str(path)
            if path in self.done:
                continue
            f = self.files.get(path)
            if f is None:
                f = self.files[path] = _File(self.entries[path])
            if batch["embed"][i]:
                f.frames[int(batch["frame"][i])] = (
                    float(batch["time"][i]),
                    np.array(batch["vector"][i], dtype=np.float32),  # a copy: frees Ray's buffer
                    bytes(batch["thumbnail"][i]),
                    bool(batch["shot_start"][i]),
                )
            if batch["meta"][i]:
                f.meta = json.loads(batch["meta"][i])
                f.expected = int(batch["frames"][i])
                f.deferred = bool(batch["deferred"][i])
            if f.meta is not None and len(f.frames) >= f.expected:
                self.done.add(path)
                yield self._finish(self.files.pop(path))

    def unfinished(self) -> list[str]:
        return sorted(self.files)

    @staticmethod
    def _finish(f: _File) -> Embedded | Deferred:
        assert f.meta is not None
        if f.deferred:
            return Deferred(str(f.entry.path), str(f.meta.get("error")))
        done: DecodedImage | VideoDone = (
            VideoDone(**f.meta) if f.entry.kind == Kind.VIDEO else DecodedImage(**f.meta)
        )
        embedded = Embedded(f.entry, done)
        for index in sorted(f.frames):
            time, vector, thumbnail, shot_start = f.frames[index]
            embedded.add(time, vector, thumbnail, shot_start)
        return embedded


@dataclass(frozen=True)
class ActorPlan:
    """How many embedding actors, on what, and what each reserves."""

    actors: int
    device: str
    num_gpus: float
    num_cpus: float
    memory: int  # bytes of RAM an actor holds (Ray's logical "memory" resource)


class RayEmbedding:
    """The embedding stage on a Ray cluster (see the module); ``Indexer(..., stage=RayEmbedding(...))``.

    ``address``: as for :func:`connect` (default: ``settings.ray_address``, else ``auto``).
    ``check_media``: stat a sample of the files on every node before the run (the default); a
    node that joins later is still covered file by file.
    """

    def __init__(
        self,
        encoder: Encoder,
        settings: Settings,
        address: str | None = None,
        *,
        check_media: bool = True,
    ) -> None:
        self.encoder = encoder
        self.settings = settings
        self.address = address or settings.ray_address or "auto"
        self.check_media = check_media

    @contextmanager
    def embed(self, todo: list[FileEntry]) -> Iterator[Iterator[Streamed]]:
        owned = connect(self.address)  # first: it says how to install Ray when it is missing
        import ray

        stop = threading.Event()
        try:
            plan = self.actor_plan()
            if self.check_media:
                self._check_media(todo)
            batches: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=4)
            feeder = threading.Thread(
                target=_feed, args=(self._dataset(todo, plan), batches, stop), daemon=True, name="glimpse-ray"
            )
            feeder.start()
            yield self._stream(batches, {str(e.path): e for e in todo})
        finally:
            stop.set()
            if owned:
                ray.shutdown()  # ends this job: its tasks and actors stop with it

    # -- planning --------------------------------------------------------------------------
    def actor_plan(self) -> ActorPlan:
        """One actor per GPU (a GPU each) when the cluster has GPUs and ``device`` allows; else CPU
        actors, one per node. ``settings.ray_actors`` overrides the count."""
        import ray

        resources = ray.cluster_resources()
        cpus, gpus = resources.get("CPU", 0.0), int(resources.get("GPU", 0))
        memory = actor_memory(self.encoder)
        device = self.settings.device
        if device.startswith("cuda") and not gpus:
            raise ClusterError(f"--device {device} asks for GPUs, and the Ray cluster has none")
        if gpus and device != "cpu":
            plan = ActorPlan(self.settings.ray_actors or gpus, "cuda", 1.0, 1.0, memory)
        else:
            nodes = [n for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) > 0]
            plan = ActorPlan(self.settings.ray_actors or max(1, len(nodes)), "cpu", 0.0, 1.0, memory)
        if plan.actors * plan.num_cpus >= cpus:
            # The decode tasks would never get a CPU and the run would wait forever.
            raise ClusterError(
                f"{plan.actors} embedding actors take all {cpus:g} CPUs of the Ray cluster and leave "
                "none for decoding: lower --ray-actors or add CPUs"
            )
        return plan

    def _check_media(self, todo: list[FileEntry]) -> None:
        """Every node that may decode opens a sample of the files (and a checkpoint file given as
        the model's weights); raises :class:`ClusterError` naming the node and the path."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        paths = sorted(str(e.path) for e in todo)
        step = max(1, len(paths) // MEDIA_SAMPLE)
        sample = paths[::step][:MEDIA_SAMPLE]
        ref = self.encoder.ref
        if ref.name not in BUNDLED_MODELS and is_local_file(ref.pretrained):
            sample.append(str(Path(str(ref.pretrained)).resolve()))
        probe = ray.remote(num_cpus=0, max_retries=0)(stat_paths)
        nodes = [n for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) > 0]
        pending = {
            probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
                sample
            ): n
            for n in nodes
        }
        ready, late = ray.wait(list(pending), num_returns=len(pending), timeout=MEDIA_CHECK_SECONDS)
        problems = []
        for r in late:
            n = pending[r]
            problems.append(
                f"Ray node {n['NodeID'][:12]} ({n['NodeManagerHostname']}, {n['NodeManagerAddress']}) "
                f"did not answer the media check within {MEDIA_CHECK_SECONDS:g} s"
            )
        for r in ready:
            node, missing = ray.get(r)
            problems += [f"Ray node {node} cannot open {path}: {why}" for path, why in missing]
        if problems:
            raise ClusterError(
                "; ".join(problems[:5])
                + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
                + ". Every Ray node must see the media (and a checkpoint file) under the same paths "
                "as the indexer: mount the shared filesystem at the same place on every node"
            )

    def _dataset(self, todo: list[FileEntry], plan: ActorPlan) -> Any:
        import ray.data

        s = self.settings
        cfg = self.encoder.preprocess_config()
        # The CLI draws its own progress; Ray Data's bars and its per-run INFO lines would
        # interleave with it (warnings still show, but the one saying the bars are off).
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.target_max_block_size = BLOCK_BYTES
        units = work_units(todo, s.batch_size)
        ds = ray.data.from_items(units, override_num_blocks=len(units))
        ds = ds.map_batches(
            decode_unit,
            batch_size=1,
            batch_format="numpy",
            fn_kwargs={
                "cfg": cfg,
                "max_pixels": s.max_image_pixels,
                "video_fps": s.video_fps,
                "video_max_frames": s.video_max_frames,
                "video_sampling": s.video_sampling,
            },
            num_cpus=1,
        )
        return ds.map_batches(
            EmbedActor,
            batch_size=s.batch_size,
            batch_format="numpy",
            fn_constructor_kwargs={
                "model": self.encoder.ref.name,
                "pretrained": self.encoder.ref.pretrained,
                "device": plan.device,
            },
            compute=ray.data.ActorPoolStrategy(size=plan.actors),
            num_cpus=plan.num_cpus,
            num_gpus=plan.num_gpus,
            # What the model holds, so Ray places no more actors on a node than fit in its memory.
            # It also keeps the actors' resources unlike the decode tasks', without which Ray
            # Data fuses both stages into the actors: decoding then no longer overlaps the model,
            # nor spreads over the cluster's CPUs (the GPU nodes would decode for themselves).
            memory=plan.memory,
        )

    @staticmethod
    def _stream(batches: queue.Queue[tuple[str, Any]], entries: dict[str, FileEntry]) -> Iterator[Streamed]:
        regroup = Regrouper(entries)
        while True:
            try:
                what, value = batches.get(timeout=POLL_SECONDS)
            except queue.Empty:
                yield None  # the cluster is busy: let the runner commit on time
                continue
            if what == "error":
                raise ClusterError(f"the Ray pipeline stopped: {value}") from value
            if what == "end":
                break
            yield from regroup.add(value)
        for path in regroup.unfinished():  # cannot happen unless Ray lost rows: never commit half
            yield Deferred(path, "the cluster returned only part of this file's results")


def actor_memory(encoder: Encoder) -> int:
    """Bytes an embedding actor holds: twice the model's weights (weights, and activations and
    allocator slack, loosely) plus the worker with torch, Ray and Arrow loaded (Ray Data measured
    593 MiB for the tiny test model)."""
    weights = sum(p.numel() * p.element_size() for p in encoder.model.parameters())
    return 2 * int(weights) + (768 << 20)


def work_units(todo: list[FileEntry], images_per_unit: int) -> list[dict[str, Any]]:
    """The Ray tasks of a run: one per video (largest first, so the longest tasks start first),
    then the images in groups of ``images_per_unit`` (one model batch each)."""
    videos = sorted((e for e in todo if e.kind == Kind.VIDEO), key=lambda e: -e.size)
    images = [str(e.path) for e in todo if e.kind != Kind.VIDEO]
    units: list[dict[str, Any]] = [{"kind": str(Kind.VIDEO), "paths": [str(v.path)]} for v in videos]
    units += [
        {"kind": str(Kind.IMAGE), "paths": images[i : i + images_per_unit]}
        for i in range(0, len(images), images_per_unit)
    ]
    return units


def _feed(ds: Any, out: queue.Queue[tuple[str, Any]], stop: threading.Event) -> None:
    """Iterate the dataset's output into ``out`` (a thread: the runner must be able to wait with a
    timeout); ends with ("end", None), or ("error", exc) when the pipeline broke."""

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            if not put(("batch", batch)):
                return
        put(("end", None))
    except BaseException as exc:  # noqa: BLE001 - handed to the runner, which re-raises it
        put(("error", exc))
