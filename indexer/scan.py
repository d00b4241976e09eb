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


def walk(
    roots: Iterable[Path],
    skip: Path | None = None,
    allowed: Iterable[Path] | None = None,
    skipped: list[tuple[str, str]] | None = None,
) -> Iterator[FileEntry]:
    """Every supported media file below ``roots`` (a root may also be a single file).

    Symbolic links, to files and to folders, are followed when their target lies inside
    ``allowed`` (the library's media folders; default: ``roots``) - the folders the API serves
    from, so whatever is indexed can be served - and skipped otherwise, with the reason appended
    to ``skipped`` as (path, reason): a link leading outside, a broken link, a folder link that
    loops back to a folder already walked. A file reachable by several paths is indexed once,
    by its link-free path when it has one.
    """
    roots = list(roots)
    inside = [Path(os.path.realpath(r)) for r in (allowed if allowed is not None else roots)]
    report = skipped if skipped is not None else []
    found: list[tuple[Path, str, bool]] = []  # (path, real path, reached through a link)
    for root in roots:
        if root.is_file():
            found.append((root, os.path.realpath(root), False))
        else:
            found.extend(_walk_dir(root, skip, inside, report))
    # One path per real file: link-free paths first, then links, in walk order.
    chosen: dict[str, Path] = {}
    for path, real, linked in sorted(found, key=lambda f: f[2]):
        if real in chosen:
            if linked:
                report.append((str(path), f"the same file as {chosen[real]}, indexed under that path"))
            continue
        chosen[real] = path
    keep = set(chosen.values())
    for path, _real, _linked in found:
        if path not in keep:
            continue
        keep.discard(path)
        kind = media_kind(path)
        if kind is None:
            continue
        try:
            st = path.stat()
        except OSError:
            continue  # vanished between listing and stat
        yield FileEntry(path, kind, st.st_size, st.st_mtime_ns)


def _inside(real: str, roots: list[Path]) -> bool:
    return any(Path(real).is_relative_to(r) for r in roots)


def _walk_dir(
    root: Path, skip: Path | None, inside: list[Path], skipped: list[tuple[str, str]]
) -> Iterator[tuple[Path, str, bool]]:
    """(path, real path, reached through a link) of every visible file below ``root``."""
    walked = {os.path.realpath(root)}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real_dir = os.path.realpath(dirpath)
        through_link = real_dir != os.path.normpath(dirpath)
        keep = []
        for d in sorted(dirnames):
            full = Path(dirpath, d)
            if d.startswith(".") or full == skip:
                continue
            if full.is_symlink():
                target = os.path.realpath(full)
                if not _inside(target, inside):
                    skipped.append((str(full), f"a link to {target}, outside the media folders"))
                    continue
                if target in walked or Path(real_dir).is_relative_to(target):
                    skipped.append((str(full), f"a link to {target}, a folder already walked (a loop)"))
                    continue
                walked.add(target)
            else:
                walked.add(os.path.realpath(full))
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            full = Path(dirpath, name)
            if not full.is_symlink():
                yield full, os.path.join(real_dir, name), through_link
                continue
            target = os.path.realpath(full)
            if not os.path.exists(target):
                if media_kind(full) is not None:
                    skipped.append((str(full), "a broken link"))
            elif not _inside(target, inside):
                if media_kind(full) is not None:
                    skipped.append((str(full), f"a link to {target}, outside the media folders"))
            else:
                yield full, target, True


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
