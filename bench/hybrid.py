"""Hybrid (vector + keyword, fused by RRF) against vector-only search latency, in one run.

    .venv/bin/python bench/hybrid.py                   # 1,000,000 items with titles (built once)
    .venv/bin/python bench/hybrid.py --items 100000    # smaller and faster

1. Builds (or reuses) a library of N items with ``glimpse.indexer.bulk.import_vectors``: random
   unit vectors of ViT-B-32's dimension (512; a random vector costs FAISS what a real one does)
   and catalogue text: a title ("Shiny red bicycle"), a SKU, a category and a price per item,
   indexed by the database's full-text engine as the importer writes them (SQLite FTS5 here).
2. Runs the same distinct shopper queries ("a shiny red bicycle") through
   :class:`glimpse.search.engine.SearchEngine` in this process, alternating vector-only and
   hybrid (and keyword-only) for each query so that load from other processes falls on every mode
   alike; ``k=20``, first page. The text is turned into a vector by a fixed random projection of
   its words rather than by a text tower: encoding costs both modes the same constant (~10-20 ms
   for ViT-B-32 on 2 cores), so leaving it out makes the ratio stricter, not kinder.
3. Prints p50 / p95 per mode and hybrid p50 / vector p50 (target: at most 1.3).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

DIM = 512
MODEL = "bench-random-512"
ADJECTIVES = ["small", "large", "shiny", "dusty", "wooden", "striped", "bright", "dark", "plain", "vintage"]
COLOURS = ["red", "green", "blue", "yellow", "black", "white", "orange", "purple", "grey", "brown"]
NOUNS = [
    "bicycle", "dress", "shoe", "lamp", "chair", "table", "bag", "hat", "jacket", "tent",
    "sofa", "clock", "cup", "guitar", "camera", "phone", "kite", "scarf", "boot", "mug",
]  # fmt: skip
BRANDS = ["Acme", "Borealis", "Corvid", "Dunmore", "Fenwick", "Galloway", "Hartley", "Ingram"]


def title(i: int) -> str:
    rng = np.random.default_rng(i)
    return (
        f"{BRANDS[rng.integers(len(BRANDS))]} {ADJECTIVES[rng.integers(len(ADJECTIVES))]} "
        f"{COLOURS[rng.integers(len(COLOURS))]} {NOUNS[rng.integers(len(NOUNS))]}"
    )


class WordProjection:
    """Query text -> unit vector: the sum of a fixed random vector per word (see the module)."""

    def text(self, text: str) -> np.ndarray:
        vec = np.zeros(DIM, dtype=np.float32)
        for word in text.lower().split():
            seed = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
            vec += np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
        return vec / max(float(np.linalg.norm(vec)), 1e-12)

    def image(self, image: object) -> np.ndarray:
        raise NotImplementedError("this benchmark searches by text")


def build(data_dir: Path, n: int) -> float:
    from glimpse.core.library import Library
    from glimpse.core.models import ModelRef
    from glimpse.core.settings import Settings
    from glimpse.indexer.bulk import import_vectors

    library = Library(Settings(data_dir=data_dir))
    try:
        info = library.model_info()
        if info is not None:
            have = len(library.live_unit_ids())
            if (info.model_name, have) == (MODEL, n):
                print(f"reusing {data_dir} ({n:,} items)", flush=True)
                return 0.0
            raise SystemExit(f"{data_dir} holds another library ({have:,} items); pick another --data-dir")
        print(f"importing {n:,} items with titles into {data_dir} ...", flush=True)
        vectors = np.random.default_rng(0).standard_normal((n, DIM), dtype=np.float32)
        paths = [f"/bench/item-{i:08d}.jpg" for i in range(n)]
        fields = [
            {
                "title": title(i),
                "sku": f"BX-{i:07d}",
                "category": NOUNS[i % len(NOUNS)],
                "price": float(i % 500),
            }
            for i in range(n)
        ]
        summary = import_vectors(library, ModelRef(MODEL, None), paths, vectors, fields=fields)
        print(f"imported in {summary.seconds:.0f} s", flush=True)
        return summary.seconds
    finally:
        library.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--build-only", action="store_true", help="Build the library, measure nothing.")
    args = parser.parse_args()
    data_dir = args.data_dir or Path("bench-data") / f"hybrid-{args.items}"
    built = build(data_dir, args.items)
    if args.build_only:
        return

    import torch  # noqa: F401 - the API holds it for its encoder, and rows widen through it when loaded

    from glimpse.core.library import Library
    from glimpse.core.settings import Settings
    from glimpse.search.engine import SearchEngine
    from glimpse.search.query import Mode, SearchQuery

    settings = Settings(data_dir=data_dir)
    library = Library(settings)
    engine = SearchEngine(library, settings, WordProjection())  # type: ignore[arg-type]
    combos = list(itertools.product(ADJECTIVES, COLOURS, NOUNS))
    order = np.random.default_rng(7).permutation(len(combos))[: args.queries + 5]
    queries = [f"a {a} {c} {n}" for a, c, n in (combos[i] for i in order)]
    modes = [Mode.VECTOR, Mode.HYBRID, Mode.KEYWORD]
    for q in queries[:5]:  # warm-up: caches, the background sample, SQLite pages
        for mode in modes:
            engine.search(SearchQuery(q=q, mode=mode, k=args.k))
    times: dict[Mode, list[float]] = {m: [] for m in modes}
    for i, q in enumerate(queries[5:]):
        for mode in modes[i % 3 :] + modes[: i % 3]:  # rotate the order: no mode always runs first
            started = time.perf_counter()
            page = engine.search(SearchQuery(q=q, mode=mode, k=args.k))
            times[mode].append((time.perf_counter() - started) * 1000)
            assert page.results, f"{mode} found nothing for {q!r}"
    library.close()

    def pct(values: list[float], p: float) -> float:
        return float(np.percentile(values, p))

    print(f"\n{args.items:,} items, {len(queries) - 5} distinct queries per mode, k={args.k}")
    print(
        f"machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}; load {os.getloadavg()[0]:.1f}"
    )
    print(f"library build {built:.0f} s (0 = reused)\n")
    print("| mode | p50 ms | p95 ms | mean ms |")
    print("|---|---|---|---|")
    for mode in modes:
        v = times[mode]
        print(f"| {mode.value} | {pct(v, 50):.1f} | {pct(v, 95):.1f} | {statistics.fmean(v):.1f} |")
    ratio = pct(times[Mode.HYBRID], 50) / pct(times[Mode.VECTOR], 50)
    print(f"\nhybrid p50 / vector p50 = {ratio:.2f} (target <= 1.3)")


if __name__ == "__main__":
    main()
