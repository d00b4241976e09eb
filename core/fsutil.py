"""Crash-safe file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_write(path: Path, mode: str = "wb", sync_dir: bool = True) -> Iterator[IO[Any]]:
    """Write to a temporary file beside ``path``, fsync it, then rename it over ``path``.

    ``sync_dir=False`` leaves the directory's fsync (which makes the rename durable) to the
    caller, who writes many files into a few folders and syncs each folder once.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if sync_dir:
        fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename durable: fsync the directory entry too (a no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temp_files(folder: Path) -> None:
    """Temp files left by a crash mid-write are garbage: the rename never happened."""
    if folder.is_dir():
        for tmp in folder.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)


# File names are bytes on POSIX; Python holds one that is not valid UTF-8 as a str with lone
# surrogates (os.fsdecode's surrogateescape), which no database, JSON document or terminal
# accepts. The catalogue stores such a path as FS_BYTES_PREFIX + its bytes percent-encoded
# (urllib.parse.quote, "/" kept): "/photos/caf\udce9.png" is stored as
# "fsbytes:/photos/caf%E9.png". A stored path otherwise always starts with "/" (it is absolute),
# so the prefix cannot be confused with a real path, and the mapping is lossless both ways.
FS_BYTES_PREFIX = "fsbytes:"


def is_text(value: str) -> bool:
    """Whether ``value`` is valid Unicode text (no lone surrogates from undecodable bytes)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def path_to_db(path: str) -> str:
    """The catalogue's spelling of a file path (see FS_BYTES_PREFIX): itself when it is text."""
    if is_text(path):
        return path
    from urllib.parse import quote

    return FS_BYTES_PREFIX + quote(os.fsencode(path), safe="/")


def path_from_db(value: str) -> str:
    """The inverse of :func:`path_to_db`: the path as Python's file functions take it."""
    if not value.startswith(FS_BYTES_PREFIX):
        return value
    from urllib.parse import unquote_to_bytes

    return os.fsdecode(unquote_to_bytes(value[len(FS_BYTES_PREFIX) :]))


def printable(text: str) -> str:
    """``text`` safe to print, log or put in JSON: undecodable bytes shown as ``\\xe9`` (as ``ls -b``
    does); text that is valid Unicode is returned unchanged."""
    if is_text(text):
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class DiskFull(RuntimeError):
    """A write failed because a disk (or quota, or the database's own limit) is full.

    The message is one line: what failed, where, and how much space is left there."""


_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def disk_full(exc: BaseException, where: Path, database: str | None = None) -> DiskFull | None:
    """A :class:`DiskFull` describing ``exc`` when it (or what caused it) is a full disk: an OSError
    ENOSPC/EDQUOT, SQLite's SQLITE_FULL, or PostgreSQL's disk_full (SQLSTATE 53100); else None.
    ``where`` is the library folder, named when the error does not say which file it was
    writing; ``database`` is the SQLite file, if the catalogue is one."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, DiskFull):
            return e
        if isinstance(e, OSError) and e.errno in _FULL_ERRNOS:
            target = Path(os.fsdecode(e.filename)) if e.filename else where
            return DiskFull(_full_message(f"writing in {printable(str(target))}", target))
        if "database or disk is full" in str(e) or "SQLITE_FULL" in str(e):
            target = Path(database) if database else where
            return DiskFull(_full_message(f"writing the catalogue {printable(str(target))}", target))
        if getattr(e, "sqlstate", None) == "53100":
            return DiskFull(f"disk full on the PostgreSQL server: it could not write the catalogue; {_AFTER}")
        todo += [e.__cause__, e.__context__, getattr(e, "orig", None)]
    return None


_AFTER = "the run is marked failed, everything committed before is kept; free some space and run it again"


def _full_message(what: str, target: Path) -> str:
    probe = target
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = f"{_size(shutil.disk_usage(probe).free)} free there"
    except OSError:
        free = "free space unknown"
    return f"disk full while {what} ({free}); {_AFTER}"


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
