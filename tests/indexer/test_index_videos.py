"""`glimpse index` on videos: moments with the right times, bad files recorded, incremental."""

import itertools
import shutil

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from glimpse.core.catalogue import Asset, Unit
from glimpse.core.vocabulary import Status
from glimpse.indexer.pipeline import Indexer
from glimpse.search.embedding import QueryEmbedder
from glimpse.search.engine import SearchEngine
from glimpse.search.query import SearchQuery
from videos import BLUE, GREEN, RED, YELLOW, Scene, coloured_video, not_a_video, scene_frames, truncated_copy

SCENES = [Scene(4.0, RED), Scene(3.0, GREEN), Scene(4.0, BLUE)]  # green from 4 s to 7 s


@pytest.fixture(scope="module")
def video_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    coloured_video(root / "scenes.mp4", SCENES)
    coloured_video(root / "static.avi", [Scene(6.0, RED)], codec="mpeg4")
    # Green appears in scenes.mp4 only, so a green frame has one right answer.
    good = coloured_video(root / "long.mp4", [Scene(8.0, BLUE), Scene(8.0, YELLOW)])
    truncated_copy(good, root / "cut-short.mp4", 0.5)
    not_a_video(root / "fake.mp4")
    (root / "empty.webm").write_bytes(b"")
    return root


def _run(library, encoder, settings, folder):
    return Indexer(library, encoder, settings).run([folder])


@pytest.fixture
def indexed(library, tiny_encoder, make_settings, video_folder, tmp_path):
    folder = tmp_path / "v"
    shutil.copytree(video_folder, folder)
    summary = _run(library, tiny_encoder, make_settings(), folder)
    return folder, summary


def _assets(library):
    with library.Session() as s:
        return {a.path.rsplit("/", 1)[-1]: a for a in s.scalars(select(Asset))}


def _units(library, asset_id):
    with library.Session() as s:
        return list(s.scalars(select(Unit).where(Unit.asset_id == asset_id).order_by(Unit.t_start)))


def test_a_mix_of_good_and_bad_videos_indexes_without_a_crash(indexed, library):
    _folder, _summary = indexed
    assets = _assets(library)
    assert assets["scenes.mp4"].status == Status.INDEXED and assets["static.avi"].status == Status.INDEXED
    assert assets["fake.mp4"].status == Status.FAILED and assets["fake.mp4"].error
    assert assets["empty.webm"].status == Status.FAILED
    # The truncated copy keeps what was readable (with a warning) or fails as a whole: never silently half.
    cut = assets["cut-short.mp4"]
    assert (cut.status == Status.INDEXED and cut.error) or cut.status == Status.FAILED
    assert assets["scenes.mp4"].duration == pytest.approx(11.0, abs=0.2)


def test_segments_tile_the_video_and_static_footage_collapses(indexed, library):
    assets = _assets(library)
    units = _units(library, assets["scenes.mp4"].id)
    assert 3 <= len(units) <= 11  # 11 frames sampled at 1 fps, near-identical ones merged
    assert units[0].t_start == pytest.approx(0.0, abs=0.01)
    for a, b in itertools.pairwise(units):
        assert a.t_end == pytest.approx(b.t_start)
    static = _units(library, assets["static.avi"].id)
    assert len(static) < 6  # six seconds of one scene do not become six vectors


def test_every_unit_has_a_thumbnail_in_the_data_dir(indexed, library):
    with library.Session() as s:
        thumbs = list(s.scalars(select(Unit.thumbnail)))
    assert thumbs and all((library.root / t).is_file() for t in thumbs)
    with Image.open(library.root / thumbs[0]) as im:
        assert im.format == "JPEG" and max(im.size) <= 320


def test_a_frame_of_a_known_scene_finds_that_video_as_a_moment_around_its_time(
    indexed, library, tiny_encoder, make_settings
):
    engine = SearchEngine(library, make_settings(), QueryEmbedder(tiny_encoder))
    frames = list(scene_frames(SCENES, 10, 160, 120))
    green_frame = Image.fromarray(frames[55])  # 5.5 s into the video: the green scene
    page = engine.search(SearchQuery(media="video", k=5), image=green_frame)
    top = page.results[0]
    assert top.path.endswith("scenes.mp4") and top.kind == "video"
    assert top.start <= 5.5 <= top.end + 1.0  # within one sampling interval of the truth
    assert 3.0 <= top.best_time <= 7.5


def test_re_running_re_embeds_nothing_and_a_changed_video_is_re_indexed(
    indexed, library, tiny_encoder, make_settings
):
    folder, _ = indexed
    again = _run(library, tiny_encoder, make_settings(), folder)
    assert again.units == 0 and again.indexed == 0
    coloured_video(folder / "static.avi", [Scene(3.0, GREEN)], codec="mpeg4")
    changed = _run(library, tiny_encoder, make_settings(), folder)
    assert changed.indexed == 1
    assert _assets(library)["static.avi"].duration == pytest.approx(3.0, abs=0.2)
    (folder / "scenes.mp4").unlink()
    swept = _run(library, tiny_encoder, make_settings(), folder)
    assert swept.removed == 1
    snapshot = library.open_index()
    assert np.array_equal(np.sort(snapshot.index.ids()), library.live_unit_ids())
