"""The loop of one IngestionSource's Jobs (a kopf daemon runs it in a thread): list, then watch, again.

Each round lists every Job of the namespace (what was missed, what failed to publish and is retried,
what is held but no longer selected) and then watches from the listing for `WATCH_SECONDS`, acting on
each change at once (a Job is held as soon as it is created, before `ttlSecondsAfterFinished: 0` could
delete it). An API error ends the round: it is reported and the loop waits before the next, never
crashes (a missing RBAC verb shows in the source's status, not as a restarting pod).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ingestion_operator.apply import ApplyError
from ingestion_operator.jobrun import Selection
from ingestion_operator.recorder import Recorder, Snapshot

WATCH_SECONDS = 15  # a round: also how long a failed publication waits for its retry
RETRY_SECONDS = 15.0  # after an API error
_EXPIRED = ("Expired", "Gone")  # the watch's resourceVersion is too old: list again at once


class Stopped(Protocol):
    """A threading.Event, set once the loop must stop."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> object: ...


Report = Callable[[Snapshot, ApplyError | None], None]


def observe(
    recorder: Recorder,
    selection: Callable[[], Selection | None],
    report: Report,
    stopped: Stopped,
    watch_seconds: int = WATCH_SECONDS,
) -> None:
    """Until `stopped`. `selection` is read at each change: the spec may change while the loop runs."""
    api, namespace = recorder.api, recorder.namespace
    error: ApplyError | None = None  # the last failed round's: it stands until a watch runs its course
    while not stopped.is_set():
        try:
            jobs, version = api.list_jobs(namespace)
            recorder.sync(jobs, selection())
            report(recorder.snapshot(), error)
            for kind, job in api.watch_jobs(namespace, version, watch_seconds):
                recorder.handle(job, selection(), gone=kind == "DELETED")
                report(recorder.snapshot(), error)
                if stopped.is_set():
                    return
            error = None
            report(recorder.snapshot(), None)
        except ApplyError as exc:
            if exc.reason in _EXPIRED:
                continue
            error = exc
            report(recorder.snapshot(), exc)
            stopped.wait(RETRY_SECONDS)


def let_go_all(recorder: Recorder) -> int:
    """Remove the source's finalizer from every Job holding it (the source is deleted or observes no Jobs
    any more): returns how many; raises ApplyError (the caller retries)."""
    jobs, _ = recorder.api.list_jobs(recorder.namespace)
    held = [job for job in jobs if recorder.marks.finalizer in (job["metadata"].get("finalizers") or [])]
    for job in held:
        recorder.handle(job, None)
    if recorder.problems:
        raise ApplyError("; ".join(recorder.problems.values()), reason="ReleaseFailed", retryable=True)
    return len(held)
