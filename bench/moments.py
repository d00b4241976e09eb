"""What fitting moments to the query costs: search p50 with query-fitted moments ÷ without.

Builds a video archive of ``--hours`` hours sampled at 1 segment per second (``--video-minutes``
per video) straight into a library: bulk SQL rows and vector shards, no decoding. Each video is a
chain of scenes (5-90 s), each scene its own take on one of ``--topics`` topic vectors (cosine
~0.8), its seconds alike but not equal (cosine ~0.94 to the scene), with a detected cut between
scenes, so a query for a topic matches whole scenes of many videos. Queries are topic vectors
shifted by noise (text does not lie where images lie).

Both arms run the same engine over the same index, alternating query by query, in two passes
over the queries (first: each page's segments and vectors read for the first time; again: the
same queries, their pages in the OS's cache):
- **fitted**: today's search: every video among the top hits has *all* of its segments scored
  against the query and its moments fitted (search/moments.py);
- **baseline**: the same search where each video hit is returned as its own segment, at most
  ``moments_per_video`` a video (the page rule of any video search): what a search costs
  without fitting, no segment reads, no scoring; it reads as many hits as its page needs
  results (a hit a result, within that cap), where the fitted arm reads hits until they reach as
  many scenes' shots. Both arms take more hits while their page is not full (from the spare
  candidates of their first search, then from further searches).

Target (issue 16): fitted p50 ≤ 1.2 × baseline p50 on 1,000 hours. Run:

    .venv/bin/python bench/moments.py --hours 1000
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from glimpse.core.runtime import let_idle_threads_sleep

let_idle_threads_sleep()  # before numpy, torch and FAISS load, as `glimpse serve` does
import numpy as np  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hours", type=float, default=1000.0)
    parser.add_argument("--video-minutes", type=float, default=60.0)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--topics", type=int, default=400)
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="keep the library here, reused by a later run (default: temp)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="glimpse-moments-") as tmp:
        data_dir = args.data_dir or Path(tmp) / "data"
        run(args, data_dir)


def run(args: argparse.Namespace, data_dir: Path) -> None:
    import torch  # noqa: F401 - the API holds it for its encoder, and rows widen through it when loaded

    from glimpse.core.library import Library
    from glimpse.core.runtime import keep_blas_in_calling_thread
    from glimpse.core.settings import Settings
    from glimpse.search.engine import SearchEngine
    from glimpse.search.query import SearchQuery

    keep_blas_in_calling_thread()  # numpy and FAISS loaded (above): as `glimpse serve` runs products

    # Topics, archive and queries each from their own stream: a kept archive (--data-dir) is
    # queried with the same queries as when it was built.
    topics = _unit(
        np.random.default_rng(args.seed).standard_normal((args.topics, args.dim)).astype(np.float32)
    )
    if data_dir.is_dir() and any(data_dir.iterdir()) and not (data_dir / ARCHIVE_MARK).exists():
        raise SystemExit(f"{data_dir} holds something this script did not finish building: remove it first")
    settings = Settings(data_dir=data_dir, device="cpu")
    library = Library(settings)
    try:
        segments = kept_archive(library, args, data_dir)
        if segments is None:
            segments = build_archive(library, args, topics, np.random.default_rng(args.seed + 1))
            (data_dir / ARCHIVE_MARK).write_text(json.dumps(_archive_key(args)))
        rng = np.random.default_rng(args.seed + 2)
        queries = _unit(
            topics[rng.integers(0, args.topics, args.queries + 1)] + 0.9 * _noise(rng, args, args.queries + 1)
        )
        embedder: Any = _VectorQueries(queries)  # the engine only calls .text()
        fitted = SearchEngine(library, settings, embedder)
        baseline = _WithoutFitting(library, settings, embedder)
        warm_up = SearchQuery(q=str(args.queries), k=args.k)  # index loaded, SQL pages cached
        fitted.search(warm_up)
        baseline.search(warm_up)
        # Pass 1 meets each page for the first time (its segments and vectors read from disk, or
        # the OS's cache); pass 2 repeats the queries, as popular queries are.
        times: dict[str, list[float]] = {}
        videos_per_page: list[int] = []
        for phase in ("first", "again"):
            times[f"baseline/{phase}"], times[f"fitted/{phase}"] = [], []
            for i in range(args.queries):
                q = SearchQuery(q=str(i), k=args.k)
                arms = [("fitted", fitted), ("baseline", baseline)]
                for name, engine in arms if i % 2 == 0 else arms[::-1]:
                    started = time.perf_counter()
                    page = engine.search(q)
                    times[f"{name}/{phase}"].append((time.perf_counter() - started) * 1000)
                    if name == "fitted" and phase == "first":
                        videos_per_page.append(len({r.id for r in page.results}))
        videos = segments // int(args.video_minutes * 60)
        print(f"archive: {args.hours:g} h in {videos:,} videos, {segments:,} segments of {args.dim}-d")
        print(
            f"queries: {args.queries}, k={args.k}, videos per page (median): {statistics.median(videos_per_page):g}"
        )
        for name, t in times.items():
            print(
                f"{name:>15}: p50 {statistics.median(t):7.1f} ms   p99 {float(np.percentile(t, 99)):7.1f} ms"
            )
        for phase in ("first", "again"):
            ratio = statistics.median(times[f"fitted/{phase}"]) / statistics.median(
                times[f"baseline/{phase}"]
            )
            print(f"fitted ÷ baseline p50, {phase} pass: {ratio:.2f}  (target ≤ 1.20)")
    finally:
        library.close()


ARCHIVE_MARK = "bench-moments.json"


def _archive_key(args: argparse.Namespace) -> dict[str, Any]:
    key = {k: getattr(args, k) for k in ("hours", "video_minutes", "dim", "topics", "seed")}
    return {**key, "scenes": 2}  # how scenes are drawn: bump when build_archive changes


def kept_archive(library: Any, args: argparse.Namespace, data_dir: Path) -> int | None:
    """The segment count of an archive this script built in ``data_dir`` with the same settings,
    or None (then it is built)."""
    from sqlalchemy import func, select

    from glimpse.core.catalogue import Unit

    mark = data_dir / ARCHIVE_MARK
    if not mark.exists() or json.loads(mark.read_text()) != _archive_key(args):
        return None
    with library.Session() as s:
        count = int(s.scalar(select(func.count()).select_from(Unit)) or 0)
    print(f"reusing the archive in {data_dir} ({count:,} segments)")
    return count


def build_archive(
    library: Any, args: argparse.Namespace, topics: np.ndarray, rng: np.random.Generator
) -> int:
    """Write the archive's videos, segments and vectors in chunks; returns the segment count."""
    from sqlalchemy import insert

    from glimpse.core.catalogue import Asset, Unit, utcnow
    from glimpse.core.models import ModelRef
    from glimpse.core.vectors import segment_rows
    from glimpse.core.vocabulary import Kind, Status

    per_video = int(args.video_minutes * 60)
    videos = max(1, int(args.hours * 60 / args.video_minutes))
    started = time.monotonic()
    total = 0
    with library.writer_lock():
        library.bind_model(ModelRef("bench-moments", None), args.dim)
        store = library.vector_store()
        for first in range(0, videos, 50):
            batch = range(first, min(videos, first + 50))
            now = utcnow()
            with library.Session.begin() as s:
                rows = [
                    {
                        "path": f"/archive/video-{v:06d}.mp4",
                        "kind": Kind.VIDEO,
                        "size": 1,
                        "mtime_ns": 1,
                        "status": Status.INDEXED,
                        "indexed_at": now,
                        "updated_at": now,
                        "duration": float(per_video),
                    }
                    for v in batch
                ]
                asset_ids = (
                    s.execute(insert(Asset).returning(Asset.id, sort_by_parameter_order=True), rows)
                    .scalars()
                    .all()
                )
                unit_rows, vectors = [], []
                for asset_id in asset_ids:
                    t = 0
                    while t < per_video:
                        length = min(int(rng.integers(5, 91)), per_video - t)
                        topic = topics[rng.integers(0, len(topics))]
                        # A scene: its own take on the topic (cosine ~0.8 to it), each second a
                        # little different from the next (~0.94 to the scene), as frames are.
                        centre = _unit(topic + 0.75 * _noise(rng, args, 1)[0] / 8)
                        scene = _unit(centre + 0.35 * _noise(rng, args, length) / 8)
                        vectors.append(scene)
                        unit_rows.extend(
                            {
                                "asset_id": asset_id,
                                "t_start": float(t + j),
                                "t_end": float(t + j + 1),
                                "t_best": t + j + 0.5,
                                "shot_start": j == 0 and t > 0,
                            }
                            for j in range(length)
                        )
                        t += length
                unit_ids = np.asarray(
                    s.execute(insert(Unit).returning(Unit.id, sort_by_parameter_order=True), unit_rows)
                    .scalars()
                    .all(),
                    dtype=np.int64,
                )
                store.append(
                    unit_ids,
                    np.concatenate(vectors),
                    segment_rows(unit_ids, unit_rows),
                )
                total += len(unit_ids)
            print(
                f"  built {min(videos, first + 50):,}/{videos:,} videos ({total:,} segments, "
                f"{time.monotonic() - started:.0f} s)",
                flush=True,
            )
        library.rebuild_index()
    return total


class _VectorQueries:
    """Stands in for the text encoder: query "i" is the i-th precomputed query vector."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors

    def text(self, text: str) -> np.ndarray:
        return self.vectors[int(text)]


def _without_fitting_class() -> type:
    from collections import Counter

    from glimpse.core.vocabulary import Kind
    from glimpse.search.engine import SearchEngine, _result
    from glimpse.search.moments import hits_to_read

    class WithoutFitting(SearchEngine):
        """Video hits as they are, at most ``moments_per_video`` a video (the page rule every video
        search keeps, so that a long video cannot fill a page), no boundaries fitted: the
        baseline."""

        @staticmethod
        def _lookup_span(need):  # type: ignore[no-untyped-def]
            return need + need // 4  # a hit a result, and a few more for the per-video cap

        def _hits_to_read(self, listed, need, results):  # type: ignore[no-untyped-def]
            # Each hit is a result, at most moments_per_video a video: no scene to count as one.
            each = np.where(listed.listed, listed.segments["id"], -1)
            taken = Counter(r.id for r in results)
            return hits_to_read(listed.segments["asset"], each, need, self.settings.moments_per_video, taken)

        def _group(self, hits, assets, *_):  # type: ignore[no-untyped-def]
            results, per_asset = [], {}
            for h in hits:
                taken = per_asset.get(h.asset_id, 0)
                if taken >= (self.settings.moments_per_video if assets[h.asset_id].kind == Kind.VIDEO else 1):
                    continue
                per_asset[h.asset_id] = taken + 1
                results.append(_result(assets[h.asset_id], h.unit_id, h.score))
            return results

    return WithoutFitting


def _WithoutFitting(*args: Any) -> Any:
    return _without_fitting_class()(*args)


def _noise(rng: np.random.Generator, args: argparse.Namespace, n: int) -> np.ndarray:
    return rng.standard_normal((n, args.dim)).astype(np.float32) / np.sqrt(args.dim) * 8


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


if __name__ == "__main__":
    main()
