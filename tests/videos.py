"""Fixture helpers that write small, real encoded videos with PyAV.

Every video shows a flat background colour per scene with a white square moving across it, so the
encoders produce ordinary motion-compensated streams (I/P/B frames) rather than trivially static ones.
The times at which the background colour changes are the ground truth for shot-change tests.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

RGB = tuple[int, int, int]

RED: RGB = (220, 30, 30)
GREEN: RGB = (30, 200, 40)
BLUE: RGB = (30, 40, 220)
YELLOW: RGB = (230, 220, 30)
GREY: RGB = (128, 128, 128)


@dataclass(frozen=True)
class Scene:
    """A stretch of video with one background colour, lasting `seconds`."""

    seconds: float
    colour: RGB


def scene_frames(scenes: Sequence[Scene], fps: int, width: int, height: int) -> Iterator[np.ndarray]:
    """RGB frames for `scenes`: background colour plus a moving white square (motion for the encoder)."""
    side = max(4, min(width, height) // 5)
    frame_index = 0
    for scene in scenes:
        for _ in range(round(scene.seconds * fps)):
            image = np.empty((height, width, 3), np.uint8)
            image[:] = scene.colour
            x = _bounce(frame_index * 3, width - side)  # back and forth: a wrap-around would be a cut
            y = (height - side) // 2
            image[y : y + side, x : x + side] = 255
            frame_index += 1
            yield image


def _bounce(position: int, limit: int) -> int:
    folded = position % (2 * limit)
    return folded if folded <= limit else 2 * limit - folded


def background_colour(image: np.ndarray) -> np.ndarray:
    """Per-channel median of an RGB image: its background colour (the moving square is small)."""
    return np.median(image.reshape(-1, 3), axis=0)


def write_video(
    path: Path,
    frames: Iterator[np.ndarray] | Sequence[np.ndarray],
    *,
    fps: int = 10,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rotation: int | None = None,
    container_options: dict[str, str] | None = None,
    codec_options: dict[str, str] | None = None,
    keyframes: Collection[int] = (),
) -> Path:
    """Encode RGB `frames` into `path` (container from the suffix).

    `rotation` stores a display matrix that rotates the stored frames counter-clockwise by that many
    degrees for display (PyAV's convention), the way phones record portrait video. `keyframes` are
    frame indices the encoder must code as keyframes, as x264's scene-cut detection does at real cuts.
    """
    path = Path(path)
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.pix_fmt = pix_fmt
        if codec_options:
            stream.options = codec_options
        for index, image in enumerate(frames):
            if index == 0:
                stream.height, stream.width = image.shape[:2]
                if rotation is not None:
                    stream.set_display_rotation(rotation)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = index
            if index in keyframes:
                frame.pict_type = av.video.frame.PictureType.I
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def coloured_video(
    path: Path,
    scenes: Sequence[Scene],
    *,
    fps: int = 10,
    size: tuple[int, int] = (160, 120),
    codec: str = "libx264",
    keyframes_at_cuts: bool = False,
    **kwargs: object,
) -> Path:
    """A video of `scenes` (background colours with known change times) at `size` = (width, height).

    `keyframes_at_cuts` makes the first frame of every scene a keyframe."""
    width, height = size
    if keyframes_at_cuts:
        kwargs["keyframes"] = set(cut_frame_indices(scenes, fps))
    return write_video(path, scene_frames(scenes, fps, width, height), fps=fps, codec=codec, **kwargs)


def cut_frame_indices(scenes: Sequence[Scene], fps: int) -> list[int]:
    """Index of the first frame of each scene after the first."""
    starts, total = [], 0
    for scene in scenes[:-1]:
        total += round(scene.seconds * fps)
        starts.append(total)
    return starts


def cut_times(scenes: Sequence[Scene], fps: int) -> list[float]:
    """Times (s) at which each scene after the first begins."""
    return [index / fps for index in cut_frame_indices(scenes, fps)]


def h264_mp4(path: Path, seconds: float = 4.0, fps: int = 10) -> Path:
    return coloured_video(path, [Scene(seconds, GREY)], fps=fps)


def mpeg4_avi(path: Path, seconds: float = 4.0, fps: int = 10) -> Path:
    return coloured_video(path, [Scene(seconds, GREEN)], fps=fps, codec="mpeg4")


def vp9_webm(path: Path, seconds: float = 4.0, fps: int = 10) -> Path:
    # deadline=realtime keeps libvpx fast enough for a fixture.
    return coloured_video(
        path,
        [Scene(seconds, BLUE)],
        fps=fps,
        codec="libvpx-vp9",
        codec_options={"deadline": "realtime", "cpu-used": "8"},
    )


def portrait_marker_frames(
    width: int, height: int, count: int, counter_clockwise: int
) -> Iterator[np.ndarray]:
    """Frames whose *upright* picture is `width`x`height` with a white top-left quadrant, stored
    rotated so that a display rotation of `counter_clockwise` degrees shows them upright."""
    upright = np.zeros((height, width, 3), np.uint8)
    upright[: height // 2, : width // 2] = 255
    stored = np.ascontiguousarray(np.rot90(upright, k=-counter_clockwise // 90))
    for _ in range(count):
        yield stored


def rotated_mp4(path: Path, counter_clockwise: int = 90, upright_size: tuple[int, int] = (120, 160)) -> Path:
    """A portrait video (upright `upright_size` = (width, height)) stored sideways with rotation metadata."""
    width, height = upright_size
    frames = portrait_marker_frames(width, height, 20, counter_clockwise)
    return write_video(path, frames, fps=10, rotation=counter_clockwise)


def truncated_copy(source: Path, destination: Path, keep_fraction: float) -> Path:
    """Copy the first `keep_fraction` of `source`'s bytes, like an interrupted download."""
    data = Path(source).read_bytes()
    Path(destination).write_bytes(data[: int(len(data) * keep_fraction)])
    return Path(destination)


def audio_only(path: Path) -> Path:
    """An MP4 holding a short silent AAC track and no video."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        silence = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        silence.sample_rate, silence.pts = 8000, 0
        for packet in [*stream.encode(silence), *stream.encode()]:
            container.mux(packet)
    return Path(path)


def undecodable_video(source: Path, destination: Path) -> Path:
    """A Matroska file with `source`'s video stream and timing but every packet's bytes zeroed:
    a valid container whose frames are all corrupt."""
    with av.open(str(source)) as reader, av.open(str(destination), "w") as writer:
        template = reader.streams.video[0]
        stream = writer.add_stream_from_template(template)
        for packet in reader.demux(template):
            if not packet.size:
                continue
            zeroed = av.Packet(bytes(packet.size))
            zeroed.pts, zeroed.dts, zeroed.time_base = packet.pts, packet.dts, packet.time_base
            zeroed.is_keyframe = packet.is_keyframe
            zeroed.stream = stream
            writer.mux(zeroed)
    return Path(destination)


def not_a_video(path: Path) -> Path:
    """A file with a video suffix whose content is text."""
    Path(path).write_text("this is a shopping list, not a video\n" * 50)
    return Path(path)
