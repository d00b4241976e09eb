"""OpenMP's and OpenBLAS's idle policy, set before numpy, torch and FAISS load; what a user set
explicitly wins."""

from __future__ import annotations

import json
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


def test_a_query_process_runs_blas_products_in_the_calling_thread():
    # In a fresh process (the limit is process-wide): every BLAS library numpy and FAISS loaded,
    # at one thread after the call, whatever it was before.
    import subprocess
    import sys

    code = (
        "import json; from glimpse.core.runtime import keep_blas_in_calling_thread as keep;"
        "from threadpoolctl import threadpool_info; keep();"
        "print(json.dumps([(i['filepath'], i['num_threads']) for i in threadpool_info() if i['user_api'] == 'blas']))"
    )
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    libraries = json.loads(out.stdout)
    assert any("numpy" in path for path, _ in libraries), libraries  # numpy's own OpenBLAS was found
    assert all(threads == 1 for _, threads in libraries), libraries


def test_glimpse_serve_limits_blas_before_it_serves(tmp_path):
    # run_server, up to the point where uvicorn would take over (in a fresh process: the limit
    # is process-wide): by then every BLAS library is at one thread.
    import subprocess
    import sys

    code = (
        "import json, sys, uvicorn; from threadpoolctl import threadpool_info;"
        "from glimpse.core.settings import Settings; from glimpse.search.api import server;"
        "uvicorn.run = lambda app, **kw: print(json.dumps("
        "[i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas']));"
        "server.run_server(Settings(data_dir=sys.argv[1]))"
    )
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2"}
    env.pop("GLIMPSE_HOST", None)
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "data")],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    threads = json.loads(out.stdout.strip().splitlines()[-1])
    assert threads and all(t == 1 for t in threads), threads


_IN_CALLING_THREAD = """
import json, threading, torch
from glimpse.core.runtime import torch_in_calling_thread
seen = {"before": torch.get_num_threads()}
def other():
    seen["other thread, meanwhile"] = torch.get_num_threads()
with torch_in_calling_thread() as alone:
    seen["alone"] = alone
    seen["inside"] = torch.get_num_threads()
    t = threading.Thread(target=other)
    t.start()
    t.join()
seen["after"] = torch.get_num_threads()
print(json.dumps(seen))
"""


def test_torch_runs_in_the_calling_thread_only_inside_the_block_and_other_threads_keep_the_pool():
    # In a fresh process with a pool of two, so that one thread is a change (thread counts are
    # process state).
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    out = subprocess.run(
        [sys.executable, "-c", _IN_CALLING_THREAD], capture_output=True, text=True, check=True, env=env
    )
    seen = json.loads(out.stdout)
    assert seen == {"before": 2, "alone": True, "inside": 1, "other thread, meanwhile": 2, "after": 2}


def test_without_torch_the_block_changes_nothing():
    import subprocess
    import sys

    code = (
        "import sys; from glimpse.core.runtime import torch_in_calling_thread\n"
        "with torch_in_calling_thread() as alone: print(alone, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
