"""helm lint --strict: the chart, its values files and values.schema.json, as helm itself reads them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import FULL_OVERRIDES, KIND_VALUES
from .support import run_helm


@pytest.mark.parametrize(
    "values",
    [
        pytest.param((), id="default"),
        pytest.param((KIND_VALUES,), id="kind"),
        pytest.param("full", id="full"),
    ],
)
def test_helm_lint_strict(
    values: tuple[Path, ...] | str, chart_copy: Path, helm_home: Path, tmp_path: Path
) -> None:
    args: list[str | Path] = ["lint", "--strict", chart_copy, "--namespace", "ingestion"]
    if values == "full":
        override = tmp_path / "full.json"
        override.write_text(json.dumps(FULL_OVERRIDES))
        args += ["-f", override]
    else:
        for file in values:
            args += ["-f", file]
    proc = run_helm(args, home=helm_home)
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout, proc.stdout
