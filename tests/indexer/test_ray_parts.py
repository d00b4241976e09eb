"""The Ray runner's parts that need no cluster: uint8 crops make the same model input, rows that
arrive late, out of order or twice make one result per file, a decoder crash fails one file, and
`--ray` gives clear errors (no extra, a Ray Client address, nobody at the address)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from conftest import save_image
from glimpse.core.encoder import normalize_on_device
from glimpse.core.vocabulary import Kind
from glimpse.indexer.decode import DecodedImage, VideoDone, decode_image_file
from glimpse.indexer.ray_runner import Regrouper, work_units
from glimpse.indexer.ray_tasks import ChildDecoder, DecoderCrashed
from glimpse.indexer.scan import FileEntry
from glimpse.indexer.writer import Deferred, Embedded


def test_a_uint8_crop_normalised_is_exactly_the_decoders_model_input(tmp_path, tiny_encoder):
    cfg = tiny_encoder.preprocess_config()
    images = [
        Image.open(save_image(tmp_path / f"{i}.png", "red", size=size, seed=i)).convert("RGB")
        for i, size in enumerate([(96, 72), (40, 300), (1000, 3)])  # ordinary, tall, an extreme strip
    ]
    crops = np.stack([cfg.crop(im) for im in images])
    assert crops.dtype == np.uint8 and crops.shape == (3, cfg.image_size, cfg.image_size, 3)
    expected = np.stack([cfg.to_array(im) for im in images])
    assert np.array_equal(cfg.normalize(crops), expected)  # bit for bit, one or many at once
    on_device = normalize_on_device(crops, cfg, "cpu")  # the GPU path's arithmetic, run on the CPU
    np.testing.assert_allclose(on_device.numpy(), expected, atol=1e-6)
    vectors = tiny_encoder.encode_image_crops(crops)
    np.testing.assert_array_equal(vectors, tiny_encoder.encode_image_tensors(expected))


def test_decode_image_file_gives_the_crop_when_asked(tmp_path, tiny_encoder):
    cfg = tiny_encoder.preprocess_config()
    path = str(save_image(tmp_path / "a.jpg", "blue"))
    crop = decode_image_file(path, cfg, 10**8, normalize=False)
    full = decode_image_file(path, cfg, 10**8)
    assert np.array_equal(cfg.normalize(crop.pixels), full.pixels)
    assert (crop.width, crop.height, crop.content_hash, crop.thumbnail) == (
        full.width,
        full.height,
        full.content_hash,
        full.thumbnail,
    )


def _entry(path: str, kind: str) -> FileEntry:
    from pathlib import Path

    return FileEntry(Path(path), kind, 1, 1)


def _rows(path, frames, times, meta=None, expected=0, deferred=False, dim=4):
    n = len(frames)
    embed = [f >= 0 for f in frames]
    return {
        "path": np.array([path] * n, dtype=object),
        "frame": np.array(frames, dtype=np.int64),
        "time": np.array(times, dtype=np.float64),
        "shot_start": np.zeros(n, dtype=bool),
        "embed": np.array(embed),
        "thumbnail": np.array(
            [f"t{f}".encode() if e else b"" for f, e in zip(frames, embed, strict=True)], dtype=object
        ),
        "meta": np.array([""] * (n - 1) + [meta or ""], dtype=object),
        "frames": np.array([0] * (n - 1) + [expected], dtype=np.int64),
        "deferred": np.array([False] * (n - 1) + [deferred]),
        "vector": np.array([np.full(dim, f, dtype=np.float32) for f in frames]),
    }


def test_rows_in_any_order_and_repeated_make_one_result_per_file_with_frames_in_order():
    import json

    video, image, lost = "/m/v.mp4", "/m/a.jpg", "/m/b.jpg"
    regroup = Regrouper(
        {video: _entry(video, Kind.VIDEO), image: _entry(image, Kind.IMAGE), lost: _entry(lost, Kind.IMAGE)}
    )
    done = json.dumps({"path": video, "duration": 3.0, "fps": 10.0, "width": 8, "height": 6, "frames": 3})
    out = []
    # The video's closing row arrives before two of its frames (another actor was slower)...
    out += regroup.add(_rows(video, [1], [1.0]))
    out += regroup.add(_rows(video, [-1], [0.0], meta=done, expected=3))
    assert out == []
    out += regroup.add(_rows(video, [2, 0], [2.0, 0.0]))
    # ...and a retried task sends frame 1 again: it is counted once, and never re-opens the file.
    out += regroup.add(_rows(video, [1], [1.0]))
    image_meta = json.dumps({"path": image, "width": 8, "height": 6, "content_hash": "h"})
    out += regroup.add(_rows(image, [0], [0.0], meta=image_meta, expected=1))
    why = json.dumps({"path": lost, "error": "cannot open the file on Ray node x"})
    out += regroup.add(_rows(lost, [-1], [0.0], meta=why, deferred=True))
    assert regroup.unfinished() == []
    by_path = {(e.entry.path.as_posix() if isinstance(e, Embedded) else e.path): e for e in out}
    assert len(out) == 3
    v = by_path[video]
    assert isinstance(v, Embedded) and isinstance(v.done, VideoDone) and v.done.duration == 3.0
    assert v.times == [0.0, 1.0, 2.0] and [int(x[0]) for x in v.vectors] == [0, 1, 2]
    assert v.thumbnails == [b"t0", b"t1", b"t2"]
    i = by_path[image]
    assert isinstance(i, Embedded) and isinstance(i.done, DecodedImage) and i.error is None
    assert by_path[lost] == Deferred(lost, "cannot open the file on Ray node x")


def test_work_units_start_with_the_largest_videos_then_images_in_model_batches():
    from pathlib import Path

    todo = [FileEntry(Path(f"/m/{i}.jpg"), Kind.IMAGE, 10, 1) for i in range(5)]
    todo += [
        FileEntry(Path("/m/small.mp4"), Kind.VIDEO, 10, 1),
        FileEntry(Path("/m/big.mp4"), Kind.VIDEO, 99, 1),
    ]
    units = work_units(todo, 2)
    assert [u["paths"] for u in units] == [
        ["/m/big.mp4"],
        ["/m/small.mp4"],
        ["/m/0.jpg", "/m/1.jpg"],
        ["/m/2.jpg", "/m/3.jpg"],
        ["/m/4.jpg"],
    ]


def test_a_decoder_crash_fails_that_call_alone_and_the_next_one_gets_a_fresh_decoder():
    decoder = ChildDecoder()
    try:
        assert list(decoder.run(iter, [1, 2, 3])) == [1, 2, 3]
        with pytest.raises(DecoderCrashed):
            list(decoder.run(os.abort))  # what a segfaulting C library does to the process
        assert list(decoder.run(iter, ["after"])) == ["after"]
        with pytest.raises(ValueError, match="invalid literal"):
            list(decoder.run(int, "x"))  # an exception is the caller's, not a crash
        assert list(decoder.run(iter, ["still here"])) == ["still here"]
    finally:
        decoder.close()


MODEL = ("--model", "glimpse-tiny", "--pretrained", "none")


def _cli(tmp_path, *args, prelude: str = "", env: dict | None = None) -> subprocess.CompletedProcess:
    code = f"{prelude}\nfrom glimpse.cli import run; run()"
    media = tmp_path / "media"
    save_image(media / "a.png", "red")
    return subprocess.run(
        [sys.executable, "-c", code, "--data-dir", str(tmp_path / "lib"), "index", str(media), *MODEL, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "GLIMPSE_WORKERS": "1", **(env or {})},
    )


def test_ray_without_the_extra_says_how_to_install_it(tmp_path):
    done = _cli(tmp_path, "--ray", "auto", prelude="import sys; sys.modules['ray'] = None")
    assert done.returncode == 1
    assert "pip install 'glimpse-search[ray]'" in " ".join(done.stderr.split())


@pytest.mark.parametrize(
    ("address", "env", "says"),
    [
        ("ray://head:10001", {}, "Ray Data does not run over Ray Client"),
        ("auto", {"RAY_ADDRESS": "ray://head:10001"}, "Ray Data does not run over Ray Client"),
        ("127.0.0.1:9", {}, "cannot reach the Ray cluster at 127.0.0.1:9"),
        ("auto", {"RAY_ADDRESS": "127.0.0.1:9"}, "cannot reach the Ray cluster at 127.0.0.1:9"),
    ],
)
def test_an_address_ray_data_cannot_use_is_a_clear_error_at_once(monkeypatch, address, env, says):
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'glimpse-search[ray]')")
    import ray

    from glimpse.indexer.ray_runner import ClusterError, connect

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    started = time.monotonic()
    with pytest.raises(ClusterError, match=re.escape(says)):
        connect(address)
    assert time.monotonic() - started < 30  # Ray itself would keep retrying for many minutes
    assert not ray.is_initialized()


def test_the_cli_reports_a_cluster_it_cannot_reach_as_an_error(tmp_path):
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'glimpse-search[ray]')")
    done = _cli(tmp_path, "--ray", "127.0.0.1:9")
    assert done.returncode == 1
    assert "error: cannot reach the Ray cluster at 127.0.0.1:9" in " ".join(done.stderr.split())


def test_the_cli_and_the_ray_runner_import_neither_ray_nor_torch():
    # `glimpse` without --ray never pays for Ray; Ray's decode tasks import the runner for free.
    code = (
        "import sys, glimpse.cli, glimpse.indexer.ray_runner, glimpse.indexer.ray_tasks; "
        "assert not {'ray', 'torch'} & set(sys.modules), sorted({'ray', 'torch'} & set(sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
