"""The library: migrations, one model per library, one writer at a time, self-repair on open."""

import subprocess
import sys

import pytest
from sqlalchemy import inspect

from conftest import tiny_settings
from glimpse.core.db import alembic_config, current_revision, make_engine
from glimpse.core.library import Library, LibraryBusy, ModelMismatch
from glimpse.core.models import ModelRef


def head_revision() -> str:
    """The newest revision in migrations/versions (read from the scripts, not hard-coded)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(make_engine("sqlite://"))).get_current_head()
    assert head is not None
    return head


def test_a_new_library_is_migrated_to_head_on_open(library):
    assert current_revision(library.engine) == head_revision()
    tables = set(inspect(library.engine).get_table_names())
    assert {"assets", "units", "library", "index_runs", "media_roots"} <= tables


def test_db_upgrade_command_runs_the_migrations(make_settings, tmp_path):
    s = make_settings()
    env_args = ["--data-dir", str(s.data_dir)] + (
        ["--database-url", s.database_url] if s.database_url else []
    )
    done = subprocess.run(
        [sys.executable, "-m", "glimpse", *env_args, "db", "upgrade"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert f"revision {head_revision()}" in done.stdout


def test_refuses_a_second_model_with_a_message_naming_both(library):
    library.bind_model(ModelRef("glimpse-tiny", None), 128)
    with pytest.raises(ModelMismatch, match=r"glimpse-tiny.*ViT-B-32"):
        library.bind_model(ModelRef("ViT-B-32", "laion2b_s34b_b79k"), 512)


def test_a_second_writer_fails_fast_naming_the_first(library, make_settings):
    other = Library(make_settings())
    with library.writer_lock(), pytest.raises(LibraryBusy, match="another indexer"), other.writer_lock():
        pass
    with other.writer_lock():  # free again once the first is done
        pass
    other.close()


def test_two_services_migrating_a_new_postgres_database_at_once_both_succeed(postgres_url, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "glimpse",
        "--data-dir",
        str(tmp_path),
        "--database-url",
        postgres_url,
        "db",
        "upgrade",
    ]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)
    ]
    results = [(*p.communicate(timeout=120), p.returncode) for p in procs]
    assert all(code == 0 for _, _, code in results), results
    from glimpse.core.db import make_engine

    assert current_revision(make_engine(postgres_url)) == head_revision()


def test_an_unreachable_database_is_a_clear_error_after_retries(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "glimpse",
        "--data-dir",
        str(tmp_path),
        "--database-url",
        "postgresql+psycopg://postgres@127.0.0.1:1/nowhere",
        "db",
        "upgrade",
    ]
    env = {**__import__("os").environ, "GLIMPSE_DB_WAIT_SECONDS": "2"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 1
    assert "did not answer" in done.stderr and "127.0.0.1:1" in done.stderr
    assert "Traceback" not in done.stderr


def test_migrations_keep_unit_ids_from_ever_being_handed_out_twice(tmp_path):
    """SQLite's AUTOINCREMENT on units survives every migration (a rebuilt table would lose it,
    and a deleted unit's id, held by a client, could then name another picture)."""
    from sqlalchemy import text

    lib = Library(tiny_settings(tmp_path / "library"))
    try:
        with lib.engine.connect() as conn:
            ddl = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'units'")).scalar_one()
        assert "AUTOINCREMENT" in ddl.upper()
    finally:
        lib.close()
