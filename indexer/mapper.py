"""The mapper: decoded frames in, vectors out, in batches for the model.

It takes what the readers put on the queue, runs the model on full batches (or on what there is
when the readers fall behind, so the model never waits for a full batch), and yields each asset
once all its frames have their vectors, as an :class:`~glimpse.indexer.writer.Embedded`.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from glimpse.core.ocr import OcrResult
from glimpse.indexer.decode import DecodedImage, VideoDone, VideoFrames
from glimpse.indexer.reader import Decoded, Failure, Stop
from glimpse.indexer.scan import FileEntry
from glimpse.indexer.writer import Embedded

if TYPE_CHECKING:
    from glimpse.core.encoder import Encoder

IDLE_POLL_SECONDS = 0.05  # how long to wait for the readers before running a partial batch


@dataclass(frozen=True)
class Frame:
    """One model input: an image, or one sampled frame of a video at ``time`` seconds."""

    path: str
    time: float
    pixels: np.ndarray  # (3, S, S) float32, preprocessed
    thumbnail: bytes
    shot_start: bool  # a detected cut comes right before it
    ocr: OcrResult | None = None  # the text read in it (with OCR on)


@dataclass
class _Pending:
    """An asset being embedded: its frames arrive in chunks, its vectors after each batch."""

    asset: Embedded
    awaiting: int = 0  # frames sent to the model and not yet back
    decoded: bool = False  # the reader said it is done with this file


@dataclass
class Mapper:
    encoder: Encoder
    batch_size: int
    _pending: dict[str, _Pending] = field(default_factory=dict)
    _batch: list[Frame] = field(default_factory=list)
    _finished: list[Embedded] = field(default_factory=list)

    def embed(
        self, items: queue.Queue[Decoded | Stop | Failure], readers: int, entries: dict[str, FileEntry]
    ) -> Iterator[Embedded | None]:
        """Each asset of ``entries`` once embedded (or failed), as it finishes; ``None`` now and
        then while waiting, so the caller can commit on time. Raises when a reader broke."""
        stopped = 0
        while stopped < readers:
            try:
                item = items.get(timeout=IDLE_POLL_SECONDS)
            except queue.Empty:
                self._run_batch()  # the readers are behind: don't keep the model waiting
                yield from self._take_finished()
                yield None
                continue
            if isinstance(item, Failure):
                raise RuntimeError(f"decoding stopped: {item.exc}") from item.exc
            if isinstance(item, Stop):
                stopped += 1
            else:
                self._accept(item, entries)
            if len(self._batch) >= self.batch_size:
                self._run_batch()
            yield from self._take_finished()
        self._run_batch()
        yield from self._take_finished()

    def _accept(self, item: Decoded, entries: dict[str, FileEntry]) -> None:
        pending = self._pending.get(item.path)
        if pending is None:
            pending = self._pending[item.path] = _Pending(Embedded(entries[item.path]))
        if isinstance(item, DecodedImage):
            pending.asset.done = item
            pending.decoded = True
            if item.error is None and item.pixels is not None and item.thumbnail is not None:
                pending.awaiting += 1
                self._batch.append(Frame(item.path, 0.0, item.pixels, item.thumbnail, False, item.ocr))
        elif isinstance(item, VideoFrames):
            pending.awaiting += len(item.times)
            self._batch.extend(
                Frame(item.path, t, px, thumb, cut, text)
                for t, px, thumb, cut, text in zip(
                    item.times,
                    item.pixels,
                    item.thumbnails,
                    item.shot_changes,
                    item.ocr or [None] * len(item.times),
                    strict=True,
                )
            )
        elif isinstance(item, VideoDone):
            pending.asset.done = item
            pending.decoded = True
        self._check_finished(item.path)

    def _run_batch(self) -> None:
        if not self._batch:
            return
        vectors = self.encoder.encode_image_tensors(np.stack([f.pixels for f in self._batch]))
        for frame, vector in zip(self._batch, vectors, strict=True):
            pending = self._pending[frame.path]
            pending.asset.add(frame.time, vector, frame.thumbnail, frame.shot_start, frame.ocr)
            pending.awaiting -= 1
            self._check_finished(frame.path)
        self._batch.clear()

    def _check_finished(self, path: str) -> None:
        pending = self._pending[path]
        if pending.decoded and pending.awaiting == 0:
            self._finished.append(self._pending.pop(path).asset)

    def _take_finished(self) -> Iterator[Embedded]:
        finished, self._finished = self._finished, []
        yield from finished
