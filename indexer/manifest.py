"""Catalogue manifests (CSV or JSONL): per-item fields for shoppers, keyed by file path.

Importing updates fields only; no image is decoded or embedded again.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import String, select
from sqlalchemy.exc import SQLAlchemyError

from glimpse.core.catalogue import Asset
from glimpse.core.fsutil import is_text
from glimpse.core.library import Library

PATH_KEYS = ("path", "image", "file", "filename")
FIELDS = ("sku", "title", "description", "currency", "category", "url")
NUMBERS = ("price",)


class ManifestError(ValueError):
    """The manifest as a whole cannot be read (per-row problems are reported, not raised)."""


class BadValue(ValueError):
    """One field of one row cannot be stored: the row is reported, the others are applied."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass
class ManifestReport:
    rows: int = 0
    updated: int = 0
    missing: list[dict[str, Any]] = field(default_factory=list)  # rows whose file is not indexed
    invalid: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "updated": self.updated, "missing": self.missing, "invalid": self.invalid}


def read_rows(manifest: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) for each record of a .csv or .jsonl manifest."""
    if not manifest.is_file():
        raise ManifestError(f"manifest not found: {manifest}")
    suffix = manifest.suffix.lower()
    # Bytes that are not UTF-8 are kept (as lone surrogates) for check_row to report their row.
    with open(manifest, newline="", encoding="utf-8-sig", errors="surrogateescape") as fh:
        if suffix == ".csv":
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not set(PATH_KEYS) & {f.strip().lower() for f in reader.fieldnames}:
                raise ManifestError(
                    f"{manifest}: the header needs a column named one of {', '.join(PATH_KEYS)}"
                )
            for row in reader:
                yield reader.line_num, {k.strip().lower(): v for k, v in row.items() if k}
        elif suffix in (".jsonl", ".ndjson"):
            for line_no, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield line_no, {"__error__": f"invalid JSON: {exc.msg}"}
                    continue
                yield line_no, row if isinstance(row, dict) else {"__error__": "not a JSON object"}
        else:
            raise ManifestError(f"{manifest}: manifests are .csv or .jsonl files")


def import_manifest(library: Library, manifest: Path) -> ManifestReport:
    """Attach each row's fields to the indexed file it names (paths relative to the manifest)."""
    manifest = manifest.resolve()
    report = ManifestReport()
    with library.Session.begin() as s:
        for line, row in read_rows(manifest):
            report.rows += 1
            problem = row.get("__error__")
            key = next((k for k in PATH_KEYS if row.get(k)), None)
            if problem or key is None:
                report.invalid.append({"line": line, "field": None, "error": problem or "no path"})
                continue
            try:
                check_row(row)
                path = (manifest.parent / str(row[key])).resolve()
            except BadValue as exc:
                report.invalid.append({"line": line, "field": exc.field, "error": exc.reason})
                continue
            asset = s.scalar(select(Asset).where(Asset.path == str(path)))
            if asset is None:
                report.missing.append({"line": line, "path": str(path)})
                continue
            try:
                # A savepoint per row: whatever a database still refuses costs that row only.
                with s.begin_nested():
                    _apply(asset, row)
                    s.flush()
            except BadValue as exc:
                report.invalid.append({"line": line, "field": exc.field, "error": exc.reason})
                continue
            except SQLAlchemyError as exc:
                s.expire(asset)
                reason = str(getattr(exc, "orig", exc)).splitlines()[0]
                report.invalid.append(
                    {"line": line, "field": None, "error": f"the database refused it: {reason}"}
                )
                continue
            report.updated += 1
    return report


def check_row(row: dict[str, Any]) -> None:
    """Raise BadValue for the first field no database could store as given: text with a NUL or
    with bytes that are not UTF-8, a number that is not finite, text longer than its column.
    SQLite would take some of these and PostgreSQL refuse them; both refuse them here, alike."""
    for name, value in row.items():
        _check_value(str(name), value)
        limit = _LIMITS.get(str(name))
        if limit is not None and value is not None and len(str(value)) > limit:
            raise BadValue(str(name), f"longer than {limit} characters")


def _check_value(name: str, value: Any) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise BadValue(name, "contains a NUL character (\\u0000)")
        if not is_text(value):
            raise BadValue(name, "is not valid Unicode text")
    elif isinstance(value, float) and not math.isfinite(value):
        raise BadValue(name, f"is not a finite number ({value})")
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_value(f"{name}.{k}", k)
            _check_value(f"{name}.{k}", v)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_value(f"{name}[{i}]", v)


# Column lengths of the text fields a manifest fills (PostgreSQL enforces them, SQLite does not).
_LIMITS = {
    name: int(length)
    for name in FIELDS
    if isinstance(col_type := Asset.__table__.c[name].type, String) and (length := col_type.length)
}


def _apply(asset: Asset, row: dict[str, Any]) -> None:
    for name in NUMBERS:
        value = row.get(name)
        if value in (None, ""):
            continue
        try:
            price = float(str(value).strip().lstrip("$€£"))
        except ValueError:
            raise BadValue(name, f"not a number: {value!r}") from None
        if not math.isfinite(price):
            raise BadValue(name, f"not a finite number: {value!r}")
        asset.price = price
    for name in FIELDS:
        value = row.get(name)
        if value not in (None, ""):
            setattr(asset, name, str(value))
    known = {*PATH_KEYS, *FIELDS, *NUMBERS}
    extra = {k: v for k, v in row.items() if k not in known and v not in (None, "")}
    asset.extra = extra or None
