"""values-node.yaml, as tests/chart checks values-kind.yaml: documented line by line, only keys of values.yaml
(a typo would be a new, unused key), accepted by values.schema.json, in line with the in-cluster
dependencies it points at, and the intake on without tokens. No node needed."""

from __future__ import annotations

import json
from typing import Any

import yaml

from devstack import incluster
from tests.chart.support import CHART, default_values, need
from tests.chart.test_values import undocumented_keys

from .conftest import NODE_VALUES

SUBCHARTS = {"strimzi-kafka-operator", "kube-prometheus-stack", "loki", "kafka-ui"}


def _node_values() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(NODE_VALUES.read_text())
    return data


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        return {**base, **{key: _merge(base.get(key), value) for key, value in override.items()}}
    return override


def test_every_value_is_documented() -> None:
    assert undocumented_keys(NODE_VALUES.read_text()) == []


def test_only_keys_of_values_yaml() -> None:
    def unknown(node: dict[str, Any], base: dict[str, Any], prefix: str) -> list[str]:
        found: list[str] = []
        for key, value in node.items():
            if key not in base:
                found.append(f"{prefix}{key}")
            elif isinstance(value, dict) and isinstance(base[key], dict) and base[key]:
                found += unknown(value, base[key], f"{prefix}{key}.")
        return found

    ours = {k: v for k, v in _node_values().items() if k not in SUBCHARTS}
    assert unknown(ours, default_values(), "") == []


def test_schema_accepts_it_with_the_bootstrap_servers_set() -> None:
    jsonschema = need("jsonschema")
    schema = json.loads((CHART / "values.schema.json").read_text())
    merged = _merge(default_values(), _node_values())
    merged["kafka"]["externalBootstrapServers"] = "192.0.2.2:9092"
    assert [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(merged)] == []


def test_it_points_at_the_in_cluster_dependencies() -> None:
    values = _node_values()
    assert values["monitoring"]["releaseLabel"] == incluster.RELEASE_LABEL
    assert values["consumer"]["loki"]["url"] == incluster.LOKI_PUSH_URL
    assert not any(values[name]["enabled"] for name in SUBCHARTS)
    assert values["kafka"]["enabled"] is False


def test_the_intake_runs_one_replica_without_tokens_where_values_yaml_keeps_them() -> None:
    """The node is one developer's machine and the intake's Service a ClusterIP: no tokens there. A real
    cluster gets values.yaml's: the intake off, and tokens required once it is on."""
    intake = _node_values()["intake"]
    assert (intake["enabled"], intake["replicaCount"], intake["auth"]["enabled"]) == (True, 1, False)
    defaults = default_values()["intake"]
    assert (defaults["enabled"], defaults["auth"]["enabled"], defaults["service"]["type"]) == (
        False,
        True,
        "ClusterIP",
    )
    assert "service" not in intake  # the node keeps the ClusterIP
