"""The settings tables of docs/*.md are what devstack.settingsdoc renders from the programs' parsers, and
every flag of each program has its row."""

from __future__ import annotations

import argparse
import re

import pytest

from devstack import settingsdoc


def test_the_settings_tables_are_up_to_date() -> None:
    stale = [str(page.relative_to(settingsdoc.ROOT)) for page in settingsdoc.stale()]
    assert not stale, f"{stale}: run `python -m devstack.settingsdoc` (make generate)"


@pytest.mark.parametrize("program", settingsdoc.PARSERS)
def test_a_page_has_a_row_for_every_flag(program: str) -> None:
    marker = f"<!-- settings: {program} -->"
    texts = {page: page.read_text(encoding="utf-8") for page in sorted(settingsdoc.DOCS.glob("*.md"))}
    (page,) = [page for page, text in texts.items() if marker in text]
    block = texts[page].split(marker, 1)[1].split("<!-- end of settings", 1)[0]
    first_cells = "\n".join(re.findall(r"^\| (.*?) \|", block, flags=re.M))
    listed = set(re.findall(r"`(--[\w-]+)", first_cells))
    parser = settingsdoc.PARSERS[program]()
    expected = {
        flag
        for action in parser._actions
        if action.help != argparse.SUPPRESS
        for flag in action.option_strings
    } - {"-h", "--help"}
    assert expected and listed == expected, f"{page.name}: {program}"


def test_the_help_suffix_becomes_the_env_and_default_columns() -> None:
    row = settingsdoc.table("operator", ["namespace"]).splitlines()[-1]
    assert row == (
        "| `--namespace NAMESPACE` | `INGESTION_OPERATOR_NAMESPACES` (comma-separated) | none "
        "| namespace to watch, repeatable; none: every namespace |"
    )
