"""The synthetic generator: deterministic per seed, captions true to the pictures, real media."""

from __future__ import annotations

import csv
import itertools
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from glimpse.training.synthetic import (
    BACKGROUNDS,
    COLOURS,
    Scene,
    contrasts,
    make_catalogue,
    make_pairs,
    make_videos,
    random_caption,
    random_scene,
    render,
)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_pairs_are_identical_for_a_seed_and_differ_between_seeds(tmp_path: Path) -> None:
    a = _files(make_pairs(tmp_path / "a", 12, seed=5, image_size=48).parent)
    b = _files(make_pairs(tmp_path / "b", 12, seed=5, image_size=48).parent)
    c = _files(make_pairs(tmp_path / "c", 12, seed=6, image_size=48).parent)
    assert a == b
    assert a["pairs.csv"] != c["pairs.csv"]
    assert a["images/000000.jpg"] != c["images/000000.jpg"]


def test_item_i_does_not_depend_on_how_many_items_are_made(tmp_path: Path) -> None:
    few = list(csv.DictReader(make_pairs(tmp_path / "few", 3, seed=2, image_size=32).open()))
    many = list(csv.DictReader(make_pairs(tmp_path / "many", 9, seed=2, image_size=32).open()))
    assert few == many[:3]


def test_captions_name_the_drawn_colour_or_shape_and_nothing_else() -> None:
    rng = random.Random(0)
    for _ in range(500):
        scene = random_scene(rng)
        caption = random_caption(scene, rng)
        words = set(caption.split())
        assert scene.shape in words or scene.colour in words, caption
        other_shapes = {"circle", "square", "triangle", "star", "cross", "ring"} - {scene.shape}
        assert not words & other_shapes, caption
        named_colours = words & set(COLOURS)
        assert named_colours <= {scene.colour, scene.background}, caption


def test_shapes_are_never_drawn_on_a_background_they_do_not_stand_out_from() -> None:
    rng = random.Random(1)
    scenes = [random_scene(rng) for _ in range(2000)]
    assert all(contrasts(s.colour, s.background) for s in scenes)
    assert {(s.colour, s.background) for s in scenes} >= {("white", "black"), ("black", "white")}
    assert not any((s.colour, s.background) in {("white", "white"), ("black", "black")} for s in scenes)


@pytest.mark.parametrize("shape", ["circle", "square", "triangle", "star", "cross", "ring"])
def test_a_drawn_shape_shows_its_colour_on_its_background(shape: str) -> None:
    image = np.asarray(render(Scene(shape, "red", "white"), 128)).astype(int)
    red = (np.abs(image - COLOURS["red"]).sum(axis=2) < 60).mean()
    white = (np.abs(image - BACKGROUNDS["white"]).sum(axis=2) < 60).mean()
    assert 0.08 < red < 0.5, red  # a large shape covers a good part, never all, of the picture
    assert red + white > 0.95


def test_small_shape_on_the_left_is_drawn_in_the_left_half() -> None:
    image = np.asarray(render(Scene("square", "blue", "white", size="small", position="left"), 100)).astype(
        int
    )
    blue = np.abs(image - COLOURS["blue"]).sum(axis=2) < 60
    columns = np.nonzero(blue.any(axis=0))[0]
    assert columns.max() < 50


def test_catalogue_manifest_has_the_product_columns_and_is_deterministic(tmp_path: Path) -> None:
    catalogue = make_catalogue(tmp_path / "a", 8, seed=3, image_size=64)
    again = make_catalogue(tmp_path / "b", 8, seed=3, image_size=64)
    rows = list(csv.DictReader(catalogue.manifest.open()))

    assert list(rows[0]) == ["path", "sku", "title", "description", "price", "currency", "category", "url"]
    assert [r["price"] for r in rows] == [str(i.price) for i in again.items]
    assert len({r["sku"] for r in rows}) == 8
    for row, item in zip(rows, catalogue.items, strict=True):
        assert (catalogue.manifest.parent / row["path"]).is_file()
        assert item.scene.colour in row["title"].lower() and item.scene.shape in row["title"].lower()
        assert Image.open(catalogue.manifest.parent / row["path"]).size == (64, 64)


def _share_of_colour(image: np.ndarray, colour: str) -> float:
    return float((np.abs(image - COLOURS[colour]).sum(axis=2) < 90).mean())


def test_videos_are_h264_and_show_each_segments_colour_at_its_time(tmp_path: Path) -> None:
    import decord

    videos = make_videos(tmp_path, seed=4, count=1)
    video = videos[0]
    reader = decord.VideoReader(str(video.path))
    assert 10 <= video.segments[-1][1] <= 20
    assert len(reader) == round(video.segments[-1][1] * video.fps)
    assert reader[0].shape == (240, 320, 3)
    import av

    with av.open(str(video.path)) as container:
        assert container.streams.video[0].codec_context.name == "h264"

    for (start, end, caption), scene in zip(video.segments, video.scenes, strict=True):
        assert caption == scene.describe()
        frame = reader[int((start + end) / 2 * video.fps)].asnumpy().astype(int)
        expected = _share_of_colour(np.asarray(render(scene, video.size)).astype(int), scene.colour)
        # The shape drifts but keeps its size: the decoded frame shows about as much of its colour.
        assert 0.6 * expected < _share_of_colour(frame, scene.colour) < 1.4 * expected, caption
    assert [v.path.name for v in make_videos(tmp_path / "again", seed=4, count=1)] == [video.path.name]
    assert make_videos(tmp_path / "again2", seed=4, count=1)[0].segments == video.segments


def test_no_product_title_or_description_repeats_a_word(tmp_path: Path) -> None:
    catalogue = make_catalogue(tmp_path, 60, seed=7, image_size=32)
    shapes = {item.scene.shape for item in catalogue.items}
    assert "ring" in shapes  # the shape that is its own product ("ring ring" before)
    for item in catalogue.items:
        for text in (item.title, item.description):
            words = text.lower().replace(",", "").split()
            assert all(a != b for a, b in itertools.pairwise(words)), text
