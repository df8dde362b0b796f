"""Each selected Job's run published exactly once, whatever happens to the Job or to the operator.

The state lives on the Job, so a restarted operator picks up where it stopped:

- the finalizer `run.observability.ingestion.dev/<source>` while the run is not published: a Job deleted
  (by hand, by `ttlSecondsAfterFinished`, by the CronJob's history limit) waits for it;
- the annotation `recorded.observability.ingestion.dev/<source>` once it is: set in the same patch that
  removes the finalizer, with the Job's resourceVersion (a concurrent change makes it fail and retry).

A finished Job is re-read (`get`) before its run is published: a watch event may be older than the
annotation. If the operator stops between Kafka's acknowledgement and that patch, it publishes the run
again after its restart and the consumer drops it (it dedupes OpenLineage runs on their runId, the Job's
uid). A Job created and deleted while the operator is down, before it could hold it, is not seen at all.

A Job no longer selected (its labels or the selector changed) is let go without being published. One
source's marks do not concern another source selecting the same Job: each records its own run.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ingestion_operator.apply import ApplyError
from ingestion_operator.children import GROUP
from ingestion_operator.intake import PublishError
from ingestion_operator.jobrun import Ending, Selection, ending, labels, objet_name, run_events, start_time

log = logging.getLogger("ingestion_operator.recorder")

PATCH_ATTEMPTS = 5  # conflicting writers of one Job (its controller, the TTL controller) before giving up
# Jobs whose START or run this instance published, per source: not published again on a later event (a
# restart forgets them, and publishes again what the consumer then drops).
PUBLISHED_REMEMBERED = 4096


class JobApi(Protocol):
    """The Kubernetes calls of the recorder; each raises `ApplyError`."""

    def list_jobs(self, namespace: str) -> tuple[list[dict[str, Any]], str]:
        """Every Job of the namespace and the list's resourceVersion."""

    def watch_jobs(
        self, namespace: str, resource_version: str, timeout: int
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(ADDED | MODIFIED | DELETED, Job) from `resource_version`, for `timeout` seconds at most."""

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def patch_job(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON merge patch."""

    def list_pods(self, namespace: str, controller_uid: str) -> list[dict[str, Any]]: ...


class RunPublisher(Protocol):
    def publish(self, events: Sequence[dict[str, Any]]) -> None:
        """Returns once every event is acknowledged; raises `PublishError` otherwise."""


@dataclass(frozen=True)
class Marks:
    """The finalizer and annotation of one source on its Jobs (qualified names: source names have at most
    63 characters, the CRD says so)."""

    finalizer: str
    recorded: str

    @classmethod
    def of(cls, source_name: str) -> Marks:
        return cls(f"run.{GROUP}/{source_name}", f"recorded.{GROUP}/{source_name}")


@dataclass(frozen=True)
class LastRun:
    job: str
    objet: str
    etat: str
    fin: str


@dataclass
class Snapshot:
    """What the source's status shows of its Jobs, and what went wrong in the last pass."""

    selected: int = 0
    held: int = 0
    last_run: LastRun | None = None
    problems: dict[str, str] = field(default_factory=dict)  # reason -> message, newest per reason


@dataclass
class _Seen:
    selected: bool
    held: bool


class Recorder:
    """The runs of the Jobs of one namespace that one IngestionSource selects."""

    def __init__(self, api: JobApi, publisher: RunPublisher | None, namespace: str, source_name: str) -> None:
        self.api, self.publisher, self.namespace = api, publisher, namespace
        self.marks = Marks.of(source_name)
        self._published: OrderedDict[str, bool] = OrderedDict()  # uid -> whether its end was
        self._seen: dict[str, _Seen] = {}
        self.last_run: LastRun | None = None
        self.problems: dict[str, str] = {}  # this pass's
        self._reported: dict[str, str] = {}  # the previous pass's: a problem is logged once, not each pass

    def snapshot(self) -> Snapshot:
        selected = [seen for seen in self._seen.values() if seen.selected]
        return Snapshot(
            selected=len(selected),
            held=sum(seen.held for seen in self._seen.values()),
            last_run=self.last_run,
            problems=dict(self.problems),
        )

    def sync(self, jobs: Iterable[Mapping[str, Any]], selection: Selection | None) -> None:
        """A full pass over the namespace's Jobs (a listing): what is not listed any more is forgotten."""
        self._reported, self.problems = self.problems, {}
        listed = set()
        for job in jobs:
            listed.add(job["metadata"]["uid"])
            self.handle(job, selection)
        for uid in set(self._seen) - listed:
            del self._seen[uid]

    def handle(self, job: Mapping[str, Any], selection: Selection | None, *, gone: bool = False) -> None:
        """One Job as last seen; `gone` when the API deleted it. None: the source observes no Jobs."""
        meta = job["metadata"]
        uid = meta["uid"]
        held = self.marks.finalizer in (meta.get("finalizers") or [])
        recorded = self.marks.recorded in (meta.get("annotations") or {})
        selected = selection is not None and selection.selector.selects(labels(job))
        if gone:
            self._seen.pop(uid, None)
            # deleted before the operator could hold it (created while it was down, or done within
            # moments): what the last state says is all there is, published once, nothing to mark. (A
            # Job deleted by the patch that let it go may come without that patch's annotation.)
            if self._published.get(uid):
                return
            if selection is not None and selected and not recorded and (end := ending(job)) is not None:
                self._publish(job, selection, end, mark=False)
            return
        self._seen[uid] = _Seen(selected, held)
        if selected and not recorded and self.publisher is None:
            self._problem("NoIntake", "no intake URL configured (--intake-url): runs are not recorded")
        if not selected or recorded or self.publisher is None:  # never held for nothing
            if held and self._let_go(job, recorded_at=None):
                self._seen[uid].held = False
            return
        assert selection is not None
        end = ending(job)
        if end is not None:
            self._record(job, selection)
            return
        if not held and not meta.get("deletionTimestamp"):
            self._hold(job)
        if uid not in self._published and start_time(job, None) is not None:
            self._publish(job, selection, None, mark=False)

    def _hold(self, job: Mapping[str, Any]) -> None:
        def patch(current: Mapping[str, Any]) -> dict[str, Any] | None:
            meta = current["metadata"]
            finalizers = list(meta.get("finalizers") or [])
            if (
                self.marks.finalizer in finalizers
                or meta.get("deletionTimestamp")
                or self.marks.recorded in (meta.get("annotations") or {})
            ):
                return None  # held already; a deleting Job takes no new finalizer; a recorded one needs none
            return {"finalizers": [*finalizers, self.marks.finalizer]}

        if (after := self._patch(job, patch, "HoldFailed")) is not None:  # as re-read after a conflict
            held = self.marks.finalizer in (after["metadata"].get("finalizers") or [])
            self._seen[job["metadata"]["uid"]].held = held

    def _record(self, job: Mapping[str, Any], selection: Selection) -> None:
        """Publish a finished Job's run, then mark it recorded and let it go, from its current state."""
        name = job["metadata"]["name"]
        try:
            fresh = self.api.get_job(self.namespace, name)
        except ApplyError as exc:
            self._problem("ReadFailed", f"cannot read Job {name} before publishing its run: {exc}")
            return
        if fresh is None or fresh["metadata"]["uid"] != job["metadata"]["uid"]:
            return  # gone: its DELETED event follows
        if self.marks.recorded in (fresh["metadata"].get("annotations") or {}):
            self.handle(fresh, selection)
            return
        end = ending(fresh)
        if end is None:
            return
        uid = fresh["metadata"]["uid"]
        # published, but the patch failed: only the patch is retried
        done = (
            self._let_go(fresh, end.time)
            if self._published.get(uid)
            else self._publish(fresh, selection, end, mark=True)
        )
        if done:
            self._seen[uid].held = False

    def _publish(
        self, job: Mapping[str, Any], selection: Selection, end: Ending | None, *, mark: bool
    ) -> bool:
        """The Job's RunEvents (its START alone while it runs); `mark`: then the recorded annotation."""
        meta = job["metadata"]
        if self.publisher is None:
            return False
        pods: list[dict[str, Any]] = []
        if end is not None and end.etat == "FAILED":
            try:
                pods = self.api.list_pods(self.namespace, meta["uid"])
            except ApplyError as exc:  # the run still counts, without what its container said
                self._problem("PodsUnreadable", f"termination messages not read: {exc}")
        events = run_events(job, selection, end, pods)
        try:
            self.publisher.publish(events)
        except PublishError as exc:
            what = "run" if end is not None else "start"
            self._problem(exc.reason, f"{what} of Job {meta['name']} not published (retried): {exc}")
            return False
        self._published.pop(meta["uid"], None)
        self._published[meta["uid"]] = end is not None
        if len(self._published) > PUBLISHED_REMEMBERED:
            self._published.popitem(last=False)
        if end is None:
            return True
        self.last_run = LastRun(meta["name"], objet_name(job, selection), end.etat, end.time)
        log.info(f"{self.namespace}/{meta['name']}: run {end.etat} published ({selection.source})")
        return not mark or self._let_go(job, recorded_at=end.time)

    def _let_go(self, job: Mapping[str, Any], recorded_at: str | None) -> bool:
        """Remove the finalizer; with `recorded_at`, mark the run recorded in the same patch."""

        def patch(current: Mapping[str, Any]) -> dict[str, Any] | None:
            finalizers = list(current["metadata"].get("finalizers") or [])
            change: dict[str, Any] = {}
            if self.marks.finalizer in finalizers:
                change["finalizers"] = [f for f in finalizers if f != self.marks.finalizer]
            if recorded_at is not None:
                change["annotations"] = {self.marks.recorded: recorded_at}
            return change or None

        return self._patch(job, patch, "ReleaseFailed") is not None

    def _patch(self, job: Mapping[str, Any], change: Any, reason: str) -> Mapping[str, Any] | None:
        """Apply `change(current)` as a merge patch conditioned on the Job's resourceVersion, re-reading
        it after a conflict. Returns the Job after the patch (the Job when nothing was to change), None
        when it failed or the Job is gone."""
        current: Mapping[str, Any] | None = job
        name = job["metadata"]["name"]
        for _ in range(PATCH_ATTEMPTS):
            if current is None:
                return None
            metadata = change(current)
            if metadata is None:
                return current
            metadata["resourceVersion"] = current["metadata"]["resourceVersion"]
            try:
                return self.api.patch_job(self.namespace, name, {"metadata": metadata})
            except ApplyError as exc:
                if exc.reason == "NotFound":
                    return None
                if exc.reason != "Conflict":
                    self._problem(reason, f"cannot patch Job {name}: {exc}")
                    return None
            try:
                current = self.api.get_job(self.namespace, name)
            except ApplyError as exc:
                self._problem("ReadFailed", f"cannot read Job {name} after a conflict: {exc}")
                return None
        self._problem(reason, f"Job {name}: still conflicting after {PATCH_ATTEMPTS} attempts")
        return None

    def _problem(self, reason: str, message: str) -> None:
        if message not in (self.problems.get(reason), self._reported.get(reason)):
            log.warning(f"{self.namespace}: {message}")
        self.problems[reason] = message
