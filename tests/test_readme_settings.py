"""Every setting a user can set is documented: the README's configuration table names each one."""

from __future__ import annotations

import re
from pathlib import Path

from glimpse.core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def _configuration_table() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return "\n".join(line for line in section.splitlines() if line.startswith("|"))


def _env_names_read_in(folder: str) -> set[str]:
    names: set[str] = set()
    for path in (ROOT / folder).rglob("*.py"):
        names |= set(re.findall(r"[\"'](GLIMPSE_[A-Z0-9_]+)[\"']", path.read_text(encoding="utf-8")))
    return names


def test_every_setting_of_the_service_is_in_the_readme_configuration_table():
    table = _configuration_table()
    missing = [
        f"GLIMPSE_{name.upper()}"
        for name in Settings.model_fields
        if not re.search(rf"`GLIMPSE_{name.upper()}`", table)
    ]
    assert missing == [], f"add these to README.md's Configuration table: {missing}"


def test_every_variable_the_web_ui_and_cli_read_is_in_the_readme_configuration_table():
    table = _configuration_table()
    read = _env_names_read_in("webui") | _env_names_read_in("glimpse")
    missing = sorted(name for name in read if f"`{name}`" not in table)
    assert read, "found no GLIMPSE_ variables: the scan is broken"
    assert missing == [], f"add these to README.md's Configuration table: {missing}"
