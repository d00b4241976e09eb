"""Benchmark: seconds of video processed per wall second by Glimpse's sampling stage (no model).

    .venv/bin/python bench/video_sampling.py                 # 10-minute 1080p H.264 clip
    .venv/bin/python bench/video_sampling.py --minutes 1     # quick run

The clip is generated once and cached (``--cache-dir``, default ``$TMPDIR/glimpse-bench``): 1080p30
H.264 from libx264 with its default GOP (keyint 250, scene-cut keyframes, 3 B-frames with a B-pyramid);
panning film-grain textures, a moving object and scene cuts every 2-15 s with a few sub-second shots, at
a few Mbit/s like web video. To keep generation to a few minutes on two cores, ``--unique-minutes`` of
content are encoded and their packets are muxed repeatedly (each repeat starts at an IDR frame), so the
decoder does exactly the work a same-length unique clip would ask for.

It times, in one run and on the same file, our sampler in both modes and three PyAV baselines:
every frame (threaded), reference frames only (skip_frame=NONREF, threaded) and keyframes only
(skip_frame=NONKEY). Each measurement is the best of ``--repeats`` runs, interleaved so that load from
other processes on a shared machine hits all of them alike.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from glimpse.indexer.video import probe_video, sample_frames

WIDTH, HEIGHT, FPS = 1920, 1080, 30
GRAIN = 4  # standard deviation of the per-frame grain, in luma levels: sets the bitrate (~4 Mbit/s)
GENERATOR_VERSION = 2  # bump when the content changes so stale cached clips are not reused


# ---------------------------------------------------------------- clip generation


def _texture(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Luma texture with detail at several scales (blocky noise smoothed by half-block averaging)."""
    texture = np.zeros((height, width), np.float32)
    for block, amplitude in ((4, 25), (16, 50), (64, 70), (256, 80)):
        coarse = rng.standard_normal((height // block + 2, width // block + 2)).astype(np.float32)
        fine = np.repeat(np.repeat(coarse, block, 0), block, 1)[:height, :width]
        half = block // 2
        fine = (
            fine + np.roll(fine, half, 0) + np.roll(fine, half, 1) + np.roll(fine, (half, half), (0, 1))
        ) / 4
        texture += amplitude * fine
    texture = (texture - texture.min()) / (texture.max() - texture.min()) * 200 + 28
    return texture.astype(np.uint8)


def _shot_lengths(seconds: float, rng: np.random.Generator) -> list[int]:
    """Frame counts of the shots: mostly 2-15 s, one in six a sub-second shot."""
    lengths, total = [], 0
    while total < seconds * FPS:
        shot = rng.uniform(0.3, 0.8) if rng.random() < 1 / 6 else rng.uniform(2, 15)
        lengths.append(max(1, round(shot * FPS)))
        total += lengths[-1]
    return lengths


def _bounce(position: float, limit: int) -> int:
    """`position` folded into 0..limit, moving back and forth like a ping-pong ball."""
    folded = position % (2 * limit)
    return int(folded if folded <= limit else 2 * limit - folded)


def _frames(seconds: float, seed: int = 0):
    """yuv420p frames (as one (H*3/2, W) uint8 array each) of a clip with motion and scene cuts."""
    rng = np.random.default_rng(seed)
    margin = 400
    grain = np.clip(rng.normal(0, GRAIN, (HEIGHT + 64, WIDTH + 64)), -127, 127).astype(np.int16)
    frame_index, remaining = 0, round(seconds * FPS)
    for length in _shot_lengths(seconds, rng):
        texture = _texture(HEIGHT + margin, WIDTH + margin, rng)
        vx, vy = rng.uniform(-4, 4, 2)
        u, v = rng.integers(60, 200, 2)
        chroma = np.empty((HEIGHT // 2, WIDTH), np.uint8)
        chroma[: HEIGHT // 4], chroma[HEIGHT // 4 :] = u, v
        for local in range(min(length, remaining)):
            # Pan back and forth (a wrap-around would be a jump: a cut the generator did not mean).
            x, y = _bounce(margin / 2 + local * vx, margin), _bounce(margin / 2 + local * vy, margin)
            luma = texture[y : y + HEIGHT, x : x + WIDTH].astype(np.int16)
            gx, gy = rng.integers(0, 64, 2)
            luma += grain[gy : gy + HEIGHT, gx : gx + WIDTH]
            bx = _bounce(frame_index * 9, WIDTH - 200)
            by = int(HEIGHT / 2 + 300 * np.sin(frame_index / 20)) - 100
            luma[by : by + 200, bx : bx + 200] = 235
            yield np.concatenate([np.clip(luma, 0, 255).astype(np.uint8), chroma])
            frame_index += 1
        remaining -= min(length, remaining)
        if remaining == 0:
            return


def _encode(path: Path, seconds: float, preset: str) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": preset}  # GOP options left at x264's defaults on purpose
        for index, planes in enumerate(_frames(seconds)):
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _repeat(source: Path, destination: Path, minutes: float) -> None:
    """Mux `source`'s packets again and again, shifted in time, until `minutes` are covered."""
    with av.open(str(source)) as reader, av.open(str(destination), "w") as writer:
        template = reader.streams.video[0]
        stream = writer.add_stream_from_template(template)
        packets = list(reader.demux(template))
        packets = [p for p in packets if p.size]
        span = max(p.pts + (p.duration or 0) for p in packets) - min(p.pts for p in packets)
        needed = minutes * 60 / float(template.time_base)
        shift = 0
        while shift < needed:
            for packet in packets:
                copy = av.Packet(bytes(packet))
                copy.pts, copy.dts = packet.pts + shift, packet.dts + shift
                copy.duration, copy.time_base = packet.duration, packet.time_base
                copy.stream = stream
                if packet.is_keyframe:
                    copy.is_keyframe = True
                writer.mux(copy)
            shift += span


def benchmark_clip(cache_dir: Path, minutes: float, unique_minutes: float, preset: str) -> Path:
    """Path of the cached benchmark clip, generating it first when missing."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    unique_minutes = min(unique_minutes, minutes)
    tag = f"v{GENERATOR_VERSION}-{preset}-u{unique_minutes:g}"
    clip = cache_dir / f"glimpse-1080p-{minutes:g}min-{tag}.mp4"
    if clip.exists():
        return clip
    unique = cache_dir / f"glimpse-1080p-unique-{tag}.mp4"
    if not unique.exists():
        print(f"encoding {unique_minutes:g} min of 1080p H.264 (libx264 preset {preset}) ...", flush=True)
        started = time.perf_counter()
        _encode(unique.with_suffix(".part.mp4"), unique_minutes * 60, preset)
        unique.with_suffix(".part.mp4").rename(unique)
        print(f"  done in {time.perf_counter() - started:.0f} s", flush=True)
    partial = clip.with_suffix(".part.mp4")
    _repeat(unique, partial, minutes)
    partial.rename(clip)
    return clip


# ---------------------------------------------------------------- measurements


def decode_with_pyav(path: Path, skip_frame: str) -> int:
    """Decode with PyAV's threaded decoder, discarding what `skip_frame` says; returns frames decoded."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.skip_frame = skip_frame
        return sum(1 for _ in container.decode(stream))


def run_sampler(path: Path, mode: str, max_side: int | None) -> int:
    return sum(1 for _ in sample_frames(path, fps=1.0, mode=mode, max_side=max_side))


def decord_every_second(path: Path) -> int:
    """decord's usual recipe: one frame index per second, fetched with get_batch (RGB, full size)."""
    import decord

    reader = decord.VideoReader(str(path), num_threads=0)
    step = max(1, round(reader.get_avg_fps()))
    count = 0
    indices = list(range(0, len(reader), step))
    for start in range(0, len(indices), 32):  # batches of 32 frames keep memory bounded
        count += reader.get_batch(indices[start : start + 32]).shape[0]
    return count


def decord_keyframes(path: Path) -> int:
    """decord seeking to each keyframe it indexed (get_key_indices + get_batch)."""
    import decord

    reader = decord.VideoReader(str(path), num_threads=0)
    keys = list(reader.get_key_indices())
    return sum(reader.get_batch(keys[i : i + 32]).shape[0] for i in range(0, len(keys), 32))


@dataclass
class Timing:
    wall: float  # best wall-clock seconds over the rounds
    cpu: float  # CPU seconds (all threads of this process) of that same round
    frames: int


def best_of(repeats: int, jobs: dict[str, Callable[[], int]]) -> dict[str, Timing]:
    """Best wall time per job over `repeats` interleaved rounds, with its CPU time and frame count.

    CPU time is printed too because it barely moves when other processes load a shared machine."""
    best: dict[str, Timing] = {}
    for _ in range(repeats):
        for name, job in jobs.items():
            wall, cpu = time.perf_counter(), time.process_time()
            count = job()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if name not in best or wall < best[name].wall:
                best[name] = Timing(wall, cpu, count)
    return best


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the clip (default 10)")
    parser.add_argument("--unique-minutes", type=float, default=2.0, help="distinct content encoded")
    parser.add_argument("--preset", default="veryfast", help="libx264 preset for the clip")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many interleaved rounds")
    parser.add_argument("--max-side", type=int, default=320, help="longest side of sampled frames")
    parser.add_argument(
        "--compare-decord", action="store_true", help="also time decord's get_batch (slow: minutes)"
    )
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "glimpse-bench")
    args = parser.parse_args()

    clip = benchmark_clip(args.cache_dir, args.minutes, args.unique_minutes, args.preset)
    started = time.perf_counter()
    info = probe_video(clip)
    probe_seconds = time.perf_counter() - started
    size_mb = clip.stat().st_size / 1e6
    print(
        f"clip: {clip} ({info.width}x{info.height} {info.codec}, {info.fps:g} fps, "
        f"{info.duration:.0f} s, {size_mb * 8 / info.duration:.1f} Mbit/s)"
    )
    print(f"probe_video (decord frame index + PyAV first frame): {probe_seconds:.2f} s")
    print(f"machine: {_cpu_model()}, {os.cpu_count()} CPUs visible; PyAV {av.__version__}")

    jobs: dict[str, Callable[[], int]] = {
        "every frame (PyAV, threaded)": lambda: decode_with_pyav(clip, "DEFAULT"),
        "reference frames only (NONREF)": lambda: decode_with_pyav(clip, "NONREF"),
        "keyframes only (NONKEY)": lambda: decode_with_pyav(clip, "NONKEY"),
        'glimpse sample_frames mode="fps", 1 fps': lambda: run_sampler(clip, "fps", args.max_side),
        'glimpse sample_frames mode="keyframes"': lambda: run_sampler(clip, "keyframes", args.max_side),
    }
    if args.compare_decord:
        jobs["decord get_batch, 1 frame/s"] = lambda: decord_every_second(clip)
        jobs["decord get_batch of its keyframes"] = lambda: decord_keyframes(clip)
    results = best_of(args.repeats, jobs)

    print(f"\n{'stage':44} {'frames':>7} {'wall s':>8} {'CPU s':>8} {'video s / wall s':>17}")
    for name, timing in results.items():
        speed = info.duration / timing.wall
        print(f"{name:44} {timing.frames:7d} {timing.wall:8.2f} {timing.cpu:8.2f} {speed:17.1f}")

    def ratio(slower: str, faster: str, measure: str) -> float:
        return getattr(results[slower], measure) / getattr(results[faster], measure)

    fps_mode, key_mode = 'glimpse sample_frames mode="fps", 1 fps', 'glimpse sample_frames mode="keyframes"'
    every, nonref = "every frame (PyAV, threaded)", "reference frames only (NONREF)"
    nonkey = "keyframes only (NONKEY)"
    print("\nratios of times (wall | CPU); targets in brackets:")
    for label, slower, faster, target in (
        ("every frame / fps mode", every, fps_mode, "> 1"),
        ("fps mode / reference-frames floor", fps_mode, nonref, "<= 1.3"),
        ("keyframes mode / keyframes floor", key_mode, nonkey, "<= 1.5"),
    ):
        wall, cpu = ratio(slower, faster, "wall"), ratio(slower, faster, "cpu")
        print(f"  {label:36} {wall:5.2f} | {cpu:5.2f}  [{target}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
