"""One reconcile against an in-memory API: what it writes, and the outcome the status and events show."""

from __future__ import annotations

from typing import Any, cast

import kopf

from ingestion_operator.apply import ApplyError
from ingestion_operator.children import Kind
from ingestion_operator.reconcile import reconcile
from ingestion_operator.settings import ChildSettings
from ingestion_operator.status import status_patch
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


# --- spec.jobs: the CronJobs' per-objet silence alerts ------------------------------------------------------

JOBS_SPEC: dict[str, Any] = {
    "source": "S",
    "jobs": {"selector": {"matchLabels": {"app": "ingest"}}, "objetLabel": "ingestion/objet"},
}
RULE = ("PrometheusRule", "ns", "ingestion-s")


def cronjob(
    name: str, labels: dict[str, str], schedule: str = "0 2 * * *", suspend: bool = False
) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {
            "schedule": schedule,
            "suspend": suspend,
            "jobTemplate": {"metadata": {"labels": labels}, "spec": {"template": {"spec": {}}}},
        },
    }


def silences(api: FakeApi) -> dict[str, str]:
    """The IngestionObjetMuet rules of the PrometheusRule: objet -> its description."""
    rules = [rule for group in api.objects[RULE]["spec"]["groups"] for rule in group["rules"]]
    return {
        rule["labels"]["objet"]: rule["annotations"]["description"]
        for rule in rules
        if rule.get("alert") == "IngestionObjetMuet"
    }


def test_a_selected_cronjob_gets_a_silence_alert() -> None:
    api = FakeApi()
    api.cronjobs["ns"] = [
        cronjob("nightly", {"app": "ingest", "ingestion/objet": "Contact"}),
        cronjob("hourly", {"app": "ingest"}, "0 * * * *"),  # no objet label: its own name
        cronjob("other", {"app": "billing"}),  # not the source's
    ]
    result = reconcile(api, SETTINGS, owner(JOBS_SPEC))
    assert result.error is None and result.observed.ready and result.observed.cronjobs == 2
    assert result.observed.message.endswith(", 2 CronJobs")
    assert set(silences(api)) == {"Contact", "hourly"}
    assert "CronJob nightly" in silences(api)["Contact"]
    assert api.cronjob_reads == ["ns"]
    without = reconcile(FakeApi(), SETTINGS, owner({"source": "S"})).observed.alerts
    assert without is not None and result.observed.alerts == without + 2


def test_no_spec_jobs_lists_no_cronjobs() -> None:
    api = FakeApi()
    result = reconcile(api, SETTINGS, owner({"source": "S"}))
    assert api.cronjob_reads == [] and result.observed.cronjobs is None


def test_cronjobs_unreadable_still_applies_the_children() -> None:
    api = FakeApi()
    api.cronjobs_error = ApplyError(
        'cronjobs.batch is forbidden: User "system:serviceaccount:x:op" cannot list',
        reason="Forbidden",
        retryable=False,
    )
    result = reconcile(api, SETTINGS, owner(JOBS_SPEC))
    assert result.changes == ("PrometheusRule ingestion-s created", "ConfigMap ingestion-dashboard-s created")
    assert (result.observed.ready, result.observed.reason, result.retryable) == (
        False,
        "CronJobsUnreadable",
        True,
    )
    assert result.observed.message == (
        f"{api.cronjobs_error}: no per-objet silence alert (IngestionObjetMuet)"
    )
    assert silences(api) == {} and result.observed.rule == "ingestion-s"
    assert result.observed.cronjobs is None  # status.jobs.cronJobs left as it was
    api.cronjobs_error = None  # the permission granted: the next resync adds the alerts
    api.cronjobs["ns"] = [cronjob("nightly", {"app": "ingest", "ingestion/objet": "Contact"})]
    fixed = reconcile(api, SETTINGS, owner(JOBS_SPEC))
    assert fixed.observed.ready and fixed.changes == ("PrometheusRule ingestion-s updated",)
    assert set(silences(api)) == {"Contact"}


def test_a_suspended_cronjob_is_named_and_still_alerted() -> None:
    api = FakeApi()
    api.cronjobs["ns"] = [
        cronjob("nightly", {"app": "ingest", "ingestion/objet": "Contact"}, suspend=True),
        cronjob("weekly", {"app": "ingest"}, "0 3 * * 0"),
    ]
    result = reconcile(api, SETTINGS, owner(JOBS_SPEC))
    assert result.observed.ready and result.observed.suspended == ("nightly",)
    assert result.observed.message.endswith(", 2 CronJobs (suspended: nightly)")
    assert status_patch({}, result.observed, "T1")["jobs"] == {"cronJobs": 2, "suspended": ["nightly"]}
    assert set(silences(api)) == {"Contact", "weekly"}  # a forgotten suspension is what the alert is for


def test_an_unreadable_schedule_is_named_without_an_alert() -> None:
    api = FakeApi()
    api.cronjobs["ns"] = [
        cronjob("broken", {"app": "ingest"}, "not a schedule"),
        cronjob("nightly", {"app": "ingest"}),
    ]
    result = reconcile(api, SETTINGS, owner(JOBS_SPEC))
    assert result.observed.ready and result.observed.cronjobs == 2
    assert "; no silence alert for CronJob broken: " in result.observed.message
    assert set(silences(api)) == {"nightly"}
