"""Kubernetes Jobs and CronJobs recorded as runs, on the real local node: the operator in the cluster
(its image, exactly the chart's RBAC) holds each selected Job with its finalizer and publishes the run
through the chart's intake (bearer token from its Secret) to the host's Kafka; the consumer turns it into
metrics for the in-cluster Prometheus and lines for VictoriaLogs.

One CronJob runs every minute from the project's image (the producer's, for its Python): every third run
fails with a termination message, odd runs sleep longer. The tests run in this order and share it:
its first failure fires IngestionEchecDetecte with the message; the operator is deleted while a held Job
runs and restarted two Jobs later, and Prometheus shows exactly the runs the Jobs say (états, durations from
their times); the failures' messages are in the log store; suspended, the CronJob's objet goes silent and
IngestionObjetMuet fires after its two periods; a Job with `ttlSecondsAfterFinished: 0` counts once; the
source deleted leaves no finalizer. Last, each RBAC verb the chart grants for Jobs is removed in turn: the
feature fails with a clear reason in the source's status or Events, and the operator does not restart.

The release is conftest's shared one: upgraded with the intake's tokens (values-node.yaml runs it without)
and the Jobs' namespace watched, upgraded back to values-node.yaml afterwards; the namespace and the token
Secret go.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from devstack import incluster
from devstack.node import KubeNode
from devstack.stackcheck import scalar
from devstack.victorialogs import logsql
from ingestion_operator.jobrun import ending
from ingestion_operator.recorder import Marks
from tests.integration.support import wait_until

from .conftest import IMAGES, NAMESPACE, RELEASE, Helm

pytestmark = pytest.mark.e2e

JOBS_NAMESPACE = "jobs-e2e"
TOKEN_SECRET = "ingestion-intake-tokens"
SOURCE_NAME = "extractions"  # the IngestionSource
SOURCE = "e2e_jobs"  # its spec.source
CRON = "extract-factures"  # the CronJob, hence the objet of its Jobs
OTHER_CRON = "extract-clients"
TTL_JOB = "ttl-zero"
PART_OF = {"app.kubernetes.io/part-of": "e2e-extract"}
MARKS = Marks.of(SOURCE_NAME)
OPERATOR = f"deployment/{RELEASE}-operator"
SOURCES = "ingestionsources.observability.ingestion.dev"
PERIODS = 2
# The run number is the CronJob's scheduled minute (the Job's name suffix): every third fails.
SCRIPT = """
import os, sys, time
n = int(os.environ["JOB_NAME"].rsplit("-", 1)[1])
time.sleep(3 + 5 * (n % 2))
if n % 3 == 0:
    with open("/dev/termination-log", "w") as log:
        log.write(f"run {n} : quota de l'API dépassé (HTTP 429) ✗")
    sys.exit(3)
"""


def _pod_spec(command: list[str]) -> dict[str, Any]:
    return {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True},
        "containers": [
            {
                "name": "extract",
                "image": IMAGES["producer"],
                "imagePullPolicy": "Never",
                "command": command,
                "env": [
                    {
                        "name": "JOB_NAME",
                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['job-name']"}},
                    }
                ],
                "securityContext": {
                    "readOnlyRootFilesystem": True,
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
    }


def _cronjob(name: str, labels: dict[str, str], *, suspend: bool = False) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": JOBS_NAMESPACE},
        "spec": {
            "schedule": "* * * * *",
            "timeZone": "Europe/Paris",
            "concurrencyPolicy": "Forbid",
            "suspend": suspend,
            # every Job stays, so that the test can compare Prometheus with all of them
            "successfulJobsHistoryLimit": 100,
            "failedJobsHistoryLimit": 100,
            "jobTemplate": {
                "metadata": {"labels": labels},
                "spec": {
                    "backoffLimit": 0,
                    "template": {"metadata": {"labels": labels}, "spec": _pod_spec(["python", "-c", SCRIPT])},
                },
            },
        },
    }


def _job(name: str, labels: dict[str, str], command: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": JOBS_NAMESPACE, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "template": {"metadata": {"labels": labels}, "spec": _pod_spec(command)},
            **spec,
        },
    }


def _source(name: str, source: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "observability.ingestion.dev/v1alpha1",
        "kind": "IngestionSource",
        "metadata": {"name": name, "namespace": JOBS_NAMESPACE},
        "spec": {"source": source, "jobs": {"selector": {"matchLabels": labels}, "silencePeriods": PERIODS}},
    }


@dataclass(frozen=True)
class Setup:
    node: KubeNode
    release: Helm
    monitoring: incluster.Monitoring

    def jobs(self, selector: dict[str, str] = PART_OF) -> list[dict[str, Any]]:
        labels = ",".join(f"{k}={v}" for k, v in selector.items())
        items: list[dict[str, Any]] = self.node.kubectl_json(
            "-n", JOBS_NAMESPACE, "get", "jobs", "-l", labels
        )["items"]
        return items

    def cron_jobs(self) -> list[dict[str, Any]]:
        return [job for job in self.jobs() if job["metadata"]["name"].startswith(f"{CRON}-")]

    def status(self, name: str = SOURCE_NAME) -> dict[str, Any]:
        status: dict[str, Any] = self.node.kubectl_json("-n", JOBS_NAMESPACE, "get", SOURCES, name).get(
            "status", {}
        )
        return status

    def condition(self, kind: str, name: str = SOURCE_NAME) -> dict[str, Any]:
        found: dict[str, Any] = next(
            (c for c in self.status(name).get("conditions", []) if c["type"] == kind), {}
        )
        return found

    def operator_pod(self) -> dict[str, Any] | None:
        pods = self.node.kubectl_json(
            "-n", NAMESPACE, "get", "pods", "-l", "app.kubernetes.io/component=operator"
        )["items"]
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        return live[0] if live else None

    def scalar(self, expr: str) -> float | None:
        return scalar(self.monitoring.prometheus_url, expr)

    def firing(self, alert: str) -> list[dict[str, str]]:
        alerts: list[dict[str, Any]] = self.monitoring.api("alerts")["alerts"]
        return [a["labels"] for a in alerts if a["state"] == "firing" and a["labels"]["alertname"] == alert]


@pytest.fixture(scope="module")
def setup(release: Helm, monitoring: incluster.Monitoring) -> Iterator[Setup]:
    node = release.node
    with contextlib.ExitStack() as undo:
        undo.callback(_nothing_left, node)  # last
        if not release.installed():  # test_chart_on_node ends by uninstalling the session's release
            release.install()
            undo.callback(release.run, "uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout=5m")
        node.kubectl("create", "namespace", JOBS_NAMESPACE)
        undo.callback(node.kubectl, "delete", "namespace", JOBS_NAMESPACE, "--timeout=180s", timeout=210)
        node.kubectl_apply(
            [
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": TOKEN_SECRET, "namespace": NAMESPACE},
                    "stringData": {"tokens": "jeton-e2e-operateur\n"},
                }
            ]
        )
        undo.callback(node.kubectl, "-n", NAMESPACE, "delete", "secret", TOKEN_SECRET, "--ignore-not-found")
        release.upgrade(
            f"operator.watchNamespaces={{{NAMESPACE},{JOBS_NAMESPACE}}}",
            "operator.resyncSeconds=10",
            # values-node.yaml runs the intake without tokens: this module proves the token path
            "intake.auth.enabled=true",
            f"intake.auth.tokenSecret.name={TOKEN_SECRET}",
        )
        undo.callback(lambda: release.installed() and release.upgrade())  # values-node.yaml's again
        # First undone, while the operator still runs: the sources (their Jobs let go), then the Jobs.
        undo.callback(node.kubectl, "-n", JOBS_NAMESPACE, "delete", "jobs,cronjobs", "--all", "--wait=false")
        undo.callback(
            node.kubectl, "-n", JOBS_NAMESPACE, "delete", SOURCES, "--all", "--timeout=120s", timeout=150
        )
        yield Setup(node, release, monitoring)


def _nothing_left(node: KubeNode) -> None:
    assert not node.kubectl("get", "namespace", JOBS_NAMESPACE, "--ignore-not-found")
    assert not node.kubectl("-n", NAMESPACE, "get", "secret", TOKEN_SECRET, "--ignore-not-found")


def _etat_and_duration(job: dict[str, Any]) -> tuple[str, float]:
    end = ending(job)
    assert end is not None, job["metadata"]["name"]
    started = _time(job["status"]["startTime"])
    return end.etat, (_time(end.time) - started).total_seconds()


def _time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _finished(job: dict[str, Any]) -> bool:
    return ending(job) is not None


def _etat(job: dict[str, Any]) -> str | None:
    end = ending(job)
    return None if end is None else end.etat


def _recorded(job: dict[str, Any]) -> bool:
    return MARKS.recorded in (job["metadata"].get("annotations") or {})


def _held(job: dict[str, Any]) -> bool:
    return MARKS.finalizer in (job["metadata"].get("finalizers") or [])


def _wait(
    check: Callable[[], object], what: str, timeout: float, seen: Callable[[], object] | None = None
) -> None:
    wait_until(check, timeout=timeout, what=what, seen=seen)


# --- 1. the CronJob's runs -------------------------------------------------------------------------------


def test_a_failed_job_fires_its_failure_alert_with_the_termination_message(setup: Setup) -> None:
    """The source and its CronJob (and the TTL-0 Job, checked later) go in; the first failed Job's run
    fires IngestionEchecDetecte for the CronJob's objet, with what the container wrote."""
    setup.node.kubectl_apply(
        [
            _source(SOURCE_NAME, SOURCE, PART_OF),
            _cronjob(CRON, PART_OF),
            _job(TTL_JOB, PART_OF, ["python", "-c", "print('ok')"], ttlSecondsAfterFinished=0),
        ]
    )
    _wait(
        lambda: setup.condition("JobsObserved").get("status") == "True",
        "the source observing its Jobs",
        timeout=120,
        seen=setup.status,
    )
    _wait(
        lambda: any(_recorded(j) and _etat(j) == "FAILED" for j in setup.cron_jobs()),
        "a failed run of the CronJob recorded",
        timeout=300,
        seen=lambda: [(j["metadata"]["name"], _held(j), _recorded(j)) for j in setup.cron_jobs()],
    )
    _wait(
        lambda: [a for a in setup.firing("IngestionEchecDetecte") if a.get("objet") == CRON],
        "IngestionEchecDetecte firing for the CronJob's objet",
        timeout=180,
        seen=lambda: setup.firing("IngestionEchecDetecte"),
    )
    alert = next(a for a in setup.firing("IngestionEchecDetecte") if a.get("objet") == CRON)
    assert alert["source"] == SOURCE
    assert "BackoffLimitExceeded" in alert["description"], alert
    assert "quota de l'API dépassé (HTTP 429) ✗" in alert["description"], alert


def test_runs_are_exact_through_an_operator_deleted_while_jobs_finish(setup: Setup) -> None:
    """The operator is deleted while a Job it holds runs, and comes back two Jobs later: every Job counts
    once, with its état and its duration from the Job's times; none keeps a finalizer."""
    _wait(
        lambda: any(_held(j) and not _finished(j) for j in setup.cron_jobs()),
        "a running Job held by the operator",
        timeout=180,
    )
    setup.node.kubectl("-n", NAMESPACE, "scale", OPERATOR, "--replicas=0")
    _wait(lambda: setup.operator_pod() is None, "the operator pod gone", timeout=120)
    down = {j["metadata"]["name"] for j in setup.cron_jobs()}
    _wait(
        lambda: len({j["metadata"]["name"] for j in setup.cron_jobs() if _finished(j)} - down) >= 2,
        "two Jobs started and finished while the operator was down",
        timeout=240,
    )
    unrecorded = [j["metadata"]["name"] for j in setup.cron_jobs() if _finished(j) and not _recorded(j)]
    assert len(unrecorded) >= 3, unrecorded  # the held one and the two new ones
    setup.node.kubectl("-n", NAMESPACE, "scale", OPERATOR, "--replicas=1")
    setup.node.kubectl("-n", NAMESPACE, "rollout", "status", OPERATOR, "--timeout=120s", timeout=130)
    _wait(
        lambda: len([j for j in setup.cron_jobs() if _recorded(j)]) >= len(down) + 3,
        "a Job created after the restart recorded too",
        timeout=240,
    )
    setup.node.kubectl(
        "-n", JOBS_NAMESPACE, "patch", "cronjob", CRON, "--type=merge", "-p", '{"spec":{"suspend":true}}'
    )
    _wait(
        lambda: all(_finished(j) and _recorded(j) and not _held(j) for j in setup.cron_jobs()),
        "every Job of the CronJob finished, recorded and let go",
        timeout=180,
        seen=lambda: [(j["metadata"]["name"], _held(j), _recorded(j)) for j in setup.cron_jobs()],
    )
    jobs = setup.cron_jobs()
    outcomes = [_etat_and_duration(job) for job in jobs]
    expected = {etat: sum(1 for e, _ in outcomes if e == etat) for etat in ("SUCCESS", "FAILED")}
    assert len(jobs) >= 5 and expected["FAILED"] >= 1 and expected["SUCCESS"] >= 1, expected
    where = f'source="{SOURCE}",objet="{CRON}"'

    def seen() -> dict[str, float | None]:
        return {
            etat: setup.scalar(f'sum(ingestion_runs_total{{{where},etat="{etat}"}})')
            for etat in ("SUCCESS", "FAILED")
        } | {
            "count": setup.scalar(f"sum(ingestion_duration_seconds_count{{{where}}})"),
            "sum": setup.scalar(f"sum(ingestion_duration_seconds_sum{{{where}}})"),
        }

    def exact() -> bool:
        now = seen()
        return (
            now["SUCCESS"] == expected["SUCCESS"]
            and now["FAILED"] == expected["FAILED"]
            and now["count"] == len(jobs)
            and now["sum"] is not None
            and math.isclose(now["sum"], sum(d for _, d in outcomes), abs_tol=1e-6)
        )

    _wait(exact, f"Prometheus showing exactly {expected} with the Jobs' durations", timeout=120, seen=seen)
    time.sleep(15)  # three scrapes later: still exact, nothing counted twice
    assert exact(), (seen(), expected, outcomes)
    assert setup.status()["jobs"]["lastRun"]["objet"] == CRON


def _description(row: dict[str, Any]) -> str:
    """The run's description in a log store row: a field when the store unpacked the JSON line (the
    in-cluster VictoriaLogs does), else in the line itself."""
    if "description" in row:
        return str(row["description"])
    return str(json.loads(row["_msg"])["description"])


def test_the_failures_messages_are_in_the_log_store(setup: Setup) -> None:
    failed = [j["metadata"]["name"] for j in setup.cron_jobs() if _etat(j) == "FAILED"]
    rows = logsql(setup.monitoring.logs_url, f'{{source="{SOURCE}"}} etat:FAILED', limit=1000)
    descriptions = [_description(row) for row in rows]
    for name in failed:
        number = name.rsplit("-", 1)[1]
        assert any(f"run {number} : quota de l'API dépassé" in d for d in descriptions), (name, descriptions)
    assert len(descriptions) == len(failed), descriptions


def test_a_suspended_cronjob_s_objet_goes_silent_after_its_periods(setup: Setup) -> None:
    """Suspended, the CronJob runs no more: IngestionObjetMuet fires once two periods (1 min each) and the
    usual duration passed since its last run, and says the CronJob is suspended; so does the status."""
    _wait(
        lambda: CRON in (setup.status().get("jobs") or {}).get("suspended", []),
        "the status naming the suspended CronJob",
        timeout=60,
        seen=setup.status,
    )
    assert "suspended: " + CRON in setup.condition("Ready")["message"]
    last_end = max(_time(end.time) for j in setup.cron_jobs() if (end := ending(j)) is not None)
    _wait(
        lambda: [a for a in setup.firing("IngestionObjetMuet") if a.get("objet") == CRON],
        "IngestionObjetMuet firing for the suspended CronJob's objet",
        timeout=360,
    )
    fired = datetime.datetime.now(datetime.UTC)
    assert (fired - last_end).total_seconds() >= PERIODS * 60, (fired, last_end)
    alerts: list[dict[str, Any]] = setup.monitoring.api("alerts")["alerts"]
    alert = next(
        a for a in alerts if a["labels"]["alertname"] == "IngestionObjetMuet" and a["labels"]["objet"] == CRON
    )
    assert "est suspendu (spec.suspend)" in alert["annotations"]["description"], alert


def test_a_job_deleted_at_once_by_its_ttl_counts_once(setup: Setup) -> None:
    """`ttlSecondsAfterFinished: 0`: the Job is gone (the TTL controller deleted it once the operator let
    it go) and its run counts exactly once."""
    assert not setup.node.kubectl("-n", JOBS_NAMESPACE, "get", "job", TTL_JOB, "--ignore-not-found")
    where = f'source="{SOURCE}",objet="{TTL_JOB}"'
    assert setup.scalar(f'sum(ingestion_runs_total{{{where},etat="SUCCESS"}})') == 1
    assert setup.scalar(f"sum(ingestion_duration_seconds_count{{{where}}})") == 1


def test_deleting_the_source_leaves_no_finalizer(setup: Setup) -> None:
    """The source deleted while it holds a running Job: the Job is let go, and the source goes."""
    setup.node.kubectl_apply([_source(SOURCE_NAME, SOURCE, PART_OF), _cronjob(OTHER_CRON, PART_OF)])
    _wait(
        lambda: any(_held(j) for j in setup.jobs() if j["metadata"]["name"].startswith(OTHER_CRON)),
        "a Job of the second CronJob held",
        timeout=150,
    )
    setup.node.kubectl("-n", JOBS_NAMESPACE, "delete", SOURCES, SOURCE_NAME, "--timeout=120s", timeout=150)
    setup.node.kubectl("-n", JOBS_NAMESPACE, "delete", "cronjobs", "--all")
    held = [j["metadata"]["name"] for j in setup.jobs() if j["metadata"].get("finalizers")]
    assert not held, held


# --- 2. least privilege ------------------------------------------------------------------------------------

PROBE = "sonde"
PROBE_LABELS = {"e2e-probe": "rbac"}
ROLE = f"{RELEASE}-operator"


def _role(node: KubeNode) -> dict[str, Any]:
    role: dict[str, Any] = node.kubectl_json("-n", JOBS_NAMESPACE, "get", "role", ROLE)
    return role


def _role_with(role: dict[str, Any], rules: list[dict[str, Any]]) -> dict[str, Any]:
    meta = role["metadata"]
    metadata = {"name": meta["name"], "namespace": meta["namespace"], "labels": meta.get("labels", {})}
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": metadata,
        "rules": rules,
    }


def _replace(node: KubeNode, role: dict[str, Any]) -> None:
    """Write the Role as given (Helm owns it: a server-side apply would conflict)."""
    node.kubectl("replace", "-f", "-", input_text=json.dumps(role))


def _without(role: dict[str, Any], group: str, resource: str, verb: str) -> dict[str, Any]:
    """The Role minus one verb on one resource (a rule left with no verb goes)."""
    rules, removed = [], False
    for rule in role["rules"]:
        if group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]:
            assert rule["resources"] == [resource], rule  # one rule per resource: the verb goes alone
            rule = {**rule, "verbs": [v for v in rule["verbs"] if v != verb]}
            removed = True
        if rule["verbs"]:
            rules.append(rule)
    assert removed, (group, resource, verb)
    return _role_with(role, rules)


def _reported(setup: Setup, reason: str, text: str) -> bool:
    """The probe's Ready or JobsObserved condition, or one of its Warning Events, says `reason` and `text`."""
    said = [
        (c.get("reason"), c.get("message", ""))
        for c in (setup.condition("Ready", PROBE), setup.condition("JobsObserved", PROBE))
        if c.get("status") == "False"
    ]
    return any(r == reason and text in m for r, m in said + _warnings(setup.node))


def _warnings(node: KubeNode) -> list[tuple[str, str]]:
    events = node.kubectl_json(
        "-n", JOBS_NAMESPACE, "get", "events", "--field-selector", f"involvedObject.name={PROBE},type=Warning"
    )["items"]
    return [(e["reason"], e["message"]) for e in events]


# (apiGroup, resource, verb) -> what the probe does, and the reason and text the operator then reports
VERBS: dict[tuple[str, str, str], tuple[str, str, str]] = {
    ("batch", "jobs", "list"): ("", "Forbidden", "list Jobs"),
    ("batch", "jobs", "watch"): ("", "Forbidden", "watch Jobs"),
    ("batch", "jobs", "patch"): ("sleep", "HoldFailed", "cannot patch Job"),
    ("batch", "jobs", "get"): ("succeed", "ReadFailed", "cannot read Job"),
    ("", "pods", "list"): ("fail", "PodsUnreadable", "termination messages not read"),
    ("batch", "cronjobs", "list"): ("", "CronJobsUnreadable", "list CronJobs"),
}
COMMANDS = {
    "sleep": ["python", "-c", "import time; time.sleep(30)"],
    "succeed": ["python", "-c", "print('ok')"],
    "fail": ["python", "-c", "import sys; sys.exit(2)"],
}


def test_each_granted_verb_is_needed_and_its_absence_is_reported_without_a_restart(setup: Setup) -> None:
    node = setup.node
    node.kubectl_apply(
        [_source(PROBE, "e2e_sonde", PROBE_LABELS), _cronjob("sonde-cron", PROBE_LABELS, suspend=True)]
    )
    _wait(lambda: setup.condition("JobsObserved", PROBE).get("status") == "True", "the probe observing", 120)
    pod = setup.operator_pod()
    assert pod is not None
    restarts = sum(c["restartCount"] for c in pod["status"]["containerStatuses"])
    role = _role(node)
    original = _role_with(role, role["rules"])
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
        if resource in ("jobs", "pods", "cronjobs")
    }
    assert granted == set(VERBS), granted  # exactly what the feature needs, no more
    try:
        for index, ((group, resource, verb), (probe, reason, text)) in enumerate(VERBS.items()):
            _replace(node, _without(role, group, resource, verb))
            if probe:
                node.kubectl_apply([_job(f"sonde-{index}", PROBE_LABELS, COMMANDS[probe])])

            _wait(
                functools.partial(_reported, setup, reason, text),
                f"{verb} {resource} missing reported as {reason}",
                timeout=120,
                seen=lambda: (setup.status(PROBE), _warnings(node)),
            )
            _replace(node, original)
            _wait(
                lambda: (
                    setup.condition("JobsObserved", PROBE).get("status") == "True"
                    and setup.condition("Ready", PROBE).get("status") == "True"
                ),
                f"the probe observing again once {verb} {resource} is granted back",
                timeout=120,
                seen=lambda: setup.status(PROBE),
            )
    finally:
        _replace(node, original)
    pod = setup.operator_pod()
    assert pod is not None and sum(c["restartCount"] for c in pod["status"]["containerStatuses"]) == restarts
    # granted back, every probe Job's run is recorded and let go; the probe source goes without a trace
    _wait(
        lambda: all(_finished(j) and not j["metadata"].get("finalizers") for j in setup.jobs(PROBE_LABELS)),
        "the probe Jobs recorded and let go",
        timeout=120,
    )
    node.kubectl("-n", JOBS_NAMESPACE, "delete", SOURCES, PROBE, "--timeout=120s", timeout=150)
