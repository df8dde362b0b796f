"""One reconcile against an in-memory API: what it writes, and the outcome the status and events show."""

from __future__ import annotations

from typing import Any, cast

import kopf

from ingestion_operator.apply import ApplyError
from ingestion_operator.children import Kind
from ingestion_operator.reconcile import reconcile
from ingestion_operator.settings import ChildSettings
from tests.operator.support import FakeApi, source

SETTINGS = ChildSettings()


def owner(spec: dict[str, Any], generation: int = 1) -> kopf.Body:
    raw = source("s", spec, "ns")
    raw["metadata"] |= {"uid": "uid-1", "generation": generation}
    return kopf.Body(cast(kopf.RawBody, raw))


def test_created_then_unchanged() -> None:
    api = FakeApi()
    first = reconcile(api, SETTINGS, owner({"source": "S"}))
    assert first.changes == ("PrometheusRule ingestion-s created", "ConfigMap ingestion-dashboard-s created")
    assert first.error is None and first.observed.ready and first.observed.reason == "Reconciled"
    assert (first.observed.rule, first.observed.dashboard, first.observed.alerts) == (
        "ingestion-s",
        "ingestion-dashboard-s",
        8,
    )
    rule = api.objects[("PrometheusRule", "ns", "ingestion-s")]
    assert rule["metadata"]["ownerReferences"][0]["uid"] == "uid-1"  # adopted
    again = reconcile(api, SETTINGS, owner({"source": "S"}))
    assert again.changes == () and again.observed == first.observed
    assert api.writes == ["create", "create"]


def test_dashboard_disabled_deletes_it() -> None:
    api = FakeApi()
    reconcile(api, SETTINGS, owner({"source": "S"}))
    result = reconcile(api, SETTINGS, owner({"source": "S", "dashboard": {"enabled": False}}, generation=2))
    assert result.changes == ("ConfigMap ingestion-dashboard-s deleted",)
    assert result.observed.dashboard is None and result.observed.message.endswith(", no dashboard")
    assert ("ConfigMap", "ns", "ingestion-dashboard-s") not in api.objects


def test_invalid_spec_writes_nothing() -> None:
    api = FakeApi()
    result = reconcile(api, SETTINGS, owner({"source": "S", "alerts": {"errorBurst": {"window": "0s"}}}, 4))
    assert (result.observed.ready, result.observed.reason, result.observed.generation) == (
        False,
        "InvalidSpec",
        4,
    )
    assert result.observed.message == "spec.alerts.errorBurst.window: duration '0s' must be positive"
    assert result.observed.rule is None and not result.retryable
    assert api.writes == []


def test_someone_elses_object() -> None:
    api = FakeApi()
    api.objects[("ConfigMap", "ns", "ingestion-dashboard-s")] = {
        "kind": "ConfigMap",
        "metadata": {"name": "ingestion-dashboard-s", "uid": "x", "resourceVersion": "1"},
    }
    result = reconcile(api, SETTINGS, owner({"source": "S"}))
    assert result.changes == ("PrometheusRule ingestion-s created",)
    assert (result.observed.reason, result.retryable) == ("NotOwned", False)


class DownApi(FakeApi):
    def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        raise ApplyError(
            f"get {kind.kind} {namespace}/{name}: etcdserver: request timed out",
            reason="InternalError",
            retryable=True,
        )


def test_api_failure_is_retryable() -> None:
    result = reconcile(DownApi(), SETTINGS, owner({"source": "S"}))
    assert (result.observed.ready, result.observed.reason, result.retryable) == (False, "ApplyFailed", True)
    assert result.observed.message == "get PrometheusRule ns/ingestion-s: etcdserver: request timed out"
