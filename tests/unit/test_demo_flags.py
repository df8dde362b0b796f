"""The demo's port flags: `--logs-port` for the log store (VictoriaLogs), `--loki-port` and the Makefile's
LOKI_PORT kept for one release as deprecated aliases that say so once."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from devstack import demo
from devstack.stackcheck import Stack

REPO = Path(__file__).resolve().parents[2]


def test_logs_port_defaults_to_victorialogs_own() -> None:
    assert demo.build_parser().parse_args(["health"]).logs_port == Stack.logs_port == 9428


def test_logs_port(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.build_parser().parse_args(["health", "--logs-port", "19428"]).logs_port == 19428
    assert capsys.readouterr().err == ""


def test_loki_port_is_a_deprecated_alias(capsys: pytest.CaptureFixture[str]) -> None:
    args = demo.build_parser().parse_args(["health", "--loki-port=19428"])
    assert args.logs_port == 19428
    err = capsys.readouterr().err.splitlines()
    assert err == ["python -m devstack.demo: --loki-port is deprecated and will be removed: use --logs-port"]


def _make_demo(*variables: str) -> subprocess.CompletedProcess[str]:
    make = shutil.which("make")
    assert make is not None, "`make test` runs this suite: make is there"
    return subprocess.run(
        [make, "-n", "-C", str(REPO), "demo", *variables],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k not in ("LOKI_PORT", "LOGS_PORT", "MAKEFLAGS")},
    )


@pytest.mark.parametrize(
    ("variables", "port", "deprecated"),
    [
        ((), "9428", False),
        (("LOGS_PORT=19428",), "19428", False),
        (("LOKI_PORT=19429",), "19429", True),
        (("LOKI_PORT=19429", "LOGS_PORT=19428"), "19428", True),
    ],
)
def test_makefile_logs_port(variables: tuple[str, ...], port: str, deprecated: bool) -> None:
    done = _make_demo(*variables)
    assert f"--logs-port {port} " in done.stdout and "--loki-port" not in done.stdout
    warnings = [line for line in done.stderr.splitlines() if "LOKI_PORT" in line]
    assert len(warnings) == deprecated
    if deprecated:
        assert warnings[0].endswith("LOKI_PORT is deprecated and will be removed: use LOGS_PORT")
