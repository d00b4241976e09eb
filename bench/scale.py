"""Scale: a big library (clustered 512-d vectors) searched, grown and served, each figure beside its
baseline measured in the same run.

    .venv/bin/python bench/scale.py --n 1000000 --dir /tmp/glimpse-scale-1m [--http]
    .venv/bin/python bench/scale.py --n 5000000 --dir /tmp/gs5m --http   # the README's 5M figures

- the library is bulk-imported (``glimpse.indexer.bulk.import_stream``, 100k rows a batch) from
  clustered synthetic data: 2,000 centres, each vector ~0.7 cosine from its centre (real CLIP
  embeddings cluster; uniform noise has no neighbours worth finding). Reused when ``--dir``
  already holds ``--n`` vectors;
- recall@10 of the served index against exact search, on fresh image-like queries and on
  text-like ones (shifted along a fixed "modality gap" direction, best match cosine ~0.3);
  baseline: exact search (recall 1 by definition; its latency below);
- search p50/p99 in process (one query at a time, k=10, as the engine asks); baseline: an exact
  ``IndexFlatIP`` over the same vectors (the index Glimpse used before at every size; over the
  first 1M vectors when --n is larger, to stay in memory);
- filtered search: allowed sets of growing size, exact scoring vs the index with an id selector:
  where the switch point ``EXACT_FILTER_MAX`` comes from;
- adding 1,000 vectors (a separate process: time and peak RSS) to the big library ÷ the same into
  an empty library;
- with ``--http``: the API's resident memory (baseline: the API over the 1,000-vector library),
  HTTP p50 of text queries ÷ (text encoding + search in process), and how long a version
  published by the add takes to show in ``/v1/stats``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from glimpse.core.runtime import let_idle_threads_sleep

let_idle_threads_sleep()  # before numpy, torch and FAISS load, as `glimpse serve` does
import numpy as np  # noqa: E402

RANDOM_INIT = "none"  # = glimpse.core.models.RANDOM_INIT: random weights (no model hub here)

sys.path.insert(0, str(Path(__file__).resolve().parent))

DIM = 512
MODEL = "ViT-B-32"  # the architecture of the default model; random init (no download)
CENTRES = 2000
BATCH = 100_000


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def centres() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(CENTRES, DIM)).astype(np.float32)


def clustered(n: int, seed: int) -> np.ndarray:
    """``n`` unit vectors around the fixed centres (cosine ~0.7 to their centre)."""
    rng = np.random.default_rng(seed)
    c = centres()
    return _unit(c[rng.integers(0, CENTRES, n)] + rng.normal(size=(n, DIM)).astype(np.float32))


def text_like(image: np.ndarray, seed: int = 5) -> np.ndarray:
    """Queries shifted off the image vectors as CLIP's text vectors are (see core/index.py)."""
    rng = np.random.default_rng(seed)
    gap = rng.normal(size=DIM)
    gap /= np.linalg.norm(gap)
    noise = _unit(rng.normal(size=image.shape))
    return _unit(0.3 * image + 0.8 * gap + 0.5 * noise)


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def rss_mb(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


# -- building ----------------------------------------------------------------------------------
def build(data_dir: Path, n: int, setting: str) -> float:
    from glimpse.core.library import Library
    from glimpse.core.models import ModelRef
    from glimpse.core.settings import Settings
    from glimpse.indexer.bulk import Batch, import_stream

    library = Library(Settings(data_dir=data_dir, index=setting))
    try:
        if library.model_info() is not None:
            have = len(library.live_unit_ids())
            if n <= have <= n * 1.01:  # earlier runs each added 1,000
                print(f"reusing {data_dir} ({have:,} vectors)", flush=True)
                return float("nan")
            raise SystemExit(f"{data_dir} holds {have:,} vectors, not {n:,}: pick another --dir")

        def batches():
            for start in range(0, n, BATCH):
                m = min(BATCH, n - start)
                yield Batch(
                    [f"/bench/item-{i:09d}.jpg" for i in range(start, start + m)],
                    clustered(m, seed=1000 + start // BATCH),
                    [
                        {"category": f"category-{i % 100}", "price": float(i % 1000)}
                        for i in range(start, start + m)
                    ],
                )
                print(f"  imported {start + m:,}", flush=True)

        started = time.monotonic()
        import_stream(library, ModelRef(MODEL, RANDOM_INIT), batches())
        return time.monotonic() - started
    finally:
        library.close()


def add_child(data_dir: Path, start: int, count: int) -> None:
    """(child process) import ``count`` vectors; prints seconds and this process's peak RSS."""
    from glimpse.core.library import Library
    from glimpse.core.models import ModelRef
    from glimpse.core.settings import Settings
    from glimpse.indexer.bulk import Batch, import_stream

    library = Library(Settings(data_dir=data_dir))
    t0 = time.monotonic()
    # A fresh tag per add: two runs a few seconds apart used to ask for the same paths (their
    # starts are seconds * 10) and the second import was refused.
    tag = uuid.uuid4().hex[:8]
    paths = [f"/bench/new-{tag}-{i:09d}.jpg" for i in range(start, start + count)]
    import_stream(library, ModelRef(MODEL, RANDOM_INIT), [Batch(paths, clustered(count, seed=start + 7))])
    seconds = time.monotonic() - t0
    published = time.time()
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork + exec
    peak = rss_mb(os.getpid())["VmHWM"]
    print(
        json.dumps(
            {"seconds": seconds, "peak_mb": peak, "published": published, "version": library.index_version()}
        )
    )


def add(data_dir: Path, start: int, count: int = 1000) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child-add",
            str(data_dir),
            "--start",
            str(start),
            "--count",
            str(count),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- measuring ---------------------------------------------------------------------------------
def measure_search(data_dir: Path, n: int, queries: int) -> dict[str, object]:
    import faiss
    import torch  # noqa: F401 - the API holds it for its encoder, and re-ranked rows widen through it

    from glimpse.core import index as index_module
    from glimpse.core.index import exact_top_k, recall_at
    from glimpse.core.library import Library
    from glimpse.core.runtime import keep_blas_in_calling_thread
    from glimpse.core.settings import Settings

    library = Library(Settings(data_dir=data_dir))
    snapshot = library.open_index(repair=False)
    index = snapshot.index
    store = library.vector_store(clean=False)
    ids = index.ids()
    image = clustered(queries, seed=99)
    text = text_like(clustered(queries, seed=98))
    t0 = time.monotonic()
    truth_image = exact_top_k(store, ids, image, 10)
    truth_text = exact_top_k(store, ids, text, 10)
    truth_s = time.monotonic() - t0
    keep_blas_in_calling_thread()  # from here on, as the API runs its products (after the batched truth)
    got_image = index.search(image, 10)[1]
    got_text = index.search(text, 10)[1]
    result: dict[str, object] = {
        "index": index.info.as_dict(),
        "bytes_per_vector": index.bytes_per_vector(library.index_path),
        "recall_image": recall_at(got_image, truth_image),
        "recall_text": recall_at(got_text, truth_text),
        "exact_truth_s": truth_s,
    }
    lat = []
    for q in np.concatenate([image, text]):
        t = time.perf_counter()
        index.search(q[None], 10)
        lat.append((time.perf_counter() - t) * 1000)
    result["search_ms"] = {"p50": pct(lat, 50), "p99": pct(lat, 99)}
    # filtered: exact scoring of the allowed rows vs the index with an id selector
    rng = np.random.default_rng(3)
    filt = {}
    switch = index_module.EXACT_FILTER_MAX
    for size in (1_000, 2_500, 5_000, 20_000, 100_000):
        if size > len(ids) // 2:
            break
        allowed = np.sort(rng.choice(ids, size, replace=False))
        times: dict[str, float] = {}
        found = {}
        for mode, limit in (("exact", 10**12), ("selector", 0)):
            index_module.EXACT_FILTER_MAX = limit
            lat, got = [], []
            for q in text[:20]:
                t = time.perf_counter()
                got.append(index.search(q[None], 10, allowed_ids=allowed)[1][0])
                lat.append((time.perf_counter() - t) * 1000)
            times[f"{mode}_p50_ms"] = pct(lat, 50)
            found[mode] = np.stack(got)
        times["selector_recall"] = recall_at(found["selector"], found["exact"])
        filt[str(size)] = times
    index_module.EXACT_FILTER_MAX = switch
    result["filtered_p50_ms"] = filt
    # baseline: exact IndexFlatIP in RAM (what every size used before), on at most 1M vectors
    m = min(len(ids), 1_000_000)
    flat = faiss.IndexFlatIP(DIM)
    for _block_ids, block in store.iter_rows(ids[:m]):
        flat.add(block)
    lat = []
    for q in text[:30]:
        t = time.perf_counter()
        flat.search(q[None], 10)
        lat.append((time.perf_counter() - t) * 1000)
    result["flat_baseline"] = {
        "vectors": m,
        "p50": pct(lat, 50),
        "p99": pct(lat, 99),
        "ram_mb": m * DIM * 4 / 2**20,
    }
    del flat
    library.close()
    return result


def measure_http(big: Path, small: Path, start: int) -> dict[str, object]:
    import http.client

    import httpx
    from query_latency import free_port, start_server, stop_server, wait_ready

    from glimpse.core.encoder import Encoder
    from glimpse.core.library import Library
    from glimpse.core.runtime import keep_blas_in_calling_thread
    from glimpse.core.settings import Settings

    out: dict[str, object] = {}
    texts = [f"a photo number {i} of a thing in a place" for i in range(60)]
    # The floor: text encoding + a 10-hit search of the big library in this process, timed
    # query by query between the big API's vector searches, so both see the same machine.
    encoder = Encoder(MODEL, RANDOM_INIT, device="cpu", text_cache_size=0, pack_text=True).load()
    encoder.encode_texts(["warm up"])
    library = Library(Settings(data_dir=big))
    index = library.open_index(repair=False).index
    keep_blas_in_calling_thread()  # as `glimpse serve` does
    floor: list[float] = []
    # Per query, paired with the floor timed right after it: what the API adds in milliseconds
    # (steadier than the ratio, which swings with the floor on a shared machine) and how much
    # of that is HTTP (the client's time less the engine's own ``took_ms``).
    api_cost: list[float] = []
    over_engine: list[float] = []
    for name, folder in (("small", small), ("big", big)):
        port = free_port()
        proc = start_server(folder, port)
        url = f"http://127.0.0.1:{port}"
        # The requests go through the standard library's client on one kept-alive connection,
        # as a load tester's would: what is timed is the API, not a client library. httpx (the
        # webui's and `glimpse search`'s client) is timed too, beside it: it spent ~0.6-1 ms a
        # request of its own (README, "Large libraries", "A seventh look").
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            wait_ready(url, proc)
            with httpx.Client(timeout=60) as c:
                figures: dict[str, object] = {}
                out[name] = figures
                # vector: what the floor does, plus HTTP and the engine; hybrid: the API's
                # default (a keyword search of the catalogue fused with 50 vector hits)
                for mode in ("vector", "hybrid"):
                    _post(conn, {"q": "warm up", "k": 10, "mode": mode})
                    lat, lat_httpx = [], []
                    for q in texts:
                        t = time.perf_counter()
                        answer = _post(conn, {"q": f"{q} {mode}", "k": 10, "mode": mode})
                        lat.append((time.perf_counter() - t) * 1000)
                        if name == "big" and mode == "vector":
                            t = time.perf_counter()
                            index.search(encoder.encode_texts([f"{q} floor"]), 10)
                            floor.append((time.perf_counter() - t) * 1000)
                            api_cost.append(lat[-1] - floor[-1])
                            over_engine.append(lat[-1] - float(answer["took_ms"]))
                            t = time.perf_counter()
                            c.post(
                                f"{url}/v1/search", json={"q": f"{q} httpx", "k": 10, "mode": mode}
                            ).raise_for_status()
                            lat_httpx.append((time.perf_counter() - t) * 1000)
                    figures[f"http_{mode}_ms"] = {"p50": pct(lat, 50), "p99": pct(lat, 99)}
                    if lat_httpx:
                        figures[f"http_{mode}_httpx_ms"] = {
                            "p50": pct(lat_httpx, 50),
                            "p99": pct(lat_httpx, 99),
                        }
                figures["rss_mb"] = rss_mb(proc.pid)
                if name == "big":
                    out["stats_index"] = c.get(f"{url}/v1/stats").json()["index"]
                    before = c.get(f"{url}/v1/stats").json()["index"]["version"]
                    added = add(folder, start)
                    while True:
                        version = c.get(f"{url}/v1/stats").json()["index"]["version"]
                        if version != before:
                            break
                        time.sleep(0.05)
                    out["version_visible_s"] = time.time() - added["published"]
                    out["add_1000_big"] = added
                    out["rss_after_add_mb"] = rss_mb(proc.pid)
        finally:
            conn.close()
            stop_server(proc)
    library.close()
    out["encode_search_ms"] = {"p50": pct(floor, 50), "p99": pct(floor, 99)}
    big_http = out["big"]
    assert isinstance(big_http, dict)
    out["http_vector_over_floor"] = big_http["http_vector_ms"]["p50"] / pct(floor, 50)
    out["http_vector_httpx_over_floor"] = big_http["http_vector_httpx_ms"]["p50"] / pct(floor, 50)
    out["http_minus_floor_ms"] = {"p50": pct(api_cost, 50), "p99": pct(api_cost, 99)}
    out["http_minus_took_ms"] = {"p50": pct(over_engine, 50), "p99": pct(over_engine, 99)}
    return out


def _post(conn: Any, body: dict[str, object]) -> dict[str, Any]:
    """POST ``body`` to ``/v1/search`` on the kept-alive ``conn`` (http.client); the answer's JSON."""
    conn.request("POST", "/v1/search", body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        raise SystemExit(f"POST /v1/search answered {r.status}: {data[:500]!r}")
    answer: dict[str, Any] = json.loads(data)
    return answer


def measure_visibility(big: Path) -> dict[str, float]:
    """In process, as the API holds it: open the big library's index, add 1,000 vectors in another
    process, then time the API's side of a new version (the refresh, the first ``/v1/stats``
    answer, the background sample) and the whole from the add's commit to that answer."""
    import torch  # noqa: F401 - as the API holds it (see measure_search)

    from glimpse.core.library import Library
    from glimpse.core.settings import Settings
    from glimpse.search import reads
    from glimpse.search.snapshots import IndexHolder

    library = Library(Settings(data_dir=big))
    holder = IndexHolder(library, min_interval=0.0)
    reads.library_stats(library, holder.current())  # warm: the catalogue's pages cached
    added = add(big, int(time.time()) % 10**8 * 10 + 5)
    t0 = time.perf_counter()
    snapshot = holder.current()  # the swap
    refresh = time.perf_counter() - t0
    t1 = time.perf_counter()
    stats = reads.library_stats(library, snapshot)
    holder.background()
    answered = time.time()
    library.close()
    assert stats["index"]["version"] == added["version"], "the new version was not picked up"
    return {
        "refresh_s": refresh,
        "stats_and_background_s": time.perf_counter() - t1,
        "commit_to_answer_s": answered - added["published"],
    }


def measure_engine(big: Path, queries: int = 24) -> dict[str, float]:
    """In process: the search engine the API runs (text encoding, index, catalogue reads, fusion),
    p50 in vector and in hybrid mode, beside the floor HTTP is compared with (encoding + one
    10-hit index search), all on the big library."""
    import statistics

    from glimpse.core.encoder import Encoder
    from glimpse.core.library import Library
    from glimpse.core.runtime import keep_blas_in_calling_thread
    from glimpse.core.settings import Settings
    from glimpse.search.embedding import QueryEmbedder
    from glimpse.search.engine import SearchEngine
    from glimpse.search.query import SearchQuery

    library = Library(Settings(data_dir=big))
    encoder = Encoder(MODEL, RANDOM_INIT, device="cpu", text_cache_size=0).load()
    engine = SearchEngine(library, library.settings, QueryEmbedder(encoder))
    keep_blas_in_calling_thread()  # as `glimpse serve` does
    texts = [
        f"{w} {i}"
        for i, w in enumerate(["red shoes", "a cat on a sofa", "mountain lake", "blue car"] * (queries // 4))
    ]
    out: dict[str, float] = {}
    for mode in ("vector", "hybrid"):
        engine.search(SearchQuery(q="warm up", mode=mode))
        times = []
        for text in texts:
            t = time.perf_counter()
            engine.search(SearchQuery(q=f"{text} {mode}", mode=mode, k=10))
            times.append((time.perf_counter() - t) * 1000)
        out[f"engine_{mode}_p50_ms"] = statistics.median(times)
    index = engine.snapshot.index
    times = []
    for text in texts:
        t = time.perf_counter()
        index.search(encoder.encode_texts([f"{text} floor"]), 10)
        times.append((time.perf_counter() - t) * 1000)
    out["encode_search_p50_ms"] = statistics.median(times)
    library.close()
    return out


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module's text as written, and each option's default after its help."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=_Help)
    ap.add_argument("--n", type=int, default=1_000_000, help="vectors in the big library")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/glimpse-scale"), help="where the libraries live")
    ap.add_argument("--index", default="auto", help="index setting for the big library (GLIMPSE_INDEX)")
    ap.add_argument("--queries", type=int, default=100, help="queries of each kind")
    ap.add_argument("--http", action="store_true", help="also measure the API over HTTP")
    ap.add_argument(
        "--engine",
        action="store_true",
        help="only time the search engine in process (vector and hybrid) on the library already in --dir",
    )
    ap.add_argument(
        "--http-only",
        action="store_true",
        help="only measure the API over HTTP (and the add it times) on the libraries already in --dir",
    )
    ap.add_argument(
        "--visibility",
        action="store_true",
        help="only time how a new version reaches the API (in process) on the library already in --dir",
    )
    ap.add_argument("--child-add", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--count", type=int, default=1000, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_add:
        add_child(args.child_add, args.start, args.count)
        return
    big, small = args.dir / f"big-{args.n}", args.dir / "small"
    if args.visibility:
        print(json.dumps(measure_visibility(big), indent=2))
        return
    if args.engine:
        print(json.dumps(measure_engine(big), indent=2))
        return
    if args.http_only:
        if not (small / "index").exists():
            add(small, 0)
        print(json.dumps(measure_http(big, small, int(time.time()) % 10**8 * 10 + 3), indent=2, default=str))
        return
    print(f"building {args.n:,} clustered {DIM}-d vectors into {big} ...", flush=True)
    build_s = build(big, args.n, args.index)
    print(f"build: {build_s:.0f} s", flush=True)
    res = measure_search(big, args.n, args.queries)
    print(json.dumps(res, indent=2), flush=True)
    shutil.rmtree(small, ignore_errors=True)
    empty = add(small, 0)
    start = int(time.time()) % 10**8 * 10  # fresh paths on every run
    big_add = add(big, start) if not args.http else None
    http = measure_http(big, small, start) if args.http else None
    if big_add is None:
        big_add = http["add_1000_big"]  # type: ignore[index]
    report = {
        "n": args.n,
        "build_s": build_s,
        "search": res,
        "add_1000_empty": empty,
        "add_1000_big": big_add,
        "http": http,
    }
    (args.dir / f"scale-{args.n}.json").write_text(json.dumps(report, indent=2, default=str))
    idx = res["index"]
    assert isinstance(idx, dict)
    print(
        f"""
== scale, {args.n:,} vectors of {DIM} d ({os.cpu_count()} CPUs) ==
index: {idx["factory"]}  nprobe {idx["nprobe"]}  k_factor {idx["k_factor"]}  {res["bytes_per_vector"]:.1f} bytes/vector on disk
recall@10 image-like {res["recall_image"]:.3f}  text-like {res["recall_text"]:.3f}   (baseline exact: 1.000)
search in process p50 {res["search_ms"]["p50"]:.2f} ms  p99 {res["search_ms"]["p99"]:.2f} ms   (baseline exact flat over {res["flat_baseline"]["vectors"]:,}: p50 {res["flat_baseline"]["p50"]:.1f} ms, {res["flat_baseline"]["ram_mb"]:.0f} MB RAM)
filtered p50 ms by allowed-set size (exact / selector): {res["filtered_p50_ms"]}
add 1,000: {empty["seconds"]:.2f} s, {empty["peak_mb"]:.0f} MB peak into an empty library
""",
        flush=True,
    )
    print(
        f"add 1,000 to the big library: {big_add['seconds']:.2f} s ({big_add['seconds'] / empty['seconds']:.2f}x), "
        f"{big_add['peak_mb']:.0f} MB peak ({big_add['peak_mb'] / empty['peak_mb']:.2f}x)"
    )
    if http is not None:
        print(json.dumps(http, indent=2))


if __name__ == "__main__":
    main()
