"""Vector shards are the truth; the FAISS index is derived from them and searched exactly."""

import numpy as np

from glimpse.core.index import VectorIndex
from glimpse.core.vectors import VectorStore


def _unit(rng, n, d=8):
    v = rng.normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_newest_shard_wins_when_an_id_is_written_twice(tmp_path):
    store = VectorStore(tmp_path, 8)
    rng = np.random.default_rng(0)
    old, new = _unit(rng, 2), _unit(rng, 1)
    store.append(np.array([1, 2]), old)
    store.append(np.array([2]), new)
    ids, vecs = store.load()
    assert ids.tolist() == [1, 2]
    np.testing.assert_allclose(vecs[1], new[0], atol=1e-3)


def test_leftover_temp_files_of_a_crashed_write_are_ignored_and_cleaned(tmp_path):
    store = VectorStore(tmp_path, 8)
    store.append(np.array([1]), _unit(np.random.default_rng(1), 1))
    (tmp_path / ".shard-00000002-deadbeef.npz.x.tmp").write_bytes(b"half a file")
    reopened = VectorStore(tmp_path, 8)
    assert reopened.load()[0].tolist() == [1]
    assert not list(tmp_path.glob("*.tmp"))


def test_compaction_keeps_only_live_vectors(tmp_path):
    store = VectorStore(tmp_path, 8)
    rng = np.random.default_rng(2)
    for start in (0, 10, 20):
        store.append(np.arange(start, start + 10), _unit(rng, 10))
    store.compact(np.arange(5, 15))
    assert len(store.shards()) == 1
    assert store.load()[0].tolist() == list(range(5, 15))


def test_flat_index_equals_brute_force_search(tmp_path):
    rng = np.random.default_rng(3)
    vecs, queries = _unit(rng, 500, 32), _unit(rng, 5, 32)
    ids = np.arange(500) * 7 + 3
    index = VectorIndex.build(ids, vecs, 32)
    index.save(tmp_path / "i.faiss")
    index = VectorIndex.load(tmp_path / "i.faiss")
    scores, got = index.search(queries, 10)
    brute = queries @ vecs.T
    expected = ids[np.argsort(-brute, axis=1)[:, :10]]
    assert (got == expected).all()
    np.testing.assert_allclose(scores, np.sort(brute, axis=1)[:, ::-1][:, :10], rtol=1e-5, atol=1e-5)


def test_restricted_search_returns_k_allowed_hits_even_when_they_rank_low():
    rng = np.random.default_rng(4)
    vecs = _unit(rng, 1000, 16)
    index = VectorIndex.build(np.arange(1000), vecs, 16)
    allowed = np.array([3, 500, 999])
    _scores, got = index.search(vecs[:1], 10, allowed_ids=allowed)
    assert sorted(got[0].tolist()) == [3, 500, 999]


def test_a_reader_keeps_reading_rows_after_the_writer_compacts_the_shards(tmp_path):
    writer = VectorStore(tmp_path, 8)
    rng = np.random.default_rng(5)
    vecs = _unit(rng, 30)
    for start in (0, 10, 20):
        writer.append(np.arange(start, start + 10), vecs[start : start + 10])
    reader = VectorStore(tmp_path, 8, clean=False)
    before = reader.rows(np.array([3, 25]))  # the reader maps the three shards
    writer.compact(np.arange(0, 30))  # ... which are now one new shard
    np.testing.assert_array_equal(reader.rows(np.array([3, 25])), before)
    np.testing.assert_allclose(before, vecs[[3, 25]], atol=1e-3)


def test_rows_read_through_the_mapping_equal_rows_read_by_pread_bit_for_bit(tmp_path, monkeypatch):
    """More than PREAD_MAX rows of one shard are read through its memory map, fewer by pread: both
    give each float16 vector widened exactly, in the order asked, whichever shard holds it."""
    import glimpse.core.vectors as vectors_module

    store = VectorStore(tmp_path, 8)
    rng = np.random.default_rng(3)
    first, second = _unit(rng, 40), _unit(rng, 3)
    store.append(np.arange(1, 41), first)
    store.append(np.arange(41, 44), second)
    want = np.concatenate([first, second]).astype(np.float16).astype(np.float32)
    ids = rng.permutation(np.arange(1, 44))  # both shards, out of order
    by_pread = store.rows(ids)
    monkeypatch.setattr(vectors_module, "PREAD_MAX", 5)  # the 40-row shard now goes by the map
    by_map = store.rows(ids)
    assert by_map.dtype == np.float32 and by_pread.dtype == np.float32
    assert np.array_equal(by_map.view(np.uint32), want[ids - 1].view(np.uint32))
    assert np.array_equal(by_pread.view(np.uint32), want[ids - 1].view(np.uint32))
