"""A library's identity: a random id kept in its data folder, the same for every process using it.

The CLI uses it to tell whether a running ``glimpse serve`` serves the library it was asked about
(then it asks that server instead of loading the model itself, see ``glimpse search``). Read
without opening the catalogue, so checking costs a file read.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from glimpse.core.fsutil import atomic_write

ID_FILE = "library.id"


def read_library_id(data_dir: Path) -> str | None:
    """The id recorded in ``data_dir``, or None (no library there yet, or one made before ids)."""
    try:
        text = (data_dir / ID_FILE).read_text().strip()
    except OSError:
        return None
    return text or None


def ensure_library_id(data_dir: Path) -> str:
    """The library's id, created (atomically) the first time a library is opened."""
    existing = read_library_id(data_dir)
    if existing:
        return existing
    with atomic_write(data_dir / ID_FILE, "w") as fh:
        fh.write(uuid.uuid4().hex + "\n")
    # Another process may have written its own at the same moment: the file on disk wins.
    return read_library_id(data_dir) or ""
