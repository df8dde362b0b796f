"""The Jobs loop: list then watch, each change acted on and reported; an API error reported and waited
out, never raised; an expired watch listed again at once; the source's Jobs let go on demand."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ingestion_operator.apply import ApplyError
from ingestion_operator.jobrun import Selection, Selector
from ingestion_operator.observe import RETRY_SECONDS, let_go_all, observe
from ingestion_operator.recorder import Marks, Recorder, Snapshot
from tests.operator.fake_jobs import (
    NAMESPACE,
    SELECTION,
    SOURCE,
    FakeJobs,
    FakePublisher,
    completed,
    job,
)

NAME = "efficy"
MARKS = Marks.of(NAME)
FORBIDDEN = ApplyError("jobs.batch is forbidden: cannot watch", reason="Forbidden", retryable=False)
EXPIRED = ApplyError("too old resource version: 1 (40)", reason="Expired", retryable=True)


class FakeStopped:
    """A threading.Event's `is_set` and `wait`: a flag, and a wait that records its timeout and returns at
    once (no time passes)."""

    def __init__(self) -> None:
        self.flag = False
        self.waits: list[float | None] = []

    def is_set(self) -> bool:
        return self.flag

    def wait(self, timeout: float | None = None) -> object:
        self.waits.append(timeout)
        return self.flag


class ScriptedJobs(FakeJobs):
    """The watch plays `rounds`, one per call; once they are played, the daemon is stopped."""

    def __init__(self, stopped: FakeStopped, *jobs: dict[str, Any]) -> None:
        super().__init__(*jobs)
        self.stopped = stopped

    def watch_jobs(
        self, namespace: str, resource_version: str, timeout: int
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        if not self.rounds:
            self.stopped.flag = True
        return super().watch_jobs(namespace, resource_version, timeout)


Reports = list[tuple[Snapshot, ApplyError | None]]


def run(
    api: ScriptedJobs, publisher: FakePublisher, selection: Selection | None = SELECTION
) -> tuple[Reports, Recorder]:
    reports: Reports = []
    recorder = Recorder(api, publisher, NAMESPACE, NAME)
    observe(recorder, lambda: selection, lambda s, e: reports.append((s, e)), api.stopped, watch_seconds=7)
    return reports, recorder


def test_list_then_watch_each_change_acted_on_and_reported() -> None:
    stopped = FakeStopped()
    api, publisher = ScriptedJobs(stopped, job()), FakePublisher()
    api.rounds = [[lambda: ("MODIFIED", api.put(completed(api.jobs["load-1"])))]]  # it ends meanwhile
    reports, recorder = run(api, publisher)
    assert api.calls[:2] == ["list_jobs", "patch_job"]  # held as soon as listed
    assert api.watched[0] == ("1", 7)  # from the listing's resourceVersion
    # the watch's event: read again, published, let go
    assert api.calls[2:5] == ["watch_jobs", "get_job", "patch_job"]
    assert publisher.types == [["START"], ["START", "COMPLETE"]]
    assert [(s.held, e) for s, e in reports[:2]] == [(1, None), (0, None)]
    assert reports[1][0].last_run is not None and reports[1][0].last_run.etat == "SUCCESS"
    assert recorder.snapshot().problems == {} and stopped.waits == []


@pytest.mark.parametrize("where", ["list", "watch"])
def test_an_api_error_is_reported_then_waited_out(where: str) -> None:
    stopped = FakeStopped()
    api, publisher = ScriptedJobs(stopped, job()), FakePublisher()
    if where == "list":
        api.fail("list_jobs", FORBIDDEN)
    else:
        api.rounds = [[FORBIDDEN]]
    reports, _ = run(api, publisher)
    errors = [error for _, error in reports]
    # reported at once, and standing until a watch ran its course
    assert errors[errors.index(FORBIDDEN) :] == [FORBIDDEN, FORBIDDEN, None]
    assert stopped.waits == [RETRY_SECONDS]
    assert api.calls.count("list_jobs") == 2  # then the next round
    assert api.jobs["load-1"]["metadata"]["finalizers"] == [MARKS.finalizer]  # and it goes on


def test_an_expired_watch_lists_again_at_once_without_report() -> None:
    stopped = FakeStopped()
    api = ScriptedJobs(stopped, job())
    api.rounds = [[EXPIRED]]
    reports, _ = run(api, FakePublisher())
    assert reports and all(error is None for _, error in reports) and stopped.waits == []
    assert [c for c in api.calls if c != "patch_job"] == [
        "list_jobs",
        "watch_jobs",
        "list_jobs",
        "watch_jobs",
    ]


def test_stopping_ends_the_watch_at_the_next_change() -> None:
    stopped = FakeStopped()
    api, publisher = ScriptedJobs(stopped), FakePublisher()
    api.rounds = [[("ADDED", job("load-1")), ("ADDED", job("load-2"))]]
    reports: Reports = []

    def report(snapshot: Snapshot, error: ApplyError | None) -> None:
        reports.append((snapshot, error))
        stopped.flag = snapshot.selected == 1

    observe(Recorder(api, publisher, NAMESPACE, NAME), lambda: SELECTION, report, stopped)
    assert len(reports) == 2 and [b[0]["job"]["name"] for b in publisher.batches] == ["load-1"]
    assert api.calls == ["list_jobs", "watch_jobs", "patch_job"]  # load-2 never handled


def test_the_selection_is_read_at_each_change() -> None:
    """The spec may change while the loop runs: a Job unselected since is let go at its next event."""
    stopped = FakeStopped()
    api, publisher = ScriptedJobs(stopped, job()), FakePublisher()
    held = job()
    held["metadata"] |= {"finalizers": [MARKS.finalizer], "resourceVersion": "2"}
    api.rounds = [[("MODIFIED", held)]]
    selections: list[Selection | None] = [SELECTION, Selection(SOURCE, Selector({"app": "renamed"}))]
    reports: Reports = []
    recorder = Recorder(api, publisher, NAMESPACE, NAME)

    def selection() -> Selection | None:
        return selections.pop(0) if len(selections) > 1 else selections[0]

    observe(recorder, selection, lambda s, e: reports.append((s, e)), stopped)
    assert api.jobs["load-1"]["metadata"]["finalizers"] == [] and publisher.types == [["START"]]
    assert [s.held for s, _ in reports[:2]] == [1, 0]  # the listing, the event
    assert reports[-1][0].held == 0


def test_let_go_all_removes_only_this_sources_finalizer() -> None:
    other = Marks.of("other").finalizer
    api = FakeJobs(
        job("load-1", finalizers=[other, MARKS.finalizer]),
        job("load-2", finalizers=[MARKS.finalizer]),
        job("load-3", finalizers=[other]),
        completed(job("load-4")),
    )
    assert let_go_all(Recorder(api, FakePublisher(), NAMESPACE, NAME)) == 2
    assert [j["metadata"].get("finalizers") for j in api.jobs.values()] == [[other], [], [other], None]
    assert all("annotations" not in j["metadata"] for j in api.jobs.values())  # nothing recorded


def test_let_go_all_raises_when_a_patch_fails() -> None:
    api = FakeJobs(job(finalizers=[MARKS.finalizer]))
    api.fail("patch_job", FORBIDDEN)
    with pytest.raises(ApplyError, match="cannot patch Job load-1") as raised:
        let_go_all(Recorder(api, FakePublisher(), NAMESPACE, NAME))
    assert (raised.value.reason, raised.value.retryable) == ("ReleaseFailed", True)
    assert api.jobs["load-1"]["metadata"]["finalizers"] == [MARKS.finalizer]
    assert let_go_all(Recorder(api, FakePublisher(), NAMESPACE, NAME)) == 1  # the caller's retry
