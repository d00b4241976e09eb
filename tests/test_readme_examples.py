"""The README's shell and curl examples are tests: a README that drifts from the product fails CI.

Every ```bash block of README.md is read. By default each of its commands runs, as written, against
a demo library (the one `make demo` builds, smaller) served by a real `glimpse serve`: `glimpse ...`
runs the installed CLI on that library, `curl ...` calls the running API (its `127.0.0.1:8000` is
rewritten to the test server's port) and must answer 2xx, pipes included. A block that cannot run
here says so in an HTML comment on the line before it, with the reason:

    <!-- readme-test: parse-only (downloads a model) -->   flags checked, nothing run
    <!-- readme-test: skip (needs a Ray cluster) -->        not checked at all

"parse-only" still checks what can be checked offline: the shell parses it, each `glimpse`
subcommand exists and accepts every `--option` written, and each `make` target exists.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent
FENCE = re.compile(r"^```(\w*)\s*$")
ANNOTATION = re.compile(r"<!--\s*readme-test:\s*(parse-only|skip)\s*\((.+?)\)\s*-->")
# Commands a runnable block may use; anything else must be annotated (so nothing is silently unrun).
RUNNABLE = {"glimpse", "curl", "source"}


@dataclass(frozen=True)
class Example:
    line: int  # 1-based line of the command's first line in README.md
    command: str  # continuation lines joined, comments dropped
    mode: str  # "run" | "parse-only" | "skip"

    def __str__(self) -> str:
        return f"README.md:{self.line}: {self.command}"


def read_examples(text: str) -> list[Example]:
    """The commands of every ```bash block, with the block's mode; raises on an unclosed fence."""
    examples: list[Example] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        start, lang = i, fence.group(1)
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        if end is None:
            raise ValueError(f"README.md:{start + 1}: unclosed code fence")
        if lang in ("bash", "sh", "shell"):
            before = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
            note = ANNOTATION.search(before)
            mode = note.group(1) if note else "run"
            examples.extend(_commands(lines[start + 1 : end], start + 2, mode))
        i = end + 1
    return examples


def _commands(block: list[str], first_line: int, mode: str) -> list[Example]:
    out: list[Example] = []
    pending: list[str] = []
    at = first_line
    for offset, raw in enumerate(block):
        if not pending:
            at = first_line + offset
        pending.append(raw.rstrip().removesuffix("\\"))
        if raw.rstrip().endswith("\\"):
            continue
        joined = " ".join(part.strip() for part in pending)
        pending = []
        if shlex.split(joined, comments=True):
            out.append(Example(at, _strip_comment(joined), mode))
    return out


def _strip_comment(line: str) -> str:
    """The command without its trailing `# comment` (a '#' inside quotes is kept)."""
    for cut in range(1, len(line) + 1):
        if line[cut - 1] == "#" and (cut == 1 or line[cut - 2].isspace()):
            head = line[: cut - 1]
            try:
                shlex.split(head)
            except ValueError:
                continue  # the '#' is inside quotes
            return head.strip()
    return line.strip()


def _program(words: list[str]) -> tuple[list[str], list[str]]:
    """(leading VAR=value assignments, the command's words)."""
    i = 0
    while i < len(words) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[i]):
        i += 1
    return words[:i], words[i:]


EXAMPLES = read_examples(README.read_text(encoding="utf-8"))


def test_the_readme_has_runnable_examples_and_every_other_block_says_why():
    runnable = [e for e in EXAMPLES if e.mode == "run"]
    assert len(runnable) >= 8, [str(e) for e in runnable]
    for example in runnable:
        _, words = _program(shlex.split(example.command.split("|")[0]))
        assert words and words[0] in RUNNABLE, (
            f"{example}: '{words[0] if words else ''}' cannot run in the README test; annotate the "
            "block with <!-- readme-test: parse-only (why) --> or skip (why)"
        )


@pytest.mark.parametrize("example", [e for e in EXAMPLES if e.mode != "skip"], ids=str)
def test_every_example_parses_and_names_real_commands_and_options(example: Example):
    check = subprocess.run(["bash", "-n", "-c", example.command], capture_output=True, text=True)
    assert check.returncode == 0, f"{example}: {check.stderr}"
    for part in re.split(r"\s*(?:\|\||&&|\||;)\s*", example.command):
        _, words = _program(shlex.split(part))
        if not words:
            continue
        if words[0] == "glimpse":
            _check_glimpse_usage(example, words[1:])
        elif words[0] == "make":
            for target in (w for w in words[1:] if not w.startswith("-") and "=" not in w):
                assert re.search(rf"^{re.escape(target)}:", (ROOT / "Makefile").read_text(), re.M), (
                    f"{example}: no make target '{target}'"
                )


def _check_glimpse_usage(example: Example, args: list[str]) -> None:
    """Walk `glimpse [OPTS] SUB [OPTS] ...`: each subcommand exists, each --option is in its help."""
    command: list[str] = []
    i = 0
    while i < len(args):
        word = args[i]
        if word.startswith("--") and len(word) > 2:
            option = word.split("=", 1)[0]
            line = _option_line(tuple(command), option)
            assert line is not None, f"{example}: `glimpse {' '.join(command)}` has no option {option}"
            # An option shown with a metavar other than <bool> (<str>, <path>, <int>...) takes a value.
            metavar = re.search(rf"{re.escape(option)}\b[^<]*?<(\w+)>", line)
            if "=" not in word and metavar and metavar.group(1) != "bool":
                i += 1
        elif not word.startswith("-") and word in _subcommands(tuple(command)):
            command.append(word)
        elif not command:
            raise AssertionError(f"{example}: glimpse has no subcommand '{word}'")
        i += 1
    assert command or "--help" in args, f"{example}: no glimpse subcommand"


def _option_line(command: tuple[str, ...], option: str) -> str | None:
    return next((ln for ln in _help(command).splitlines() if re.search(rf"{re.escape(option)}\b", ln)), None)


@cache
def _help(command: tuple[str, ...]) -> str:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    done = subprocess.run(
        [str(BIN / "glimpse"), *command, "--help"], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@cache
def _subcommands(command: tuple[str, ...]) -> set[str]:
    # Typer lists subcommands in a "Commands" panel: the first word of each of its rows.
    text = _help(command)
    if "Commands" not in text:
        return set()
    panel = text.split("Commands", 1)[1]
    return {m.group(1) for m in re.finditer(r"^\W*\s([a-z][a-z0-9-]*)\s{2,}", panel, re.M)}


# --- running the examples ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def demo_api(tmp_path_factory):
    """A demo library (built as `make demo` builds it, smaller) and a real `glimpse serve` over it."""
    home = tmp_path_factory.mktemp("readme")
    env = {
        **os.environ,
        "GLIMPSE_DATA_DIR": str(home / "data"),
        "GLIMPSE_WORKERS": "1",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("GLIMPSE_API_KEYS", None)
    built = subprocess.run(
        [str(BIN / "glimpse"), "demo", "--items", "24", "--videos", "1", "--no-serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr
    port = _free_port()
    env["GLIMPSE_API_URL"] = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(BIN / "glimpse"), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline, "the API did not become ready"
            time.sleep(0.5)
        yield env, port
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("example", [e for e in EXAMPLES if e.mode == "run"], ids=str)
def test_every_runnable_example_works_as_written_against_the_demo(example: Example, demo_api):
    env, port = demo_api
    command = example.command.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    # curl: fail on an HTTP error status (the README's examples must all succeed), show the body.
    command = re.sub(r"(^|[|;&]\s*)curl ", r"\1curl --fail-with-body ", command)
    if command.startswith("source "):
        return  # the venv is already this interpreter's
    assert shutil.which("curl"), "curl is needed for the README's API examples"
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{example}\nstdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-2000:]}"
    assert done.stdout.strip() or done.stderr.strip(), f"{example}: printed nothing"


def test_the_readme_parser_reads_modes_continuations_and_comments():
    text = "\n".join(
        [
            "<!-- readme-test: parse-only (downloads a model) -->",
            "```bash",
            "glimpse index ~/Pictures   # a comment",
            "glimpse train --pairs a.csv \\",
            "    --epochs 5",
            "```",
            "```bash",
            "curl -s 'http://x/v1/search?q=a#b' | python -m json.tool  # pretty",
            "```",
        ]
    )
    examples = read_examples(text)
    assert [(e.line, e.mode) for e in examples] == [(3, "parse-only"), (4, "parse-only"), (8, "run")]
    assert examples[0].command == "glimpse index ~/Pictures"
    assert examples[1].command == "glimpse train --pairs a.csv --epochs 5"
    assert examples[2].command == "curl -s 'http://x/v1/search?q=a#b' | python -m json.tool"
    with pytest.raises(ValueError, match="unclosed"):
        read_examples("```bash\nglimpse stats\n")
