"""Catalogue manifests (CSV or JSONL): per-item fields for shoppers, keyed by file path.

Importing updates fields only; no image is decoded or embedded again.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from glimpse.core import fulltext
from glimpse.core.catalogue import Asset
from glimpse.core.library import Library

PATH_KEYS = ("path", "image", "file", "filename")
FIELDS = ("sku", "title", "description", "currency", "category", "url")
NUMBERS = ("price",)


class ManifestError(ValueError):
    """The manifest as a whole cannot be read (per-row problems are reported, not raised)."""


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
    with open(manifest, newline="", encoding="utf-8-sig") as fh:
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
    changed: list[int] = []
    with library.Session.begin() as s:
        for line, row in read_rows(manifest):
            report.rows += 1
            problem = row.get("__error__")
            raw_path = next((row[k] for k in PATH_KEYS if row.get(k)), None)
            if problem or not raw_path:
                report.invalid.append({"line": line, "error": problem or "no path"})
                continue
            path = (manifest.parent / str(raw_path)).resolve()
            asset = s.scalar(select(Asset).where(Asset.path == str(path)))
            if asset is None:
                report.missing.append({"line": line, "path": str(path)})
                continue
            try:
                _apply(asset, row)
            except ValueError as exc:
                report.invalid.append({"line": line, "error": str(exc)})
                continue
            report.updated += 1
            changed.append(asset.id)
        s.flush()
        fulltext.sync(s, changed)  # the keyword index changes in the same transaction
    return report


def _apply(asset: Asset, row: dict[str, Any]) -> None:
    for name in NUMBERS:
        value = row.get(name)
        if value in (None, ""):
            continue
        try:
            asset.price = float(str(value).strip().lstrip("$€£"))
        except ValueError:
            raise ValueError(f"{name} is not a number: {value!r}") from None
    for name in FIELDS:
        value = row.get(name)
        if value not in (None, ""):
            setattr(asset, name, str(value))
    known = {*PATH_KEYS, *FIELDS, *NUMBERS}
    extra = {k: v for k, v in row.items() if k not in known and v not in (None, "")}
    asset.extra = extra or None
