"""``glimpse eval``: how well each search mode finds what a labelled query set says it should.

A label file lists queries with their relevant items, named by SKU or by path (the full path, or
its end: ``shoes/red.jpg`` names ``/srv/media/shoes/red.jpg``):

* CSV with columns ``query`` and ``relevant`` (several items separated by ``|`` or ``;``);
* JSONL with ``{"query": "...", "relevant": ["GL-4471", "shoes/red.jpg"]}`` per line.

For each mode the engine answers every query (``k`` results, items counted once: a video's moments
are one item) and three standard measures are averaged over the queries (Manning, Raghavan and
Schütze, *Introduction to Information Retrieval*, ch. 8):

* ``recall@k``: the share of a query's relevant items among its first ``k`` results;
* ``ndcg@10``: discounted cumulative gain of the first 10 results (binary gains, ``1/log2(rank+1)``)
  over the ideal ordering's;
* ``mrr``: the mean of ``1 / rank`` of the first relevant result (0 when none is returned).

Queries with no relevant items count toward ``false_hits``: how many results ``relevant_only``
would still show for something the catalogue does not hold (0 is right).
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from glimpse.core.catalogue import Asset
from glimpse.core.library import Library
from glimpse.core.vocabulary import Status
from glimpse.search.engine import SearchEngine
from glimpse.search.query import K_MAX, Mode, SearchQuery

NDCG_AT = 10
_SPLIT = re.compile(r"[|;]")


class LabelError(ValueError):
    """The label file cannot be read; the message names the line."""


@dataclass(frozen=True)
class Labelled:
    query: str
    relevant: tuple[str, ...]  # SKUs or paths, as written


def read_labels(path: Path) -> list[Labelled]:
    """The labelled queries of a .csv or .jsonl file (see the module)."""
    if not path.is_file():
        raise LabelError(f"label file not found: {path}")
    found: list[Labelled] = []
    with path.open(newline="", encoding="utf-8-sig") as fh:
        if path.suffix.lower() == ".csv":
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"query", "relevant"} <= {
                f.strip().lower() for f in reader.fieldnames
            }:
                raise LabelError(f"{path}: the header needs the columns query and relevant")
            for row in reader:
                row = {k.strip().lower(): v for k, v in row.items() if k}
                found.append(
                    _labelled(
                        row.get("query"), _SPLIT.split(row.get("relevant") or ""), path, reader.line_num
                    )
                )
        elif path.suffix.lower() in (".jsonl", ".ndjson"):
            for line_no, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise LabelError(f"{path}:{line_no}: invalid JSON ({exc.msg})") from None
                relevant = row.get("relevant") if isinstance(row, dict) else None
                if isinstance(relevant, str):
                    relevant = _SPLIT.split(relevant)
                if not isinstance(relevant, list):
                    raise LabelError(f'{path}:{line_no}: expected {{"query": ..., "relevant": [...]}}')
                found.append(_labelled(row.get("query"), [str(r) for r in relevant], path, line_no))
        else:
            raise LabelError(f"{path}: label files are .csv or .jsonl")
    if not found:
        raise LabelError(f"{path}: no queries")
    return found


def _labelled(query: Any, relevant: Sequence[str], path: Path, line: int) -> Labelled:
    if not isinstance(query, str) or not query.strip():
        raise LabelError(f"{path}:{line}: the query is missing")
    return Labelled(query.strip(), tuple(r.strip() for r in relevant if r.strip()))


class ItemNames:
    """Which item ids a label names: by SKU (any case) or by the end of its path."""

    def __init__(self, library: Library) -> None:
        with library.Session() as s:
            rows = s.execute(
                select(Asset.id, Asset.path, Asset.sku).where(Asset.status == Status.INDEXED)
            ).all()
        self._sku: dict[str, set[int]] = {}
        self._paths = [(r.id, "/" + r.path.replace("\\", "/").lstrip("/")) for r in rows]
        for r in rows:
            if r.sku:
                self._sku.setdefault(r.sku.lower(), set()).add(r.id)

    def ids(self, names: Sequence[str]) -> tuple[set[int], list[str]]:
        """The item ids named, and the names that match no item."""
        found: set[int] = set()
        unknown: list[str] = []
        for name in names:
            hits = set(self._sku.get(name.lower(), set()))
            suffix = "/" + name.replace("\\", "/").lstrip("/")
            hits |= {i for i, p in self._paths if p.endswith(suffix)}
            if hits:
                found |= hits
            else:
                unknown.append(name)
        return found, unknown


def measures(ranked: Sequence[int], relevant: set[int], k: int) -> dict[str, float]:
    """recall@k, nDCG@10 and reciprocal rank of one ranked list of item ids (see the module)."""
    if not relevant:
        return {"recall": 0.0, "ndcg": 0.0, "rr": 0.0}
    recall = len(relevant & set(ranked[:k])) / len(relevant)
    dcg = sum(1.0 / math.log2(i + 2) for i, item in enumerate(ranked[:NDCG_AT]) if item in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), NDCG_AT)))
    rr = next((1.0 / (i + 1) for i, item in enumerate(ranked) if item in relevant), 0.0)
    return {"recall": recall, "ndcg": dcg / ideal, "rr": rr}


def evaluate(
    engine: SearchEngine, labels: Sequence[Labelled], modes: Sequence[Mode], k: int = 10
) -> dict[str, Any]:
    """The measures of each mode over ``labels`` (see the module), as a JSON-ready dict:
    ``{"queries": n, "k": k, "modes": {mode: {"recall@k", "ndcg@10", "mrr", "false_hits"}},
    "unknown": [labels naming no item]}``."""
    if not 1 <= k <= K_MAX:
        raise ValueError(f"k must be 1..{K_MAX}, got {k}")
    names = ItemNames(engine.library)
    resolved = [(label, *names.ids(label.relevant)) for label in labels]
    report: dict[str, Any] = {"queries": len(labels), "k": k, "modes": {}, "unknown": []}
    for _label, _ids, unknown in resolved:
        report["unknown"] += unknown
    depth = max(k, NDCG_AT)
    for mode in modes:
        totals = {"recall": 0.0, "ndcg": 0.0, "rr": 0.0}
        scored = 0
        false_hits = 0
        for label, relevant, _unknown in resolved:
            if not relevant:
                page = engine.search(SearchQuery(q=label.query, mode=mode, k=depth, relevant_only=True))
                false_hits += len(page.results)
                continue
            page = engine.search(SearchQuery(q=label.query, mode=mode, k=depth))
            ranked = list(dict.fromkeys(r.id for r in page.results))
            for name, value in measures(ranked, relevant, k).items():
                totals[name] += value
            scored += 1
        n = max(scored, 1)
        report["modes"][mode.value] = {
            f"recall@{k}": round(totals["recall"] / n, 4),
            f"ndcg@{NDCG_AT}": round(totals["ndcg"] / n, 4),
            "mrr": round(totals["rr"] / n, 4),
            "false_hits": false_hits,
        }
    return report
