"""OpenMP's idle policy, set before torch and FAISS load; what a user set explicitly wins."""

from __future__ import annotations

import os

import pytest

from glimpse.core.runtime import IDLE_SPINS, let_idle_openmp_threads_sleep


@pytest.fixture
def clean_env(monkeypatch):
    """Neither variable set; whatever the tests set is undone afterwards (setenv records the
    original state, so the delenv after it is undone too)."""
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    return monkeypatch


def test_idle_threads_spin_briefly_then_sleep(clean_env):
    let_idle_openmp_threads_sleep()
    assert os.environ["GOMP_SPINCOUNT"] == str(IDLE_SPINS)
    assert "OMP_WAIT_POLICY" not in os.environ


@pytest.mark.parametrize(
    ("name", "value"),
    [("OMP_WAIT_POLICY", "PASSIVE"), ("OMP_WAIT_POLICY", "ACTIVE"), ("GOMP_SPINCOUNT", "5")],
)
def test_an_explicit_openmp_setting_is_left_alone(clean_env, name, value):
    clean_env.setenv(name, value)
    let_idle_openmp_threads_sleep()
    assert os.environ[name] == value
    assert os.environ.get("GOMP_SPINCOUNT", value) == value
