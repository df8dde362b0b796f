"""Status patches: the Ready and JobsObserved conditions' transitions, the Jobs' fields, and nothing to
write when nothing changed."""

from __future__ import annotations

import dataclasses
from typing import Any

from ingestion_operator.apply import ApplyError
from ingestion_operator.recorder import LastRun, Snapshot
from ingestion_operator.status import JOBS_OBSERVED, Observed, jobs_status_patch, status_patch

OK = Observed(
    1, True, "Reconciled", "7 alerts", rule="ingestion-s", dashboard="ingestion-dashboard-s", alerts=7
)


def test_first_status() -> None:
    assert status_patch({}, OK, "T1") == {
        "observedGeneration": 1,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Reconciled",
                "message": "7 alerts",
                "lastTransitionTime": "T1",
                "observedGeneration": 1,
            }
        ],
        "prometheusRule": "ingestion-s",
        "dashboard": "ingestion-dashboard-s",
        "alerts": 7,
    }


def test_no_change_writes_nothing() -> None:
    status = status_patch({}, OK, "T1")
    assert status_patch(status, OK, "T2") == {}


def test_transition_time_moves_only_when_the_status_flips() -> None:
    status = status_patch({}, OK, "T1")
    invalid = Observed(2, False, "InvalidSpec", "spec.source: must not be empty")
    failed = status_patch(status, invalid, "T2")
    assert failed["conditions"][0]["lastTransitionTime"] == "T2"
    assert set(failed) == {"observedGeneration", "conditions"}  # the last good children stay reported
    status |= failed
    other = Observed(3, False, "InvalidSpec", "spec.alerts.failureRateWindow: ...")
    assert status_patch(status, other, "T3")["conditions"][0]["lastTransitionTime"] == "T2"


def test_other_conditions_are_kept() -> None:
    status = {"conditions": [{"type": "Custom", "status": "True", "lastTransitionTime": "T0"}]}
    types = [c["type"] for c in status_patch(status, OK, "T1")["conditions"]]
    assert types == ["Custom", "Ready"]


# --- the Jobs daemon's part: JobsObserved and `jobs` --------------------------------------------------------

IDLE = Snapshot(selected=2, held=1)
RUN = LastRun("load-1", "Contact", "FAILED", "2026-03-01T10:02:30Z")
FORBIDDEN = ApplyError("jobs.batch is forbidden: cannot list", reason="Forbidden", retryable=False)


def jobs_condition(status: dict[str, Any]) -> dict[str, Any]:
    [condition] = [c for c in status["conditions"] if c["type"] == JOBS_OBSERVED]
    return dict(condition)


def test_jobs_first_status() -> None:
    assert jobs_status_patch({}, IDLE, None, "T1") == {
        "jobs": {"selected": 2, "held": 1},
        "conditions": [
            {
                "type": "JobsObserved",
                "status": "True",
                "reason": "Observing",
                "message": "2 Jobs selected, 1 held until their run is published",
                "lastTransitionTime": "T1",
            }
        ],
    }


def test_jobs_writes_only_what_changes() -> None:
    status = jobs_status_patch({}, IDLE, None, "T1")
    assert jobs_status_patch(status, IDLE, None, "T2") == {}
    ran = Snapshot(selected=2, held=0, last_run=RUN)
    changed = jobs_status_patch(status, ran, None, "T2")
    assert changed["jobs"] == {
        "selected": 2,
        "held": 0,
        "lastRun": {"job": "load-1", "objet": "Contact", "etat": "FAILED", "fin": "2026-03-01T10:02:30Z"},
    }
    assert jobs_condition(changed)["lastTransitionTime"] == "T1"  # still True: only its message moved
    status |= changed
    assert jobs_status_patch(status, ran, None, "T3") == {}


def test_jobs_problems_and_errors_make_the_condition_false() -> None:
    status = jobs_status_patch({}, IDLE, None, "T1")
    troubled = Snapshot(
        2, 1, problems={"IntakeUnavailable": "run of Job x not published", "PodsUnreadable": "p"}
    )
    failing = jobs_status_patch(status, troubled, None, "T2")
    assert "jobs" not in failing
    condition = jobs_condition(failing)
    assert (condition["status"], condition["reason"], condition["message"]) == (
        "False",
        "IntakeUnavailable",
        "run of Job x not published; p",
    )
    assert condition["lastTransitionTime"] == "T2"
    status |= failing
    # an API error ending the round wins over the pass's problems; still False: the time stays
    errored = jobs_condition(jobs_status_patch(status, troubled, FORBIDDEN, "T3"))
    assert (errored["status"], errored["reason"], errored["message"]) == (
        "False",
        "Forbidden",
        str(FORBIDDEN),
    )
    assert errored["lastTransitionTime"] == "T2"
    recovered = jobs_condition(jobs_status_patch(status, IDLE, None, "T4"))
    assert (recovered["status"], recovered["lastTransitionTime"]) == ("True", "T4")


def test_jobs_keep_the_ready_condition_and_ready_keeps_jobs_observed() -> None:
    status = status_patch({}, OK, "T1")
    status |= jobs_status_patch(status, IDLE, None, "T2")
    assert [c["type"] for c in status["conditions"]] == ["Ready", "JobsObserved"]
    assert status["conditions"][0] == status_patch({}, OK, "T1")["conditions"][0]  # untouched
    failed = status_patch(status, Observed(2, False, "InvalidSpec", "spec.jobs: ..."), "T3")
    assert [c["type"] for c in failed["conditions"]] == ["JobsObserved", "Ready"]
    assert failed["conditions"][0] == jobs_condition(status)


def test_cronjobs_written_only_when_they_change() -> None:
    status = status_patch({}, OK, "T1")
    assert "jobs" not in status  # no spec.jobs
    scheduled = dataclasses.replace(OK, cronjobs=2, suspended=("nightly",))
    changed = status_patch(status, scheduled, "T2")
    assert changed == {"jobs": {"cronJobs": 2, "suspended": ["nightly"]}}  # merged with the daemon's fields
    status |= changed
    status["jobs"] |= {"selected": 3, "held": 0}  # the daemon's
    assert status_patch(status, scheduled, "T3") == {}
    resumed = dataclasses.replace(OK, cronjobs=2)
    assert status_patch(status, resumed, "T4") == {"jobs": {"cronJobs": 2, "suspended": []}}
    # the daemon wrote first: only the reconcile's fields are in the (merge) patch
    status = status_patch({}, OK, "T1") | {"jobs": {"selected": 3, "held": 0}}
    assert status_patch(status, scheduled, "T2") == {"jobs": {"cronJobs": 2, "suspended": ["nightly"]}}
