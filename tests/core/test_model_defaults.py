"""Each model has its own default weights; a tag it does not have is refused with its valid tags."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
import torch
from sqlalchemy import text

from glimpse.core.db import make_engine, upgrade
from glimpse.core.encoder import Encoder
from glimpse.core.library import Library
from glimpse.core.models import (
    ModelLoadError,
    ModelRef,
    canonical_pretrained,
    create_model,
    default_pretrained,
)
from tests.conftest import save_image, tiny_settings


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("glimpse-demo", "bundled"),
        ("glimpse-tiny", None),
        ("ViT-B-32", "laion2b_s34b_b79k"),
        ("ViT-L-14", "laion2b_s32b_b82k"),  # not B-32's tag, which L-14 does not have
        ("RN50", "openai"),
    ],
)
def test_the_default_weights_belong_to_the_model(model, expected):
    assert default_pretrained(model) == expected
    assert canonical_pretrained(model, None) == expected


def test_a_tag_the_model_does_not_have_is_refused_listing_its_valid_tags():
    with pytest.raises(ModelLoadError) as caught:
        canonical_pretrained("ViT-L-14", "laion2b_s34b_b79k")  # ViT-B-32's tag
    message = str(caught.value)
    assert "laion2b_s32b_b82k" in message and "openai" in message and "valid tags" in message


def test_bundled_is_refused_for_a_model_that_ships_no_weights():
    with pytest.raises(ModelLoadError, match="no bundled weights"):
        canonical_pretrained("ViT-B-32", "bundled")


@pytest.mark.parametrize("model", ["glimpse-demo", "glimpse-tiny", "ViT-B-32", "RN50"])
@pytest.mark.parametrize("pretrained", [None, "none", "NONE"])
def test_canonical_weights_are_stable(model, pretrained):
    once = canonical_pretrained(model, pretrained)
    assert canonical_pretrained(model, once) == once


def test_pretrained_none_is_a_random_init_for_the_bundled_model_too():
    random_demo = create_model("glimpse-demo", "none")
    tiny = create_model("glimpse-tiny")  # same architecture, same seed
    bundled = create_model("glimpse-demo")
    for (name, a), (_, b) in zip(random_demo.state_dict().items(), tiny.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert not torch.equal(random_demo.visual.conv1.weight, bundled.visual.conv1.weight)
    assert Encoder("glimpse-demo", "none").ref == ModelRef("glimpse-demo", "none")
    assert Encoder("glimpse-demo", None).ref == ModelRef("glimpse-demo", "bundled")


def test_offline_a_model_hub_tag_fails_fast_with_advice_that_works(monkeypatch):
    # This machine has no route to the model hub, as for an offline user: the answer must come in
    # seconds (not a minute of retries) and name the bundled model.
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    started = time.monotonic()
    with pytest.raises(ModelLoadError) as caught:
        create_model("RN50")
    assert time.monotonic() - started < 20
    assert "--model glimpse-demo" in str(caught.value) and "--pretrained /path/to/weights" in str(
        caught.value
    )


def _glimpse(data_dir, *args):
    cmd = [sys.executable, "-m", "glimpse", "--data-dir", str(data_dir), *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GLIMPSE_", "HF_HUB_OFFLINE"))}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


def test_cli_offline_default_fails_fast_and_its_advice_indexes(tmp_path):
    save_image(tmp_path / "media" / "a.png", "red")
    started = time.monotonic()
    failed = _glimpse(tmp_path / "lib", "index", str(tmp_path / "media"))  # ViT-B-32, LAION-2B tag
    assert failed.returncode == 1 and time.monotonic() - started < 60
    assert "Traceback" not in failed.stderr and "--model glimpse-demo" in failed.stderr
    advised = _glimpse(
        tmp_path / "lib", "index", str(tmp_path / "media"), "--model", "glimpse-demo", "--json"
    )
    assert advised.returncode == 0, advised.stderr
    tiny = _glimpse(
        tmp_path / "lib-tiny", "index", str(tmp_path / "media"), "--model", "glimpse-tiny", "--json"
    )
    assert tiny.returncode == 0, tiny.stderr


def test_an_old_catalogue_keeps_the_meaning_of_its_recorded_weights(tmp_path, database_url):
    # Before 0005 a NULL meant the bundled checkpoint for glimpse-demo and random init elsewhere.
    for model, expected in [("glimpse-demo", "bundled"), ("ViT-B-32", "none"), ("glimpse-tiny", None)]:
        s = tiny_settings(tmp_path / model, database_url)
        s.data_dir.mkdir(parents=True)
        engine = make_engine(s.db_url)
        _reset(engine)  # a fresh catalogue per model
        upgrade(engine, "0004")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO library (id, model_name, pretrained, dim, created_at) VALUES (1, :m, NULL, 8, :t)"
                ),
                {"m": model, "t": datetime(2026, 1, 1, tzinfo=UTC)},
            )
        upgrade(engine)
        library = Library(s)
        assert library.library_model() == ModelRef(model, expected)
        assert canonical_pretrained(model, expected) == expected
        library.close()
        engine.dispose()


def _reset(engine):
    import glimpse.core.ocr_text  # noqa: F401 - its tables join the metadata, or PostgreSQL keeps them and their keys on units
    from glimpse.core.catalogue import Base

    Base.metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
