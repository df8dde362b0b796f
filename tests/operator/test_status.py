"""Status patches: the Ready condition's transitions, and nothing to write when nothing changed."""

from __future__ import annotations

from ingestion_operator.status import Observed, status_patch

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
