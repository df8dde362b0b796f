"""A Kubernetes Job as an ingestion run: pure (no I/O), on the Job and Pod objects as the API returns them.

Mapping (one run per Job; the run is published as OpenLineage RunEvents, which the intake validates and
the consumer pairs and dedupes on `run.runId`):

================  =========================================================================================
run field         from
================  =========================================================================================
``objet.id``      ``metadata.uid``: the runId, so a run published twice is counted once
``source``        the IngestionSource's ``spec.source`` (``job.namespace`` and the ``ingestion_source`` facet)
``objet``         the value of ``spec.jobs.objetLabel`` on the Job when set and present; else the owning
                  CronJob's name; else the Job's name
``debut``         ``status.startTime`` (the START's eventTime)
``fin``           ``status.completionTime`` for a Complete Job; the ``Failed`` condition's time for a failed
                  one; the deletion time for a Job deleted before it finished
``etat``          SUCCESS (condition ``Complete``) or FAILED (``Failed``, or deleted unfinished)
``description``   a failure's condition reason and message, then the failed container's termination message
                  (``/dev/termination-log``, or its log tail with ``FallbackToLogsOnError``)
cpu, memory       absent: Kubernetes keeps no per-run usage (never 0)
================  =========================================================================================

Kubernetes timestamps have a resolution of one second, and so do the runs' durations.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ingestion_observability import openlineage

PRODUCER = "https://github.com/ingestion-observability/ingestion-observability/tree/main/k8s-operator"
_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
_ERROR_FACET_SCHEMA = (
    "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"
)
_SOURCE_FACET_SCHEMA = "https://github.com/ingestion-observability/schemas/IngestionSourceJobFacet.json"
# Kubernetes caps a termination message at 4096 bytes; a condition message is short. The description
# (8192 characters at most, see openlineage.MAX_DESCRIPTION) keeps the tail of a longer text, where a log
# tail has its error.
MAX_TERMINATION = 4096
MAX_CONDITION = 1024
DELETED_REASON = "Deleted"
# The labels the Job controller puts on its pods (the second one before Kubernetes 1.27).
CONTROLLER_UID_LABELS = ("batch.kubernetes.io/controller-uid", "controller-uid")


@dataclass(frozen=True)
class Selector:
    """A metav1.LabelSelector (`spec.jobs.selector`)."""

    match_labels: Mapping[str, str]
    match_expressions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # (key, operator, values)

    def selects(self, labels: Mapping[str, str]) -> bool:
        if any(labels.get(key) != value for key, value in self.match_labels.items()):
            return False
        return all(_matches(labels, *expression) for expression in self.match_expressions)


def _matches(labels: Mapping[str, str], key: str, operator: str, values: tuple[str, ...]) -> bool:
    if operator == "In":
        return labels.get(key) in values
    if operator == "NotIn":
        return labels.get(key) not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    raise ValueError(f"unknown label selector operator {operator!r}")


@dataclass(frozen=True)
class Selection:
    """What an IngestionSource observes: its `spec.source`, the Jobs it selects, how it names objets."""

    source: str
    selector: Selector
    objet_label: str | None = None
    silence_periods: int = 2


@dataclass(frozen=True)
class Ending:
    """How a finished Job ended."""

    etat: str  # SUCCESS or FAILED
    time: str  # RFC 3339, as the API writes it
    reason: str = ""  # the condition's reason (BackoffLimitExceeded, DeadlineExceeded...), or Deleted
    message: str = ""


def labels(job: Mapping[str, Any]) -> Mapping[str, str]:
    return job["metadata"].get("labels") or {}


def cronjob_name(job: Mapping[str, Any]) -> str | None:
    """The name of the CronJob that created the Job (its controller owner reference), if any."""
    for ref in job["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == "CronJob" and ref.get("controller"):
            return str(ref["name"])
    return None


def objet_name(job: Mapping[str, Any], selection: Selection) -> str:
    """The objet: the objetLabel's value when the Job carries it, else its CronJob's name, else its own.
    A Job without the label is still recorded (under the default name): a run is never dropped for it."""
    if selection.objet_label is not None and (value := labels(job).get(selection.objet_label)):
        return value
    return cronjob_name(job) or str(job["metadata"]["name"])


def _condition(job: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return condition  # type: ignore[no-any-return]
    return None


def ending(job: Mapping[str, Any]) -> Ending | None:
    """How the Job ended; None while it runs (or is suspended). A Job deleted before it finished ended
    FAILED at its deletion: its pods are killed, its data not delivered."""
    status = job.get("status") or {}
    if (complete := _condition(job, "Complete")) is not None:
        time = status.get("completionTime") or complete.get("lastTransitionTime")
        return Ending("SUCCESS", str(time))
    if (failed := _condition(job, "Failed")) is not None:
        time = failed.get("lastTransitionTime") or job["metadata"].get("deletionTimestamp")
        return Ending("FAILED", str(time), failed.get("reason") or "", failed.get("message") or "")
    if deleted := job["metadata"].get("deletionTimestamp"):
        return Ending("FAILED", str(deleted), DELETED_REASON, "the Job was deleted before it finished")
    return None


def start_time(job: Mapping[str, Any], end: Ending | None) -> str | None:
    """When the Job started; a Job that ended without ever starting (deleted while pending, or a start
    time the API never wrote) started when it ended: it lasted 0 s."""
    started = (job.get("status") or {}).get("startTime")
    if started:
        return str(started)
    return None if end is None else end.time


def termination(pods: Iterable[Mapping[str, Any]]) -> str:
    """The newest failed container's `name exited N: message` among the Job's pods, '' when none said
    anything (a pod deleted, a container killed without a message)."""
    newest: tuple[str, str] | None = None  # (finishedAt, text)
    for pod in pods:
        status = pod.get("status") or {}
        for container in (status.get("initContainerStatuses") or []) + (
            status.get("containerStatuses") or []
        ):
            for state in (container.get("state"), container.get("lastState")):
                terminated = (state or {}).get("terminated")
                if not terminated or not terminated.get("exitCode"):
                    continue
                text = _terminated_text(container.get("name", "?"), terminated)
                finished = str(terminated.get("finishedAt") or "")
                if newest is None or finished > newest[0]:
                    newest = (finished, text)
    return "" if newest is None else newest[1]


def _terminated_text(container: str, terminated: Mapping[str, Any]) -> str:
    head = f"container {container} exited with code {terminated['exitCode']}"
    if terminated.get("reason") and terminated["reason"] != "Error":
        head += f" ({terminated['reason']})"
    message = (terminated.get("message") or "").strip()
    return f"{head}: {_tail(message, MAX_TERMINATION)}" if message else head


def description(end: Ending, pods: Iterable[Mapping[str, Any]]) -> str:
    """A failure's description: `Reason: message`, then what the failed container said."""
    if end.etat == "SUCCESS":
        return ""
    lines = [": ".join(part for part in (end.reason, _tail(end.message.strip(), MAX_CONDITION)) if part)]
    lines.append(termination(pods))
    return "\n".join(line for line in lines if line)


def _tail(text: str, limit: int) -> str:
    """At most `limit` characters, the end kept (a cut marked with '…')."""
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def run_events(
    job: Mapping[str, Any],
    selection: Selection,
    end: Ending | None,
    pods: Sequence[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    """The RunEvents of the Job: its START alone while it runs; its START and its end once it ended (both:
    the consumer pairs them in one partition; a START it already saw, or a run it already counted, is a
    duplicate it drops). No event for a Job not started yet."""
    begun = start_time(job, end)
    if begun is None:
        return []
    events = [_event(job, selection, "START", begun)]
    if end is not None:
        facets: dict[str, Any] = {}
        if text := description(end, pods):
            facets["errorMessage"] = {
                "_producer": PRODUCER,
                "_schemaURL": _ERROR_FACET_SCHEMA,
                "message": _tail(text, openlineage.MAX_DESCRIPTION),
                "programmingLanguage": "unknown",
            }
        event_type = "COMPLETE" if end.etat == "SUCCESS" else "FAIL"
        events.append(_event(job, selection, event_type, end.time, facets))
    return events


def _event(
    job: Mapping[str, Any],
    selection: Selection,
    event_type: str,
    time: str,
    run_facets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "eventType": event_type,
        "eventTime": time,
        "producer": PRODUCER,
        "schemaURL": _SCHEMA,
        "run": {"runId": job["metadata"]["uid"], "facets": dict(run_facets or {})},
        "job": {
            "namespace": selection.source,
            "name": objet_name(job, selection),
            # the source also when the intake reads it from the facet (INTAKE_SOURCE_FROM=facet)
            "facets": {
                openlineage.SOURCE_FACET: {
                    "_producer": PRODUCER,
                    "_schemaURL": _SOURCE_FACET_SCHEMA,
                    "source": selection.source,
                }
            },
        },
        "inputs": [],
        "outputs": [],
    }
