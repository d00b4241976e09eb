"""The reader: files in, decoded model inputs out, on a queue, ahead of the model.

Images decode in worker processes (a small run in one thread: starting processes costs seconds),
a bounded window ahead of the model and in order; videos are sampled in a thread. Both put what
they produce on one queue, then a :class:`Stop`; a reader that breaks (a bug, not a bad file: bad
files come back as results with an ``error``) puts a :class:`Failure` so the run stops with it.
"""

from __future__ import annotations

import os
import queue
import threading
from collections import deque
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from glimpse.core.ocr import OcrConfig
from glimpse.core.preprocess import PreprocessConfig
from glimpse.core.settings import Settings
from glimpse.core.vocabulary import Kind
from glimpse.indexer.decode import (
    DecodedImage,
    VideoDone,
    VideoFrames,
    decode_image_file,
    init_worker,
    lower_thread_priority,
    mp_context,
    video_frames,
)
from glimpse.indexer.scan import FileEntry

SMALL_RUN = 64  # images; fewer are decoded in a thread instead of worker processes

Decoded = DecodedImage | VideoFrames | VideoDone


class Stop:
    """Put on the queue by each reader when it has nothing more."""


@dataclass
class Failure:
    """A reader broke (not a bad file: a bug or a resource error); the run must not go on."""

    exc: BaseException


class Reader:
    """Starts the image and the video reader threads; :meth:`close` stops and joins them."""

    def __init__(
        self,
        entries: list[FileEntry],
        cfg: PreprocessConfig,
        settings: Settings,
        out: queue.Queue[Decoded | Stop | Failure],
    ) -> None:
        self.settings = settings
        self.out = out
        self.stop = threading.Event()
        images = [str(e.path) for e in entries if e.kind == Kind.IMAGE]
        videos = [str(e.path) for e in entries if e.kind == Kind.VIDEO]
        self.threads = [
            threading.Thread(target=self._images, args=(images, cfg), daemon=True),
            threading.Thread(target=self._videos, args=(videos, cfg), daemon=True),
        ]
        for t in self.threads:
            t.start()

    def close(self) -> None:
        self.stop.set()
        drain(self.out)
        for t in self.threads:
            t.join(timeout=5)

    def _workers(self) -> int:
        # One per core: they run below the model's priority (decode.DECODER_NICENESS), so on a
        # CPU-only machine they decode in the model's idle time and, between batches, on every core.
        return self.settings.workers or os.cpu_count() or 1

    def _images(self, paths: list[str], cfg: PreprocessConfig) -> None:
        lower_thread_priority()  # this thread receives and unpickles decoded images
        try:
            if paths:
                self._decode_images(paths, cfg)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises
            put(self.out, Failure(exc), self.stop)
        finally:
            put(self.out, Stop(), self.stop)

    def _decode_images(self, paths: list[str], cfg: PreprocessConfig) -> None:
        """Decode in worker processes, a bounded window ahead of the model, results in order."""
        window = 4 * self._workers() + self.settings.batch_size
        args = (cfg, self.settings.max_image_pixels, True, ocr_config(self.settings))
        # Starting worker processes costs seconds; a small incremental run decodes in a thread
        # (Pillow releases the GIL while decoding), a big one in processes.
        small = len(paths) <= SMALL_RUN
        # A decoding thread inherits this thread's lowered priority (Linux sets it per thread).
        pool: Executor = ThreadPoolExecutor(1) if small else decode_pool(self._workers())
        try:
            inflight: deque[tuple[str, Future[DecodedImage]]] = deque()
            todo = deque(paths)
            while (todo or inflight) and not self.stop.is_set():
                while todo and len(inflight) < window:
                    path = todo.popleft()
                    inflight.append((path, pool.submit(decode_image_file, path, *args)))
                path, fut = inflight.popleft()
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    # A decoder crashed (a hostile file can segfault a C library). Every job in
                    # flight died with it: retry each alone so only the culprit is marked failed.
                    pool.shutdown(cancel_futures=True)
                    pool = decode_pool(self._workers())
                    todo.extendleft(reversed([p for p, _ in inflight]))
                    inflight.clear()
                    result = _decode_isolated(path, args)
                put(self.out, result, self.stop)
        finally:
            pool.shutdown(cancel_futures=True)

    def _videos(self, paths: list[str], cfg: PreprocessConfig) -> None:
        lower_thread_priority()  # the decoder's own threads, started from here, inherit it
        s = self.settings
        try:
            for path in paths:
                frames = video_frames(
                    path, cfg, s.video_fps, s.video_max_frames, s.video_sampling, ocr=ocr_config(s)
                )
                for item in frames:
                    if self.stop.is_set():
                        return
                    put(self.out, item, self.stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises
            put(self.out, Failure(exc), self.stop)
        finally:
            put(self.out, Stop(), self.stop)


def ocr_config(settings: Settings) -> OcrConfig | None:
    """How the decoders read text in pictures, or None with OCR off (``GLIMPSE_OCR``)."""
    if not settings.ocr:
        return None
    return OcrConfig(
        max_pixels=settings.ocr_max_pixels,
        budget_seconds=settings.ocr_budget_seconds,
        min_confidence=settings.ocr_min_confidence,
        models=settings.ocr_models,
    )


def _decode_isolated(path: str, args: tuple[PreprocessConfig, int, bool, OcrConfig | None]) -> DecodedImage:
    with decode_pool(1) as pool:
        try:
            return pool.submit(decode_image_file, path, *args).result()
        except BrokenProcessPool:
            return DecodedImage(path, error="the image decoder crashed on this file")


def put(
    out: queue.Queue[Decoded | Stop | Failure], item: Decoded | Stop | Failure, stop: threading.Event
) -> None:
    """Put, but give up when the consumer has stopped (so readers never hang on a full queue)."""
    while not stop.is_set():
        try:
            out.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def drain(q: queue.Queue[Decoded | Stop | Failure]) -> None:
    try:
        while True:
            q.get_nowait()
    except queue.Empty:
        pass


def decode_pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        workers, mp_context=mp_context(), initializer=init_worker, initargs=(os.getpid(),)
    )
