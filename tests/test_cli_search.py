"""`glimpse search` asks the library's running API when there is one (fast: no model to load), and
loads the model itself otherwise; both print the same results."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import save_image

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(data_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLIMPSE_")}
    return env | {"GLIMPSE_DATA_DIR": str(data_dir), "GLIMPSE_PORT": str(port), "GLIMPSE_WORKERS": "1"}


def glimpse(env: dict[str, str], *args: str, importtime: bool = False) -> subprocess.CompletedProcess[str]:
    flags = ["-X", "importtime"] if importtime else []
    return subprocess.run(
        [sys.executable, *flags, "-m", "glimpse", *args], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli-search")
    for i, colour in enumerate(["red", "green", "blue", "yellow"]):
        save_image(root / "media" / f"{colour}.png", colour, seed=i)
    env = env_for(root / "data", free_port())
    done = glimpse(env, "index", str(root / "media"), "--model", "glimpse-tiny", "--pretrained", "none")
    assert done.returncode == 0, done.stderr
    return root / "data"


@pytest.fixture(scope="module")
def server(library: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "glimpse", "serve", "--port", str(port)],
            env=env_for(library, port),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            raise AssertionError(log.read_text()[-2000:])
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def imported_torch(done: subprocess.CompletedProcess[str]) -> bool:
    """Whether the process imported PyTorch (read from `python -X importtime`'s report)."""
    return any(re.search(r"\|\s+torch$", line.rstrip()) for line in done.stderr.splitlines())


def test_with_a_running_api_for_this_library_the_cli_asks_it_and_loads_no_model(library, server) -> None:
    env = env_for(library, server)
    via_api = glimpse(env, "search", "a red thing", "-k", "3", "--json", importtime=True)
    assert via_api.returncode == 0, via_api.stderr[-2000:]
    assert not imported_torch(via_api)
    local = glimpse(env, "search", "a red thing", "-k", "3", "--json", "--local", importtime=True)
    assert local.returncode == 0 and imported_torch(local)
    assert json.loads(via_api.stdout) == json.loads(local.stdout)


def test_an_api_serving_another_library_is_not_asked(library, server, tmp_path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "library.id").write_text("not-the-same-library\n")
    # This library's id differs from the server's: the CLI must not take the server's answers.
    env = env_for(library, server)
    (library / "library.id").rename(library / "library.id.bak")
    (library / "library.id").write_text("another-library\n")
    try:
        done = glimpse(env, "search", "a red thing", "-k", "2", importtime=True)
    finally:
        (library / "library.id.bak").replace(library / "library.id")
    assert done.returncode == 0 and imported_torch(done)


def test_the_apis_refusal_is_shown_as_the_clis_error(library, server, tmp_path) -> None:
    fake = tmp_path / "notes.jpg"
    fake.write_text("not an image")
    done = glimpse(env_for(library, server), "search", "--image", str(fake))
    assert done.returncode == 1
    assert "not an image in an accepted format" in done.stderr


def test_offset_pages_the_same_ranking_through_the_api_and_locally(library, server) -> None:
    env = env_for(library, server)
    for where in ([], ["--local"]):
        whole = glimpse(env, "search", "a red thing", "-k", "3", "--json", *where)
        page = glimpse(env, "search", "a red thing", "-k", "2", "--offset", "1", "--json", *where)
        assert whole.returncode == 0 and page.returncode == 0, (whole.stderr, page.stderr)
        ids = [r["id"] for r in json.loads(whole.stdout)["results"]]
        assert [r["id"] for r in json.loads(page.stdout)["results"]] == ids[1:3]
    refused = glimpse(env, "search", "a red thing", "--offset", "-1")
    assert refused.returncode != 0 and "offset" in refused.stderr.lower()
