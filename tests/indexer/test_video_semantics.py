"""With a model that understands shapes (glimpse-demo), describing a shot finds its moment."""

from __future__ import annotations

import pytest

from glimpse.core.library import Library
from glimpse.indexer.pipeline import Indexer
from glimpse.search.embedding import QueryEmbedder
from glimpse.search.engine import SearchEngine
from glimpse.search.query import SearchQuery
from glimpse.training.synthetic import make_videos

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shape_videos(tmp_path_factory):
    return make_videos(tmp_path_factory.mktemp("shape-videos"), seed=3, count=2)


def _unique_shots(videos):
    """(video, start, end, caption) of shots whose caption no other shot anywhere shares."""
    captions = [c for v in videos for _, _, c in v.segments]
    return [(v, s, e, c) for v in videos for s, e, c in v.segments if captions.count(c) == 1]


def test_describing_a_shot_returns_its_video_with_a_moment_around_the_shot(
    shape_videos, demo_encoder, make_settings
):
    settings = make_settings(model="glimpse-demo")
    library = Library(settings)
    try:
        summary = Indexer(library, demo_encoder, settings).run([shape_videos[0].path.parent])
        assert summary.failed == [] and summary.indexed == len(shape_videos)
        engine = SearchEngine(library, settings, QueryEmbedder(demo_encoder))
        shots = _unique_shots(shape_videos)
        found = 0
        for video, start, end, caption in shots:
            top = engine.search(SearchQuery(q=caption, media="video", k=1)).results[0]
            # Right video, and the moment lies within the shot (give or take one 1 s sampling interval).
            found += top.path.endswith(video.path.name) and top.start >= start - 1.0 and top.end <= end + 1.0
    finally:
        library.close()
    assert len(shots) >= 4
    assert found >= 0.75 * len(shots), f"{found} of {len(shots)} shots found"
