"""Fuzz the live API with schemathesis: every check, a fixed seed, a real uvicorn server.

    .venv/bin/python bench/fuzz_api.py                      # the long run: 300 cases per operation
    .venv/bin/python bench/fuzz_api.py --examples 12        # about what CI runs (test_api_fuzz.py)
    .venv/bin/python bench/fuzz_api.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/db

1. Builds a small library in a temporary folder: generated product images with a catalogue
   manifest (titles, prices, categories, SKUs), indexed with glimpse-tiny (random init: the API's
   behaviour, not the ranking, is under test).
2. Starts `glimpse serve` on 127.0.0.1 with an API key and waits for /readyz.
3. Runs `schemathesis run <url>/openapi.json --checks all` (every phase: the document's examples,
   boundary coverage, random fuzzing, stateful links) with a fixed seed and bench/schemathesis.toml.
4. Prints the cases sent and the failures by kind: server errors, statuses the document does not
   list, responses that violate the document, and every other check; exits 1 on any failure.
   `--json PATH` writes the same figures.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
API_KEY = "fuzz-key-0123456789"
# schemathesis failure types, grouped into the figures the README reports.
KINDS = {
    "ServerError": "server_errors",
    "UndefinedStatusCode": "undocumented_statuses",
    "JsonSchemaError": "schema_violations",
    "MalformedJson": "schema_violations",
    "UndefinedContentType": "schema_violations",
    "MissingContentType": "schema_violations",
    "MissingHeaders": "schema_violations",
    "MissingHeaderNotRejected": "schema_violations",
}


def build_library(root: Path, images: int, database_url: str | None) -> Path:
    """A library of ``images`` generated product photos with a manifest; returns its data folder."""
    import numpy as np
    from PIL import Image

    from glimpse.core.encoder import Encoder
    from glimpse.core.library import Library
    from glimpse.core.settings import Settings
    from glimpse.indexer.manifest import import_manifest
    from glimpse.indexer.pipeline import Indexer

    photos, data = root / "photos", root / "library"
    photos.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(images):
        pixels = rng.integers(0, 255, (48 + i % 5, 64, 3), dtype=np.uint8)
        name = f"item-{i:02d}.{'png' if i % 2 else 'jpg'}"
        Image.fromarray(pixels).save(photos / name)
        rows.append(
            {
                "path": name,
                "title": f"Product {i}",
                "price": 5.0 + 7 * i,
                "category": ["shoes", "bags", "shirts"][i % 3],
                "sku": f"SKU-{i:03d}",
            }
        )
    with open(photos / "catalogue.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    settings = Settings(
        data_dir=data,
        database_url=database_url,
        model="glimpse-tiny",
        pretrained=None,
        device="cpu",
        workers=1,
    )
    library = Library(settings)
    try:
        Indexer(library, Encoder("glimpse-tiny", None, device="cpu").load(), settings).run([photos])
        import_manifest(library, photos / "catalogue.csv")
    finally:
        library.close()
    return data


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(data: Path, port: int, database_url: str | None) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLIMPSE_")}
    env.update(GLIMPSE_DEVICE="cpu", GLIMPSE_API_KEYS=API_KEY)
    if database_url:
        env["GLIMPSE_DATABASE_URL"] = database_url
    log = open(data / "serve.log", "w")  # noqa: SIM115 - lives as long as the server
    return subprocess.Popen(
        [sys.executable, "-m", "glimpse", "--data-dir", str(data), "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"glimpse serve exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=30).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit("glimpse serve did not become ready")


def run_schemathesis(url: str, examples: int, seed: int, workers: int, report: Path) -> dict[str, object]:
    """Run every check against ``url``; the figures of its JSON report."""
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(HERE / "schemathesis.toml"),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--seed",
        str(seed),
        "--max-examples",
        str(examples),
        "--workers",
        str(workers),
        "--header",
        f"Authorization: Bearer {API_KEY}",
        "--report",
        "json",
        "--report-json-path",
        str(report),
        "--request-timeout",
        "60",
        "--suppress-health-check",
        "too_slow",
    ]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=report.parent)
    seconds = time.monotonic() - started
    if not report.exists():
        raise SystemExit(
            f"schemathesis wrote no report (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    data = json.loads(report.read_text())
    figures: dict[str, object] = {
        "schemathesis": data["schemathesis_version"],
        "seed": seed,
        "max_examples": examples,
        "operations": data["operations"]["tested"],
        "cases": data["test_cases"]["generated"],
        "seconds": round(seconds, 1),
        "server_errors": 0,
        "undocumented_statuses": 0,
        "schema_violations": 0,
        "other_failures": 0,
        "errors": len(data["errors"]),
        "failures": [],
        "exit_code": done.returncode,
    }
    for failure in data["failures"]:
        kind = KINDS.get(failure["type"], "other_failures")
        figures[kind] = int(figures[kind]) + int(failure["count"])  # type: ignore[call-overload]
        figures["failures"].append(  # type: ignore[attr-defined]
            f"{failure['code']} {failure['title']}: {', '.join(failure['operations'])}"
        )
    if done.returncode and not data["failures"] and not data["errors"]:
        figures["errors"] = 1
        figures["failures"].append(done.stdout[-4000:])  # type: ignore[attr-defined]
    if data["failures"] or data["errors"]:
        figures["output"] = done.stdout[-20000:]
    return figures


def fuzz(examples: int, seed: int, images: int, workers: int, database_url: str | None) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="glimpse-fuzz-") as tmp:
        root = Path(tmp)
        data = build_library(root, images, database_url)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start_server(data, port, database_url)
        try:
            wait_ready(url, proc)
            return run_schemathesis(url, examples, seed, workers, root / "report.json")
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--examples", type=int, default=300, help="cases per operation and phase (default 300)"
    )
    parser.add_argument("--seed", type=int, default=20261205)
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (default: SQLite)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    figures = fuzz(args.examples, args.seed, args.images, args.workers, args.database_url)
    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(
        f"schemathesis {figures['schemathesis']}, every check, seed {figures['seed']}, "
        f"max {figures['max_examples']} examples per operation, {backend}: "
        f"{figures['cases']} cases over {figures['operations']} operations in {figures['seconds']} s"
    )
    for kind in ("server_errors", "undocumented_statuses", "schema_violations", "other_failures", "errors"):
        print(f"  {kind.replace('_', ' ')}: {figures[kind]}")
    for line in figures["failures"]:  # type: ignore[attr-defined]
        print(f"  - {line}")
    if "output" in figures:
        print(figures["output"])
    if args.json:
        args.json.write_text(json.dumps({k: v for k, v in figures.items() if k != "output"}, indent=2))
    sys.exit(1 if figures["failures"] or figures["errors"] else 0)


if __name__ == "__main__":
    main()
