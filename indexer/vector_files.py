"""Embeddings on disk in clip-retrieval's layout, read and written in streaming chunks.

The layout (``clip-retrieval inference`` writes it; autofaiss and clip-retrieval's back end read it)::

    folder/img_emb/img_emb_0.npy          (n0, D) float16 or float32 rows
    folder/metadata/metadata_0.parquet    n0 rows: image_path, caption, any other columns
    folder/img_emb/img_emb_1.npy ...      (part numbers pair the two)

The metadata of a part may also be ``metadata_<i>.csv`` or ``metadata_<i>.jsonl``. The path column
is ``image_path`` (clip-retrieval's name), ``path`` or ``url``; ``caption`` becomes the item's
title when there is no ``title``; every other column goes to the catalogue's fields or ``extra``.
``glimpse export-vectors`` adds ``glimpse.json`` (model, pretrained tag, dimension), which an
import checks against the library before reading a row.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from glimpse.core.catalogue import Asset, Unit
from glimpse.core.fsutil import fsync_dir
from glimpse.core.library import Library
from glimpse.core.models import ModelRef
from glimpse.core.vocabulary import Status
from glimpse.indexer.bulk import Batch, BulkImportError

_PART = re.compile(r"^img_emb_(\d+)\.npy$")
PATH_COLUMNS = ("image_path", "path", "url")
MANIFEST = "glimpse.json"


def parts(folder: Path) -> list[tuple[Path, Path]]:
    """(embeddings, metadata) file pairs of a clip-retrieval folder, in part order.

    Raises BulkImportError when the folder is not in that layout or a part lacks its metadata.
    """
    emb_dir, meta_dir = folder / "img_emb", folder / "metadata"
    if not emb_dir.is_dir():
        raise BulkImportError(f"{folder} has no img_emb/ folder (expected clip-retrieval's layout)")
    found = sorted(
        ((int(m.group(1)), p) for p in emb_dir.iterdir() if (m := _PART.match(p.name))), key=lambda t: t[0]
    )
    if not found:
        raise BulkImportError(f"{emb_dir} holds no img_emb_<n>.npy files")
    pairs = []
    for number, emb in found:
        meta = next(
            (
                meta_dir / f"metadata_{number}.{ext}"
                for ext in ("parquet", "csv", "jsonl")
                if (meta_dir / f"metadata_{number}.{ext}").exists()
            ),
            None,
        )
        if meta is None:
            raise BulkImportError(f"{emb.name} has no metadata/metadata_{number}.parquet (or .csv, .jsonl)")
        pairs.append((emb, meta))
    return pairs


def folder_model(folder: Path) -> tuple[ModelRef | None, int | None]:
    """The model and dimension an export recorded (None, None for a plain clip-retrieval folder)."""
    path = folder / MANIFEST
    if not path.exists():
        return None, None
    data = json.loads(path.read_text())
    return ModelRef(data["model"], data.get("pretrained")), int(data["dim"])


def folder_dim(folder: Path) -> int:
    """The dimension of the folder's vectors (from the first part's header; nothing else read)."""
    first = parts(folder)[0][0]
    shape = np.load(first, mmap_mode="r").shape
    if len(shape) != 2:
        raise BulkImportError(f"{first.name} holds an array of shape {shape}, not (rows, dim)")
    return int(shape[1])


def read_batches(folder: Path, chunk: int = 50_000) -> Iterator[Batch]:
    """The folder's rows as :class:`Batch` es of at most ``chunk`` rows (one in memory at a time)."""
    for emb_path, meta_path in parts(folder):
        vectors = np.load(emb_path, mmap_mode="r")
        rows = _metadata_rows(meta_path, chunk)
        done = 0
        for records in rows:
            block = np.asarray(vectors[done : done + len(records)], dtype=np.float32)
            if len(block) != len(records):
                raise BulkImportError(f"{meta_path.name} has more rows than {emb_path.name} ({len(vectors)})")
            done += len(records)
            paths, fields = [], []
            for i, record in enumerate(records):
                path = next((record.pop(c) for c in PATH_COLUMNS if record.get(c) not in (None, "")), None)
                if path is None:
                    raise BulkImportError(
                        f"{meta_path.name}, row {done - len(records) + i + 1}: no {' / '.join(PATH_COLUMNS)} value"
                    )
                for column in ("unit_id", "item_id", "kind", "t_start", "t_end"):  # an export's own
                    record.pop(column, None)
                extra = record.pop("metadata", None)
                if isinstance(extra, str) and extra.startswith("{"):
                    record = {**json.loads(extra), **record}
                if "caption" in record and not record.get("title"):
                    record["title"] = record["caption"]
                paths.append(str(path))
                fields.append({k: v for k, v in record.items() if v is not None and k not in PATH_COLUMNS})
            yield Batch(paths, block, fields)
        if done != len(vectors):
            raise BulkImportError(f"{meta_path.name} has {done} rows, {emb_path.name} has {len(vectors)}")


def _metadata_rows(path: Path, chunk: int) -> Iterator[list[dict[str, Any]]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk):
            yield batch.to_pylist()
        return
    with open(path, newline="", encoding="utf-8") as fh:
        source: Iterator[dict[str, Any]]
        if path.suffix == ".csv":
            source = (dict(r) for r in csv.DictReader(fh))
        else:
            source = (json.loads(line) for line in fh if line.strip())
        block: list[dict[str, Any]] = []
        for record in source:
            block.append(record)
            if len(block) == chunk:
                yield block
                block = []
        if block:
            yield block


_EXPORT_COLUMNS = ("sku", "title", "description", "price", "currency", "category", "url")


def export_vectors(library: Library, out: Path, part_rows: int = 1_000_000) -> int:
    """Write the library's served units in clip-retrieval's layout; returns the rows written.

    One row per unit: an image's vector, or each segment of a video (``t_start`` / ``t_end``
    columns). Crash-safe: everything is written into a hidden folder beside ``out`` and renamed
    into place at the end, so ``out`` holds a whole export or nothing. Refuses an existing ``out``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    info = library.model_info()
    if info is None:
        raise BulkImportError("the library is empty: nothing to export")
    if out.exists():
        raise BulkImportError(f"{out} already exists: export into a new folder")
    tmp = out.parent / f".{out.name}.export.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "img_emb").mkdir(parents=True)
    (tmp / "metadata").mkdir()
    store = library.vector_store(clean=False)
    ids = np.intersect1d(library.live_unit_ids(), store.stored_ids())
    written = 0
    try:
        for part, start in enumerate(range(0, len(ids), part_rows)):
            part_ids = ids[start : start + part_rows]
            with open(tmp / "img_emb" / f"img_emb_{part}.npy.part", "wb") as fh:
                header = {"descr": "<f2", "fortran_order": False, "shape": (len(part_ids), info.dim)}
                np.lib.format.write_array_header_1_0(fh, header)
                columns: dict[str, list[Any]] = {
                    c: []
                    for c in (
                        "image_path",
                        "unit_id",
                        "item_id",
                        "kind",
                        "t_start",
                        "t_end",
                        *_EXPORT_COLUMNS,
                        "metadata",
                    )
                }
                for block_ids, block in store.iter_rows(part_ids):
                    fh.write(block.astype(np.float16).tobytes())
                    _append_metadata(library, block_ids, columns)
                fh.flush()
                os.fsync(fh.fileno())
            os.rename(tmp / "img_emb" / f"img_emb_{part}.npy.part", tmp / "img_emb" / f"img_emb_{part}.npy")
            pq.write_table(pa.table(columns), tmp / "metadata" / f"metadata_{part}.parquet")
            written += len(part_ids)
        (tmp / MANIFEST).write_text(
            json.dumps(
                {"model": info.model_name, "pretrained": info.pretrained, "dim": info.dim, "rows": written}
            )
        )
        for sub in (tmp / "img_emb", tmp / "metadata", tmp):
            fsync_dir(sub)
        os.rename(tmp, out)
        fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return written


def _append_metadata(library: Library, unit_ids: np.ndarray, columns: dict[str, list[Any]]) -> None:
    """The catalogue fields of ``unit_ids`` (in that order), appended to ``columns``."""
    rows: dict[int, tuple[Unit, Asset]] = {}
    with library.Session() as s:
        for start in range(0, len(unit_ids), 500):
            chunk = [int(i) for i in unit_ids[start : start + 500]]
            stmt = select(Unit, Asset).join(Asset).where(Unit.id.in_(chunk), Asset.status == Status.INDEXED)
            rows.update((u.id, (u, a)) for u, a in s.execute(stmt).tuples())
    for unit_id in unit_ids:
        unit, asset = rows[int(unit_id)]
        columns["image_path"].append(asset.path)
        columns["unit_id"].append(unit.id)
        columns["item_id"].append(asset.id)
        columns["kind"].append(asset.kind)
        columns["t_start"].append(unit.t_start)
        columns["t_end"].append(unit.t_end)
        for c in _EXPORT_COLUMNS:
            columns[c].append(getattr(asset, c))
        columns["metadata"].append(json.dumps(asset.extra) if asset.extra else None)


def model_dim(name: str) -> int | None:
    """The embedding dimension of an open_clip architecture (or bundled model), from its config
    alone (no weights loaded); None when open_clip does not know the name."""
    import open_clip

    from glimpse.core.models import register_configs, resolve

    register_configs()
    config = open_clip.get_model_config(resolve(name, None)[0])
    return int(config["embed_dim"]) if config and "embed_dim" in config else None
