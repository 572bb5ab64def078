"""The settings as documented are the settings as declared: one declaration, one table."""

from __future__ import annotations

import re
from pathlib import Path

import core.config as config
from core.config_reader import declared, join

REPO = Path(__file__).resolve().parents[2]
# Keys core.config reads by hand (not plain values): documented in docs/configuration.md's first table.
HAND_READ = {
    "regions",
    "baselineRegion",
    "carbon.mock",
    "carbon.watttime.regions",
    "economics.egressUsdPerGbOverrides",
    "prices",
    "latencyMs",
    "pricing.azure.regions",
    "pricing.gcp.regions",
    "pricing.aws.regions",
}


def _declared_keys() -> set[str]:
    return {join(prefix, s.key) for prefix, cls in config.SETTINGS_SECTIONS for s in declared(cls)}


def test_the_docs_table_is_the_one_the_declarations_give() -> None:
    text = (REPO / "docs" / "configuration.md").read_text()
    found = re.search(r"<!-- settings-table:start -->\n(.*?)<!-- settings-table:end -->", text, re.S)
    assert found, "docs/configuration.md lost its settings-table markers"
    assert found.group(1) == config.settings_table(), (
        "docs/configuration.md is out of date: regenerate its table from core.config.settings_table()"
    )


def test_every_section_with_declared_settings_is_in_the_table() -> None:
    documented = {cls for _, cls in config.SETTINGS_SECTIONS}
    for name in dir(config):
        value = getattr(config, name)
        if isinstance(value, type) and name.endswith("Settings") and list(declared(value)):
            assert value in documented, f"{name} declares settings the table does not show"


def test_the_overview_names_only_settings_that_exist() -> None:
    """The hand-written overview (moved from the README into docs/configuration.md)."""
    page = (REPO / "docs" / "configuration.md").read_text()
    section = page.split("## Overview (moved from the README)", 1)[1].split("\n## ", 1)[0]
    known = _declared_keys() | HAND_READ
    sections = {key.split(".")[0] for key in known}
    named = set()
    for row in section.splitlines():
        if not row.startswith("| `"):
            continue
        first_cell = row.split("|")[1]
        for token in re.findall(r"`([A-Za-z][\w.]*)`", first_cell):
            if token.split(".")[0] in sections and "." in token:
                named.add(token)
    assert named, "no settings found in the configuration overview"
    for token in sorted(named):
        assert token in known or any(token.startswith(f"{hand}.") for hand in HAND_READ), (
            f"the configuration overview names {token}, which core.config does not declare"
        )
