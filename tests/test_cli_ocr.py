"""`glimpse index --ocr` reads the text in pictures, and `glimpse search` says where it found it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import save_image
from textpics import text_picture

pytestmark = pytest.mark.slow


def glimpse(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "glimpse", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_index_with_ocr_then_search_prints_where_the_text_was_found(tmp_path: Path):
    media = tmp_path / "media"
    media.mkdir()
    text_picture("PIZZERIA", font_size=44).save(media / "sign.jpg", quality=92)
    for i, colour in enumerate(["red", "green", "blue"]):
        save_image(media / f"{colour}.png", colour, seed=i)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLIMPSE_")}
    env |= {"GLIMPSE_DATA_DIR": str(tmp_path / "data"), "GLIMPSE_WORKERS": "1", "GLIMPSE_PORT": "9"}
    env["GLIMPSE_OCR_BUDGET_SECONDS"] = "60"  # shared test machines: a slow read must not fail this
    model = ["--model", "glimpse-tiny", "--pretrained", "none"]
    done = glimpse(env, "index", str(media), *model, "--ocr", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["indexed"] == 4 and summary["warnings"] == []

    done = glimpse(env, "search", "pizzeria", "-k", "2")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    rows = [i for i, line in enumerate(lines) if line.rstrip().endswith((".jpg", ".png"))]
    assert "sign.jpg" in lines[rows[0]], done.stdout  # the one picture showing the word comes first
    assert lines[rows[0] + 1].strip() == "OCR: 'PIZZERIA'", done.stdout  # and says where it was found

    done = glimpse(env, "search", "pizzeria", "-k", "1", "--json")
    [row] = json.loads(done.stdout)["results"]
    assert row["path"].endswith("sign.jpg") and row["text_matches"][0]["label"] == "OCR: 'PIZZERIA'"
