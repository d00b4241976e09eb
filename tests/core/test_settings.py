"""Settings read from GLIMPSE_* variables mean the same as the CLI flags."""

from __future__ import annotations

import pytest

from glimpse.core.settings import Settings


@pytest.mark.parametrize("spelling", ["none", "None", " NONE "])
def test_pretrained_none_from_the_environment_means_random_init(monkeypatch, spelling):
    monkeypatch.setenv("GLIMPSE_PRETRAINED", spelling)
    assert Settings().pretrained == "none"


def test_list_settings_split_on_commas(monkeypatch, tmp_path):
    monkeypatch.setenv("GLIMPSE_API_KEYS", "k1, k2,")
    monkeypatch.setenv("GLIMPSE_MEDIA_ROOTS", f"{tmp_path / 'a'},{tmp_path / 'b'}")
    s = Settings()
    assert s.api_keys == ["k1", "k2"]
    assert s.media_roots == [tmp_path / "a", tmp_path / "b"]


def test_default_database_is_sqlite_inside_the_data_dir(tmp_path):
    assert Settings(data_dir=tmp_path).db_url == f"sqlite:///{tmp_path.resolve() / 'catalogue.db'}"


def test_an_empty_pretrained_means_the_models_own_default(monkeypatch):
    monkeypatch.setenv("GLIMPSE_PRETRAINED", "")
    assert Settings().pretrained is None
