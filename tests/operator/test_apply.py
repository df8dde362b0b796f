"""Idempotent apply against an in-memory API: writes only on drift, others' metadata kept, strangers left
alone, lost races judged again. (The integration tests run the same against a real API server.)"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ingestion_operator.apply import NotOwnedError, Outcome, ensure, ensure_absent, merged
from ingestion_operator.children import CONFIG_MAP, PROMETHEUS_RULE
from tests.operator.support import FakeApi

OWNER = {"apiVersion": "observability.ingestion.dev/v1alpha1", "kind": "IngestionSource", "name": "s",
         "uid": "uid-1", "controller": True, "blockOwnerDeletion": True}  # fmt: skip


def config_map(data: str = "{}", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "ingestion-dashboard-s",
            "namespace": "ns",
            "labels": {
                "app.kubernetes.io/managed-by": "ingestion-operator",
                "grafana_dashboard": "1",
                **labels,
            },
            "annotations": {"grafana_folder": "Ingestion"},
            "ownerReferences": [OWNER],
        },
        "data": {"s.json": data},
    }


def test_create_then_nothing_to_do() -> None:
    api = FakeApi()
    assert ensure(api, config_map()) is Outcome.CREATED
    assert ensure(api, config_map()) is Outcome.UNCHANGED
    assert api.writes == ["create"]


def test_content_drift_is_restored_and_others_metadata_kept() -> None:
    api = FakeApi()
    ensure(api, config_map())
    live = api.objects[("ConfigMap", "ns", "ingestion-dashboard-s")]
    live["data"] = {"s.json": '{"edited": true}', "extra.json": "{}"}
    live["binaryData"] = {"x": "AA=="}
    live["metadata"]["labels"] |= {"grafana_dashboard": "0", "team": "data"}
    live["metadata"]["annotations"]["note"] = "kept"
    assert ensure(api, config_map()) is Outcome.UPDATED
    restored = api.objects[("ConfigMap", "ns", "ingestion-dashboard-s")]
    assert restored["data"] == {"s.json": "{}"} and "binaryData" not in restored
    assert restored["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert restored["metadata"]["labels"]["team"] == "data"
    assert restored["metadata"]["annotations"] == {"grafana_folder": "Ingestion", "note": "kept"}
    assert ensure(api, config_map()) is Outcome.UNCHANGED
    assert api.writes == ["create", "replace"]


def test_content_change() -> None:
    api = FakeApi()
    ensure(api, config_map("{}"))
    assert ensure(api, config_map('{"v": 2}')) is Outcome.UPDATED
    assert api.objects[("ConfigMap", "ns", "ingestion-dashboard-s")]["data"] == {"s.json": '{"v": 2}'}


def test_stranger_is_left_alone() -> None:
    api = FakeApi()
    stranger = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "ingestion-dashboard-s"},
        "data": {},
    }
    api._store(CONFIG_MAP, "ns", stranger)
    with pytest.raises(NotOwnedError, match="not managed by ingestion-operator"):
        ensure(api, config_map())
    assert api.writes == []
    assert ensure_absent(api, CONFIG_MAP, "ns", "ingestion-dashboard-s", "uid-1") is Outcome.ABSENT
    assert api.writes == []


def test_created_meanwhile_is_judged_not_overwritten_blindly() -> None:
    api = FakeApi()
    api.create_race = config_map()
    assert ensure(api, config_map()) is Outcome.UNCHANGED
    assert api.writes == []


def test_concurrent_write_is_judged_again() -> None:
    api = FakeApi()
    ensure(api, config_map("{}"))
    live = api.objects[("ConfigMap", "ns", "ingestion-dashboard-s")]
    api.replace_race = {**copy.deepcopy(live), "data": {"s.json": '{"v": 2}'}}  # the other writer's result
    assert ensure(api, config_map('{"v": 2}')) is Outcome.UNCHANGED
    api.replace_race = {**copy.deepcopy(live), "data": {"s.json": '{"v": 3}'}}
    assert ensure(api, config_map('{"v": 4}')) is Outcome.UPDATED
    assert api.objects[("ConfigMap", "ns", "ingestion-dashboard-s")]["data"] == {"s.json": '{"v": 4}'}


def test_recreated_owner_takes_over() -> None:
    """A source deleted and recreated under the same name (new uid) before the garbage collector ran."""
    api = FakeApi()
    old = config_map()
    old["metadata"]["ownerReferences"] = [
        {**OWNER, "uid": "uid-0"},
        {"kind": "Other", "uid": "x", "name": "o"},
    ]
    api._store(CONFIG_MAP, "ns", old)
    assert ensure(api, config_map()) is Outcome.UPDATED
    refs = api.objects[("ConfigMap", "ns", "ingestion-dashboard-s")]["metadata"]["ownerReferences"]
    assert refs == [{"kind": "Other", "uid": "x", "name": "o"}, OWNER]


def test_ensure_absent() -> None:
    api = FakeApi()
    assert ensure_absent(api, CONFIG_MAP, "ns", "ingestion-dashboard-s", "uid-1") is Outcome.ABSENT
    ensure(api, config_map())
    assert ensure_absent(api, CONFIG_MAP, "ns", "ingestion-dashboard-s", "uid-2") is Outcome.ABSENT
    assert ensure_absent(api, CONFIG_MAP, "ns", "ingestion-dashboard-s", "uid-1") is Outcome.DELETED
    assert api.objects == {}


def test_merged_keeps_server_fields() -> None:
    live = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "r",
            "uid": "u",
            "resourceVersion": "7",
            "finalizers": ["f"],
            "ownerReferences": [OWNER],
        },
        "spec": {"groups": []},
        "status": {"x": 1},
    }
    desired = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "r", "ownerReferences": [OWNER]},
        "spec": {"groups": [{"name": "g", "rules": []}]},
    }
    body = merged(live, desired)
    assert body["metadata"] == live["metadata"] and body["status"] == {"x": 1}
    assert body["spec"] == desired["spec"]
    assert PROMETHEUS_RULE.group == "monitoring.coreos.com" and CONFIG_MAP.group == ""
