"""Append-only float16 vector shards: the embedding truth from which any index can be rebuilt.

A shard is a folder ``shard-<seq>-<hex>/`` holding ``ids.npy`` (int64) and ``vectors.npy``
(float16, (n, D)), written under a temporary name and renamed whole, so a reader sees all of a
shard or none of it. Both are plain ``.npy`` files: the vectors are memory-mapped and read by row,
so re-ranking, "more like this" and adding a few units never load every vector. Shards of the
older single-file form (``shard-<seq>-<hex>.npz``) are still read.

A shard that holds video segments also holds ``segments.npy`` (:data:`SEGMENT_DTYPE`): each
segment's row, video, times and cut flag, beside its vector. A video's segments lie in one shard
as one run of consecutive rows in time order (the writers write a video whole; :class:`ShardWriter`
checks the order and leaves out a video that breaks it), so the segments next to a hit are the
rows next to it: a moment reads its neighbours and their vectors with one read, no SQL
(:meth:`VectorStore.video_windows`). Shards written before this file existed have none; their
segments are read from the catalogue instead.
"""

from __future__ import annotations

import array
import math
import os
import re
import shutil
import sys
import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from glimpse.core.fsutil import atomic_write, fsync_dir, remove_stale_temp_files
from glimpse.core.runtime import torch_in_calling_thread

_SHARD = re.compile(r"^shard-(\d{8})-[0-9a-f]{8}(\.npz)?$")
SEGMENT_DTYPE = np.dtype(
    [
        ("row", "<i8"),  # the row in the shard (ids.npy, vectors.npy)
        ("id", "<i8"),  # the unit id
        ("asset", "<i8"),  # the video
        ("t_start", "<f8"),  # seconds
        ("t_end", "<f8"),
        ("t_best", "<f8"),  # the representative frame's time
        ("cut", "?"),  # a detected cut comes right before the segment
    ]
)
"""One video segment of a shard, in ``segments.npy`` (sorted by row; 49 bytes a segment)."""
READ_CHUNK = 65_536  # rows per block when a whole shard is streamed
PREAD_MAX = 4_096  # up to this many rows of a shard are read with pread, more through a mapping


def shard_seq(path: Path) -> int:
    """The sequence number of a shard (its order of writing)."""
    return int(_SHARD.match(path.name).group(1))  # type: ignore[union-attr]


def segment_rows(ids: np.ndarray, units: Sequence[Mapping[Any, Any]]) -> np.ndarray:
    """The video segments among rows of a shard block, as :data:`SEGMENT_DTYPE` (``row`` counted
    from the block's first row). ``units`` has one mapping per id (n,) with the catalogue's unit
    fields ``asset_id``, ``t_start``, ``t_end``, ``t_best`` and ``shot_start`` (seconds; None
    where unset): a unit without ``t_start`` (an image) is not a segment, and one without
    ``t_best`` is represented by its start. Raises ValueError when the lengths differ."""
    if len(units) != len(ids):
        raise ValueError(f"{len(units)} units for {len(ids)} ids")

    def column(name: str, dtype: Any, missing: Any) -> np.ndarray:
        return np.array([missing if u[name] is None else u[name] for u in units], dtype=dtype)

    starts = column("t_start", np.float64, math.nan)
    rows = np.flatnonzero(np.isfinite(starts))
    out = np.zeros(len(rows), SEGMENT_DTYPE)
    out["row"] = rows
    out["id"] = np.asarray(ids, dtype=np.int64)[rows]
    out["asset"] = column("asset_id", np.int64, -1)[rows]
    out["t_start"] = starts[rows]
    out["t_end"] = column("t_end", np.float64, math.nan)[rows]
    best = column("t_best", np.float64, math.nan)[rows]
    out["t_best"] = np.where(np.isfinite(best), best, out["t_start"])
    out["cut"] = column("shot_start", bool, False)[rows]
    return out


def whole_videos(segments: np.ndarray) -> np.ndarray:
    """``segments`` (:data:`SEGMENT_DTYPE`) sorted by row, less every video whose segments are
    not consecutive rows in (t_start, id) order: what ``segments.npy`` may promise."""
    by_time = segments[np.lexsort((segments["id"], segments["t_start"], segments["asset"]))]
    same = by_time["asset"][1:] == by_time["asset"][:-1]
    broken = np.unique(by_time["asset"][1:][same & (np.diff(by_time["row"]) != 1)])
    kept = segments[~np.isin(segments["asset"], broken)]
    return kept[np.argsort(kept["row"], kind="stable")]


@dataclass(frozen=True, eq=False)
class VideoWindows:
    """Windows of consecutive segments of a video, one around each of n given segments, read from
    the shards together (:meth:`VectorStore.video_windows`): window j is the flat rows
    ``bounds[j]:bounds[j + 1]``, in time order, empty where the shard does not list segment j."""

    listed: np.ndarray  # (n,) bool: segment j's shard lists it as a segment of its video
    bounds: np.ndarray  # (n + 1,) int64
    seed: np.ndarray  # (n,) int64: the flat row of segment j itself, -1 where not listed
    at_start: np.ndarray  # (n,) bool: window j starts where its video starts
    at_end: np.ndarray  # (n,) bool: window j ends where its video ends
    segments: np.ndarray  # (m,) SEGMENT_DTYPE
    vectors: np.ndarray  # (m, D) float32
    current: np.ndarray  # (m,) bool: the row is its id's newest vector (not one replaced since)


@dataclass(frozen=True, eq=False)
class SegmentsOf:
    """What the shards' segment lists say of n given unit ids (:meth:`VectorStore.segments_of_ids`)."""

    segments: np.ndarray  # (n,) SEGMENT_DTYPE: its row there (zeros where not listed)
    shot: np.ndarray  # (n,) int64: equal for segments of one shot, unequal across shots; -1: not listed

    @property
    def listed(self) -> np.ndarray:
        """(n,) bool: the id's shard lists it as a video segment."""
        return self.shot >= 0

    def head(self, n: int) -> SegmentsOf:
        """The first ``n`` ids' entries."""
        return SegmentsOf(self.segments[:n], self.shot[:n])

    def then(self, more: SegmentsOf) -> SegmentsOf:
        """These ids' entries followed by ``more``'s."""
        return SegmentsOf(
            np.concatenate([self.segments, more.segments]), np.concatenate([self.shot, more.shot])
        )


@dataclass(frozen=True, eq=False)
class _SegmentList:
    """A shard's ``segments.npy`` (memory-mapped) and what reads search in it, computed once."""

    table: np.ndarray  # (n,) SEGMENT_DTYPE, by row
    rows: np.ndarray  # (n,) int64: table["row"], contiguous
    video_starts: np.ndarray  # (videos + 1,) int64: where each video's rows start, then n
    cuts: np.ndarray  # (c,) int64: the positions whose segment starts a new shot, ascending
    shot_starts: np.ndarray  # (shots,) int64: where each shot starts (a video's start or a cut)
    dense: bool  # every row of the shard is listed: the position of row r is r
    asset: np.ndarray  # (n,) int64: table["asset"], a view taken once (a field view per read costs)
    raw: np.ndarray  # (n, 49) uint8: the table's bytes, joined without structured-dtype promotion
    # video_starts and cuts again, as arrays of Python ints for `bisect`: a window is located with
    # a few scalar searches, where numpy's per-call overhead is most of the cost (8 bytes each).
    starts_seq: array.array[int]
    cuts_seq: array.array[int]

    @classmethod
    def of(cls, table: np.ndarray) -> _SegmentList:
        assets = np.asarray(table["asset"])
        changes = np.flatnonzero(assets[1:] != assets[:-1]) + 1
        starts = np.concatenate([[0], changes, [len(table)]]) if len(table) else np.zeros(1, np.int64)
        starts = starts.astype(np.int64)
        rows, cuts = np.ascontiguousarray(table["row"]), np.flatnonzero(table["cut"]).astype(np.int64)
        dense = bool(len(rows) and rows[0] == 0 and rows[-1] == len(rows) - 1)  # sorted and unique
        shots = np.union1d(starts[:-1], cuts).astype(np.int64)
        raw = np.ascontiguousarray(table).view(np.uint8).reshape(len(table), SEGMENT_DTYPE.itemsize)
        return cls(table, rows, starts, cuts, shots, dense, assets, raw, _int_array(starts), _int_array(cuts))


def _int_array(values: np.ndarray) -> array.array[int]:
    out = array.array("q")
    out.frombytes(np.ascontiguousarray(values, dtype=np.int64).tobytes())
    return out


WIDEN_ROWS = 32_767
"""Elements widened per step where torch's threads cannot be kept out (no OpenMP runtime
found): under torch's parallel grain (32,768), so each step runs in the calling thread."""


def widen(half: np.ndarray) -> np.ndarray:
    """float16 rows (n, D) as float32, bit for bit (IEEE conversion), through torch's vectorised
    cast in the calling thread (:func:`~glimpse.core.runtime.torch_in_calling_thread`): 1,200
    rows of 512 take ~0.25 ms here, against ~0.45 in 63-row steps (each step's dispatch costs
    more than its conversion), ~0.7 on torch's pool (its threads woken for each call), 0.64
    through FAISS's fp16 decoder and 1-2 with numpy's ``astype`` (numpy converts one number at a
    time); bench of 2026-12-08.

    Only where torch is loaded already (the API and the indexer load it for the encoder): a
    process without an encoder that builds an index (a bulk import through
    ``glimpse.indexer.bulk``) would load it just for this, ~0.5 GB and a second, and converts with
    numpy instead (~0.1 s a 65,536-row block)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return np.ascontiguousarray(half, dtype=np.float32)
    n, dim = half.shape
    out = np.empty((n, dim), np.float32)
    if not n:
        return out
    half = np.ascontiguousarray(half, dtype="<f2")
    if not half.flags.writeable:  # torch shares the memory and wants to be free to write it
        half = half.copy()
    src, dst = torch.from_numpy(half), torch.from_numpy(out)
    with torch_in_calling_thread() as alone:
        step = n if alone else max(1, WIDEN_ROWS // dim)
        for i in range(0, n, step):
            dst[i : i + step].copy_(src[i : i + step])
    return out


def _read_into(fd: int, rows: np.ndarray, offset: int) -> None:
    """Fill ``rows`` (contiguous) from ``fd`` at byte ``offset``; OSError on a short read (a
    truncated shard), never rows of zeros."""
    view = memoryview(rows.data).cast("B")
    got = os.preadv(fd, [view], offset)
    if got != len(view):
        raise OSError(f"short read: {got} of {len(view)} bytes at offset {offset}")


class RowMap:
    """Where each stored unit id lives: (shard, row), the newest shard winning.

    Built from the shards' ``ids`` arrays only (8 bytes a row). ``extend`` adds newer shards
    without re-reading the ones already mapped.
    """

    def __init__(self) -> None:
        self.shards: list[Path] = []
        self.ids = np.zeros(0, np.int64)  # sorted
        self.shard = np.zeros(0, np.int32)  # index into self.shards
        self.row = np.zeros(0, np.int64)
        self.superseded = False  # some id has rows in two shards: only the newest is current
        self.lists_segments: bool | None = None  # some shard lists segments (VectorStore asks once)

    def extend(self, shards: list[Path], read_ids: object) -> RowMap:
        """A new map with ``shards`` (which must start with this map's shards) mapped too."""
        if shards[: len(self.shards)] != self.shards:
            return RowMap().extend(shards, read_ids)
        new = shards[len(self.shards) :]
        out = RowMap()
        out.shards = list(shards)
        if not new:
            out.ids, out.shard, out.row, out.superseded = self.ids, self.shard, self.row, self.superseded
            return out
        ids_blocks, shard_blocks, row_blocks = [], [], []
        for offset, path in enumerate(new):
            ids = read_ids(path)  # type: ignore[operator]
            ids_blocks.append(ids)
            shard_blocks.append(np.full(len(ids), len(self.shards) + offset, np.int32))
            row_blocks.append(np.arange(len(ids), dtype=np.int64))
        ids = np.concatenate(ids_blocks)
        # newest wins: look from the end, so the last occurrence of an id is kept
        new_ids, first_from_end = np.unique(ids[::-1], return_index=True)
        keep = len(ids) - 1 - first_from_end
        new_shard, new_row = np.concatenate(shard_blocks)[keep], np.concatenate(row_blocks)[keep]
        old = ~np.isin(self.ids, new_ids, assume_unique=True)
        all_ids = np.concatenate([self.ids[old], new_ids])
        order = np.argsort(all_ids, kind="stable")
        out.ids = all_ids[order]
        out.shard = np.concatenate([self.shard[old], new_shard])[order]
        out.row = np.concatenate([self.row[old], new_row])[order]
        out.superseded = self.superseded or len(new_ids) < len(ids) or not old.all()
        return out

    def locate(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found mask, position in the map) of ``ids``."""
        ids = np.asarray(ids, dtype=np.int64)
        if not len(self.ids):
            return np.zeros(len(ids), bool), np.zeros(len(ids), np.int64)
        pos = np.searchsorted(self.ids, ids).clip(0, len(self.ids) - 1)
        return self.ids[pos] == ids, pos


class VectorStore:
    """Shards of (unit ids, float16 vectors) written once and never modified.

    When one id appears in several shards the newest shard wins: a unit that was re-embedded, or
    an id that SQLite handed out again after a rolled-back transaction, resolves to its latest vector.
    ``clean`` removes what a crashed write left behind; only the writer (who holds the library's
    lock) may ask for it, never a reader, whose clean-up could delete a write in progress.
    """

    def __init__(self, folder: Path, dim: int, clean: bool = True) -> None:
        self.folder = folder
        self.dim = dim
        self._map = RowMap()
        self._fds: dict[Path, tuple[int, int]] = {}
        self._segments: dict[Path, _SegmentList] = {}
        folder.mkdir(parents=True, exist_ok=True)
        if clean:
            for tmp in folder.glob(".shard-*.tmp"):
                if tmp.is_dir():
                    shutil.rmtree(tmp, ignore_errors=True)
            remove_stale_temp_files(folder)

    def shards(self) -> list[Path]:
        found = [p for p in self.folder.iterdir() if _SHARD.match(p.name)]
        return sorted(found, key=shard_seq)

    def _next_seq(self) -> int:
        shards = self.shards()
        return shard_seq(shards[-1]) + 1 if shards else 1

    def append(self, ids: np.ndarray, vectors: np.ndarray, segments: np.ndarray | None = None) -> Path | None:
        """Durably write one shard; returns its path (None when there is nothing to write).

        ``segments`` (:func:`segment_rows`) gives the rows' video times, whole videos only (see
        :meth:`ShardWriter.write`); None leaves them unlisted, for the catalogue to fill in."""
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.asarray(vectors)
        if len(ids) == 0:
            return None
        if vectors.shape != (len(ids), self.dim):
            raise ValueError(f"expected vectors of shape ({len(ids)}, {self.dim}), got {vectors.shape}")
        writer = self.open_shard()
        writer.write(vectors, ids, segments)
        return writer.close()

    def open_shard(self) -> ShardWriter:
        """A shard written block by block (a bulk import streams millions of rows this way)."""
        return ShardWriter(self)

    # -- reading -------------------------------------------------------------------------------
    @staticmethod
    def read_ids(path: Path) -> np.ndarray:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                return np.asarray(data["ids"], dtype=np.int64)
        return np.load(path / "ids.npy", allow_pickle=False).astype(np.int64, copy=False)

    def _vectors_of(self, path: Path) -> np.ndarray:
        """A shard's (n, D) float16 vectors, memory-mapped (old .npz shards: read whole)."""
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                return np.asarray(data["vectors"])
        return np.load(path / "vectors.npy", mmap_mode="r", allow_pickle=False)

    def row_map(self) -> RowMap:
        """Where every stored id lives; only shards new since the last call are read."""
        self._map = self._map.extend(self.shards(), self.read_ids)
        for path in set(self._fds) - set(self._map.shards):  # compacted away: let the file go
            os.close(self._fds.pop(path)[0])
        for path in set(self._segments) - set(self._map.shards):
            del self._segments[path]
        return self._map

    # -- video segments ------------------------------------------------------------------------
    def segments_of(self, path: Path) -> np.ndarray | None:
        """A shard's video segments (:data:`SEGMENT_DTYPE`, by row, memory-mapped), or None for
        a shard written before shards held them."""
        cached = self._load_segments(path)
        return None if cached is None else cached.table

    def _load_segments(self, path: Path) -> _SegmentList | None:
        if path in self._segments:
            return self._segments[path]
        file = path / "segments.npy"
        if path.suffix == ".npz" or not file.exists():
            return None  # looked for again next time: the writer may add it
        table = np.load(file, mmap_mode="r", allow_pickle=False)
        if table.dtype != SEGMENT_DTYPE:
            raise ValueError(f"{file} holds {table.dtype}, not video segments")
        # A plain array over the mapping: slicing an np.memmap costs far more.
        loaded = self._segments[path] = _SegmentList.of(table.view(np.ndarray))
        return loaded

    def add_segments(self, path: Path, segments: np.ndarray) -> None:
        """Give a shard written before shards held segments its ``segments.npy`` (whole videos
        only, rows in time order: :func:`whole_videos`). The writer's job, under its lock."""
        with atomic_write(path / "segments.npy") as fh:
            np.save(fh, whole_videos(np.asarray(segments, dtype=SEGMENT_DTYPE)))
        self._segments.pop(path, None)

    def video_windows(
        self,
        ids: np.ndarray,
        assets: np.ndarray,
        before: np.ndarray,
        after: np.ndarray,
        stop_at_cuts: np.ndarray,
        row_map: RowMap | None = None,
    ) -> VideoWindows:
        """For each segment ``ids[j]`` of video ``assets[j]`` (n,), a window of its video's
        segments in time order: up to ``before[j]`` segments before it, itself, and up to
        ``after[j]`` after it, within the video, with their vectors. Where ``stop_at_cuts[j]``,
        the window goes no further than one segment past the first detected cut on each side
        (a moment rarely crosses a cut, and the segment past it decides whether it does).

        Each window is one read of consecutive rows (a video's rows are, :func:`whole_videos`)
        and all are converted from float16 in one block. A segment its shard does not list (a
        shard written before shards listed segments, or compacted away under ``row_map``) gets
        an empty window and ``listed`` false: ask the catalogue."""
        ids = np.asarray(ids, dtype=np.int64)
        n = len(ids)
        rmap = row_map or self.row_map()
        try:
            return self._video_windows(ids, np.asarray(assets, np.int64), before, after, stop_at_cuts, rmap)
        except FileNotFoundError:  # compacted away under a reader holding an older map
            none = np.zeros(n, bool)
            return VideoWindows(
                none, np.zeros(n + 1, np.int64), np.full(n, -1), none, none,
                np.zeros(0, SEGMENT_DTYPE), np.zeros((0, self.dim), np.float32), np.zeros(0, bool),
            )  # fmt: skip

    def _video_windows(
        self,
        ids: np.ndarray,
        assets: np.ndarray,
        before: np.ndarray,
        after: np.ndarray,
        stop_at_cuts: np.ndarray,
        rmap: RowMap,
    ) -> VideoWindows:
        n = len(ids)
        found, pos = rmap.locate(ids)
        shard_of, row_of = rmap.shard[pos].tolist(), rmap.row[pos].tolist()
        found_, assets_ = found.tolist(), assets.tolist()
        before_, after_, stop_ = (np.asarray(x).tolist() for x in (before, after, stop_at_cuts))
        # A page asks for a few windows at a time, in as many shards: scalar steps per window
        # (bisect on arrays of Python ints) cost less here than numpy's per-call overhead.
        spans: list[tuple[_SegmentList, int, int, int, bool, bool] | None] = []  # list, lo, hi, at, ...
        for j in range(n):
            loaded = self._load_segments(rmap.shards[shard_of[j]]) if found_[j] else None
            if loaded is None or not len(loaded.rows):
                spans.append(None)
                continue
            row, count = row_of[j], len(loaded.rows)
            at = (row if row < count else count) if loaded.dense else int(loaded.rows.searchsorted(row))
            if at >= count or (not loaded.dense and loaded.rows[at] != row) or loaded.asset[at] != assets_[j]:
                spans.append(None)
                continue
            starts, cuts = loaded.starts_seq, loaded.cuts_seq
            video = bisect_right(starts, at) - 1
            first, stop = starts[video], starts[video + 1]
            lo, hi = max(first, at - before_[j]), min(stop, at + 1 + after_[j])
            if stop_[j] and cuts:
                c = bisect_left(cuts, at)  # cuts[c - 1]: the last cut before `at`
                if c > 0 and cuts[c - 1] > lo:
                    lo = cuts[c - 1] - 1  # one segment before the cut: it decides joining
                c = bisect_right(cuts, at)  # cuts[c]: the first cut after `at`
                if c < len(cuts) and cuts[c] < hi:
                    hi = cuts[c] + 1  # the segment the cut starts
            spans.append((loaded, lo, hi, at, lo == first, hi == stop))
        sizes = [0 if sp is None else sp[2] - sp[1] for sp in spans]
        bounds = np.zeros(n + 1, np.int64)
        bounds[1:] = np.cumsum(sizes)
        size = 2 * self.dim
        half = np.empty((int(bounds[-1]), self.dim), "<f2")
        parts, shard_ids = [], []
        for j, sp in enumerate(spans):
            if sp is None or not sizes[j]:
                continue
            loaded, lo, hi = sp[0], sp[1], sp[2]
            parts.append(loaded.raw[lo:hi])
            shard_ids.append(shard_of[j])
            fd, offset = self._descriptor(rmap.shards[shard_of[j]])
            _read_into(fd, half[bounds[j] : bounds[j + 1]], offset + int(loaded.rows[lo]) * size)
        # Off the mapping, in one copy of plain bytes (np.concatenate promotes structured dtypes
        # field by field, which cost more than the copy).
        segments = (np.concatenate(parts) if parts else np.zeros((0, SEGMENT_DTYPE.itemsize), np.uint8)).view(
            SEGMENT_DTYPE
        )[:, 0]
        shard = np.repeat(np.asarray(shard_ids, np.int32), [s for s in sizes if s])
        vectors = widen(half)  # one conversion for all the windows
        if rmap.superseded:
            at_ids, at_pos = rmap.locate(segments["id"])
            current = at_ids & (rmap.shard[at_pos] == shard) & (rmap.row[at_pos] == segments["row"])
        else:  # every id has one row, and a listed segment's row holds its id: all current
            current = np.ones(len(segments), bool)
        listed = np.array([sp is not None for sp in spans], bool)
        seed = np.array(
            [-1 if sp is None else int(bounds[j]) + sp[3] - sp[1] for j, sp in enumerate(spans)], np.int64
        )
        at_start = np.array([sp is not None and sp[4] for sp in spans], bool)
        at_end = np.array([sp is not None and sp[5] for sp in spans], bool)
        return VideoWindows(listed, bounds, seed, at_start, at_end, segments, vectors, current)

    def lists_segments(self, row_map: RowMap) -> bool:
        """Whether any shard of ``row_map`` lists video segments: asked once per map (a new
        version's map asks again), so a library of images never looks its hits up in lists it
        does not have."""
        if row_map.lists_segments is None:
            row_map.lists_segments = any(
                (loaded := self._load_segments(path)) is not None and len(loaded.rows) > 0
                for path in row_map.shards
            )
        return row_map.lists_segments

    def segments_of_ids(self, ids: np.ndarray, row_map: RowMap | None = None) -> SegmentsOf:
        """What the shards' segment lists say of the units ``ids`` (n,), no SQL: each listed
        segment's row (video, times) and its shot. Ids a shard does not list as segments (an
        image, a shard written before shards listed segments, an id no shard holds) are not
        ``listed``, with a zero row and shot -1."""
        ids = np.asarray(ids, dtype=np.int64)
        rmap = row_map or self.row_map()
        segments = np.zeros(len(ids), SEGMENT_DTYPE)
        shot = np.full(len(ids), -1, np.int64)
        found, pos = rmap.locate(ids)
        shard_of = np.where(found, rmap.shard[pos], -1)
        # One pass per shard met, over its ids only (a page's hits lie in many shards).
        order = np.argsort(shard_of, kind="stable")
        edges = np.flatnonzero(np.diff(shard_of[order])) + 1
        for which in np.split(order, edges):
            s = int(shard_of[which[0]]) if len(which) else -1
            if s < 0:
                continue
            try:
                loaded = self._load_segments(rmap.shards[s])
            except FileNotFoundError:  # compacted away under a reader holding an older map
                continue
            if loaded is None or not len(loaded.rows):
                continue
            rows = rmap.row[pos[which]]
            if loaded.dense:  # row r is at position r; rows past the list are not segments
                hit = rows < len(loaded.rows)
                which, at = which[hit], rows[hit]
            else:
                at = loaded.rows.searchsorted(rows).clip(0, len(loaded.rows) - 1)
                hit = loaded.rows[at] == rows
                which, at = which[hit], at[hit]
            segments[which] = loaded.table[at]
            # A shot starts at its video's start or at a cut; keyed by shard and that position.
            shot[which] = (s << 40) | loaded.shot_starts[loaded.shot_starts.searchsorted(at, "right") - 1]
        return SegmentsOf(segments, shot)

    def stored_ids(self) -> np.ndarray:
        """Every id with a stored vector, ascending."""
        return self.row_map().ids

    def rows(self, ids: np.ndarray, row_map: RowMap | None = None) -> np.ndarray:
        """The float32 vectors (len(ids), D) of ``ids``, read by row from the memory-mapped shards.

        Raises KeyError naming an id that no shard holds.
        """
        try:
            return self._rows(ids, row_map or self.row_map())
        except FileNotFoundError:
            # compacted away under a reader holding an older map: the rows live on in the new shard
            self._map = RowMap()
            return self._rows(ids, self.row_map())

    def _rows(self, ids: np.ndarray, rmap: RowMap) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        found, pos = rmap.locate(ids)
        if not found.all():
            raise KeyError(f"no stored vector for unit id {int(ids[~found][0])}")
        # Every row is gathered as float16 and widened once at the end: one conversion a read,
        # not one a shard (a re-ranking's few hundred rows lie in dozens of shards), and never
        # numpy's cast, which converts one number at a time (20,000 rows of 512: 21 ms against
        # 6.5 for widen).
        half = np.empty((len(ids), self.dim), "<f2")
        shard_of, row_of = rmap.shard[pos], rmap.row[pos]
        for s in np.unique(shard_of):
            which = np.flatnonzero(shard_of == s)
            rows = row_of[which]
            order = np.argsort(rows)
            path = rmap.shards[int(s)]
            if len(rows) <= PREAD_MAX and path.suffix != ".npz":
                half[which[order]] = self._pread_rows(path, rows[order])
                continue
            vectors = self._vectors_of(path)
            half[which[order]] = vectors[rows[order]]
            del vectors  # unmap: pages read for a few rows do not stay in this process
        return widen(half)

    def _pread_rows(self, path: Path, rows: np.ndarray) -> np.ndarray:
        """A few rows read with pread from a kept-open descriptor: no mapping to fault in, and
        nothing added to this process's resident memory (the page cache holds the file)."""
        fd, offset = self._descriptor(path)
        size = 2 * self.dim
        # One read per run of consecutive rows (``rows`` is sorted): a video's segments are
        # neighbours in their shard, and moments read them side by side.
        cuts = np.flatnonzero(np.diff(rows) != 1) + 1
        firsts, ends = np.concatenate([[0], cuts]), np.concatenate([cuts, [len(rows)]])
        half = np.empty((len(rows), self.dim), "<f2")
        for f, e in zip(firsts.tolist(), ends.tolist(), strict=True):
            _read_into(fd, half[f:e], offset + int(rows[f]) * size)
        return half

    def _descriptor(self, path: Path) -> tuple[int, int]:
        """An open descriptor of a shard's vectors.npy and where its rows start (cached)."""
        cached = self._fds.get(path)
        if cached is None:
            fd = os.open(path / "vectors.npy", os.O_RDONLY)
            with open(path / "vectors.npy", "rb") as fh:
                np.lib.format.read_magic(fh)
                np.lib.format.read_array_header_1_0(fh)
                cached = (fd, fh.tell())
            self._fds[path] = cached
        return cached

    def close(self) -> None:
        """Close the descriptors kept for reading rows."""
        fds, self._fds = self._fds, {}
        for fd, _ in fds.values():
            os.close(fd)

    def __del__(self) -> None:
        self.close()

    def iter_rows(self, ids: np.ndarray, chunk: int = READ_CHUNK) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, float32 vectors) in blocks of ``chunk`` rows: what an index build streams."""
        ids = np.asarray(ids, dtype=np.int64)
        rmap = self.row_map()
        for start in range(0, len(ids), chunk):
            block = ids[start : start + chunk]
            yield block, self.rows(block, rmap)

    def load(self, wanted: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """All (sorted ids, float32 vectors), newest shard winning; only ``wanted`` ids when given.

        This holds every requested vector in memory: for small libraries and tests; large ones
        stream with :meth:`iter_rows`.
        """
        stored = self.stored_ids()
        ids = stored if wanted is None else np.intersect1d(stored, np.asarray(wanted, dtype=np.int64))
        return ids, self.rows(ids)

    def compact(self, live_ids: np.ndarray) -> None:
        """Rewrite all shards as one holding only ``live_ids`` (drops vectors of removed units).

        Streamed block by block. The new shard is written before the old ones are unlinked: a
        crash in between leaves duplicates of identical vectors, which is harmless.
        """
        old = self.shards()
        if not old:
            return
        ids = np.intersect1d(self.stored_ids(), np.asarray(live_ids, dtype=np.int64))
        carried = self._carried_segments(ids)  # row: the position in ``ids``, the new shard's row
        writer = self.open_shard()
        start = 0
        for block_ids, block in self.iter_rows(ids):
            lo, hi = np.searchsorted(carried["row"], [start, start + len(block_ids)])
            segments = carried[lo:hi].copy()
            segments["row"] -= start
            writer.write(block, block_ids, segments)
            start += len(block_ids)
        if len(ids):
            new: Path | None = writer.close()
        else:
            writer.abort()
            new = None
        for path in old:
            if path != new:
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        fsync_dir(self.folder)
        self._map = RowMap()

    def _carried_segments(self, ids: np.ndarray) -> np.ndarray:
        """The current segments of ``ids`` (sorted) from every shard that lists them, ``row``
        set to each id's position in ``ids``, sorted by it (ids in order keep a video's rows
        consecutive: a video's units get consecutive ids, in time order)."""
        rmap = self.row_map()
        parts = [np.zeros(0, SEGMENT_DTYPE)]
        for shard, path in enumerate(rmap.shards):
            table = self.segments_of(path)
            if table is None or not len(table):
                continue
            table = np.array(table)
            found, pos = rmap.locate(table["id"])
            table = table[found & (rmap.shard[pos] == shard) & (rmap.row[pos] == table["row"])]
            at = np.searchsorted(ids, table["id"]).clip(0, max(len(ids) - 1, 0))
            kept = (ids[at] == table["id"]) if len(ids) else np.zeros(len(table), bool)
            table = table[kept]
            table["row"] = at[kept]
            parts.append(table)
        carried = np.concatenate(parts)
        return carried[np.argsort(carried["row"], kind="stable")]

    def stored_count(self) -> int:
        return sum(len(self.read_ids(p)) for p in self.shards())


class ShardWriter:
    """Writes one shard in blocks into a temporary folder; ``close`` makes it durable and visible."""

    def __init__(self, store: VectorStore) -> None:
        self.store = store
        self.tmp = store.folder / f".shard-{uuid.uuid4().hex[:8]}.tmp"
        self.tmp.mkdir()
        self._vec = open(self.tmp / "vectors.npy", "wb")  # noqa: SIM115 - closed in close()
        self._vec.write(_npy_header(0, store.dim))
        self._ids: list[np.ndarray] = []
        self._segments: list[np.ndarray] = []
        self._listed = True
        self.rows = 0

    def write(self, vectors: np.ndarray, ids: np.ndarray, segments: np.ndarray | None = None) -> None:
        """Append rows: ``vectors`` (n, D) under ``ids`` (n,), and ``segments`` (:func:`segment_rows`,
        rows counted from this block's first) for those that are video segments.

        A video with segments here must have all of its segments in this shard, in time order
        (what a moment reads next to a hit is the rows next to it); a video whose rows are not
        consecutive in time order is left out of ``segments.npy`` (its moments read SQL)."""
        vectors = np.asarray(vectors)
        ids = np.asarray(ids, dtype=np.int64)
        if vectors.ndim != 2 or vectors.shape[1] != self.store.dim or len(vectors) != len(ids):
            raise ValueError(f"expected vectors of shape ({len(ids)}, {self.store.dim}), got {vectors.shape}")
        # Listed only when every block says which of its rows are segments (none: unknown, so
        # the catalogue is asked, and the next publish lists them).
        self._listed = self._listed and segments is not None
        if segments is not None and len(segments):
            segments = np.array(segments, dtype=SEGMENT_DTYPE)
            rows = segments["row"]
            if rows.min() < 0 or rows.max() >= len(ids) or (segments["id"] != ids[rows]).any():
                raise ValueError("segments must name rows of this block and their unit ids")
            segments["row"] += self.rows
            self._segments.append(segments)
        self._vec.write(np.ascontiguousarray(vectors, dtype=np.float16).tobytes())
        self._ids.append(ids)
        self.rows += len(ids)

    def close(self) -> Path:
        """fsync both files, rename the folder into place; returns the shard's path."""
        # The header went first with room for any row count; now it gets the real one.
        self._vec.seek(0)
        self._vec.write(_npy_header(self.rows, self.store.dim))
        self._vec.flush()
        os.fsync(self._vec.fileno())
        self._vec.close()
        ids = np.concatenate(self._ids) if self._ids else np.zeros(0, np.int64)
        files = [("ids.npy", ids)]
        if self._listed and self._segments:  # none listed: no file (a shard of images)
            segments = np.concatenate(self._segments) if self._segments else np.zeros(0, SEGMENT_DTYPE)
            files.append(("segments.npy", whole_videos(segments)))
        for name, content in files:
            with open(self.tmp / name, "wb") as out:
                np.save(out, content)
                out.flush()
                os.fsync(out.fileno())
        fsync_dir(self.tmp)
        path = self.store.folder / f"shard-{self.store._next_seq():08d}-{uuid.uuid4().hex[:8]}"
        os.rename(self.tmp, path)
        fsync_dir(self.store.folder)
        return path

    def abort(self) -> None:
        self._vec.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


_HEADER_BYTES = 128  # a .npy v1.0 header padded to this size fits any row count


def _npy_header(rows: int, dim: int) -> bytes:
    """A fixed-size ``.npy`` (format 1.0) header for a C-order (rows, dim) float16 array."""
    text = f"{{'descr': '<f2', 'fortran_order': False, 'shape': ({rows}, {dim}), }}"
    pad = _HEADER_BYTES - 10 - len(text) - 1
    return (
        b"\x93NUMPY\x01\x00"
        + (len(text) + pad + 1).to_bytes(2, "little")
        + (text + " " * pad + "\n").encode()
    )
