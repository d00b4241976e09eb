"""What runs on the Ray cluster's nodes for ``glimpse index --ray``: the decode tasks and the
embedding actor (:mod:`glimpse.indexer.ray_runner` is the driver's side).

Ray workers import this module to run the tasks, so it imports only what decoding needs (no
SQL, no settings, no ray or torch at import: the actor imports torch itself) — each worker starts
that much sooner.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import fields
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import numpy as np

from glimpse.core.preprocess import PreprocessConfig
from glimpse.core.vocabulary import Kind
from glimpse.indexer.decode import (
    DecodedImage,
    VideoDone,
    VideoFrames,
    decode_image_file,
    lower_priority,
    mp_context,
    video_frames,
)

__all__ = ["ChildDecoder", "DecoderCrashed", "EmbedActor", "decode_unit", "stat_paths"]


# One row per model input (an image, or a sampled video frame), plus one row that closes each file
# with what decoding learned about it (``meta``, JSON) and how many frame rows it has (``frames``).
# An image that decoded is both: its one frame row carries the meta. Columns:
#   path str, frame int64 (-1: a closing row without pixels), time float64 (s), shot_start bool,
#   embed bool (pixels hold a model input), pixels (S, S, 3) uint8, thumbnail bytes (JPEG),
#   meta str ("" but on the closing row), frames int64, deferred bool (the node could not open it)
# The embedding actor swaps ``pixels`` for ``vector`` (D,) float32.


class DecoderCrashed(RuntimeError):
    """The decode process died on a file (a C library crashed on it)."""


class ChildDecoder:
    """A decode process beside this Ray worker, below the model's priority, as the local decoders are.

    A hostile file can crash the C libraries that decode it (a segfault, not an exception). Here
    that kills the child, not the Ray worker: only that file fails, as in the local indexer,
    whereas a dead worker would be retried by Ray, again and again, on the same file.
    """

    def __init__(self) -> None:
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None

    def run(self, fn: Callable[..., Iterator[Any]], *args: Any) -> Iterator[Any]:
        """Yield what ``fn(*args)`` yields in the child; :class:`DecoderCrashed` if it dies."""
        conn = self._connection()
        conn.send((fn, args))
        finished = False
        try:
            while True:
                try:
                    what, value = conn.recv()
                except (EOFError, OSError):
                    raise DecoderCrashed from None
                if what == "end":
                    finished = True
                    return
                if what == "error":
                    finished = True
                    raise value
                yield value
        finally:
            if not finished:  # crashed, or the task stopped listening half way: start afresh
                self.close()

    def _connection(self) -> Connection:
        if self._proc is None or self._conn is None or not self._proc.is_alive():
            self.close()
            ctx = mp_context()
            self._conn, child = ctx.Pipe()
            self._proc = ctx.Process(target=_serve_decoding, args=(child,), daemon=True)
            self._proc.start()
            child.close()
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
            self._proc.join(timeout=5)
        self._proc = self._conn = None


def _serve_decoding(conn: Connection) -> None:
    """The child's loop: run each (generator function, args) it is sent, streaming the items."""
    lower_priority()
    while True:
        try:
            fn, args = conn.recv()
        except EOFError:
            return  # the Ray worker closed the pipe, or died
        try:
            for item in fn(*args):
                conn.send(("item", item))
            conn.send(("end", None))
        except Exception as exc:  # noqa: BLE001 - handed to the task, which re-raises it
            conn.send(("error", exc))


_child: ChildDecoder | None = None


def decode_unit(
    batch: dict[str, np.ndarray],
    *,
    cfg: PreprocessConfig,
    max_pixels: int,
    video_fps: float,
    video_max_frames: int,
    video_sampling: str,
) -> Iterator[dict[str, np.ndarray]]:
    """Ray Data task: the work units of ``batch`` (columns ``kind``, ``paths``) as row batches.

    Never raises for a bad file, not even one that crashes its decoder (the closing row says
    why); decoding runs in a :class:`ChildDecoder` and streams out a chunk at a time, so a long
    video never sits whole in memory.
    """
    global _child
    if _child is None:
        _child = ChildDecoder()
    node = _node_label()
    for kind, paths in zip(batch["kind"], batch["paths"], strict=True):
        for path in map(str, paths):
            if kind == Kind.VIDEO:
                work: tuple[Any, ...] = (
                    _video_rows,
                    path,
                    cfg,
                    video_fps,
                    video_max_frames,
                    video_sampling,
                    node,
                )
            else:
                work = (_image_rows, path, cfg, max_pixels, node)
            frames = 0
            try:
                for rows in _child.run(*work):
                    frames += int(rows["embed"].sum())
                    yield rows
            except DecoderCrashed:
                crash = {"path": path, "error": "the decoder crashed on this file"}
                yield _closing_row(path, cfg, crash, frames=frames)


def _image_rows(
    path: str, cfg: PreprocessConfig, max_pixels: int, node: str
) -> Iterator[dict[str, np.ndarray]]:
    unreadable = _unreadable(path, node)
    if unreadable:
        yield _closing_row(path, cfg, {"path": path, "error": unreadable}, frames=0, deferred=True)
        return
    image = decode_image_file(path, cfg, max_pixels, normalize=False)
    if image.pixels is None or image.thumbnail is None:
        yield _closing_row(path, cfg, _meta(image), frames=0)
        return
    yield _rows(
        path,
        frame=[0],
        time=[0.0],
        shot_start=[False],
        pixels=image.pixels[None],
        thumbnails=[image.thumbnail],
        meta=json.dumps(_meta(image)),
        frames=1,
    )


def _video_rows(
    path: str, cfg: PreprocessConfig, fps: float, max_frames: int, sampling: Any, node: str
) -> Iterator[dict[str, np.ndarray]]:
    unreadable = _unreadable(path, node)
    if unreadable:
        yield _closing_row(path, cfg, {"path": path, "error": unreadable}, frames=0, deferred=True)
        return
    sent = 0
    for item in video_frames(path, cfg, fps, max_frames, sampling, normalize=False):
        if isinstance(item, VideoFrames):
            n = len(item.times)
            yield _rows(
                path,
                frame=list(range(sent, sent + n)),
                time=item.times,
                shot_start=item.shot_changes,
                pixels=item.pixels,
                thumbnails=item.thumbnails,
            )
            sent += n
        else:
            # Frames sent before a late error are counted: the driver waits for exactly these.
            yield _closing_row(path, cfg, _meta(item), frames=sent)


def _rows(
    path: str,
    *,
    frame: list[int],
    time: list[float],
    shot_start: list[bool],
    pixels: np.ndarray,
    thumbnails: list[bytes],
    meta: str = "",
    frames: int = 0,
) -> dict[str, np.ndarray]:
    n = len(frame)
    return {
        "path": np.array([path] * n, dtype=object),
        "frame": np.asarray(frame, dtype=np.int64),
        "time": np.asarray(time, dtype=np.float64),
        "shot_start": np.asarray(shot_start, dtype=bool),
        "embed": np.ones(n, dtype=bool),
        "pixels": np.ascontiguousarray(pixels, dtype=np.uint8),
        "thumbnail": np.array(thumbnails, dtype=object),
        "meta": np.array([""] * (n - 1) + [meta], dtype=object),
        "frames": np.array([0] * (n - 1) + [frames], dtype=np.int64),
        "deferred": np.zeros(n, dtype=bool),
    }


def _closing_row(
    path: str, cfg: PreprocessConfig, meta: dict[str, Any], frames: int, deferred: bool = False
) -> dict[str, np.ndarray]:
    size = cfg.image_size
    return {
        "path": np.array([path], dtype=object),
        "frame": np.array([-1], dtype=np.int64),
        "time": np.zeros(1, dtype=np.float64),
        "shot_start": np.zeros(1, dtype=bool),
        "embed": np.zeros(1, dtype=bool),
        "pixels": np.zeros((1, size, size, 3), dtype=np.uint8),
        "thumbnail": np.array([b""], dtype=object),
        "meta": np.array([json.dumps(meta)], dtype=object),
        "frames": np.array([frames], dtype=np.int64),
        "deferred": np.array([deferred]),
    }


def _meta(done: DecodedImage | VideoDone) -> dict[str, Any]:
    """What decoding learned about a file (the writer's fields), without pixels or thumbnail."""
    return {f.name: getattr(done, f.name) for f in fields(done) if f.name not in ("pixels", "thumbnail")}


def _unreadable(path: str, node: str) -> str | None:
    """Why this node cannot open ``path`` (it is missing here, or not readable), else None."""
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        return (
            f"cannot open the file on Ray node {node}: {exc.strerror or exc}. Every node must see "
            "the media under the same path as the indexer (a shared filesystem mounted at the same "
            "place); the file is left for the next run"
        )
    return None


def _node_label() -> str:
    """This node as a message names it: Ray's node id (short), host name and address."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    return f"{node_id[:12]} ({socket.gethostname()}, {ray.util.get_node_ip_address()})"


def stat_paths(paths: list[str]) -> tuple[str, list[tuple[str, str]]]:
    """Ray task for the media check: (this node, [(path, why it cannot be opened here)])."""
    node = _node_label()
    missing = []
    for path in paths:
        try:
            with open(path, "rb") as fh:
                fh.read(1)
        except OSError as exc:
            missing.append((path, str(exc.strerror or exc)))
    return node, missing


class EmbedActor:
    """Ray Data actor: the library's model, loaded once; row batches in, vectors out.

    ``threads`` (CPU actors): torch threads, 0 = every core this process may use — the decode
    tasks beside it run below its priority, as the local decoders do.
    """

    def __init__(self, model: str, pretrained: str | None, device: str, threads: int = 0) -> None:
        from glimpse.core.runtime import let_idle_threads_sleep

        let_idle_threads_sleep()  # before torch loads, as `glimpse index` does
        import torch

        from glimpse.core.encoder import Encoder

        if not device.startswith("cuda"):
            # Ray sets OMP_NUM_THREADS to the actor's logical CPUs (1); the model wants the cores.
            torch.set_num_threads(threads or len(os.sched_getaffinity(0)))
        self.encoder = Encoder(model, pretrained, device=device).load()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        embed = np.asarray(batch["embed"], dtype=bool)
        vectors = np.zeros((len(embed), self.encoder.dim), dtype=np.float32)
        if embed.any():
            vectors[embed] = self.encoder.encode_image_crops(np.asarray(batch["pixels"])[embed])
        out = {k: v for k, v in batch.items() if k != "pixels"}
        out["vector"] = vectors
        return out
