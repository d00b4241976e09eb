"""The layers import one way: core <- indexer, core <- search, core <- training; the web UI is an
HTTP client and imports nothing of the project. Checked on the source, imports inside functions
and under TYPE_CHECKING included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Each part, and the parts of the project it may import (itself always).
ALLOWED = {
    "core": {"migrations"},  # the schema's history belongs to the catalogue
    "migrations": {"core"},
    "indexer": {"core"},
    "search": {"core"},
    "training": {"core"},
    "webui": set(),
}


def project_imports(path: Path) -> set[str]:
    """The parts (``core``, ``search``...) of ``glimpse`` that a module imports."""
    parts: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            pieces = name.split(".")
            if pieces[0] == "glimpse":
                parts.add(pieces[1] if len(pieces) > 1 else "glimpse")
    return parts


def modules_of(part: str) -> list[Path]:
    return sorted((REPO / part).rglob("*.py"))


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_each_part_imports_only_the_parts_below_it(part: str) -> None:
    assert modules_of(part), f"{part}/ has no modules"
    wrong = {
        str(path.relative_to(REPO)): sorted(found)
        for path in modules_of(part)
        if (found := project_imports(path) - {part} - ALLOWED[part])
    }
    assert wrong == {}, f"{part}/ may import only {sorted(ALLOWED[part]) or 'nothing'} of the project"


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from glimpse.search import engine\n    import glimpse.core.db\n")
    assert project_imports(module) == {"search", "core"}
