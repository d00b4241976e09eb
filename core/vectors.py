"""Append-only float16 vector shards: the embedding truth from which any index can be rebuilt.

A shard is a folder ``shard-<seq>-<hex>/`` holding ``ids.npy`` (int64) and ``vectors.npy``
(float16, (n, D)), written under a temporary name and renamed whole, so a reader sees all of a
shard or none of it. Both are plain ``.npy`` files: the vectors are memory-mapped and read by row,
so re-ranking, "more like this" and adding a few units never load every vector. Shards of the
older single-file form (``shard-<seq>-<hex>.npz``) are still read.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from glimpse.core.fsutil import fsync_dir, remove_stale_temp_files

_SHARD = re.compile(r"^shard-(\d{8})-[0-9a-f]{8}(\.npz)?$")
READ_CHUNK = 65_536  # rows per block when a whole shard is streamed
PREAD_MAX = 4_096  # up to this many rows of a shard are read with pread, more through a mapping


def shard_seq(path: Path) -> int:
    """The sequence number of a shard (its order of writing)."""
    return int(_SHARD.match(path.name).group(1))  # type: ignore[union-attr]


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

    def extend(self, shards: list[Path], read_ids: object) -> RowMap:
        """A new map with ``shards`` (which must start with this map's shards) mapped too."""
        if shards[: len(self.shards)] != self.shards:
            return RowMap().extend(shards, read_ids)
        new = shards[len(self.shards) :]
        out = RowMap()
        out.shards = list(shards)
        if not new:
            out.ids, out.shard, out.row = self.ids, self.shard, self.row
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

    def append(self, ids: np.ndarray, vectors: np.ndarray) -> Path | None:
        """Durably write one shard; returns its path (None when there is nothing to write)."""
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.asarray(vectors)
        if len(ids) == 0:
            return None
        if vectors.shape != (len(ids), self.dim):
            raise ValueError(f"expected vectors of shape ({len(ids)}, {self.dim}), got {vectors.shape}")
        writer = self.open_shard()
        writer.write(vectors, ids)
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
        return self._map

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
        out = np.empty((len(ids), self.dim), np.float32)
        shard_of, row_of = rmap.shard[pos], rmap.row[pos]
        for s in np.unique(shard_of):
            which = np.flatnonzero(shard_of == s)
            rows = row_of[which]
            order = np.argsort(rows)
            path = rmap.shards[int(s)]
            if len(rows) <= PREAD_MAX and path.suffix != ".npz":
                out[which[order]] = self._pread_rows(path, rows[order])
                continue
            vectors = self._vectors_of(path)
            out[which[order]] = vectors[rows[order]]
            del vectors  # unmap: pages read for a few rows do not stay in this process
        return out

    def _pread_rows(self, path: Path, rows: np.ndarray) -> np.ndarray:
        """A few rows read with pread from a kept-open descriptor: no mapping to fault in, and
        nothing added to this process's resident memory (the page cache holds the file)."""
        fd, offset = self._descriptor(path)
        size = 2 * self.dim
        # One read per run of consecutive rows (``rows`` is sorted): a video's segments are
        # neighbours in their shard, and moments read them side by side.
        cuts = np.flatnonzero(np.diff(rows) != 1) + 1
        firsts, ends = np.concatenate([[0], cuts]), np.concatenate([cuts, [len(rows)]])
        data = b"".join(
            [
                os.pread(fd, size * int(e - f), offset + int(rows[f]) * size)
                for f, e in zip(firsts, ends, strict=True)
            ]
        )
        return np.frombuffer(data, dtype="<f2").reshape(len(rows), self.dim)

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
        writer = self.open_shard()
        for block_ids, block in self.iter_rows(ids):
            writer.write(block, block_ids)
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
        self.rows = 0

    def write(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or vectors.shape[1] != self.store.dim or len(vectors) != len(ids):
            raise ValueError(f"expected vectors of shape ({len(ids)}, {self.store.dim}), got {vectors.shape}")
        self._vec.write(np.ascontiguousarray(vectors, dtype=np.float16).tobytes())
        self._ids.append(np.asarray(ids, dtype=np.int64))
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
        with open(self.tmp / "ids.npy", "wb") as out:
            np.save(out, ids)
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
