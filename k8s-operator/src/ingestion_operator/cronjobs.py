"""The CronJobs whose Jobs a source selects → the per-objet silence alerts' schedules (pure).

A CronJob is the source's when the labels of its `jobTemplate` (the labels its Jobs get) are selected.
Its objet is the one its Jobs are recorded under: the objetLabel's value in the template, else its name.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ingestion_observability.render.config import ObjetSchedule
from ingestion_operator.jobrun import Selection
from ingestion_operator.schedule import ScheduleError, period_seconds, time_zone_of


@dataclass(frozen=True)
class Schedules:
    schedules: tuple[ObjetSchedule, ...]
    cronjobs: int  # the source's CronJobs
    suspended: tuple[str, ...]  # their names, for those suspended
    problems: tuple[str, ...]  # CronJobs whose schedule could not be read: no alert for them


def schedules(
    cronjobs: Iterable[Mapping[str, Any]], selection: Selection, now: datetime.datetime
) -> Schedules:
    """One schedule per objet; two CronJobs recording the same objet keep the longer period (the alert
    must not fire while either still runs on time)."""
    found: dict[str, ObjetSchedule] = {}
    count, suspended, problems = 0, [], []
    for cronjob in sorted(cronjobs, key=lambda c: str(c["metadata"]["name"])):
        name = str(cronjob["metadata"]["name"])
        spec = cronjob.get("spec") or {}
        template = (spec.get("jobTemplate") or {}).get("metadata") or {}
        labels = template.get("labels") or {}
        if not selection.selector.selects(labels):
            continue
        count += 1
        if spec.get("suspend"):
            suspended.append(name)
        objet = labels.get(selection.objet_label) if selection.objet_label else None
        try:
            period = period_seconds(spec["schedule"], spec.get("timeZone"), now)
        except ScheduleError as exc:
            problems.append(f"CronJob {name}: {exc}")
            continue
        entry = ObjetSchedule(
            objet=objet or name,
            period_seconds=period,
            periods=selection.silence_periods,
            cronjob=name,
            schedule=spec["schedule"],
            time_zone=time_zone_of(spec["schedule"], spec.get("timeZone")) or "",
            suspended=bool(spec.get("suspend")),
        )
        previous = found.get(entry.objet)
        if previous is None or previous.period_seconds < period:
            found[entry.objet] = entry
    return Schedules(tuple(found.values()), count, tuple(suspended), tuple(problems))
