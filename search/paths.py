"""How a file's path is shown to clients: relative to the media folder it was indexed from.

A shopper, or an API client on another machine, has no use for the server's absolute paths
(``/srv/shop/images/GL007.jpg``), and they tell a stranger how the server's disk is laid out.
By default a path is shown as the media folder's name plus the path inside it
(``images/GL007.jpg`` for a file under the root ``/srv/shop/images``); ``GLIMPSE_FULL_PATHS=true``
shows the full path. A path under no known folder is shown as its file name alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import PurePath

from glimpse.core.fsutil import printable


class PathDisplay:
    """Turns catalogue paths into what clients see (see the module)."""

    def __init__(self, roots: Iterable[str | os.PathLike[str]], full: bool = False) -> None:
        self.full = full
        # Longest first: a file under nested roots is shown from the innermost one.
        self.roots = sorted({str(r).rstrip(os.sep) for r in roots if str(r)}, key=len, reverse=True)

    def show(self, path: str) -> str:
        """The path as a client sees it, as text: bytes of a name that are not valid UTF-8 show
        as ``\\xe9`` (core/fsutil.py ``printable``); the item's id, not this, fetches the file."""
        return printable(self._show(path))

    def _show(self, path: str) -> str:
        if self.full:
            return path
        for root in self.roots:
            if path.startswith(root + os.sep):
                return f"{PurePath(root).name}/{path[len(root) + 1 :]}" if PurePath(root).name else path
        return PurePath(path).name
