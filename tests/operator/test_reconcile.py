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
        10,
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


NOTIFICATIONS: dict[str, Any] = {
    "team": "finance",
    "slack": {"channel": "#finance", "webhookSecret": {"name": "slack", "key": "url"}},
    "teams": {"webhookSecret": {"name": "hooks", "key": "teams"}},
    "webhook": {"urlSecret": {"name": "hooks", "key": "generic"}},
}
NOTIFIED = {"source": "S", "notifications": NOTIFICATIONS}
ROUTING = ("AlertmanagerConfig", "ns", "ingestion-s")
SECRETS = {("ns", "slack"): {"url": "aHR0cHM6Ly8="}, ("ns", "hooks"): {"teams": "dA==", "generic": "Zw=="}}


def test_notifications_make_an_alertmanager_config_then_removed_delete_it() -> None:
    api = FakeApi()
    api.secrets = dict(SECRETS)
    first = reconcile(api, SETTINGS, owner(NOTIFIED))
    assert first.changes[-1] == "AlertmanagerConfig ingestion-s created"
    assert first.error is None and first.observed.ready
    assert first.observed.message.endswith(", notifications by AlertmanagerConfig ingestion-s")
    assert api.objects[ROUTING]["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert api.secret_reads == ["ns/slack", "ns/hooks"]  # a Secret named twice is read once
    assert reconcile(api, SETTINGS, owner(NOTIFIED)).changes == ()
    team_only = {"source": "S", "notifications": {"team": "finance"}}
    removed = reconcile(api, SETTINGS, owner(team_only, generation=2))
    assert removed.changes == ("AlertmanagerConfig ingestion-s deleted",)
    assert ROUTING not in api.objects and removed.observed.ready


def test_missing_secret_holds_the_alertmanager_config_back() -> None:
    api = FakeApi()
    api.secrets = {("ns", "hooks"): {"teams": "dA==", "generic": ""}}  # no Secret slack; key generic empty
    result = reconcile(api, SETTINGS, owner(NOTIFIED))
    assert result.changes == ("PrometheusRule ingestion-s created", "ConfigMap ingestion-dashboard-s created")
    assert ROUTING not in api.objects
    assert (result.observed.ready, result.observed.reason, result.retryable) == (False, "MissingSecret", True)
    assert result.observed.message == (
        "AlertmanagerConfig ingestion-s not written: "
        "spec.notifications.slack.webhookSecret: Secret ns/slack not found; "
        "spec.notifications.webhook.urlSecret: Secret ns/hooks has no key 'generic' (or it is empty)"
    )
    assert (result.observed.rule, result.observed.alerts) == ("ingestion-s", 10)  # the rest is applied
    api.secrets = dict(SECRETS)
    fixed = reconcile(api, SETTINGS, owner(NOTIFIED))
    assert fixed.changes == ("AlertmanagerConfig ingestion-s created",) and fixed.observed.ready


def test_a_reference_gone_bad_keeps_the_last_good_alertmanager_config() -> None:
    api = FakeApi()
    api.secrets = dict(SECRETS)
    reconcile(api, SETTINGS, owner(NOTIFIED))
    before = api.objects[ROUTING]
    teams = {"webhookSecret": {"name": "new", "key": "k"}}
    renamed = {"source": "S", "notifications": {**NOTIFICATIONS, "teams": teams}}
    result = reconcile(api, SETTINGS, owner(renamed, generation=2))
    assert result.observed.reason == "MissingSecret" and api.objects[ROUTING] == before


def test_no_receiver_reads_no_secret() -> None:
    api = FakeApi()
    reconcile(api, SETTINGS, owner({"source": "S", "notifications": {"team": "t"}}))
    assert api.secret_reads == []
