"""The ``glimpse`` command line: index, search, serve, ui, train, demo, db."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from glimpse.core.settings import Settings
from glimpse.core.vocabulary import Kind

if TYPE_CHECKING:  # the CLI starts without torch, FAISS or SQLAlchemy: each command imports its own
    from glimpse.core.encoder import Encoder
    from glimpse.core.library import Library
    from glimpse.indexer.pipeline import EmbeddingStage
    from glimpse.indexer.scan import ScanPlan
from glimpse.training.cli import train_command

app = typer.Typer(
    name="glimpse",
    help="Semantic search for images and video (OpenCLIP + FAISS).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Catalogue database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")

out = Console()
err = Console(stderr=True)


class State:
    overrides: ClassVar[dict[str, Any]] = {}


DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Library folder (env GLIMPSE_DATA_DIR; default ./glimpse-data)."),
]


@app.callback()
def main(
    data_dir: DataDir = None,
    database_url: Annotated[
        str | None,
        typer.Option(help="SQLAlchemy URL (env GLIMPSE_DATABASE_URL; default SQLite in the data dir)."),
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda (env GLIMPSE_DEVICE).")] = None,
) -> None:
    State.overrides = {
        k: v
        for k, v in {"data_dir": data_dir, "database_url": database_url, "device": device}.items()
        if v is not None
    }


def settings(**extra: Any) -> Settings:
    values = {**State.overrides, **{k: v for k, v in extra.items() if v is not None}}
    return Settings(**values)


def fail(message: str, code: int = 1) -> typer.Exit:
    # Messages and paths are text, not markup: "glimpse-search[ray]" or a folder named "[2024]"
    # must print as they are.
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)  # one line stays one
    return typer.Exit(code)


def open_library(s: Settings) -> Library:
    from glimpse.core.db import DatabaseUnavailable
    from glimpse.core.library import Library

    try:
        return Library(s)
    except DatabaseUnavailable as exc:
        raise fail(str(exc)) from None


def library_encoder(s: Settings, library: Library, explicit: bool) -> Encoder:
    """The encoder for this library: its recorded model, unless the user named another (refused)."""
    from glimpse.core.encoder import Encoder
    from glimpse.core.library import ModelMismatch
    from glimpse.core.models import ModelLoadError, model_ref

    recorded = library.library_model()
    try:
        ref = recorded if recorded is not None and not explicit else model_ref(s.model, s.pretrained)
        library.check_model(ref)
    except (ModelMismatch, ModelLoadError) as exc:
        raise fail(str(exc)) from None
    return Encoder(ref.name, ref.pretrained, device=s.device, text_cache_size=s.query_cache_size)


ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="open_clip model name, glimpse-tiny (random init, for tests) or glimpse-demo (small, "
        "ships with Glimpse, works offline) (env GLIMPSE_MODEL; default ViT-B-32).",
    ),
]
PretrainedOpt = Annotated[
    str | None,
    typer.Option(
        "--pretrained",
        help="Weights: an open_clip tag of the model (downloaded once), a local checkpoint file, or "
        "'none' for random init (env GLIMPSE_PRETRAINED). Default: the model's own - glimpse-demo its "
        "bundled weights, glimpse-tiny random init, an open_clip model its LAION-2B tag (ViT-B-32: "
        "laion2b_s34b_b79k, ViT-L-14: laion2b_s32b_b82k), else openai, else its first tag.",
    ),
]


@app.command()
def index(
    paths: Annotated[list[Path] | None, typer.Argument(help="Folders or files to index.")] = None,
    manifest: Annotated[
        Path | None,
        typer.Option(help="CSV or JSONL with per-item fields (path, sku, title, price, category...)."),
    ] = None,
    model: ModelOpt = None,
    pretrained: PretrainedOpt = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per model call.")] = None,
    workers: Annotated[int | None, typer.Option(help="Decode processes (0 = one per CPU).")] = None,
    video_fps: Annotated[float | None, typer.Option(help="Video frames sampled per second.")] = None,
    video_sampling: Annotated[
        str | None, typer.Option(help="fps (default) or keyframes (fast mode for huge archives).")
    ] = None,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="auto|local|ADDRESS",
            help="Read, decode and embed on a Ray cluster (needs glimpse-search\\[ray]): auto (the "
            "running cluster, else a new local one), local, or the head's HOST:PORT "
            "(env GLIMPSE_RAY_ADDRESS). Every node must see the media under the same paths.",
        ),
    ] = None,
    ray_actors: Annotated[
        int | None,
        typer.Option(
            "--ray-actors", min=1, help="Embedding actors on the cluster (default: one per GPU, or per node)."
        ),
    ] = None,
    ocr: Annotated[
        bool | None,
        typer.Option(
            "--ocr/--no-ocr",
            help="Read the text in images and video frames and make it searchable (needs "
            "glimpse-search\\[ocr]; env GLIMPSE_OCR; default off). Turned on later, it reads the "
            "items indexed without it, without embedding them again.",
        ),
    ] = None,
    index_type: Annotated[
        str | None,
        typer.Option(
            "--index",
            help="Index type: auto (exact up to 100,000 vectors, then IVF-PQ re-ranked exactly), flat, "
            "ivf, or a FAISS index-factory string (env GLIMPSE_INDEX; remembered by the library).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Index images and videos below PATHS (incremental: unchanged files are skipped)."""
    from glimpse.core.runtime import let_idle_threads_sleep

    let_idle_threads_sleep()  # before torch and FAISS load
    from glimpse.core.fsutil import DiskFull
    from glimpse.core.index import IndexSpecError
    from glimpse.core.library import LibraryBusy
    from glimpse.core.models import ModelLoadError
    from glimpse.indexer.pipeline import Indexer

    s = settings(
        model=model,
        pretrained=pretrained,
        batch_size=batch_size,
        workers=workers,
        video_fps=video_fps,
        video_sampling=video_sampling,
        ray_address=ray,
        ray_actors=ray_actors,
        ocr=ocr,
        index=index_type,
    )
    targets = list(paths or [])
    if manifest is not None and not targets:
        targets = [manifest.resolve().parent]
    if not targets:
        raise fail("give at least one folder or file to index (or --manifest)")
    library = open_library(s)
    encoder = library_encoder(s, library, explicit=model is not None or "model" in s.model_fields_set)
    stage: EmbeddingStage | None = None
    errors: tuple[type[Exception], ...] = (
        FileNotFoundError,
        LibraryBusy,
        ModelLoadError,
        DiskFull,
        IndexSpecError,
    )
    if s.ray_address:
        # Only now: Ray (and this module's workers) cost seconds to import and are an optional extra.
        from glimpse.indexer.ray_runner import ClusterError, RayEmbedding

        stage = RayEmbedding(encoder, s, s.ray_address)
        errors += (ClusterError,)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, disable=as_json or not err.is_terminal, transient=False) as bar:
        task = bar.add_task("indexing", total=None, rate="")

        def on_plan(plan: ScanPlan) -> None:
            bar.update(task, total=len(plan.todo))

        def on_progress(_event: str, n: int) -> None:
            bar.advance(task, n)
            t = bar.tasks[0]
            if t.elapsed:
                bar.update(task, rate=f"{t.completed / t.elapsed:.1f} files/s")

        try:
            summary = Indexer(library, encoder, s, progress=on_progress, stage=stage).run(
                targets, on_plan=on_plan
            )
        except errors as exc:
            raise fail(str(exc)) from None
    report: dict[str, Any] = summary.as_dict()
    if manifest is not None:
        from glimpse.indexer.manifest import ManifestError, import_manifest

        try:
            report["manifest"] = import_manifest(library, manifest).as_dict()
        except ManifestError as exc:
            raise fail(str(exc)) from None
    if as_json:
        print(json.dumps(report, indent=2))
        return
    _print_summary(report)


def _print_summary(report: dict[str, Any]) -> None:
    out.print(
        f"[bold]indexed[/] {report['indexed']}  [bold]unchanged[/] {report['unchanged']}  "
        f"[bold]removed[/] {report['removed']}  [bold]failed[/] {len(report['failed'])}  "
        f"({report['units']} vectors added, index holds {report['index_size']}, {report['seconds']:.1f}s)"
    )
    for f in report["failed"]:
        out.print(f"  [red]failed[/] {escape(f['path'])}: {escape(f['error'])}", highlight=False)
    for w in report["warnings"]:
        out.print(f"  [yellow]warning[/] {escape(w['path'])}: {escape(w['warning'])}", highlight=False)
    for k in report.get("skipped", []):
        out.print(f"  [yellow]skipped[/] {escape(k['path'])}: {escape(k['reason'])}", highlight=False)
    m = report.get("manifest")
    if m:
        out.print(
            f"manifest: {m['updated']} items updated, {len(m['missing'])} rows point at missing files, "
            f"{len(m['invalid'])} rows refused"
        )
        for row in m["missing"][:20]:
            out.print(f"  [yellow]missing[/] line {row['line']}: {escape(row['path'])}", highlight=False)
        for row in m["invalid"][:20]:
            where = f"{row['field']}: " if row.get("field") else ""
            out.print(
                f"  [red]invalid[/] line {row['line']}: {escape(where + row['error'])}", highlight=False
            )


@app.command()
def search(
    query: Annotated[str | None, typer.Argument(help="What to look for, in words.")] = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=200, help="Number of results.")] = 10,
    offset: Annotated[
        int, typer.Option(min=0, help="Results to skip: the next page of -k 10 is --offset 10.")
    ] = 0,
    image: Annotated[Path | None, typer.Option(help="An example image file to search with.")] = None,
    negative: Annotated[str | None, typer.Option("--not", help="Move away from this text.")] = None,
    media: Annotated[str, typer.Option(help="all | image | video")] = "all",
    mode: Annotated[
        str | None,
        typer.Option(help="hybrid | vector | keyword (default: hybrid when the library has catalogue text)."),
    ] = None,
    relevant_only: Annotated[
        bool, typer.Option("--relevant-only", help="Only results that stand out as relevant to the query.")
    ] = False,
    sort: Annotated[
        str, typer.Option(help="relevance | price_asc | price_desc | newest (within the relevant results).")
    ] = "relevance",
    then: Annotated[
        list[str] | None,
        typer.Option(help="A sequence: what must follow QUERY in the same video (repeat for more steps)."),
    ] = None,
    within: Annotated[
        float, typer.Option(min=0.1, help="Of a sequence: the longest gap between steps, in seconds.")
    ] = 30.0,
    model: ModelOpt = None,
    pretrained: PretrainedOpt = None,
    local: Annotated[
        bool, typer.Option("--local", help="Load the model here even when a running API serves this library.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Search the library with natural language and/or an example image.

    When `glimpse serve` runs for this library (at GLIMPSE_API_URL, default 127.0.0.1:GLIMPSE_PORT),
    the search goes through it and answers in a fraction of a second; otherwise the model is loaded
    here first. A sequence query finds videos where one thing follows another:
    glimpse search "a red circle" --then "a blue square" --within 30
    """
    from pydantic import ValidationError

    from glimpse.search.query import Media, SearchQuery
    from glimpse.searching import SearchFailed, search_via_api

    if media not in set(Media):
        raise fail(f"--media must be one of {', '.join(Media)}")
    s = settings(model=model, pretrained=pretrained)
    fields = {
        "q": query,
        "negative": negative,
        "media": media,
        "k": k,
        "offset": offset,
        "then": then or [],
        "within": within,
        "mode": mode,
        "relevant_only": relevant_only,
        "sort": sort,
    }
    try:
        q = SearchQuery(**fields)  # refuse a bad query here, before any server or model is asked
    except ValidationError as exc:
        raise fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None
    rows = None
    if not local and model is None and pretrained is None:
        try:
            rows = search_via_api(s, q.model_dump(mode="json", exclude_defaults=True), image)
        except SearchFailed as exc:
            raise fail(str(exc)) from None
    if rows is None:
        with err.status(
            "loading the model (a running `glimpse serve` would answer at once)...", spinner="dots"
        ):
            rows = _search_here(s, q, image, explicit=model is not None)
    _print_results(rows, s, as_json)


def _search_here(s: Settings, q: Any, image: Path | None, explicit: bool) -> list[dict[str, Any]]:
    """Search in this process: open the library, load its model, run the engine."""
    from glimpse.core.media import ImageDecodeError, open_image
    from glimpse.search.api.schemas import ResultOut
    from glimpse.search.embedding import QueryEmbedder
    from glimpse.search.engine import SearchEngine
    from glimpse.search.paths import PathDisplay
    from glimpse.search.query import QueryError

    library = open_library(s)
    if library.model_info() is None:
        raise fail(f"the library in {library.root} is empty: run `glimpse index PATH` first")
    encoder = library_encoder(s, library, explicit=explicit)
    engine = SearchEngine(library, s, QueryEmbedder(encoder))
    example = None
    if image is not None:
        try:
            example = open_image(image, s.max_image_pixels)
        except (ImageDecodeError, OSError) as exc:
            raise fail(f"{image}: {exc}") from None
    try:
        page = engine.search(q, image=example)
    except QueryError as exc:
        raise fail(str(exc)) from None
    paths = PathDisplay(library.media_roots(), full=s.full_paths)
    return [ResultOut.build(r, "", paths).model_dump(mode="json") for r in page.results]


def _print_results(rows: list[dict[str, Any]], s: Settings, as_json: bool) -> None:
    """The same output whether the API or this process answered: JSON rows, or a table."""
    from glimpse.search.moments import format_instant, format_span

    if as_json:
        thumbs = s.data_dir.resolve() / "thumbs"
        shown = []
        for r in rows:
            row = {
                key: r.get(key)
                for key in ("id", "path", "kind", "score", "relevance", "title")
                if r.get(key) is not None
            }
            row["matched"] = {k: v for k, v in (r.get("matched") or {}).items() if v not in (None, False)}
            if r["kind"] == Kind.VIDEO:
                thumb = thumbs / f"{r['unit_id'] % 256:02x}" / f"{r['unit_id']}.jpg"
                row.update(
                    start=r["start"],
                    end=r["end"],
                    best_time=r["best_time"],
                    thumbnail=str(thumb) if thumb.is_file() else None,
                )
                if r.get("steps"):
                    row["steps"] = r["steps"]
            if r.get("text_matches"):
                row["text_matches"] = r["text_matches"]
            shown.append(row)
        print(json.dumps({"results": shown}, indent=2))
        return
    if not rows:
        out.print("no results")
        return
    table = Table(show_header=True, header_style="bold", box=None)
    table.add_column("score", justify="right")
    table.add_column("item")
    for r in rows:
        where = escape(r["path"])
        if r.get("steps"):
            where += " @ " + " then ".join(format_span(step["start"], step["end"]) for step in r["steps"])
        elif r.get("start") is not None and r.get("end") is not None:
            where += f" @ {format_span(r['start'], r['end'])}"
            if r.get("best_time") is not None:  # where its thumbnail is, and where to play from
                where += f", best {format_instant(r['best_time'])}"
        if r.get("title"):
            where = f"{escape(r['title'])}  [dim]{where}[/]"
        for match in r.get("text_matches") or []:
            where += f"\n  [italic]{escape(match['label'])}[/]"
        why = why_matched(r.get("matched") or {})
        if why:
            where += f"\n  [dim]{escape(why)}[/]"
        table.add_row(f"{r['score']:.3f}", where)
    out.print(table)


@app.command("eval")
def eval_command(
    labels: Annotated[Path, typer.Argument(help="CSV (query, relevant) or JSONL of labelled queries.")],
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=200, help="Depth of recall@k.")] = 10,
    mode: Annotated[
        list[str] | None, typer.Option(help="hybrid | vector | keyword (repeat; default: all three).")
    ] = None,
    model: ModelOpt = None,
    pretrained: PretrainedOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
) -> None:
    """Measure search quality on labelled queries: recall@k, nDCG@10 and MRR for each mode.

    Relevant items are named by SKU or path. Run it once per library (GLIMPSE_DATA_DIR) or model
    to compare them; `false_hits` counts results that relevant_only still shows for queries
    labelled with no relevant item.
    """
    from glimpse.search.embedding import QueryEmbedder
    from glimpse.search.engine import SearchEngine
    from glimpse.search.evaluation import LabelError, evaluate, read_labels
    from glimpse.search.query import Mode

    try:
        modes = [Mode(m) for m in (mode or [m.value for m in Mode])]
    except ValueError:
        raise fail(f"--mode must be one of {', '.join(Mode)}") from None
    try:
        labelled = read_labels(labels)
    except LabelError as exc:
        raise fail(str(exc)) from None
    s = settings(model=model, pretrained=pretrained)
    library = open_library(s)
    if library.model_info() is None:
        raise fail(f"the library in {library.root} is empty: run `glimpse index PATH` first")
    encoder = library_encoder(s, library, explicit=model is not None)
    report = evaluate(SearchEngine(library, s, QueryEmbedder(encoder)), labelled, modes, k)
    if as_json:
        print(json.dumps(report, indent=2))
        return
    table = Table(show_header=True, header_style="bold", box=None)
    for name in ("mode", f"recall@{k}", "ndcg@10", "mrr", "false_hits"):
        table.add_column(name, justify="left" if name == "mode" else "right")
    for name, row in report["modes"].items():
        table.add_row(name, *(str(v) for v in row.values()))
    out.print(table)
    if report["unknown"]:
        err.print(f"[yellow]{len(report['unknown'])} labelled item(s) are not in the library[/]")
    print(json.dumps(report))


def why_matched(matched: dict[str, Any]) -> str:
    """One line saying which rankings found a result: "sku · keyword #1 title: «Vans» mug · vector #4 0.281"."""
    parts = []
    if matched.get("sku"):
        parts.append("sku")
    kw = matched.get("keyword")
    if kw:
        where = f" {kw['field']}: {kw['snippet']}" if kw.get("field") else ""
        parts.append(f"keyword #{kw['rank']}{where}")
    vec = matched.get("vector")
    if vec:
        parts.append(f"vector #{vec['rank']} {vec['score']:.3f}")
    return " · ".join(parts)


@app.command()
def stats(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """What the library holds, and its index: type, size, bytes per vector, measured recall@10."""
    from glimpse.search.reads import library_stats

    library = open_library(settings())
    try:
        body = library_stats(library, library.open_index(repair=False))
    except RuntimeError as exc:
        raise fail(str(exc)) from None
    finally:
        library.close()
    if as_json:
        print(json.dumps(body, indent=2, default=str))
        return
    ix = body["index"]
    out.print(
        f"[bold]items[/] {body['items']}  [bold]failed[/] {body['failed']}  [bold]units[/] {body['units']}"
    )
    out.print(f"[bold]model[/] {body['model']}")
    recall = ix.get("recall_at_10")
    out.print(
        f"[bold]index[/] {escape(str(ix['type']))}, {ix['size']} vectors (base {ix.get('base_size')}, "
        f"delta {ix.get('delta_size')}, tombstones {ix.get('tombstones')}), version {ix['version']}, "
        f"{ix.get('bytes_per_vector')} bytes/vector on disk, recall@10 {recall} "
        f"(text-like {ix.get('recall_text_like_at_10')}), nprobe {ix.get('nprobe')}",
        highlight=False,
    )


@app.command("import-vectors")
def import_vectors_command(
    folder: Annotated[Path, typer.Argument(help="clip-retrieval output: img_emb/ and metadata/.")],
    model: ModelOpt = None,
    pretrained: PretrainedOpt = None,
    kind: Annotated[str, typer.Option(help="image or video: what each row is.")] = "image",
    chunk: Annotated[int, typer.Option(min=1, help="Rows per transaction (and in memory at once).")] = 50_000,
    skip_existing: Annotated[
        bool, typer.Option("--skip-existing", help="Skip paths already in the library (resume a cut import).")
    ] = False,
    index_type: Annotated[
        str | None,
        typer.Option("--index", help="auto | flat | ivf | FAISS factory string (env GLIMPSE_INDEX)."),
    ] = None,
) -> None:
    """Import precomputed embeddings (img_emb/*.npy + metadata/*.parquet|csv|jsonl), streamed."""
    from glimpse.core.index import IndexSpecError
    from glimpse.core.library import LibraryBusy, ModelMismatch
    from glimpse.core.models import ModelRef
    from glimpse.indexer.bulk import BulkImportError, import_stream
    from glimpse.indexer.vector_files import folder_dim, folder_model, model_dim, read_batches

    s = settings(model=model, pretrained=pretrained, index=index_type)
    library = open_library(s)
    try:
        recorded, recorded_dim = folder_model(folder)
        explicit = model is not None or "model" in s.model_fields_set
        ref = ModelRef(s.model, s.pretrained) if explicit else (recorded or library.library_model())
        if ref is None:
            ref = ModelRef(s.model, s.pretrained)
        dim = folder_dim(folder)
        if recorded is not None and (recorded.name, recorded.pretrained) != (ref.name, ref.pretrained):
            raise BulkImportError(f"{folder} holds vectors of {recorded.label}, not {ref.label}")
        library.check_model(ref)
        info = library.model_info()
        expected = info.dim if info is not None else (recorded_dim or model_dim(ref.name))
        if expected is not None and dim != expected:
            raise BulkImportError(f"{folder} holds {dim}-dimensional vectors; {ref.label} makes {expected}")
        summary = import_stream(
            library, ref, read_batches(folder, chunk), kind=kind, skip_existing=skip_existing
        )
    except (BulkImportError, IndexSpecError, ModelMismatch, LibraryBusy, FileNotFoundError) as exc:
        raise fail(str(exc)) from None
    finally:
        library.close()
    out.print(
        f"[bold]imported[/] {summary.items} items ({summary.skipped} already there), "
        f"index holds {summary.index_size}, {summary.seconds:.1f}s"
    )


@app.command("export-vectors")
def export_vectors_command(
    folder: Annotated[Path, typer.Argument(help="New folder to write img_emb/ and metadata/ into.")],
    part_rows: Annotated[int, typer.Option(min=1, help="Rows per img_emb_<n>.npy part.")] = 1_000_000,
) -> None:
    """Export the library's vectors and fields in clip-retrieval's layout (plus glimpse.json)."""
    from glimpse.indexer.bulk import BulkImportError
    from glimpse.indexer.vector_files import export_vectors

    library = open_library(settings())
    try:
        rows = export_vectors(library, folder, part_rows)
    except BulkImportError as exc:
        raise fail(str(exc)) from None
    finally:
        library.close()
    out.print(f"[bold]exported[/] {rows} vectors to {escape(str(folder))}")


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to bind (env GLIMPSE_HOST; default 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (env GLIMPSE_PORT; default 8000).")] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Allow a non-loopback bind without API keys.")
    ] = False,
) -> None:
    """Serve the search API (FastAPI) over the library."""
    from glimpse.search.api.server import UnsafeBind, run_server

    s = settings(host=host, port=port)
    try:
        run_server(s, insecure=insecure)
    except UnsafeBind as exc:
        raise fail(str(exc)) from None


@app.command()
def ui(
    host: Annotated[str, typer.Option(help="Address for the web UI.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port for the web UI.")] = 8501,
    api_url: Annotated[
        str | None, typer.Option(envvar="GLIMPSE_API_URL", help="The search API's URL.")
    ] = None,
) -> None:
    """Serve the web UI (Streamlit), a client of the search API."""
    from glimpse.webui.launch import run_ui

    raise typer.Exit(run_ui(host=host, port=port, api_url=api_url))


@app.command()
def demo(
    items: Annotated[int, typer.Option(help="Generated catalogue items.")] = 120,
    videos: Annotated[int, typer.Option(help="Generated videos.")] = 3,
    port: Annotated[int, typer.Option(help="API port.")] = 8000,
    ui_port: Annotated[int, typer.Option(help="Web UI port.")] = 8501,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve the API and UI after indexing.")
    ] = True,
) -> None:
    """Offline demo: generate a catalogue and videos, index them with glimpse-demo, serve API + UI."""
    from glimpse.core.runtime import let_idle_threads_sleep

    let_idle_threads_sleep()  # before torch and FAISS load
    from glimpse.core.library import LibraryBusy, ModelMismatch
    from glimpse.demo import PortTaken, build_demo_library, check_port_free, serve_demo

    s = settings()
    if serve_after:  # before minutes of indexing, not after
        try:
            check_port_free(port, "the search API")
            check_port_free(ui_port, "the web UI")
        except PortTaken as exc:
            raise fail(str(exc)) from None
    err.print(f"building the demo library in {s.data_dir.resolve()} (model glimpse-demo, offline)...")
    try:
        built = build_demo_library(s, items=items, videos=videos)
    except (LibraryBusy, ModelMismatch) as exc:
        raise fail(f"{exc}\n(the demo needs its own library: pass --data-dir DIR)") from None
    _print_summary({**built.summary.as_dict(), "manifest": None})
    out.print(f"catalogue fields attached to {built.manifest_rows} items from {built.manifest}")
    if serve_after:
        try:
            raise typer.Exit(serve_demo(s, port, ui_port))
        except PortTaken as exc:
            raise fail(str(exc)) from None


app.command("train")(train_command)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Run the catalogue migrations up to the newest schema."""
    from glimpse.core.db import current_revision

    library = open_library(settings())
    out.print(
        f"catalogue at revision {current_revision(library.engine)} ({library.engine.url.render_as_string(hide_password=True)})"
    )


@db_app.command("current")
def db_current() -> None:
    """Print the catalogue's schema revision."""
    from glimpse.core.db import current_revision, make_engine

    out.print(current_revision(make_engine(settings().db_url)) or "empty")


def run() -> None:  # pragma: no cover - console entry for `python -m glimpse`
    app(prog_name="glimpse")


if __name__ == "__main__":  # pragma: no cover
    run()
