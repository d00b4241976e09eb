"""The SQL catalogue: SQLAlchemy 2 typed models shared by the indexer and the query service.

``units.id`` is the FAISS id: one unit per image, one per video segment. The schema changes only
through Alembic revisions in ``migrations/versions``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ColumnElement,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Text,
    TypeDecorator,
    false,
    select,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from glimpse.core.fsutil import path_from_db, path_to_db, printable
from glimpse.core.vocabulary import RunStatus, Status

# SQLite only auto-assigns ids to an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
IdType = BigInteger().with_variant(Integer(), "sqlite")


class FsPath(TypeDecorator[str]):
    """A file path column: a name that is not valid UTF-8 (bytes such as ``caf\\xe9.png``) is
    stored losslessly as ``fsbytes:`` + its percent-encoded bytes (core/fsutil.py ``path_to_db``)
    and read back as the path Python's file functions take."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else path_to_db(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else path_from_db(value)


class Message(TypeDecorator[str]):
    """A human-readable message (an error, a reason) that may quote a path: stored printable."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else printable(value).replace("\x00", "\\x00")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON}


class LibraryInfo(Base):
    """The one embedding model of this library (a single row)."""

    __tablename__ = "library"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_name: Mapped[str] = mapped_column(String(200))
    pretrained: Mapped[str | None] = mapped_column(String(1000))
    dim: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MediaRoot(Base):
    """A folder that was indexed: files are served only from inside such folders."""

    __tablename__ = "media_roots"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    path: Mapped[str] = mapped_column(FsPath(4096), unique=True)


class Asset(Base):
    __tablename__ = "assets"
    __table_args__ = (
        Index("ix_assets_status_kind", "status", "kind"),
        Index("ix_assets_category", "category"),
        Index("ix_assets_price", "price"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    path: Mapped[str] = mapped_column(FsPath(4096), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    duration: Mapped[float | None] = mapped_column(Float)
    fps: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default=Status.PENDING)
    error: Mapped[str | None] = mapped_column(Message)
    # Catalogue fields from manifests (shoppers filter and read these).
    sku: Mapped[str | None] = mapped_column(String(200))
    title: Mapped[str | None] = mapped_column(String(1000))
    description: Mapped[str | None] = mapped_column(Text)
    price: Mapped[float | None] = mapped_column(Float)
    currency: Mapped[str | None] = mapped_column(String(16))
    category: Mapped[str | None] = mapped_column(String(200))
    url: Mapped[str | None] = mapped_column(String(4096))
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    indexed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    units: Mapped[list[Unit]] = relationship(
        back_populates="asset", cascade="all, delete-orphan", passive_deletes=True
    )


class Unit(Base):
    """One embedded vector: a whole image, or a segment of a video (``t_start``..``t_end``)."""

    __tablename__ = "units"
    __table_args__ = (
        # A video's segments in time order, sought from any one of them: moments read the
        # segments around each hit (search/moments.py). Also the lookup of an asset's units.
        Index("ix_units_asset_time", "asset_id", "t_start", "id"),
        # AUTOINCREMENT: SQLite never hands out the id of a deleted unit again, so an id that a
        # client holds never silently points at another picture.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"))
    t_start: Mapped[float | None] = mapped_column(Float)
    t_end: Mapped[float | None] = mapped_column(Float)
    t_best: Mapped[float | None] = mapped_column(Float)
    thumbnail: Mapped[str | None] = mapped_column(String(1000))
    # A detected cut comes right before this segment: a moment ends there unless the query keeps
    # matching on both sides (search/moments.py).
    shot_start: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    asset: Mapped[Asset] = relationship(back_populates="units")


class IndexRun(Base):
    __tablename__ = "index_runs"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.RUNNING)
    indexed: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    removed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str | None] = mapped_column(Message)


def indexed_units(*conditions: ColumnElement[bool]) -> Select[int]:
    """``SELECT units.id`` of every unit of an indexed asset (and matching ``conditions``), by id:
    exactly what the index must hold, and what a search may return."""
    return select(Unit.id).join(Asset).where(Asset.status == Status.INDEXED, *conditions).order_by(Unit.id)


class SearchText(Base):
    """An item's searchable text (migration 0006_full_text), indexed by the database's own engine:
    SQLite FTS5 (``search_fts``, kept in step by triggers), PostgreSQL a generated tsvector + GIN.
    Written only through :mod:`glimpse.core.fulltext`; deleted with its asset."""

    __tablename__ = "search_text"

    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True)
    title: Mapped[str | None] = mapped_column(Text)
    sku: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[str | None] = mapped_column(Text)
