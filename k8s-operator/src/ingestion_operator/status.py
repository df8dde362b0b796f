"""The IngestionSource status: a Ready condition (Kubernetes conventions), generation, children, alerts;
for a source observing Jobs, a JobsObserved condition and `jobs` (the Jobs daemon writes those)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ingestion_operator.apply import ApplyError
from ingestion_operator.recorder import Snapshot

READY = "Ready"
JOBS_OBSERVED = "JobsObserved"


@dataclass(frozen=True)
class Observed:
    """The outcome of one reconcile of one generation of the spec."""

    generation: int
    ready: bool
    reason: str  # CamelCase, e.g. Reconciled, InvalidSpec
    message: str
    rule: str | None = None  # children names and alert count; None when nothing was applied
    dashboard: str | None = None
    alerts: int | None = None
    cronjobs: int | None = None  # the CronJobs the source's selector selects; None: no spec.jobs
    suspended: tuple[str, ...] = ()


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_patch(status: Mapping[str, Any], observed: Observed, timestamp: str) -> dict[str, Any]:
    """The status fields to write: only those that change, so a no-op reconcile writes nothing.

    lastTransitionTime moves only when the condition's status flips. Children fields are left as they
    are when nothing was applied (an invalid spec keeps the last good children).
    """
    condition = _condition(status, READY, observed.ready, observed.reason, observed.message, timestamp)
    condition["observedGeneration"] = observed.generation
    wanted: dict[str, Any] = {
        "observedGeneration": observed.generation,
        "conditions": _with(status, condition),
    }
    if observed.rule is not None:
        wanted |= {
            "prometheusRule": observed.rule,
            "dashboard": observed.dashboard or "",
            "alerts": observed.alerts,
        }
    changed = {key: value for key, value in wanted.items() if status.get(key) != value}
    if observed.cronjobs is not None:  # merged into `jobs`, whose other fields the Jobs daemon writes
        schedules = {"cronJobs": observed.cronjobs, "suspended": list(observed.suspended)}
        current = status.get("jobs") or {}
        if any(current.get(key) != value for key, value in schedules.items()):
            changed["jobs"] = schedules
    return changed


def jobs_status_patch(
    status: Mapping[str, Any], snapshot: Snapshot, error: ApplyError | None, timestamp: str
) -> dict[str, Any]:
    """The `jobs` fields and the JobsObserved condition to write (only what changes): False with the
    API error that ended the last round, else with the problems of the last pass, else True."""
    if error is not None:
        ok, reason, message = False, error.reason, str(error)
    elif snapshot.problems:
        ok, reason = False, next(iter(snapshot.problems))
        message = "; ".join(snapshot.problems.values())
    else:
        ok, reason = True, "Observing"
        message = f"{snapshot.selected} Jobs selected, {snapshot.held} held until their run is published"
    jobs: dict[str, Any] = {"selected": snapshot.selected, "held": snapshot.held}
    if snapshot.last_run is not None:
        run = snapshot.last_run
        jobs["lastRun"] = {"job": run.job, "objet": run.objet, "etat": run.etat, "fin": run.fin}
    current = status.get("jobs") or {}
    wanted: dict[str, Any] = {}
    if any(current.get(key) != value for key, value in jobs.items()):
        wanted["jobs"] = jobs
    condition = _condition(status, JOBS_OBSERVED, ok, reason, message, timestamp)
    if _current(status, JOBS_OBSERVED) != condition:
        wanted["conditions"] = _with(status, condition)
    return wanted


def _current(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), {})


def _condition(
    status: Mapping[str, Any], kind: str, ok: bool, reason: str, message: str, timestamp: str
) -> dict[str, Any]:
    """The condition `kind`; its lastTransitionTime moves only when its status flips."""
    previous = _current(status, kind)
    flag = "True" if ok else "False"
    return {
        "type": kind,
        "status": flag,
        "reason": reason,
        "message": message,
        "lastTransitionTime": previous.get("lastTransitionTime", timestamp)
        if previous.get("status") == flag
        else timestamp,
    }


def _with(status: Mapping[str, Any], condition: dict[str, Any]) -> list[dict[str, Any]]:
    """The conditions with `condition` in place of its type's (a merge patch replaces the whole list)."""
    others = [c for c in status.get("conditions") or [] if c.get("type") != condition["type"]]
    return [*others, condition]
