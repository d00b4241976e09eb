"""A shard lists its video segments beside their vectors, so a moment reads the segments next to
a hit as the rows next to it: in time order, cut short at the video's ends, never another video's,
never a row replaced since, and nothing listed that the list cannot vouch for."""

import numpy as np
import pytest

from glimpse.core.vectors import SEGMENT_DTYPE, WIDEN_ROWS, VectorStore, segment_rows, whole_videos, widen

DIM = 8


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _video(
    asset: int, first_id: int, seconds: int, cuts: tuple[int, ...] = ()
) -> tuple[np.ndarray, np.ndarray]:
    ids = np.arange(first_id, first_id + seconds, dtype=np.int64)
    units = [
        {"asset_id": asset, "t_start": float(t), "t_end": t + 1.0, "t_best": t + 0.5, "shot_start": t in cuts}
        for t in range(seconds)
    ]
    return ids, segment_rows(ids, units)


def _store_with_two_videos_and_an_image(tmp_path) -> tuple[VectorStore, np.ndarray]:
    """Video 1 (ids 10-19), an image (id 20), video 2 (ids 21-25), one shard."""
    store = VectorStore(tmp_path, DIM)
    ids_a, seg_a = _video(1, 10, 10, cuts=(4,))
    ids_b, seg_b = _video(2, 21, 5)
    ids = np.concatenate([ids_a, [20], ids_b])
    no_times = {"t_start": None, "t_end": None, "t_best": None, "shot_start": False}
    image = segment_rows(np.array([20]), [{"asset_id": 3, **no_times}])
    seg_b["row"] += 11
    store.append(ids, _vectors(len(ids)), np.concatenate([seg_a, image, seg_b]))
    return store, ids


def window(
    store: VectorStore,
    unit_id: int,
    asset: int,
    before: int = 0,
    after: int = 0,
    cuts: bool = True,
    row_map=None,
):  # type: ignore[no-untyped-def]
    """The window around one segment (VectorStore.video_windows asked for one)."""
    one = np.array
    return store.video_windows(
        one([unit_id]), one([asset]), one([before]), one([after]), one([cuts]), row_map
    )


def test_a_window_reads_the_video_s_neighbours_in_time_order_and_stops_at_its_ends(tmp_path):
    store, _ = _store_with_two_videos_and_an_image(tmp_path)
    after = window(store, 13, 1, after=3, cuts=False)
    assert after.segments["id"].tolist() == [13, 14, 15, 16] and after.seed.tolist() == [0]
    assert after.segments["cut"].tolist() == [False, True, False, False]
    assert not after.at_start[0] and not after.at_end[0]
    around = window(store, 13, 1, before=2, after=1, cuts=False)
    assert around.segments["t_start"].tolist() == [1.0, 2.0, 3.0, 4.0] and around.seed.tolist() == [2]
    to_the_end = window(store, 17, 1, after=5, cuts=False)  # the image and video 2 follow
    assert to_the_end.segments["id"].tolist() == [17, 18, 19] and to_the_end.at_end[0]
    from_the_start = window(store, 22, 2, before=4, cuts=False)  # the image comes before
    assert from_the_start.segments["id"].tolist() == [21, 22] and from_the_start.at_start[0]
    np.testing.assert_array_equal(after.vectors, store.rows(np.array([13, 14, 15, 16])))
    assert after.current.all() and after.listed.all()


def test_a_window_stops_one_segment_past_the_nearest_cut_on_each_side_when_asked(tmp_path):
    """A moment rarely crosses a cut; the segment past it is what decides whether it does."""
    store = VectorStore(tmp_path, DIM)
    ids, segments = _video(1, 1, 12, cuts=(4, 8))  # shots 0-3, 4-7, 8-11 s (ids 1-12)
    store.append(ids, _vectors(12), segments)
    early = window(store, 2, 1, before=10, after=10)  # t=1: back to the start, on through t=4
    assert early.segments["t_start"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert early.at_start[0] and not early.at_end[0]  # the video goes on
    late = window(store, 10, 1, before=8)  # t=9: back to t=7, one before the cut at t=8
    assert late.segments["t_start"].tolist() == [7.0, 8.0, 9.0] and not late.at_start[0]
    starts_a_shot = window(store, 5, 1, before=3)  # t=4 starts a shot: the shot before is read
    assert starts_a_shot.segments["t_start"].tolist() == [1.0, 2.0, 3.0, 4.0]
    past_cuts = window(store, 2, 1, before=10, after=10, cuts=False)
    assert past_cuts.segments["id"].tolist() == ids.tolist() and past_cuts.at_end[0]


def test_an_image_or_a_segment_of_another_video_is_not_answered_from_the_list(tmp_path):
    store, _ = _store_with_two_videos_and_an_image(tmp_path)
    asked = np.array([20, 13, 999, 14])  # an image, video 2's (says the catalogue), not stored, fine
    w = store.video_windows(
        asked, np.array([3, 2, 1, 1]), np.ones(4, int), np.ones(4, int), np.zeros(4, bool)
    )
    assert w.listed.tolist() == [False, False, False, True]
    assert w.bounds.tolist() == [0, 0, 0, 0, 3] and w.seed.tolist() == [-1, -1, -1, 1]
    assert w.segments["id"].tolist() == [13, 14, 15]


def test_a_row_replaced_in_a_newer_shard_is_read_but_not_current(tmp_path):
    store, _ = _store_with_two_videos_and_an_image(tmp_path)
    assert not store.row_map().superseded
    store.append(np.array([15]), _vectors(1, seed=9), np.zeros(0, SEGMENT_DTYPE))
    assert store.row_map().superseded
    assert window(store, 13, 1, after=3, cuts=False).current.tolist() == [True, True, False, True]


def test_a_shard_written_without_a_list_is_not_answered_from_it_until_one_is_added(tmp_path):
    store = VectorStore(tmp_path, DIM)
    ids, segments = _video(1, 1, 6)
    path = store.append(ids, _vectors(6))
    reader = VectorStore(tmp_path, DIM, clean=False)  # the API's store, open meanwhile
    assert path is not None and reader.segments_of(path) is None
    assert not window(reader, 3, 1, after=2).listed[0]
    store.add_segments(path, segments)  # the next publish lists them from the catalogue
    assert window(reader, 3, 1, after=2).segments["id"].tolist() == [3, 4, 5]


def test_a_reader_holding_a_map_of_shards_compacted_away_is_told_to_ask_the_catalogue(tmp_path):
    writer = VectorStore(tmp_path, DIM)
    ids, segments = _video(1, 1, 6)
    writer.append(ids, _vectors(6), segments)
    reader = VectorStore(tmp_path, DIM, clean=False)
    old_map = reader.row_map()
    assert reader.segments_of(old_map.shards[0]) is not None  # its list read, its vectors not yet
    writer.compact(ids)
    stale = window(reader, 3, 1, after=2, row_map=old_map)
    assert not stale.listed[0] and len(stale.segments) == 0
    assert window(reader, 3, 1, after=2).segments["id"].tolist() == [3, 4, 5]  # a fresh map


def test_a_video_whose_rows_are_out_of_time_order_or_split_is_left_out_of_the_list():
    _, segments = _video(1, 1, 4)
    shuffled = segments.copy()
    shuffled["t_start"] = [0.0, 2.0, 1.0, 3.0]
    assert len(whole_videos(shuffled)) == 0
    _, other = _video(2, 5, 2)
    other["row"] = [1, 2]  # video 2 sits between rows of video 1
    split = segments.copy()
    split["row"] = [0, 3, 4, 5]
    kept = whole_videos(np.concatenate([split, other]))
    assert kept["asset"].tolist() == [2, 2]


def test_a_block_s_segments_must_name_its_rows_and_their_ids(tmp_path):
    store = VectorStore(tmp_path, DIM)
    ids, segments = _video(1, 1, 3)
    wrong = segments.copy()
    wrong["id"] = [7, 8, 9]
    with pytest.raises(ValueError, match="rows of this block"):
        store.append(ids, _vectors(3), wrong)
    assert store.shards() == []


def test_compaction_keeps_each_live_segment_listed_beside_its_vector(tmp_path):
    store = VectorStore(tmp_path, DIM)
    for asset, first in ((1, 1), (2, 11), (3, 21)):
        ids, segments = _video(asset, first, 10)
        store.append(ids, _vectors(10, seed=asset), segments)
    live = np.concatenate([np.arange(1, 11), np.arange(21, 31)])  # video 2 was removed
    store.compact(live)
    (path,) = store.shards()
    table = store.segments_of(path)
    assert table is not None and table["id"].tolist() == live.tolist()
    assert table["row"].tolist() == list(range(20))
    moved = window(store, 25, 3, before=10)
    assert moved.segments["t_start"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    np.testing.assert_array_equal(moved.vectors, store.rows(np.arange(21, 26)))


@pytest.mark.parametrize("openmp", [True, False], ids=["one-cast-in-the-calling-thread", "in-steps"])
def test_widening_float16_rows_is_bit_for_bit_numpy_s_cast(openmp, monkeypatch):
    import torch  # noqa: F401 - rows widen through torch where it is loaded

    from glimpse.core import runtime

    if not openmp:  # no OpenMP runtime found to keep torch in the calling thread: steps instead
        monkeypatch.setattr(runtime, "_openmp_runtimes", list)
    half = (np.random.default_rng(3).standard_normal((300, 64)) * 3).astype(np.float16)
    half[0, :5] = [np.inf, -np.inf, -0.0, 6e-8, 65504]  # infinities, a negative zero, subnormal, max
    wide = widen(half)
    assert wide.dtype == np.float32
    assert np.array_equal(wide.view(np.uint32), half.astype(np.float32).view(np.uint32))
    assert widen(half[:0]).shape == (0, 64)
    # Many rows (in steps: every step, the last one short) and a read-only input (a
    # memory-mapped shard's rows) come out the same.
    many = (np.random.default_rng(4).standard_normal((1000, 512)) * 3).astype(np.float16)
    many.flags.writeable = False
    assert 3 * WIDEN_ROWS < 1000 * 512 and 1000 % (WIDEN_ROWS // 512) != 0
    assert np.array_equal(widen(many).view(np.uint32), many.astype(np.float32).view(np.uint32))


def test_a_publish_checks_each_shard_once_and_lists_no_file_for_a_shard_of_images(make_settings):
    from glimpse.core.library import Library
    from glimpse.core.models import ModelRef
    from glimpse.core.vectors import shard_seq
    from glimpse.indexer.bulk import import_vectors

    library = Library(make_settings())
    try:
        import_vectors(library, ModelRef("bulk", None), [f"/p/{i}.jpg" for i in range(5)], _vectors(5))
        store = library.vector_store()
        (path,) = store.shards()
        assert not (path / "segments.npy").exists()  # images: nothing to list, no file
        assert (store.folder / "segments-listed").read_text() == str(shard_seq(path))
    finally:
        library.close()


def test_the_lists_say_which_video_and_shot_a_segment_is_without_sql(tmp_path):
    """What a search sizes its catalogue reads by: segments of one shot share a key, a cut or
    another video starts a new one, and an image or an id no shard holds is not listed."""
    store, _ = _store_with_two_videos_and_an_image(tmp_path)
    asked = np.array([12, 10, 14, 19, 20, 22, 999, 13])
    got = store.segments_of_ids(asked)
    assert got.listed.tolist() == [True, True, True, True, False, True, False, True]
    assert got.segments["asset"][got.listed].tolist() == [1, 1, 1, 1, 2, 1]
    assert got.segments["t_start"][got.listed].tolist() == [2.0, 0.0, 4.0, 9.0, 1.0, 3.0]
    shot = dict(zip(asked.tolist(), got.shot.tolist(), strict=True))
    assert shot[10] == shot[12] == shot[13]  # 0-3 s: one shot
    assert shot[14] == shot[19] != shot[10]  # the cut at 4 s starts another
    assert len({shot[10], shot[14], shot[22]}) == 3  # video 2's one shot is its own
    assert shot[20] == shot[999] == -1 and not got.segments["id"][~got.listed].any()
    assert got.head(3).shot.tolist() == got.shot[:3].tolist()


def test_shots_in_two_shards_never_share_a_key(tmp_path):
    store = VectorStore(tmp_path, DIM)
    for first in (1, 101):  # each shard one video of one shot, at the same rows
        ids, segments = _video(first, first, 5)
        store.append(ids, _vectors(5), segments)
    got = store.segments_of_ids(np.array([1, 2, 101, 102]))
    assert got.shot[0] == got.shot[1] != got.shot[2] == got.shot[3]


def test_an_image_after_a_shard_s_last_segment_is_not_listed(tmp_path):
    store = VectorStore(tmp_path, DIM)
    ids, segments = _video(1, 1, 5, cuts=(3,))  # rows 0-4: every row so far a segment
    store.append(np.append(ids, 6), _vectors(6), segments)  # row 5: an image
    got = store.segments_of_ids(np.array([6, 5, 1, 4]))
    assert got.listed.tolist() == [False, True, True, True] and got.shot[0] == -1
    assert got.segments["id"][1:].tolist() == [5, 1, 4] and got.shot[1] == got.shot[3] != got.shot[2]
    # The windows locate a row of such a shard by position, with the same edge.
    w = store.video_windows(
        np.array([6, 4]), np.array([1, 1]), np.full(2, 9), np.full(2, 9), np.zeros(2, bool)
    )
    assert w.listed.tolist() == [False, True] and w.segments["id"].tolist() == [1, 2, 3, 4, 5]
    assert w.seed.tolist() == [-1, 3] and w.at_start.tolist() == [False, True]


def test_a_map_of_shards_without_lists_says_so_and_a_new_map_asks_again(tmp_path):
    """A library of images has no lists: its searches never look their hits up in them."""
    store = VectorStore(tmp_path, DIM)
    ids, segments = _video(1, 1, 4)
    path = store.append(ids, _vectors(4))  # written without its list
    store.append(np.array([10, 11]), _vectors(2, seed=1), np.zeros(0, SEGMENT_DTYPE))  # images
    first = store.row_map()
    assert not store.lists_segments(first)
    assert path is not None
    store.add_segments(path, segments)
    assert not store.lists_segments(first)  # asked once per map: a search's snapshot holds still
    assert store.lists_segments(store.row_map())
