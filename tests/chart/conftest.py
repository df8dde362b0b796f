"""Fixtures of the chart tests: a chart copy with stand-in dependencies; `render`, a cached helm template."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import pytest

from devstack.chart import make_chart_copy

from .support import (
    CHART,
    NAMESPACE,
    RELEASE,
    Manifest,
    parse_manifests,
    run_helm,
    values_args,
)

KIND_VALUES = CHART / "values-kind.yaml"

# Every optional part switched on (watched namespaces, sources, inline data, metrics, Kafka UI ...).
FULL_OVERRIDES: dict[str, Any] = {
    "kafka": {"metrics": {"enabled": True, "allowList": ["kafka_server.*"]}},
    "operator": {
        "watchNamespaces": ["ingestion", "team-a"],
        "renderDefaults": {"runbook_base_url": "https://runbooks.example.com/ingestion"},
    },
    "producer": {
        "data": {"source": "inline", "inline": {"fileName": "runs.ndjson", "content": '{"ID": 1}\n'}}
    },
    "ingestionSources": [
        {"name": "powerbi", "spec": {"source": "PowerBI", "objets": ["workspaces", "datasets"]}},
        {
            "name": "sharepoint",
            "namespace": "team-a",
            "spec": {
                "source": "sharepoint_graph",
                "schedule": {"expectedEveryMinutes": 30, "silenceAfterMinutes": 90},
                "jobs": {
                    "selector": {
                        "matchLabels": {"app.kubernetes.io/part-of": "sharepoint-sync"},
                        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["batch"]}],
                    },
                    "objetLabel": "ingestion.example.com/objet",
                },
            },
        },
    ],
    "kafka-ui": {"enabled": True},
    "intake": {"enabled": True, "auth": {"tokenSecret": {"name": "intake-tokens"}}},
    "consumer": {
        "replicaCount": 2,
        "loki": {"tenantId": "ingestion", "username": "ingest", "passwordSecret": {"name": "loki-auth"}},
    },
}

# name → (values files, overrides) of the value sets most tests run on.
VALUE_SETS: dict[str, tuple[tuple[Path, ...], tuple[dict[str, Any], ...]]] = {
    "default": ((), ()),
    "kind": ((KIND_VALUES,), ()),
    "full": ((), (FULL_OVERRIDES,)),
}


class Render(Protocol):
    def __call__(
        self,
        values_files: tuple[Path, ...] = (),
        overrides: tuple[Mapping[str, Any], ...] = (),
        *,
        release: str = RELEASE,
        namespace: str = NAMESPACE,
    ) -> list[Manifest]: ...


class RenderError(Protocol):
    def __call__(
        self, values_files: tuple[Path, ...] = (), overrides: tuple[Mapping[str, Any], ...] = ()
    ) -> str: ...


@pytest.fixture(scope="session")
def helm_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("helm-home")


@pytest.fixture(scope="session")
def chart_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_chart_copy(tmp_path_factory.mktemp("chart") / "ingestion-observability")


@pytest.fixture(scope="session")
def render(chart_copy: Path, helm_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Render:
    """helm template of the chart copy, cached by arguments; returns the parsed manifests."""
    cache: dict[str, list[Manifest]] = {}
    tmp = tmp_path_factory.mktemp("values")

    def _render(
        values_files: tuple[Path, ...] = (),
        overrides: tuple[Mapping[str, Any], ...] = (),
        *,
        release: str = RELEASE,
        namespace: str = NAMESPACE,
    ) -> list[Manifest]:
        key = json.dumps([list(map(str, values_files)), overrides, release, namespace], sort_keys=True)
        if key not in cache:
            args: list[str | Path] = ["template", release, chart_copy, "--namespace", namespace]
            args += values_args(values_files, overrides, tmp=tmp)
            cache[key] = parse_manifests(run_helm(args, home=helm_home).stdout)
        return [json.loads(json.dumps(m)) for m in cache[key]]  # a copy the test may modify

    return _render


@pytest.fixture(scope="session")
def render_error(chart_copy: Path, helm_home: Path, tmp_path_factory: pytest.TempPathFactory) -> RenderError:
    """helm template expected to fail: returns its error output."""
    tmp = tmp_path_factory.mktemp("bad-values")

    def _render_error(
        values_files: tuple[Path, ...] = (), overrides: tuple[Mapping[str, Any], ...] = ()
    ) -> str:
        args: list[str | Path] = ["template", RELEASE, chart_copy, "--namespace", NAMESPACE]
        args += values_args(values_files, overrides, tmp=tmp)
        proc = run_helm(args, home=helm_home, check=False)
        assert proc.returncode != 0, f"helm template accepted {overrides}"
        return proc.stderr

    return _render_error


@pytest.fixture(params=sorted(VALUE_SETS))
def value_set(request: pytest.FixtureRequest, render: Render) -> list[Manifest]:
    """The manifests of each value set (default, kind, full)."""
    files, overrides = VALUE_SETS[request.param]
    return render(files, overrides)
