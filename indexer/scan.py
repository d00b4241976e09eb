"""Find media under the given roots and decide what is new, changed, unchanged or removed."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from glimpse.core.catalogue import Asset
from glimpse.core.media import hash_bytes, media_kind
from glimpse.core.vocabulary import Kind, Status

# Hashing a multi-gigabyte video in full on every change check is too slow; its size plus the
# first and last megabytes identify it well enough to skip re-embedding a touched-but-same file.
_VIDEO_HASH_SPAN = 1 << 20


@dataclass(frozen=True)
class FileEntry:
    path: Path
    kind: str
    size: int
    mtime_ns: int


@dataclass
class ScanPlan:
    todo: list[FileEntry] = field(default_factory=list)
    unchanged: int = 0
    removed_ids: list[int] = field(default_factory=list)
    touched: dict[str, int] = field(default_factory=dict)  # path -> new mtime_ns, same content


def walk(roots: Iterable[Path], skip: Path | None = None) -> Iterator[FileEntry]:
    """Every supported media file below ``roots`` (a root may also be a single file)."""
    seen: set[Path] = set()
    for root in roots:
        candidates = [root] if root.is_file() else _walk_dir(root, skip)
        for path in candidates:
            kind = media_kind(path)
            if kind is None or path in seen:
                continue
            seen.add(path)
            try:
                st = path.stat()
            except OSError:
                continue  # vanished between listing and stat
            yield FileEntry(path, kind, st.st_size, st.st_mtime_ns)


def _walk_dir(root: Path, skip: Path | None) -> Iterator[Path]:
    # Symlinked folders are not followed: they can loop, or lead outside the media roots.
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and Path(dirpath, d) != skip)
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath, name)


def content_hash(path: Path, kind: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        if kind == Kind.VIDEO:
            size = os.fstat(fh.fileno()).st_size
            h.update(str(size).encode())
            h.update(fh.read(_VIDEO_HASH_SPAN))
            if size > 2 * _VIDEO_HASH_SPAN:
                fh.seek(-_VIDEO_HASH_SPAN, os.SEEK_END)
                h.update(fh.read(_VIDEO_HASH_SPAN))
        else:
            return hash_bytes(fh.read())
    return h.hexdigest()


def under(path: str, roots: Iterable[Path]) -> bool:
    return any(path == str(r) or path.startswith(str(r).rstrip(os.sep) + os.sep) for r in roots)


def plan_scan(session: Session, roots: list[Path], entries: Iterable[FileEntry]) -> ScanPlan:
    """Compare the files on disk with the catalogue.

    Unchanged means same size and mtime, or same content hash after a touch. A file that failed
    stays failed until it changes: a broken file is not retried on every run.
    """
    known = {
        row.path: row
        for row in session.execute(
            select(Asset.id, Asset.path, Asset.size, Asset.mtime_ns, Asset.content_hash, Asset.status)
        )
        if under(row.path, roots)
    }
    plan = ScanPlan()
    for entry in entries:
        row = known.pop(str(entry.path), None)
        if row is None:
            plan.todo.append(entry)
        elif row.status in (Status.INDEXED, Status.FAILED) and (row.size, row.mtime_ns) == (
            entry.size,
            entry.mtime_ns,
        ):
            plan.unchanged += 1
        elif (
            row.status in (Status.INDEXED, Status.FAILED)
            and row.size == entry.size
            and row.content_hash == _safe_hash(entry)
        ):
            plan.unchanged += 1
            plan.touched[str(entry.path)] = entry.mtime_ns
        else:
            plan.todo.append(entry)
    plan.removed_ids = [row.id for row in known.values()]
    return plan


def _safe_hash(entry: FileEntry) -> str | None:
    try:
        return content_hash(entry.path, entry.kind)
    except OSError:
        return None
