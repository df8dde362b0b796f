"""Layering: the dev tooling (devstack/, bench/) never imports the tests; the tests import it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOLING = ("devstack", "bench")


def imported_modules(source: str) -> list[str]:
    """Every absolute module an `import` or `from ... import` statement names (relative ones stay inside)."""
    modules: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.append(node.module)
    return modules


def test_imported_modules_sees_every_form() -> None:
    source = "\n".join(
        [
            "import tests.chart",
            "from tests.chart.support import CHART",
            "from . import x",
            "def f():",
            " import tests",
        ]
    )
    assert imported_modules(source) == ["tests.chart", "tests.chart.support", "tests"]


@pytest.mark.parametrize("package", TOOLING)
def test_tooling_does_not_import_tests(package: str) -> None:
    files = sorted((REPO / package).rglob("*.py"))
    assert files, f"no module under {package}/"
    offending = [
        f"{path.relative_to(REPO)}: {module}"
        for path in files
        for module in imported_modules(path.read_text(encoding="utf-8"))
        if module == "tests" or module.startswith("tests.")
    ]
    assert offending == []
