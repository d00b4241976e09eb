"""OpenMP's and OpenBLAS's idle policy, set before numpy, torch and FAISS load; what a user set
explicitly wins."""

from __future__ import annotations

import os

import pytest

from glimpse.core.runtime import BLAS_IDLE_TIMEOUT, IDLE_SPINS, let_idle_threads_sleep


@pytest.fixture
def clean_env(monkeypatch):
    """Neither variable set; whatever the tests set is undone afterwards (setenv records the
    original state, so the delenv after it is undone too)."""
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_THREAD_TIMEOUT"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    return monkeypatch


def test_idle_threads_spin_briefly_then_sleep(clean_env):
    let_idle_threads_sleep()
    assert os.environ["GOMP_SPINCOUNT"] == str(IDLE_SPINS)
    assert os.environ["OPENBLAS_THREAD_TIMEOUT"] == str(BLAS_IDLE_TIMEOUT)
    assert "OMP_WAIT_POLICY" not in os.environ


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OMP_WAIT_POLICY", "PASSIVE"),
        ("OMP_WAIT_POLICY", "ACTIVE"),
        ("GOMP_SPINCOUNT", "5"),
        ("OPENBLAS_THREAD_TIMEOUT", "28"),
    ],
)
def test_an_explicit_openmp_setting_is_left_alone(clean_env, name, value):
    clean_env.setenv(name, value)
    let_idle_threads_sleep()
    assert os.environ[name] == value
    if name != "OPENBLAS_THREAD_TIMEOUT":
        assert os.environ.get("GOMP_SPINCOUNT", value) == value


def test_the_commands_that_load_the_models_set_it_before_numpy_is_imported():
    # OpenBLAS reads its variable when numpy loads: importing the CLI and the server must not load it
    import subprocess
    import sys

    code = "import sys, glimpse.cli, glimpse.search.api.server; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
