"""Reading videos: probing, frame sampling and cheap shot-change detection.

Which library does what, and why:

* **decord** probes: it builds an index of every frame, so the frame count, average rate and duration it
  reports are exact for every container (PyAV only has header values, and MKV/WebM headers carry no
  frame count). It exposes neither the codec nor the rotation angle, which PyAV reads.
* **PyAV** samples. Sampling at 1 frame/s still needs the reference frames in between (each P-frame
  depends on the previous one), so the cheapest correct decode is FFmpeg's threaded decoder told to
  discard non-reference frames (``skip_frame="NONREF"``), keeping the decoded frame nearest each sample
  time. decord cannot skip frames: its ``get_batch`` decodes every frame and converts each one to RGB,
  which measured ~5x slower than this on 1080p H.264 (``bench/video_sampling.py`` measures both). The keyframe
  mode decodes intra frames only (``skip_frame="NONINTRA"``), again without touching the others; that
  also beat decord's seek-per-keyframe ``get_batch``. PyAV also hands over the YUV planes without
  conversion, which makes shot detection nearly free, and converts only the frames that are kept.

Shot changes are detected on a 16x9 grid of block means of the Y, U and V planes of every decoded frame,
read straight from the decoder's buffers (no scaling, no colour conversion): a cut is a large mean
absolute change between consecutive decoded frames.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np

from glimpse.core.media import VIDEO_EXTENSIONS

SamplingMode = Literal["fps", "keyframes"]

DEFAULT_SHOT_THRESHOLD = 0.1
"""Mean absolute change of the Y/U/V block means (summed over the three planes, in units of 255) that
counts as a cut. On the benchmark clip (panning textures, a moving object, grain) changes within a shot
stay under 0.015 and the 13 cuts of its first two minutes range from 0.14 to 0.92; real footage moves
more, so the threshold sits nearer the cuts. A false cut costs one extra frame; a missed one can lose a
short shot."""

MIN_SHOT_SPACING = 0.2
"""Seconds: a cut closer than this to the previous cut that added a frame adds none (flashes, strobes)."""

_GRID_ROWS, _GRID_COLS, _SAMPLES_PER_CELL = 9, 16, 8
_PLANAR_8BIT = frozenset(
    {
        "yuv420p",
        "yuvj420p",
        "yuv422p",
        "yuvj422p",
        "yuv444p",
        "yuvj444p",
        "yuv440p",
        "yuvj440p",
        "yuv411p",
        "yuv410p",
    }
)
_MAX_CONSECUTIVE_DECODE_ERRORS = 50


class VideoDecodeError(Exception):
    """A video could not be read (or not to the end).

    ``partial`` is True when frames were produced before the failure: :func:`sample_frames` raises it
    after yielding them, so the caller keeps what it got.
    """

    def __init__(self, path: str | Path, reason: str, *, partial: bool = False, frames_read: int = 0):
        self.path = Path(path)
        self.reason = reason
        self.partial = partial
        self.frames_read = frames_read
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class VideoInfo:
    """What a video is. ``width``/``height`` are as displayed (after rotation); ``rotation`` is the
    clockwise turn, in degrees (0, 90, 180, 270), that shows the stored frames upright (the "rotate" tag
    of phone videos)."""

    duration: float
    fps: float
    width: int
    height: int
    rotation: int
    frame_count: int
    codec: str


@dataclass(eq=False)
class SampledFrame:
    """One sampled frame: ``time`` in seconds from the start, ``image`` HxWx3 uint8 RGB, upright.

    ``shot_change`` is True when a cut was detected just before this frame (never for the first frame).
    """

    time: float
    image: np.ndarray
    shot_change: bool = False


def is_video_path(path: str | Path) -> bool:
    """Whether `path` has one of the video suffixes Glimpse indexes."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


# ---------------------------------------------------------------- probing


def probe_video(path: str | Path) -> VideoInfo:
    """Duration, frame rate, displayed size, rotation, frame count and codec of the video at `path`.

    Raises :class:`VideoDecodeError` when the file is missing, is not a video, has no video stream,
    uses a codec FFmpeg cannot decode, or has no decodable frame.
    """
    path = Path(path)
    with _open_video(path) as (container, stream):
        first = _first_frame(path, container, stream)
        rotation = _clockwise_rotation(first)
        codec = stream.codec_context.name
        width, height = stream.codec_context.width, stream.codec_context.height
        header_duration = _declared_duration(container, stream)
        header_rate = float(stream.average_rate or stream.guessed_rate or 0)
        header_count = stream.frames
    if rotation in (90, 270):
        width, height = height, width
    duration, fps, count = _frame_index(path)
    if count == 0:
        # decord reads the whole frame index up front and gives up on some files PyAV can still
        # read in part (e.g. an MP4 cut short after its index): fall back to the header's figures.
        duration = header_duration or 0.0
        fps = header_rate
        count = header_count or round(duration * fps)
    return VideoInfo(duration, fps, width, height, rotation, count, codec)


def _frame_index(path: Path) -> tuple[float, float, int]:
    """(duration, average fps, frame count) from decord's frame index; zeros when decord fails."""
    import decord

    try:
        reader = decord.VideoReader(str(path), num_threads=1)
        count = len(reader)
        if count == 0:
            return 0.0, 0.0, 0
        duration = float(reader.get_frame_timestamp(count - 1)[1])
        return duration, float(reader.get_avg_fps()), count
    except (decord.DECORDError, RuntimeError):
        return 0.0, 0.0, 0


class _open_video:
    """Context manager: (container, first video stream) or a VideoDecodeError saying why not."""

    def __init__(self, path: Path):
        self.path = path
        self.container: av.container.InputContainer | None = None

    def __enter__(self) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
        if not self.path.is_file():
            raise VideoDecodeError(self.path, "no such file")
        try:
            self.container = av.open(str(self.path))
        except av.error.EOFError as exc:
            raise VideoDecodeError(
                self.path, "the file ends before any video data (empty or cut short)"
            ) from exc
        except av.error.FFmpegError as exc:
            raise VideoDecodeError(self.path, f"not a readable video file ({_ffmpeg_message(exc)})") from exc
        if not self.container.streams.video:
            self.container.close()
            raise VideoDecodeError(self.path, "the file has no video stream")
        stream = self.container.streams.video[0]
        # PyAV's stubs say a stream always has a codec context; for a codec FFmpeg lacks, it has none.
        if stream.codec_context is None:
            self.container.close()  # type: ignore[unreachable]
            raise VideoDecodeError(self.path, "unsupported video codec (no decoder in FFmpeg)")
        return self.container, stream

    def __exit__(self, *exc_info: object) -> None:
        if self.container is not None:
            self.container.close()


def _first_frame(path: Path, container: Any, stream: Any) -> av.VideoFrame:
    report = _DecodeReport()
    for item in _decode(container, stream, report):
        return item.frame
    reason = report.stopped_early or (
        report.errors and f"cannot decode the video stream ({report.errors[0]})"
    )
    raise VideoDecodeError(path, reason or "the video stream has no decodable frames")


def _clockwise_rotation(frame: av.VideoFrame) -> int:
    # PyAV reports the display matrix as a counter-clockwise angle in [-180, 180].
    return round(-(frame.rotation or 0) / 90) % 4 * 90


def _declared_duration(container: Any, stream: Any) -> float | None:
    """The video stream's duration as the file's headers state it, in seconds (None if unstated)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION")  # Matroska writes each stream's duration as a tag
    if tag:
        try:
            hours, minutes, seconds = tag.split(":")
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        except ValueError:
            pass
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _ffmpeg_message(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


# ---------------------------------------------------------------- sampling


def sample_frames(
    path: str | Path,
    fps: float = 1.0,
    max_frames: int = 3600,
    mode: SamplingMode = "fps",
    shot_threshold: float = DEFAULT_SHOT_THRESHOLD,
    max_side: int | None = None,
    threads: int = 0,
) -> Iterator[SampledFrame]:
    """Sample `path`: frames in time order, upright RGB, at most `max_frames` of them.

    ``mode="fps"``: one frame per ``1/fps`` seconds (the interval widens so a long video stays within
    `max_frames`), plus the first frame of every shot the detector finds, so a shot shorter than the
    interval still gets a frame; the regular grid restarts at each such cut.
    ``mode="keyframes"``: only intra frames are decoded; keeps those at least an interval apart plus
    every intra frame that starts a new shot (encoders put an intra frame at a cut). Much faster, but a
    cut the encoder did not mark with an intra frame is missed.

    `max_side` downscales frames so their longer side is at most that many pixels. `threads` is the
    decoder's thread count (0: FFmpeg's choice, one per core).

    Arguments are checked at once; the file is opened on the first ``next()``. An unreadable file raises
    :class:`VideoDecodeError` before anything is yielded; a failure part-way (truncated or corrupt data)
    raises it with ``partial=True`` after the frames read before the failure.
    """
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    if max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames!r}")
    if mode not in ("fps", "keyframes"):
        raise ValueError(f'mode must be "fps" or "keyframes", got {mode!r}')
    if max_side is not None and max_side < 2:
        raise ValueError(f"max_side must be at least 2 pixels, got {max_side!r}")
    return _sample(Path(path), fps, max_frames, mode, shot_threshold, max_side, threads)


@dataclass
class _Decoded:
    """A decoded frame with its time (s) and whether a cut precedes it."""

    time: float
    frame: av.VideoFrame
    shot_change: bool = False


@dataclass
class _DecodeReport:
    """How far decoding got: what went wrong, and the end time of the last packet read."""

    last_packet_end: float = 0.0
    errors: list[str] = field(default_factory=list)
    stopped_early: str | None = None


def _sample(
    path: Path, fps: float, max_frames: int, mode: str, threshold: float, max_side: int | None, threads: int
) -> Iterator[SampledFrame]:
    with _open_video(path) as (container, stream):
        declared = _declared_duration(container, stream)
        interval = max(1.0 / fps, (declared or 0.0) / max_frames)
        stream.thread_type = "AUTO"
        stream.thread_count = threads
        # fps mode needs every reference frame anyway (each depends on the one before); non-reference
        # frames are the only ones nothing depends on, so they are the ones to skip.
        stream.codec_context.skip_frame = "NONREF" if mode == "fps" else "NONINTRA"
        report = _DecodeReport()
        decoded = _with_shot_changes(_decode(container, stream, report), threshold)
        selector = (_GridSelector if mode == "fps" else _IntraSelector)(interval, max_frames, declared)
        rotation = None
        emitted = 0
        for item in selector.select(decoded):
            if rotation is None:
                rotation = _clockwise_rotation(item.frame)
            yield SampledFrame(item.time, _to_rgb(item.frame, rotation, max_side), item.shot_change)
            emitted += 1
        if selector.seen == 0 and not report.errors and not report.stopped_early:
            raise VideoDecodeError(path, "the video stream has no decodable frames")
        problem = _problem(report, declared, selector.reached_cap, interval)
        if problem:
            raise VideoDecodeError(path, problem, partial=emitted > 0, frames_read=emitted)


def _problem(report: _DecodeReport, declared: float | None, reached_cap: bool, interval: float) -> str | None:
    """Why this read counts as incomplete, or None when it reached the end."""
    if report.stopped_early:
        return report.stopped_early
    tolerance = max(1.0, interval)
    if not reached_cap and declared and report.last_packet_end < declared - tolerance:
        return (
            f"the data ends at {report.last_packet_end:.1f} s but the file says the video lasts "
            f"{declared:.1f} s (truncated?)"
        )
    if report.errors:
        return f"{len(report.errors)} packet(s) could not be decoded (first: {report.errors[0]})"
    return None


def _decode(container: Any, stream: Any, report: _DecodeReport) -> Iterator[_Decoded]:
    """Decoded frames with times from 0, recording read and decode errors in `report`.

    A packet that fails to decode is skipped, as FFmpeg's own tools do, so one damaged packet costs a
    few frames rather than the rest of the video; a read error ends the stream.
    """
    # Integer numerator/denominator: exact like a Fraction, without its cost on every packet.
    time_base = stream.time_base or Fraction(1, 90_000)
    num, den = time_base.numerator, time_base.denominator
    start = stream.start_time * num / den if stream.start_time is not None else 0.0
    step = 1.0 / float(stream.average_rate or stream.guessed_rate or 25)
    packets = container.demux(stream)
    previous_time = -step
    consecutive_errors = 0
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.error.FFmpegError as exc:
            report.stopped_early = f"read error ({_ffmpeg_message(exc)})"
            return
        if packet.pts is not None and packet.size:
            end = packet.pts + (packet.duration or 0)
            report.last_packet_end = max(report.last_packet_end, end * num / den - start)
        try:
            frames = packet.decode()
            consecutive_errors = 0
        except av.error.FFmpegError as exc:
            report.errors.append(_ffmpeg_message(exc))
            consecutive_errors += 1
            if consecutive_errors > _MAX_CONSECUTIVE_DECODE_ERRORS:
                report.stopped_early = f"too many undecodable packets in a row ({report.errors[-1]})"
                return
            continue
        for frame in frames:
            if frame.pts is not None:
                time = max(0.0, frame.pts * num / den - start)
            else:
                time = previous_time + step
            previous_time = time
            yield _Decoded(time, frame)


def _with_shot_changes(frames: Iterator[_Decoded], threshold: float) -> Iterator[_Decoded]:
    """Mark each frame whose picture differs from the previous decoded frame's by more than `threshold`."""
    previous: np.ndarray | None = None
    for item in frames:
        signature = _signature(item.frame)
        if previous is not None and signature.shape == previous.shape:
            item.shot_change = float(np.abs(signature - previous).mean(axis=(1, 2)).sum()) / 255 > threshold
        previous = signature
        yield item


def _signature(frame: av.VideoFrame) -> np.ndarray:
    """3 x rows x cols block means of the Y, U and V planes, read from the decoder's own buffers."""
    if frame.format.name not in _PLANAR_8BIT:
        # Rare formats (10-bit, packed RGB, NV12 from some decoders): let swscale make a small copy.
        frame = frame.reformat(
            width=_GRID_COLS * _SAMPLES_PER_CELL, height=_GRID_ROWS * _SAMPLES_PER_CELL, format="yuv444p"
        )
    signature = np.empty((3, _GRID_ROWS, _GRID_COLS), np.float32)
    for index, plane in enumerate(frame.planes[:3]):
        pixels = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
        rows, cols = _sample_points(plane.height, plane.width)
        cells = pixels[rows, cols].reshape(_GRID_ROWS, _SAMPLES_PER_CELL, _GRID_COLS, _SAMPLES_PER_CELL)
        signature[index] = cells.sum(axis=(1, 3))
    signature *= 1 / _SAMPLES_PER_CELL**2
    return signature


@lru_cache(maxsize=32)
def _sample_points(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices (broadcastable) of samples x samples pixels spread over each grid cell."""
    count_y, count_x = _GRID_ROWS * _SAMPLES_PER_CELL, _GRID_COLS * _SAMPLES_PER_CELL
    rows = ((np.arange(count_y) + 0.5) * height / count_y).astype(np.intp)
    cols = ((np.arange(count_x) + 0.5) * width / count_x).astype(np.intp)
    return rows[:, None], cols[None, :]


class _Selector:
    """Chooses which decoded frames to keep; counts what it saw and whether the cap stopped it."""

    def __init__(self, interval: float, max_frames: int, duration: float | None):
        self.interval = interval
        self.max_frames = max_frames
        self.duration = duration
        self.seen = 0
        self.kept = 0
        self.last_shot_time = -math.inf
        self.reached_cap = False

    def _full(self) -> bool:
        return self.kept >= self.max_frames

    def _keep(self, item: _Decoded) -> _Decoded:
        self.kept += 1
        return item

    def _starts_shot(self, item: _Decoded) -> bool:
        """Whether `item` is kept for starting a new shot.

        Cuts closer than MIN_SHOT_SPACING to the previous one kept (flashes, strobes) add nothing, and
        an extra frame must leave room for the regular samples after it, so the cap never cuts off the
        end of a video."""
        if not item.shot_change or item.time - self.last_shot_time < MIN_SHOT_SPACING:
            return False
        remaining = self.duration - item.time if self.duration else 0.0
        reserved = max(0, math.ceil(remaining / self.interval) - 1)
        if self.kept + 1 + reserved > self.max_frames:
            return False
        self.last_shot_time = item.time
        return True


class _GridSelector(_Selector):
    """fps mode: the decoded frame nearest each grid time, plus the first frame of each new shot
    (the grid restarts there)."""

    def select(self, frames: Iterator[_Decoded]) -> Iterator[_Decoded]:
        next_time = 0.0
        pending: _Decoded | None = None  # the latest decoded frame before next_time, not kept
        for item in frames:
            self.seen += 1
            if self._full():
                self.reached_cap = True
                return
            if self._starts_shot(item):
                yield self._keep(item)
                next_time, pending = item.time + self.interval, None
                continue
            item_kept = False
            while item.time >= next_time and not self._full():
                if pending is not None and next_time - pending.time <= item.time - next_time:
                    yield self._keep(pending)
                elif not item_kept:
                    yield self._keep(item)
                    item_kept = True
                pending = None
                next_time += self.interval
            pending = None if item_kept else item
        # A grid time before the end of the video may lie after its last decoded frame (skipped
        # non-reference frames): that frame is the nearest one.
        if self.duration:
            inside = next_time < self.duration
        else:
            inside = pending is not None and next_time - pending.time < self.interval / 2
        if pending is not None and inside and not self._full():
            yield self._keep(pending)


class _IntraSelector(_Selector):
    """keyframes mode: intra frames at least an interval apart, plus those that start a new shot."""

    def select(self, frames: Iterator[_Decoded]) -> Iterator[_Decoded]:
        last_kept = -math.inf
        for item in frames:
            self.seen += 1
            if self._full():
                self.reached_cap = True
                return
            # The 1 ms slack absorbs rounding in container timestamps.
            if self._starts_shot(item) or item.time - last_kept >= self.interval - 1e-3:
                last_kept = item.time
                yield self._keep(item)


def _to_rgb(frame: av.VideoFrame, rotation: int, max_side: int | None) -> np.ndarray:
    """The frame as upright HxWx3 RGB, its longer side at most `max_side`."""
    width, height = frame.width, frame.height
    if max_side is not None and max(width, height) > max_side:
        scale = max_side / max(width, height)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
    # AREA averages source pixels, so a large downscale does not alias the way bilinear does.
    image: np.ndarray = frame.reformat(
        width=width, height=height, format="rgb24", interpolation="AREA"
    ).to_ndarray()
    if rotation:
        image = np.ascontiguousarray(np.rot90(image, k=-rotation // 90))
    return image
