"""Shared fixtures: real SQLite and PostgreSQL catalogues, the tiny model, generated media."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from glimpse.core.encoder import Encoder
from glimpse.core.library import Library
from glimpse.core.settings import Settings
from glimpse.training.synthetic import COLOURS  # the same named colours the demo model learned

POSTGRES_URL = os.environ.get(
    "GLIMPSE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(_libpq_url(POSTGRES_URL), connect_timeout=3):
            return True
    except Exception:  # noqa: BLE001
        return False


def _libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture(scope="session")
def postgres_server() -> str:
    if not _postgres_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL} (CI must start it)")
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL}")
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    import psycopg

    name = f"glimpse_test_{uuid.uuid4().hex[:12]}"
    admin = _libpq_url(postgres_server)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _db = postgres_server.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """Each test using this runs twice: on SQLite (None = the default file) and on PostgreSQL."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def tiny_encoder() -> Encoder:
    """The tiny random-init model: fast, deterministic, meaningless vectors (plumbing tests)."""
    return Encoder("glimpse-tiny", None, device="cpu").load()


@pytest.fixture(scope="session")
def demo_encoder() -> Encoder:
    """The shipped glimpse-demo model: trained on shapes, so "red circle" means something (semantic tests)."""
    return Encoder("glimpse-demo", None, device="cpu").load()


def tiny_settings(data_dir: Path, database_url: str | None = None, **overrides) -> Settings:
    """Settings for a test library: glimpse-tiny (random init) on the CPU, one decode worker."""
    values = {
        "data_dir": data_dir,
        "database_url": database_url,
        "model": "glimpse-tiny",
        "pretrained": None,
        "device": "cpu",
        "batch_size": 8,
        "workers": 1,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def make_settings(tmp_path: Path, database_url: str | None) -> Callable[..., Settings]:
    def make(**overrides) -> Settings:
        return tiny_settings(tmp_path / "library", database_url, **overrides)

    return make


@pytest.fixture
def library(make_settings) -> Iterator[Library]:
    lib = Library(make_settings())
    yield lib
    lib.close()


def save_image(
    path: Path,
    colour: str | tuple = "red",
    size: tuple[int, int] = (96, 72),
    fmt: str | None = None,
    seed: int = 0,
) -> Path:
    """A small image of a colour with some texture (so images differ), saved in any format."""
    rgb = COLOURS[colour] if isinstance(colour, str) else colour
    rng = np.random.default_rng(seed)
    arr = np.clip(np.array(rgb)[None, None, :] + rng.integers(-20, 20, (size[1], size[0], 3)), 0, 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8)).save(path, fmt)
    return path


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """Six good images in a nested folder."""
    root = tmp_path / "photos"
    for i, colour in enumerate(["red", "green", "blue", "yellow", "black", "white"]):
        sub = root / ("nested" if i % 2 else "")
        save_image(sub / f"{colour}.{'png' if i % 3 == 0 else 'jpg'}", colour, seed=i)
    return root


@pytest.fixture(scope="session")
def shape_pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 captioned 64 px shape images and their pairs.csv: enough for real training steps in seconds.

    Kept here rather than in tests/training/conftest.py: a second conftest.py would take over the
    module name that ``from conftest import save_image`` relies on.
    """
    from glimpse.training.synthetic import make_pairs

    return make_pairs(tmp_path_factory.mktemp("pairs"), 40, seed=7, image_size=64)


RAY_MISSING = "the ray extra is not installed (pip install 'glimpse-search[ray]')"


def _ray_env() -> dict[str, str]:
    from raycluster import cluster_env

    # setdefault: importing this module again (or a developer's own settings) keeps one value.
    return {name: os.environ.setdefault(name, value) for name, value in cluster_env().items()}


# Ray reads these once, when it is imported, and any test may be the first to import it: every
# Ray of this session (the test cluster, this process as its driver, the glimpse processes the
# tests start) stays on the loopback address with the session's own token.
RAY_ENV = _ray_env()


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[object]:
    """A real local Ray cluster (head: 2 CPUs, 300 MB object store) for the whole session; this
    test process connects to it as a driver, as `glimpse index --ray ADDRESS` does."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        pytest.skip(RAY_MISSING)
    from raycluster import RayCluster

    cluster = RayCluster(env=RAY_ENV)
    try:
        cluster.start_head()
        yield cluster
    finally:
        cluster.stop()
