"""Decoding work done off the main thread: images in worker processes, video frames in a thread."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import select
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.context import ForkServerContext, SpawnContext
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from glimpse.core.media import THUMBNAIL_SIZE, ImageDecodeError, decode_image, hash_bytes, make_thumbnail
from glimpse.core.ocr import OcrConfig, OcrResult, looks_same, read_text, signature
from glimpse.core.preprocess import PreprocessConfig
from glimpse.core.vocabulary import Kind

if TYPE_CHECKING:
    from glimpse.indexer.video import SampledFrame, SamplingMode

# Decoders run at this niceness (0-19): the scheduler then gives the CPU to the model's threads and
# the decoders take what those leave idle. At equal priority a decoder preempts one of the model's
# two threads on a 2-core machine, the other waits for it at the next barrier, and a batch takes
# twice as long (measured: ViT-B-32, 32 images, 1.9 s alone, 3.9 s beside a decoder at nice 0,
# 1.95 s beside one at nice 19). With a GPU the model needs little CPU and nothing changes.
DECODER_NICENESS = 19


def lower_priority(niceness: int = DECODER_NICENESS) -> None:
    """Make the calling decode worker process yield the CPU to the model; best effort."""
    with contextlib.suppress(AttributeError, OSError):  # no nice() here, or not permitted
        os.nice(max(0, niceness - os.nice(0)))


def init_worker(owner_pid: int) -> None:
    """Initialise a decode worker process: below the model's priority, and gone with its owner.

    Workers are forked by multiprocessing's forkserver, not by the indexer, and each holds both
    ends of its own task pipe, so an indexer that dies (SIGKILL, a test process ending with a
    pool still open) would leave them blocked forever, and the forkserver with them (it lives
    while any child holds its alive pipe). A daemon thread waits for the owner to exit (a pidfd
    on Linux, else a poll each second) and ends the worker.
    """
    lower_priority()
    threading.Thread(target=_exit_with, args=(owner_pid,), name="owner-watch", daemon=True).start()


def _exit_with(owner_pid: int) -> None:
    try:
        fd = os.pidfd_open(owner_pid)
    except (AttributeError, OSError):  # not Linux >= 5.3, or the owner is gone already
        while _alive(owner_pid):
            time.sleep(1.0)
    else:
        select.select([fd], [], [])  # readable once the process has exited
    os._exit(0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lower_thread_priority(niceness: int = DECODER_NICENESS) -> None:
    """The same for a decoding thread of the indexer's own process (Linux sets niceness per thread;
    elsewhere nice() would slow the whole process, model included, so this does nothing)."""
    if sys.platform.startswith("linux"):
        lower_priority(niceness)


@dataclass
class DecodedImage:
    path: str
    pixels: np.ndarray | None = None  # (3, S, S) float32 model input, or (S, S, 3) uint8 crop
    width: int | None = None
    height: int | None = None
    content_hash: str | None = None
    thumbnail: bytes | None = None
    error: str | None = None
    ocr: OcrResult | None = None  # the text read in it (with OCR on)


def decode_image_file(
    path: str, cfg: PreprocessConfig, max_pixels: int, normalize: bool = True, ocr: OcrConfig | None = None
) -> DecodedImage:
    """Read, hash, decode and preprocess one image; never raises for a bad file.

    ``pixels`` is the (3, S, S) float32 model input, or with ``normalize=False`` the (S, S, 3)
    uint8 crop that :meth:`PreprocessConfig.normalize` turns into it (a quarter of the bytes to
    move between processes or machines). With ``ocr``, the text in the image is read from the same
    decode (at up to ``ocr.max_pixels``), boxes in the file's own pixels; an OCR failure is
    reported in ``ocr.error`` and never fails the image."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return DecodedImage(path, error=f"cannot read file: {exc.strerror or exc}")
    digest = hash_bytes(data)
    try:
        if not data:
            raise ImageDecodeError("empty file")
        draft = max(cfg.image_size, THUMBNAIL_SIZE, ocr.max_side if ocr else 0)
        img, (width, height) = decode_image(data, max_pixels, draft_size=draft)
        text = read_text(img, ocr).scaled(width / img.width, height / img.height) if ocr else None
        return DecodedImage(
            path,
            pixels=cfg.to_array(img) if normalize else cfg.crop(img),
            width=width,
            height=height,
            content_hash=digest,
            thumbnail=make_thumbnail(img),
            ocr=text,
        )
    except ImageDecodeError as exc:
        return DecodedImage(path, content_hash=digest, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - one bad file must never stop a run
        return DecodedImage(path, content_hash=digest, error=f"{type(exc).__name__}: {exc}")


@dataclass
class VideoFrames:
    """A chunk of sampled frames of one video, preprocessed for the model."""

    path: str
    times: list[float]
    pixels: np.ndarray  # (N, 3, S, S) float32 model input, or (N, S, S, 3) uint8 crops
    thumbnails: list[bytes]
    shot_changes: list[bool]
    ocr: list[OcrResult | None] | None = None  # per frame, with OCR on


@dataclass
class VideoDone:
    path: str
    duration: float | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    content_hash: str | None = None
    frames: int = 0
    error: str | None = None  # set when nothing usable came out
    warning: str | None = None  # set when decoding stopped early but frames were kept


def video_frames(
    path: str,
    cfg: PreprocessConfig,
    fps: float,
    max_frames: int,
    mode: SamplingMode,
    chunk: int = 16,
    normalize: bool = True,
    ocr: OcrConfig | None = None,
) -> Iterator[VideoFrames | VideoDone]:
    """Sample one video and yield preprocessed chunks, then exactly one :class:`VideoDone`
    (``normalize`` as for :func:`decode_image_file`).

    With ``ocr``, frames are decoded at up to ``ocr.max_side`` pixels and their text is read from
    the same decode (:class:`FrameReader`: a frame that looks like the one read before it reuses
    its text, so a still scene is read once)."""
    from glimpse.indexer.scan import content_hash
    from glimpse.indexer.video import VideoDecodeError, probe_video, sample_frames

    try:
        digest = content_hash(Path(path), Kind.VIDEO)
        info = probe_video(path)
    except (VideoDecodeError, OSError) as exc:
        yield VideoDone(path, error=_reason(exc))
        return
    done = VideoDone(path, info.duration, info.fps, info.width, info.height, digest)
    buf: list[SampledFrame] = []
    reader = FrameReader(ocr, info.width, info.height) if ocr else None
    side = max(THUMBNAIL_SIZE, cfg.image_size, ocr.max_side if ocr else 0)
    try:
        for frame in sample_frames(path, fps=fps, max_frames=max_frames, mode=mode, max_side=side):
            buf.append(frame)
            done.frames += 1
            if len(buf) >= chunk:
                yield _chunk(path, buf, cfg, normalize, reader)
                buf = []
    except VideoDecodeError as exc:
        if done.frames == 0:
            done.error = _reason(exc)
        else:
            done.warning = f"decoding stopped early, kept {done.frames} frames: {_reason(exc)}"
    except Exception as exc:  # noqa: BLE001 - one bad file must never stop a run
        done.error = f"{type(exc).__name__}: {exc}"
        buf = []
    if done.error:
        buf = []
    if buf:
        yield _chunk(path, buf, cfg, normalize, reader)
    if done.frames == 0 and not done.error:
        done.error = "no frames could be decoded"
    yield done


class FrameReader:
    """Reads the text of a video's sampled frames in time order: a frame that looks the same as the
    last one read (:func:`~glimpse.core.ocr.looks_same`) and follows no cut reuses its text."""

    def __init__(self, config: OcrConfig, width: int | None, height: int | None) -> None:
        self.config = config
        self.size = (width, height)
        self.last: np.ndarray | None = None
        self.result: OcrResult | None = None

    def read(self, frame: SampledFrame) -> OcrResult:
        sig = signature(frame.image)
        if self.result is None or frame.shot_change or not looks_same(self.last, sig):
            h, w = frame.image.shape[:2]
            fx = (self.size[0] or w) / w
            fy = (self.size[1] or h) / h
            self.result = read_text(frame.image, self.config, frame.time).scaled(fx, fy)
            self.last = sig
        return self.result


def _chunk(
    path: str,
    frames: list[SampledFrame],
    cfg: PreprocessConfig,
    normalize: bool,
    reader: FrameReader | None = None,
) -> VideoFrames:
    images = [Image.fromarray(f.image) for f in frames]
    return VideoFrames(
        path,
        times=[f.time for f in frames],
        pixels=np.stack([cfg.to_array(im) if normalize else cfg.crop(im) for im in images]),
        thumbnails=[make_thumbnail(im) for im in images],
        shot_changes=[bool(getattr(f, "shot_change", False)) for f in frames],
        ocr=[reader.read(f) for f in frames] if reader else None,
    )


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "reason", None) or exc)


def mp_context() -> ForkServerContext | SpawnContext:
    """How decode processes start: fork after torch has started its thread pools can deadlock;
    forkserver is safe and cheap."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    # Preload only the (torch-free) decode module: the default also re-imports __main__, which in
    # a script that imports torch costs seconds of CPU taken from the model.
    ctx.set_forkserver_preload(["glimpse.indexer.decode"])
    return ctx


def read_image_text(path: str, max_pixels: int, ocr: OcrConfig) -> OcrResult:
    """The text in an image file that is already indexed (OCR turned on later): decoded for
    reading only, at up to ``ocr.max_pixels``, boxes in the file's own pixels. Never raises."""
    try:
        img, (width, height) = decode_image(Path(path), max_pixels, draft_size=ocr.max_side)
    except (ImageDecodeError, OSError) as exc:
        return OcrResult(error=f"cannot read the image: {exc}")
    return read_text(img, ocr).scaled(width / img.width, height / img.height)


def read_video_text(
    path: str, fps: float, max_frames: int, mode: SamplingMode, ocr: OcrConfig
) -> Iterator[tuple[float, OcrResult]]:
    """(time, text) of a video's sampled frames, read as :func:`video_frames` reads them while
    indexing; for a video indexed with OCR off. Raises VideoDecodeError when it cannot be read."""
    from glimpse.indexer.video import probe_video, sample_frames

    info = probe_video(path)
    reader = FrameReader(ocr, info.width, info.height)
    for frame in sample_frames(path, fps=fps, max_frames=max_frames, mode=mode, max_side=ocr.max_side):
        yield frame.time, reader.read(frame)
