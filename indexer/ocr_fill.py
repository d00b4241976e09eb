"""Turning OCR on for a library indexed without it: read the text of units that have none yet.

Runs at the end of ``glimpse index`` with OCR on. Only indexed units without an ``ocr_text`` row
are read (core/ocr_text.py), so a second run finds nothing to do; nothing is embedded again and no
unit changes its id. Images are read in the decode workers; a video's frames are sampled again
(the only way to see them once the run that embedded them is over) and each segment gets the text
of the frames within it. Failures are the run's warnings, never fatal.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from glimpse.core import ocr_text
from glimpse.core.catalogue import Asset, Unit
from glimpse.core.library import Library
from glimpse.core.ocr import OcrConfig, OcrResult
from glimpse.core.settings import Settings
from glimpse.core.vocabulary import Kind
from glimpse.indexer.decode import read_image_text, read_video_text
from glimpse.indexer.reader import SMALL_RUN, decode_pool
from glimpse.indexer.scan import under
from glimpse.indexer.writer import IndexSummary

COMMIT_EVERY = 64  # items read per commit


@dataclass(frozen=True)
class _Unread:
    asset_id: int
    path: str
    kind: str
    units: list[tuple[int, float | None, float | None]]  # (unit id, t_start, t_end)


def fill_unread(
    library: Library,
    settings: Settings,
    ocr: OcrConfig,
    roots: list[Path],
    summary: IndexSummary,
    progress: Callable[[str, int], None] | None = None,
    skip: set[str] | frozenset[str] = frozenset(),
) -> int:
    """Read and store the text of every indexed unit below ``roots`` that has none (files in
    ``skip`` left out); returns how many items were read. A model that does not load stores
    nothing (the next run tries again)."""
    todo = [t for t in _unread(library, roots) if t.path not in skip]
    if not todo:
        return 0
    progress = progress or (lambda _event, _n: None)
    images = [t for t in todo if t.kind != Kind.VIDEO]
    videos = [t for t in todo if t.kind == Kind.VIDEO]
    done: list[tuple[_Unread, list[tuple[int, OcrResult]]]] = []
    workers = settings.workers or 1
    pool: Executor = ThreadPoolExecutor(1) if len(images) <= SMALL_RUN else decode_pool(workers)
    with pool:
        futures: list[tuple[_Unread, Future[OcrResult]]] = [
            (item, pool.submit(read_image_text, item.path, settings.max_image_pixels, ocr)) for item in images
        ]
        for item, fut in futures:
            done.append((item, [(item.units[0][0], fut.result())]))
            if len(done) >= COMMIT_EVERY:
                _commit(library, done, summary, progress)
    for item in videos:
        done.append((item, _read_video(item, settings, ocr)))
        _commit(library, done, summary, progress)
    _commit(library, done, summary, progress)
    return len(todo)


def _unread(library: Library, roots: list[Path]) -> list[_Unread]:
    with library.Session() as s:
        pairs = ocr_text.unread_units(s)
        if not pairs:
            return []
        asset_ids = sorted({a for a, _ in pairs})
        assets = {
            a.id: a for a in s.scalars(select(Asset).where(Asset.id.in_(asset_ids))) if under(a.path, roots)
        }
        wanted = {u for a, u in pairs if a in assets}
        units: dict[int, list[tuple[int, float | None, float | None]]] = {}
        for row in s.execute(
            select(Unit.id, Unit.asset_id, Unit.t_start, Unit.t_end)
            .where(Unit.asset_id.in_(list(assets)))
            .order_by(Unit.asset_id, Unit.t_start, Unit.id)
        ):
            if row.id in wanted:
                units.setdefault(row.asset_id, []).append((row.id, row.t_start, row.t_end))
    return [_Unread(a.id, a.path, a.kind, units[a.id]) for a in assets.values() if a.id in units]


def _read_video(item: _Unread, settings: Settings, ocr: OcrConfig) -> list[tuple[int, OcrResult]]:
    """Each unread segment's text: that of the sampled frames within it."""
    from glimpse.indexer.video import VideoDecodeError

    frames: dict[int, list[OcrResult]] = {unit_id: [] for unit_id, _, _ in item.units}
    try:
        for time, result in read_video_text(
            item.path, settings.video_fps, settings.video_max_frames, settings.video_sampling, ocr
        ):
            unit_id = _segment_at(item.units, time)
            if unit_id is not None:
                frames[unit_id].append(result)
    except (VideoDecodeError, OSError) as exc:
        failed = OcrResult(error=f"cannot read the video: {getattr(exc, 'reason', None) or exc}")
        return [
            (unit_id, ocr_text.merge([*texts, failed]) if texts else failed)
            for unit_id, texts in frames.items()
        ]
    return [(unit_id, ocr_text.merge(texts)) for unit_id, texts in frames.items()]


def _segment_at(units: list[tuple[int, float | None, float | None]], time: float) -> int | None:
    """The unit whose span [t_start, t_end) holds ``time`` (the last one also holds its end)."""
    for i, (unit_id, start, end) in enumerate(units):
        if start is None or end is None:
            continue
        if start <= time < end or (i == len(units) - 1 and start <= time <= end):
            return unit_id
    return None


def _commit(
    library: Library,
    done: list[tuple[_Unread, list[tuple[int, OcrResult]]]],
    summary: IndexSummary,
    progress: Callable[[str, int], None],
) -> None:
    if not done:
        return
    with library.Session.begin() as s:
        ocr_text.store(s, [pair for _, results in done for pair in results])
    for item, results in done:
        if problem := ocr_text.problem([r for _, r in results]):
            summary.warnings.append((item.path, problem))
    progress("ocr", len(done))
    done.clear()
