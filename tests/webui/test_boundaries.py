"""The web UI is only an HTTP client: it imports the standard library, streamlit, httpx and itself."""

from __future__ import annotations

import ast
import sys

from webui_support import REPO

ALLOWED = {"streamlit", "httpx"}


def imported_modules(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_the_web_ui_imports_nothing_from_the_search_or_indexing_code():
    files = sorted((REPO / "webui").glob("*.py"))
    assert {f.name for f in files} >= {"app.py", "client.py", "launch.py"}
    for path in files:
        for module in imported_modules(path.read_text()):
            top = module.split(".")[0]
            ok = top in sys.stdlib_module_names or top in ALLOWED or module.startswith("glimpse.webui")
            assert ok, f"{path.name} imports {module}: the UI may only talk to the API over HTTP"
