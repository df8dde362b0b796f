"""Idempotent apply against an in-memory API: writes only on drift, others' metadata kept, strangers left
alone. (The integration tests run the same against a real API server.)"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest

from ingestion_operator.apply import ApplyError, NotOwnedError, Outcome, ensure, ensure_absent, merged
from ingestion_operator.children import CONFIG_MAP, PROMETHEUS_RULE, Kind

OWNER = {"apiVersion": "observability.ingestion.dev/v1alpha1", "kind": "IngestionSource", "name": "s",
         "uid": "uid-1", "controller": True, "blockOwnerDeletion": True}  # fmt: skip


class FakeApi:
    """Stores objects like the API server does (uid, resourceVersion) and records every write."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.writes: list[str] = []
        self.version = 0
        self.create_race: dict[str, Any] | None = None  # created by "someone else" just before our create

    def _store(self, kind: Kind, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self.version += 1
        stored = copy.deepcopy(dict(body))
        stored["metadata"].setdefault("uid", f"child-{self.version}")
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.objects[(kind.kind, namespace, stored["metadata"]["name"])] = stored
        return copy.deepcopy(stored)

    def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((kind.kind, namespace, name))
        return copy.deepcopy(found)

    def create(self, kind: Kind, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        if self.create_race is not None:
            self._store(kind, namespace, self.create_race)
            self.create_race = None
        if (kind.kind, namespace, body["metadata"]["name"]) in self.objects:
            raise ApplyError("already exists", reason="AlreadyExists", retryable=True)
        self.writes.append("create")
        return self._store(kind, namespace, body)

    def replace(self, kind: Kind, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        live = self.objects[(kind.kind, namespace, body["metadata"]["name"])]
        if body["metadata"]["resourceVersion"] != live["metadata"]["resourceVersion"]:
            raise ApplyError("conflict", reason="Conflict", retryable=True)
        self.writes.append("replace")
        return self._store(kind, namespace, body)

    def delete(self, kind: Kind, namespace: str, name: str, uid: str, resource_version: str) -> None:
        live = self.objects[(kind.kind, namespace, name)]
        assert (live["metadata"]["uid"], live["metadata"]["resourceVersion"]) == (uid, resource_version)
        self.writes.append("delete")
        del self.objects[(kind.kind, namespace, name)]


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
