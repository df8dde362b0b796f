"""The IngestionSource status: a Ready condition (Kubernetes conventions), generation, children, alerts."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

READY = "Ready"


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


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_patch(status: Mapping[str, Any], observed: Observed, timestamp: str) -> dict[str, Any]:
    """The status fields to write: only those that change, so a no-op reconcile writes nothing.

    lastTransitionTime moves only when the condition's status flips. Children fields are left as they
    are when nothing was applied (an invalid spec keeps the last good children).
    """
    conditions = list(status.get("conditions") or [])
    previous: Mapping[str, Any] = next((c for c in conditions if c.get("type") == READY), {})
    flag = "True" if observed.ready else "False"
    condition = {
        "type": READY,
        "status": flag,
        "reason": observed.reason,
        "message": observed.message,
        "lastTransitionTime": previous.get("lastTransitionTime", timestamp)
        if previous.get("status") == flag
        else timestamp,
        "observedGeneration": observed.generation,
    }
    wanted: dict[str, Any] = {
        "observedGeneration": observed.generation,
        "conditions": [c for c in conditions if c.get("type") != READY] + [condition],
    }
    if observed.rule is not None:
        wanted |= {
            "prometheusRule": observed.rule,
            "dashboard": observed.dashboard or "",
            "alerts": observed.alerts,
        }
    return {key: value for key, value in wanted.items() if status.get(key) != value}
