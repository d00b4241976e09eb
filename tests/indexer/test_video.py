"""Probing and sampling real encoded videos (H.264/MP4, MPEG-4/AVI, VP9/WebM, H.264/MKV)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from glimpse.indexer.video import (
    SampledFrame,
    VideoDecodeError,
    is_video_path,
    probe_video,
    sample_frames,
)
from videos import (
    BLUE,
    GREEN,
    GREY,
    RED,
    YELLOW,
    Scene,
    audio_only,
    background_colour,
    coloured_video,
    cut_times,
    h264_mp4,
    mpeg4_avi,
    not_a_video,
    rotated_mp4,
    truncated_copy,
    undecodable_video,
    vp9_webm,
)

# Red 3 s, green 0.3 s, blue 3 s: the green shot is shorter than the 1 s sampling interval.
SHORT_SHOT = [Scene(3.0, RED), Scene(0.3, GREEN), Scene(3.0, BLUE)]
SHORT_SHOT_FPS = 30


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("videos")
    made = {
        "h264": h264_mp4(folder / "grey.mp4", seconds=4.0, fps=10),
        "avi": mpeg4_avi(folder / "green.avi", seconds=4.0, fps=10),
        "webm": vp9_webm(folder / "blue.webm", seconds=4.0, fps=10),
        "mkv": coloured_video(folder / "six-seconds.mkv", [Scene(6.0, YELLOW)], fps=10),
        "short_shot": coloured_video(folder / "short-shot.mp4", SHORT_SHOT, fps=SHORT_SHOT_FPS),
        "short_shot_keyed": coloured_video(
            folder / "short-shot-keyed.mp4", SHORT_SHOT, fps=SHORT_SHOT_FPS, keyframes_at_cuts=True
        ),
        "half_second": coloured_video(folder / "half-second.mp4", [Scene(0.5, RED)], fps=10),
        "portrait": rotated_mp4(folder / "portrait.mp4", counter_clockwise=90),
        "portrait_other_way": rotated_mp4(folder / "portrait-cw.mp4", counter_clockwise=-90),
        "upside_down": rotated_mp4(
            folder / "upside-down.mp4", counter_clockwise=180, upright_size=(160, 120)
        ),
        "faststart": coloured_video(
            folder / "faststart.mp4", [Scene(6.0, GREY)], container_options={"movflags": "+faststart"}
        ),
        "not_a_video": not_a_video(folder / "shopping-list.mp4"),
        "audio_only": audio_only(folder / "silence.mp4"),
    }
    made["truncated_mkv"] = truncated_copy(made["mkv"], folder / "cut-short.mkv", 0.5)
    made["truncated_mp4"] = truncated_copy(made["h264"], folder / "cut-short.mp4", 0.6)
    made["truncated_faststart"] = truncated_copy(made["faststart"], folder / "cut-short-fs.mp4", 0.5)
    made["undecodable"] = undecodable_video(made["h264"], folder / "zeroed.mkv")
    return made


def assert_colour(image: np.ndarray, colour: tuple[int, int, int]) -> None:
    assert np.abs(background_colour(image) - colour).max() <= 12, (background_colour(image), colour)


# ---------------------------------------------------------------- probing


def test_probe_reports_duration_rate_size_frame_count_and_codec(media: dict[str, Path]) -> None:
    info = probe_video(media["h264"])
    assert info.duration == pytest.approx(4.0, abs=0.01)
    assert info.fps == pytest.approx(10.0)
    assert (info.width, info.height) == (160, 120)
    assert info.frame_count == 40
    assert info.rotation == 0
    assert info.codec == "h264"


@pytest.mark.parametrize(("name", "codec"), [("avi", "mpeg4"), ("webm", "vp9"), ("mkv", "h264")])
def test_probe_reads_other_containers_and_codecs(media: dict[str, Path], name: str, codec: str) -> None:
    info = probe_video(media[name])
    assert info.codec == codec
    assert info.frame_count == round(info.duration * 10)
    assert info.duration == pytest.approx(6.0 if name == "mkv" else 4.0, abs=0.01)


@pytest.mark.parametrize(("name", "clockwise"), [("portrait", 270), ("portrait_other_way", 90)])
def test_probe_reports_displayed_size_and_rotation_of_a_portrait_video(
    media: dict[str, Path], name: str, clockwise: int
) -> None:
    info = probe_video(media[name])
    assert (info.width, info.height) == (120, 160)  # stored 160x120, shown upright as portrait
    assert info.rotation == clockwise


def test_probe_of_a_file_that_is_not_a_video_names_the_file(media: dict[str, Path]) -> None:
    with pytest.raises(VideoDecodeError) as caught:
        probe_video(media["not_a_video"])
    assert caught.value.path == media["not_a_video"]
    assert "not a readable video" in caught.value.reason
    assert str(media["not_a_video"]) in str(caught.value)


def test_probe_of_an_audio_only_file_says_there_is_no_video(media: dict[str, Path]) -> None:
    with pytest.raises(VideoDecodeError, match="no video stream"):
        probe_video(media["audio_only"])


def test_probe_of_a_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(VideoDecodeError, match="no such file"):
        probe_video(tmp_path / "gone.mp4")


def test_probe_of_a_video_whose_frames_are_all_corrupt_raises(media: dict[str, Path]) -> None:
    with pytest.raises(VideoDecodeError, match="cannot decode"):
        probe_video(media["undecodable"])


def test_video_suffixes_are_recognised_case_insensitively() -> None:
    for name in ("a.mp4", "b.MOV", "c.mkv", "d.webm", "e.avi", "f.m4v"):
        assert is_video_path(name)
    assert not is_video_path("notes.txt")


# ---------------------------------------------------------------- sampling at a frame rate


def test_samples_one_frame_per_second_near_each_whole_second(media: dict[str, Path]) -> None:
    frames = list(sample_frames(media["h264"], fps=1.0))
    # Non-reference frames are skipped, so the nearest decoded frame is at most 2 source frames away.
    assert len(frames) == 4
    for second, frame in enumerate(frames):
        assert abs(frame.time - second) <= 0.2 + 1e-9
    assert all(isinstance(f, SampledFrame) and f.image.dtype == np.uint8 for f in frames)
    assert frames[0].image.shape == (120, 160, 3)


def test_higher_sampling_rate_gives_proportionally_more_frames(media: dict[str, Path]) -> None:
    times = [f.time for f in sample_frames(media["mkv"], fps=2.0)]
    assert len(times) == 12
    assert all(later > earlier for earlier, later in itertools.pairwise(times))
    for index, time in enumerate(times):
        assert abs(time - index * 0.5) <= 0.2 + 1e-9


@pytest.mark.parametrize(("name", "colour"), [("avi", GREEN), ("webm", BLUE), ("mkv", YELLOW)])
def test_samples_other_codecs_as_rgb_frames(media: dict[str, Path], name: str, colour) -> None:
    frames = list(sample_frames(media[name], fps=1.0))
    assert len(frames) == round(probe_video(media[name]).duration)
    for frame in frames:
        assert_colour(frame.image, colour)


def test_a_short_shot_between_two_long_shots_gets_a_frame(media: dict[str, Path]) -> None:
    frames = list(sample_frames(media["short_shot"], fps=1.0))
    green_start, blue_start = cut_times(SHORT_SHOT, SHORT_SHOT_FPS)
    in_green = [f for f in frames if green_start <= f.time < blue_start]
    assert len(in_green) == 1
    assert_colour(in_green[0].image, GREEN)
    # Each cut is found at the first decoded frame after it, so within a couple of source frames.
    changes = [f.time for f in frames if f.shot_change]
    assert len(changes) == 2
    for found, truth in zip(changes, (green_start, blue_start), strict=True):
        assert truth <= found <= truth + 2 / SHORT_SHOT_FPS + 1e-9


def test_no_gap_between_samples_is_longer_than_the_interval(media: dict[str, Path]) -> None:
    times = [f.time for f in sample_frames(media["short_shot"], fps=1.0)]
    duration = probe_video(media["short_shot"]).duration
    assert times[0] == pytest.approx(0.0)
    # Slack of two source frames: the frame nearest a grid time may be a skipped non-reference one.
    slack = 2 / SHORT_SHOT_FPS + 1e-9
    assert all(0 < later - earlier <= 1.0 + slack for earlier, later in itertools.pairwise(times))
    assert duration - times[-1] <= 1.0 + slack


def test_frames_of_one_shot_carry_no_shot_change(media: dict[str, Path]) -> None:
    frames = list(sample_frames(media["mkv"], fps=2.0))
    assert not any(f.shot_change for f in frames)


def test_a_video_shorter_than_the_interval_gives_its_first_frame(media: dict[str, Path]) -> None:
    frames = list(sample_frames(media["half_second"], fps=1.0))
    assert [f.time for f in frames] == [0.0]
    assert_colour(frames[0].image, RED)


def test_max_frames_caps_the_count_and_spreads_the_frames_over_the_video(media: dict[str, Path]) -> None:
    times = [f.time for f in sample_frames(media["mkv"], fps=10.0, max_frames=3)]
    assert len(times) == 3
    # 6 s in 3 frames: one every 2 s rather than the first 0.3 s at 10 frames/s.
    for index, time in enumerate(times):
        assert abs(time - index * 2.0) <= 0.2 + 1e-9


def test_max_side_downscales_keeping_the_aspect_ratio(media: dict[str, Path]) -> None:
    frame = next(iter(sample_frames(media["h264"], max_side=80)))
    assert frame.image.shape == (60, 80, 3)
    assert_colour(frame.image, GREY)


def test_max_side_larger_than_the_video_leaves_frames_unscaled(media: dict[str, Path]) -> None:
    frame = next(iter(sample_frames(media["h264"], max_side=1000)))
    assert frame.image.shape == (120, 160, 3)


@pytest.mark.parametrize("name", ["portrait", "portrait_other_way", "upside_down"])
@pytest.mark.parametrize("mode", ["fps", "keyframes"])
def test_rotation_metadata_yields_upright_frames(media: dict[str, Path], name: str, mode: str) -> None:
    info = probe_video(media[name])
    frames = list(sample_frames(media[name], mode=mode))
    assert frames
    for frame in frames:
        image = frame.image.astype(int)
        height, width = image.shape[:2]
        assert (width, height) == (info.width, info.height)
        # Upright, the white marker fills the top-left quadrant and nothing else.
        quadrant = image[: height // 2, : width // 2]
        rest = np.concatenate(
            [image[height // 2 :].reshape(-1, 3), image[: height // 2, width // 2 :].reshape(-1, 3)]
        )
        assert quadrant[2:-2, 2:-2].min() > 200
        assert np.median(rest) < 30


# ---------------------------------------------------------------- keyframes mode


def test_keyframes_mode_keeps_the_frames_the_encoder_marks_at_cuts(media: dict[str, Path]) -> None:
    frames = list(sample_frames(media["short_shot_keyed"], mode="keyframes"))
    green_start, blue_start = cut_times(SHORT_SHOT, SHORT_SHOT_FPS)
    by_time = {round(f.time, 3): f for f in frames}
    assert by_time[0.0].time == 0.0
    assert_colour(by_time[0.0].image, RED)
    assert by_time[round(green_start, 3)].shot_change
    assert_colour(by_time[round(green_start, 3)].image, GREEN)
    assert by_time[round(blue_start, 3)].shot_change
    assert_colour(by_time[round(blue_start, 3)].image, BLUE)


def test_keyframes_mode_decodes_only_intra_frames(media: dict[str, Path]) -> None:
    import av

    with av.open(str(media["short_shot_keyed"])) as container:
        keyframe_times = {
            round(float(p.pts * p.time_base), 3)
            for p in container.demux(video=0)
            if p.is_keyframe and p.pts is not None
        }
    times = {round(f.time, 3) for f in sample_frames(media["short_shot_keyed"], mode="keyframes")}
    assert times <= keyframe_times


def test_keyframes_mode_thins_keyframes_closer_than_the_interval(media: dict[str, Path]) -> None:
    # The AVI's MPEG-4 encoder puts a keyframe every 12 frames (1.2 s): at 0.5 frame/s only every
    # other one is kept.
    times = [f.time for f in sample_frames(media["avi"], mode="keyframes", fps=0.5)]
    assert times[0] == 0.0
    assert all(later - earlier >= 2.0 - 1e-3 for earlier, later in itertools.pairwise(times))


# ---------------------------------------------------------------- bad files


@pytest.mark.parametrize("mode", ["fps", "keyframes"])
def test_a_file_that_is_not_a_video_raises_before_any_frame(media: dict[str, Path], mode: str) -> None:
    frames = sample_frames(media["not_a_video"], mode=mode)
    with pytest.raises(VideoDecodeError) as caught:
        next(frames)
    assert caught.value.path == media["not_a_video"]
    assert not caught.value.partial


def test_a_video_without_any_decodable_frame_raises_a_clear_error(media: dict[str, Path]) -> None:
    with pytest.raises(VideoDecodeError, match="could not be decoded") as caught:
        list(sample_frames(media["undecodable"]))
    assert not caught.value.partial
    assert caught.value.frames_read == 0


def test_keeps_frames_read_before_a_truncation_and_reports_it_partial(media: dict[str, Path]) -> None:
    kept: list[SampledFrame] = []
    frames = sample_frames(media["truncated_mkv"], fps=1.0)
    with pytest.raises(VideoDecodeError) as caught:
        kept.extend(frames)  # the error comes after the frames read before it
    error = caught.value
    assert error.partial and error.frames_read == len(kept)
    assert "truncated" in error.reason
    # Half of a 6 s file: the first seconds survive, nothing after the cut is invented.
    assert 2 <= len(kept) <= 4
    assert [round(f.time) for f in kept] == list(range(len(kept)))
    for frame in kept:
        assert_colour(frame.image, YELLOW)


def test_a_truncated_faststart_mp4_keeps_its_first_frames(media: dict[str, Path]) -> None:
    kept: list[SampledFrame] = []
    frames = sample_frames(media["truncated_faststart"], fps=1.0)
    with pytest.raises(VideoDecodeError) as caught:
        kept.extend(frames)  # the error comes after the frames read before it
    assert caught.value.partial and kept
    assert max(f.time for f in kept) < 3.0


def test_an_mp4_cut_before_its_index_raises_a_clear_error(media: dict[str, Path]) -> None:
    # The moov box (the index) is written last, so a cut-short MP4 cannot even be opened.
    with pytest.raises(VideoDecodeError, match="not a readable video") as caught:
        next(sample_frames(media["truncated_mp4"]))
    assert not caught.value.partial


@pytest.mark.parametrize(
    "kwargs",
    [{"fps": 0}, {"fps": -1.0}, {"fps": math.nan}, {"max_frames": 0}, {"mode": "every"}, {"max_side": 1}],
)
def test_invalid_arguments_are_refused_at_once(media: dict[str, Path], kwargs: dict) -> None:
    with pytest.raises(ValueError):
        sample_frames(media["h264"], **kwargs)
