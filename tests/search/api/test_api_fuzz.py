"""The API fuzzed from outside: schemathesis against a real `glimpse serve` on 127.0.0.1, every
check, a fixed seed (bench/fuzz_api.py with few cases; run that script alone for the long run).

Every response must be documented by /openapi.json (status, content type, headers, body schema),
no request may cause a server error, schema-invalid requests must be refused and keys enforced.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

pytest.importorskip("schemathesis", reason="schemathesis is in the dev extra: pip install -e '.[dev]'")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_schemathesis_finds_no_server_error_undocumented_status_or_schema_violation(tmp_path):
    figures_path = tmp_path / "fuzz.json"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "fuzz_api.py"),
            "--examples",
            "8",
            "--images",
            "6",
            "--workers",
            "1",
            "--json",
            str(figures_path),
        ],
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert figures_path.exists(), done.stdout[-5000:] + done.stderr[-5000:]
    figures = json.loads(figures_path.read_text())
    report = done.stdout[-20000:]
    assert figures["operations"] >= 12, report
    assert figures["cases"] >= 300, report  # a few hundred requests, every operation and phase
    assert figures["server_errors"] == 0, report
    assert figures["undocumented_statuses"] == 0, report
    assert figures["schema_violations"] == 0, report
    assert (figures["other_failures"], figures["errors"], figures["failures"]) == (0, 0, []), report
    assert done.returncode == 0, report
