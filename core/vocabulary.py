"""The catalogue's vocabulary, defined once: what an item is and where it stands.

Plain ``StrEnum``s (no SQLAlchemy, no torch), so decode workers can import them for free. Members
are strings: they are stored in and compared with the catalogue's text columns as they are.
"""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    """What an item (asset) is. A video's units are its segments; an image is one unit."""

    IMAGE = "image"
    VIDEO = "video"


class Status(StrEnum):
    """Where an item stands: only ``INDEXED`` items are searchable; ``FAILED`` ones say why."""

    PENDING = "pending"
    INDEXED = "indexed"
    FAILED = "failed"


class RunStatus(StrEnum):
    """How an indexing run ended (``RUNNING`` while it runs, or when it was killed)."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
