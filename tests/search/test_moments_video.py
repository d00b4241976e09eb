"""Moments on real encoded video with the shipped demo model: one moment per scene, boundaries
within one sampling interval of the truth, a subject filmed across a cut kept whole, and
sequence queries that find the ordered pair and not the reversed one. Both databases."""

from __future__ import annotations

from pathlib import Path

import pytest

from glimpse.core.library import Library
from glimpse.indexer.pipeline import Indexer
from glimpse.search.embedding import QueryEmbedder
from glimpse.search.engine import SearchEngine
from glimpse.search.query import SearchQuery
from glimpse.training.synthetic import Scene, Shot, write_shots

pytestmark = pytest.mark.slow

SAMPLING = 1.0  # seconds between sampled frames (GLIMPSE_VIDEO_FPS = 1)


def shape(shape: str, colour: str, size: str = "large", offset: tuple[float, float] = (0.0, 0.0)) -> Scene:
    return Scene(shape=shape, colour=colour, background="white", size=size, offset=offset)


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("moment-videos")
    # Three 10 s scenes, each shape drifting within its scene, hard cuts between them.
    write_shots(
        folder / "three-scenes.mp4",
        [
            Shot(shape("circle", "red"), 10, (0.08, 0.04)),
            Shot(shape("square", "blue"), 10, (-0.08, 0.05)),
            Shot(shape("triangle", "green"), 10, (0.06, -0.06)),
        ],
        size=(160, 120),
    )
    # A yellow star, then one blue square filmed from two "angles" (near and far) across a cut.
    write_shots(
        folder / "two-angles.mp4",
        [
            Shot(shape("star", "yellow"), 6, (0.05, 0.0)),
            Shot(shape("square", "blue", "large"), 7, (0.05, 0.05)),
            Shot(shape("square", "blue", "large", offset=(0.06, -0.04)), 7, (-0.05, 0.03)),
        ],
        size=(160, 120),
    )
    return folder


@pytest.fixture
def engine(videos: Path, make_settings, demo_encoder):  # type: ignore[no-untyped-def]
    settings = make_settings(model="glimpse-demo")
    library = Library(settings)
    summary = Indexer(library, demo_encoder, settings).run([videos])
    assert summary.failed == [] and summary.indexed == 2
    yield SearchEngine(library, settings, QueryEmbedder(demo_encoder))
    library.close()


def moments_of(engine: SearchEngine, query: str, name: str, **extra) -> list[tuple[float, float]]:  # type: ignore[no-untyped-def]
    page = engine.search(SearchQuery(q=query, media="video", k=50, **extra))
    return sorted((r.start, r.end) for r in page.results if r.path.endswith(name))


def near(span: tuple[float, float], truth: tuple[float, float]) -> bool:
    return abs(span[0] - truth[0]) <= SAMPLING and abs(span[1] - truth[1]) <= SAMPLING


@pytest.mark.parametrize(
    ("query", "truth"),
    [("a red circle", (0.0, 10.0)), ("a blue square", (10.0, 20.0)), ("a green triangle", (20.0, 30.0))],
)
def test_each_scene_is_exactly_one_moment_with_the_scenes_boundaries(engine, query, truth) -> None:  # type: ignore[no-untyped-def]
    (span,) = moments_of(engine, query, "three-scenes.mp4")
    assert near(span, truth), span
    top = engine.search(SearchQuery(q=query, media="video", k=1)).results[0]
    assert top.path.endswith("three-scenes.mp4") and top.start <= top.best_time <= top.end


def test_one_subject_across_a_cut_is_one_moment(engine) -> None:  # type: ignore[no-untyped-def]
    (span,) = moments_of(engine, "a blue square", "two-angles.mp4")
    assert near(span, (6.0, 20.0)), span


def test_a_sequence_query_finds_the_ordered_pair_and_not_the_reversed_one(engine) -> None:  # type: ignore[no-untyped-def]
    page = engine.search(SearchQuery(q="a red circle", then=["a blue square"], within=5, k=10))
    (hit,) = [r for r in page.results if r.path.endswith("three-scenes.mp4")]
    assert hit.steps is not None and len(hit.steps) == 2
    assert near((hit.steps[0]["start"], hit.steps[0]["end"]), (0.0, 10.0))
    assert near((hit.steps[1]["start"], hit.steps[1]["end"]), (10.0, 20.0))
    assert (hit.start, hit.end) == (hit.steps[0]["start"], hit.steps[1]["end"])
    reversed_order = engine.search(SearchQuery(q="a blue square", then=["a red circle"], within=5, k=10))
    assert not [r for r in reversed_order.results if r.path.endswith("three-scenes.mp4")]
    too_far = engine.search(SearchQuery(q="a red circle", then=["a green triangle"], within=5, k=10))
    assert not [r for r in too_far.results if r.path.endswith("three-scenes.mp4")]
    far_enough = engine.search(SearchQuery(q="a red circle", then=["a green triangle"], within=15, k=10))
    assert [r for r in far_enough.results if r.path.endswith("three-scenes.mp4")]


def test_a_sequence_is_as_relevant_as_its_weakest_step_and_relevant_only_keeps_the_relevant_ones(
    engine,
) -> None:  # type: ignore[no-untyped-def]
    # The UI asks with relevant_only on: a chain without a relevance was always cut.
    def relevance_alone(text: str, step: dict) -> float | None:  # type: ignore[type-arg]
        page = engine.search(SearchQuery(q=text, media="video", k=20)).results
        return next(
            r.relevance
            for r in page
            if r.path.endswith("three-scenes.mp4") and near((r.start, r.end), (step["start"], step["end"]))
        )

    for then, within in ((["a green triangle"], 15), (["a blue square"], 5)):
        every = engine.search(SearchQuery(q="a red circle", then=then, within=within, k=10)).results
        (hit,) = [r for r in every if r.path.endswith("three-scenes.mp4")]
        assert hit.steps is not None
        alone = [relevance_alone(t, s) for t, s in zip(["a red circle", *then], hit.steps, strict=True)]
        assert hit.relevance == min(alone), (hit.relevance, alone)  # type: ignore[type-var]
        kept = engine.search(
            SearchQuery(q="a red circle", then=then, within=within, k=10, relevant_only=True)
        ).results
        assert [(r.id, r.start) for r in kept] == [
            (r.id, r.start) for r in every if r.relevance is not None and r.relevance >= 0.5
        ]
        # Red then green: both scenes stand out in this library, so the chain is kept. Red then
        # blue: two-angles.mp4 is all blue square, so a blue square is ordinary here, and cut.
        assert (hit.id in {r.id for r in kept}) == (then == ["a green triangle"]), alone


def test_moments_stay_whole_across_pages_and_with_filters(engine) -> None:  # type: ignore[no-untyped-def]
    whole = engine.search(SearchQuery(q="a blue square", media="video", k=50)).results
    pages, offset = [], 0
    while True:
        page = engine.search(SearchQuery(q="a blue square", media="video", k=1, offset=offset))
        pages += page.results
        if page.next_offset is None:
            break
        offset = page.next_offset
    assert [(r.id, r.start, r.end) for r in pages] == [(r.id, r.start, r.end) for r in whole]
    short = engine.search(
        SearchQuery(q="a blue square", media="video", k=50, filters={"duration": {"lte": 25}})
    ).results
    assert {r.path.rsplit("/", 1)[-1] for r in short} == {"two-angles.mp4"}
    assert near((short[0].start, short[0].end), (6.0, 20.0))
