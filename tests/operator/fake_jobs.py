"""Shared by the Jobs tests: Job and Pod objects as the API returns them, an in-memory Jobs API (`JobApi`)
and an intake (`RunPublisher`), both with injectable failures."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from ingestion_operator.apply import ApplyError
from ingestion_operator.intake import PublishError
from ingestion_operator.jobrun import Selection, Selector

NAMESPACE = "ns"
SOURCE = "Efficy"
LABELS = {"app": "ingest"}
SELECTION = Selection(SOURCE, Selector(LABELS))
T_START = "2026-03-01T10:00:00Z"
T_END = "2026-03-01T10:02:30Z"  # 150 s after T_START
T_DELETED = "2026-03-01T10:05:00Z"
Event = tuple[str, dict[str, Any]]  # a watch event: (ADDED | MODIFIED | DELETED, Job)


def condition(
    kind: str, at: str = T_END, reason: str = "", message: str = "", status: str = "True"
) -> dict[str, Any]:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastProbeTime": at,
        "lastTransitionTime": at,
    }


def job(
    name: str = "load-1",
    *,
    uid: str | None = None,
    labels: Mapping[str, str] | None = None,
    start: str | None = T_START,
    conditions: Sequence[dict[str, Any]] = (),
    completion: str | None = None,
    owners: Sequence[dict[str, Any]] = (),
    finalizers: Sequence[str] = (),
    annotations: Mapping[str, str] | None = None,
    deleted: str | None = None,
) -> dict[str, Any]:
    """A Job: running from `start` unless `conditions` say otherwise."""
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": NAMESPACE,
        "uid": uid or f"uid-{name}",
        "resourceVersion": "1",
        "labels": dict(LABELS if labels is None else labels),
    }
    if owners:
        metadata["ownerReferences"] = list(owners)
    if finalizers:
        metadata["finalizers"] = list(finalizers)
    if annotations:
        metadata["annotations"] = dict(annotations)
    if deleted:
        metadata["deletionTimestamp"] = deleted
    status: dict[str, Any] = {}
    if start:
        status["startTime"] = start
    if conditions:
        status["conditions"] = list(conditions)
    if completion:
        status["completionTime"] = completion
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "status": status}


def completed(body: Mapping[str, Any], at: str = T_END) -> dict[str, Any]:
    """The Job as the Job controller writes it once it succeeded."""
    done = copy.deepcopy(dict(body))
    done["status"]["conditions"] = [condition("SuccessCriteriaMet", at), condition("Complete", at)]
    done["status"]["completionTime"] = at
    return done


def failed(
    body: Mapping[str, Any],
    reason: str = "BackoffLimitExceeded",
    message: str = "Job has reached the specified backoff limit",
    at: str = T_END,
) -> dict[str, Any]:
    """The Job as the Job controller writes it once it failed."""
    done = copy.deepcopy(dict(body))
    done["status"]["conditions"] = [
        condition("FailureTarget", at, reason, message),
        condition("Failed", at, reason, message),
    ]
    return done


def terminated(
    name: str, code: int, finished: str, message: str = "", reason: str = "Error"
) -> dict[str, Any]:
    """A container status's `terminated` state."""
    return {
        "exitCode": code,
        "reason": reason,
        "message": message,
        "finishedAt": finished,
        "containerID": name,
    }


def pod(
    containers: Sequence[tuple[str, dict[str, Any] | None, dict[str, Any] | None]] = (),
    init: Sequence[tuple[str, dict[str, Any] | None, dict[str, Any] | None]] = (),
) -> dict[str, Any]:
    """A pod whose containers are (name, state.terminated, lastState.terminated)."""

    def statuses(items: Sequence[tuple[str, dict[str, Any] | None, dict[str, Any] | None]]) -> list[Any]:
        return [
            {
                "name": name,
                "state": {"terminated": state} if state else {"running": {}},
                "lastState": {"terminated": last} if last else {},
            }
            for name, state, last in items
        ]

    return {"status": {"initContainerStatuses": statuses(init), "containerStatuses": statuses(containers)}}


class FakeJobs:
    """`recorder.JobApi` in memory, like the API server: a resourceVersion bumped at every write, JSON merge
    patches (a list replaced, a map merged) conditioned on `metadata.resourceVersion` (409 Conflict when
    stale), a deleted Job kept with its deletionTimestamp until its finalizers are gone.

    `fail(call, error)` makes the next call raise; `before_patch` is run (once) before a patch is applied,
    as another writer racing it; `rounds` are the watch's scripted answers, one per `watch_jobs` call:
    (type, Job) events (or a function making one when it is due), or an ApplyError raised at that point."""

    def __init__(self, *jobs: Mapping[str, Any]) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.version = 0
        self.pods: dict[str, list[dict[str, Any]]] = {}  # by the Job's uid
        self.failures: dict[str, list[ApplyError]] = {}
        self.calls: list[str] = []
        self.patches: list[dict[str, Any]] = []  # the patches applied
        self.before_patch: Callable[[], object] | None = None
        self.rounds: list[list[Event | Callable[[], Event] | ApplyError]] = []
        self.watched: list[tuple[str, int]] = []  # (resourceVersion, timeout) of each watch
        for body in jobs:
            self.put(body)

    def put(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create or overwrite a Job as another writer would (the Job controller, kubectl)."""
        self.version += 1
        stored = copy.deepcopy(dict(body))
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.jobs[stored["metadata"]["name"]] = stored
        return copy.deepcopy(stored)

    def delete(self, name: str, at: str = T_DELETED) -> dict[str, Any] | None:
        """A deletion: immediate without finalizers, else the Job stays with its deletionTimestamp."""
        live = self.jobs[name]
        if not live["metadata"].get("finalizers"):
            del self.jobs[name]
            return None
        live["metadata"]["deletionTimestamp"] = at
        return self.put(live)

    def fail(self, call: str, error: ApplyError, times: int = 1) -> None:
        self.failures.setdefault(call, []).extend([error] * times)

    def _call(self, call: str) -> None:
        self.calls.append(call)
        if self.failures.get(call):
            raise self.failures[call].pop(0)

    def list_jobs(self, namespace: str) -> tuple[list[dict[str, Any]], str]:
        assert namespace == NAMESPACE
        self._call("list_jobs")
        return [copy.deepcopy(j) for j in self.jobs.values()], str(self.version)

    def watch_jobs(
        self, namespace: str, resource_version: str, timeout: int
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        assert namespace == NAMESPACE
        self._call("watch_jobs")
        self.watched.append((resource_version, timeout))
        for item in self.rounds.pop(0) if self.rounds else []:
            if isinstance(item, ApplyError):
                raise item
            yield item() if callable(item) else item

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        assert namespace == NAMESPACE
        self._call("get_job")
        found = self.jobs.get(name)
        return copy.deepcopy(found)

    def patch_job(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        assert namespace == NAMESPACE
        self._call("patch_job")
        if self.before_patch is not None:
            racer, self.before_patch = self.before_patch, None
            racer()
        live = self.jobs.get(name)
        if live is None:
            raise ApplyError(f"jobs.batch {name!r} not found", reason="NotFound", retryable=False)
        metadata = dict(patch["metadata"])
        if metadata.pop("resourceVersion") != live["metadata"]["resourceVersion"]:
            raise ApplyError("the object has been modified", reason="Conflict", retryable=True)
        updated = copy.deepcopy(live)
        for key, value in metadata.items():
            if key == "annotations":  # a map: merged, null removes a key
                merged = {**(updated["metadata"].get("annotations") or {}), **value}
                updated["metadata"]["annotations"] = {k: v for k, v in merged.items() if v is not None}
            else:  # a list (finalizers): replaced
                updated["metadata"][key] = value
        self.patches.append(copy.deepcopy(dict(patch)))
        stored = self.put(updated)
        if stored["metadata"].get("deletionTimestamp") and not stored["metadata"].get("finalizers"):
            del self.jobs[name]  # the last finalizer of a deleted Job: it is gone
        return stored

    def list_pods(self, namespace: str, controller_uid: str) -> list[dict[str, Any]]:
        assert namespace == NAMESPACE
        self._call("list_pods")
        return copy.deepcopy(self.pods.get(controller_uid, []))


class Crash(Exception):
    """The operator stopped (killed, OOM) at this point: nothing after it ran."""


class FakePublisher:
    """`recorder.RunPublisher`: records each acknowledged batch; `failures` are raised by the next calls
    (nothing published); `after_ack` runs once after a batch is acknowledged (e.g. raising `Crash`)."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.failures: list[PublishError] = []
        self.after_ack: Callable[[], None] | None = None

    def publish(self, events: Sequence[dict[str, Any]]) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.batches.append(copy.deepcopy(list(events)))
        if self.after_ack is not None:
            then, self.after_ack = self.after_ack, None
            then()

    @property
    def types(self) -> list[list[str]]:
        """Each batch's event types, e.g. [["START"], ["START", "COMPLETE"]]."""
        return [[event["eventType"] for event in batch] for batch in self.batches]
