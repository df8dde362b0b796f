"""The recorder against an in-memory Jobs API and intake: each selected Job's run published exactly once
(a duplicate after a crash carries the same runId, which the consumer drops), the Job held meanwhile and
let go in the same patch that marks it recorded, whatever fails."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson
import pytest

from ingestion_observability import catalog, openlineage
from ingestion_observability.consumer.loki import LokiBatch
from ingestion_observability.consumer.staging import StagedBatch, StagingLimits, stage
from ingestion_observability.consumer.state import PartitionState
from ingestion_operator.apply import ApplyError
from ingestion_operator.intake import PublishError
from ingestion_operator.jobrun import Selection, Selector
from ingestion_operator.recorder import PATCH_ATTEMPTS, LastRun, Marks, Recorder, Snapshot
from tests.operator.fake_jobs import (
    NAMESPACE,
    SELECTION,
    SOURCE,
    T_DELETED,
    T_END,
    Crash,
    FakeJobs,
    FakePublisher,
    completed,
    failed,
    job,
    pod,
    terminated,
)
from tests.unit.test_consumer_staging import FakeMessage

NAME = "efficy"  # the IngestionSource's name
MARKS = Marks.of(NAME)
OTHER = "example.com/audit"  # another controller's finalizer
FORBIDDEN = ApplyError('jobs.batch "load-1" is forbidden', reason="Forbidden", retryable=False)
DOWN = PublishError("POST http://intake/api/v1/lineage: HTTP 503: #0: Kafka down", reason="IntakeUnavailable")


def started(api: FakeJobs, publisher: FakePublisher | None, name: str = NAME) -> Recorder:
    """A recorder that made a first pass over the Jobs of `api`."""
    recorder = Recorder(api, publisher, NAMESPACE, name)
    recorder.sync(api.list_jobs(NAMESPACE)[0], SELECTION)
    return recorder


def live(api: FakeJobs, name: str = "load-1") -> dict[str, Any]:
    found = api.get_job(NAMESPACE, name)
    api.calls.pop()
    assert found is not None
    return found


def finalizers(api: FakeJobs, name: str = "load-1") -> list[str]:
    return list(live(api, name)["metadata"].get("finalizers") or [])


def annotations_of(api: FakeJobs, name: str = "load-1") -> dict[str, str]:
    return dict(live(api, name)["metadata"].get("annotations") or {})


def finish(
    api: FakeJobs, done: Callable[[Mapping[str, Any]], dict[str, Any]] = completed, name: str = "load-1"
) -> dict[str, Any]:
    """The Job controller marks the Job finished: the MODIFIED event's object."""
    result: dict[str, Any] = api.put(done(live(api, name)))
    return result


def _merge(base: Mapping[str, Any], **metadata: Any) -> dict[str, Any]:
    """`base` with these metadata fields."""
    return {**base, "metadata": {**base["metadata"], **metadata}}


def ends(publisher: FakePublisher) -> list[list[dict[str, Any]]]:
    """The acknowledged batches holding a run's end."""
    return [batch for batch in publisher.batches if len(batch) == 2]


# --- the normal life of a Job ------------------------------------------------------------------------------


def test_held_at_first_sight_start_once_then_start_and_end_in_one_patch() -> None:
    api, publisher = FakeJobs(job()), FakePublisher()
    recorder = started(api, publisher)
    assert finalizers(api) == [MARKS.finalizer] and publisher.types == [["START"]]
    for active in (1, 2):  # the Job controller's MODIFIED events while it runs
        running = live(api)
        running["status"]["active"] = active
        recorder.handle(api.put(running), SELECTION)
    assert publisher.types == [["START"]] and len(api.patches) == 1
    recorder.handle(finish(api), SELECTION)
    assert publisher.types == [["START"], ["START", "COMPLETE"]]
    assert api.patches[-1] == {
        "metadata": {
            "finalizers": [],
            "annotations": {MARKS.recorded: T_END},
            "resourceVersion": api.patches[-1]["metadata"]["resourceVersion"],
        }
    }
    assert len(api.patches) == 2 and finalizers(api) == [] and annotations_of(api) == {MARKS.recorded: T_END}
    recorder.handle(live(api), SELECTION)  # the MODIFIED event of that patch: nothing more to do
    assert len(publisher.batches) == 2 and len(api.patches) == 2
    assert recorder.snapshot() == Snapshot(1, 0, LastRun("load-1", "load-1", "SUCCESS", T_END), {})


def test_a_job_not_started_is_held_and_its_start_waits() -> None:
    api, publisher = FakeJobs(job(start=None)), FakePublisher()
    recorder = started(api, publisher)
    assert finalizers(api) == [MARKS.finalizer] and publisher.batches == []
    running = live(api)
    running["status"]["startTime"] = "2026-03-01T10:00:00Z"
    recorder.handle(api.put(running), SELECTION)
    assert publisher.types == [["START"]]


def test_a_job_finished_at_first_sight_is_published_and_marked_without_being_held() -> None:
    api, publisher = FakeJobs(completed(job())), FakePublisher()
    started(api, publisher)
    assert publisher.types == [["START", "COMPLETE"]]
    assert api.patches == [
        {
            "metadata": {
                "annotations": {MARKS.recorded: T_END},
                "resourceVersion": api.patches[0]["metadata"]["resourceVersion"],
            }
        }
    ]


# --- failures of the intake, the operator, the API -------------------------------------------------------


def test_intake_failing_keeps_the_job_held_until_the_next_pass_publishes_it_once() -> None:
    api, publisher = FakeJobs(job()), FakePublisher()
    recorder = started(api, publisher)
    publisher.failures = [DOWN]
    recorder.handle(finish(api), SELECTION)
    assert finalizers(api) == [MARKS.finalizer] and MARKS.recorded not in annotations_of(api)
    assert recorder.snapshot().problems == {
        "IntakeUnavailable": f"run of Job load-1 not published (retried): {DOWN}"
    }
    assert recorder.snapshot().held == 1 and recorder.snapshot().last_run is None
    recorder.sync(api.list_jobs(NAMESPACE)[0], SELECTION)  # the next round
    assert recorder.snapshot().problems == {} and finalizers(api) == []
    recorder.sync(api.list_jobs(NAMESPACE)[0], SELECTION)
    assert publisher.types == [["START"], ["START", "COMPLETE"]]  # the end published once in all


def staged(events: list[dict[str, Any]]) -> tuple[PartitionState, StagedBatch]:
    """The consumer's staging of `events`, in order, as the intake keys them (one partition)."""
    partition, batch = PartitionState(0), StagedBatch(LokiBatch("ingestion-logs"))
    messages = [
        FakeMessage(
            "ingestion-events",
            0,
            offset,
            1_772_359_500_000 + offset,
            openlineage.event_key(openlineage.parse_run_event(event)),
            orjson.dumps(event),
        )
        for offset, event in enumerate(events)
    ]
    stage(batch, partition, messages, StagingLimits())
    partition.commit(batch.states[0])
    return partition, batch


def test_a_crash_between_the_ack_and_the_patch_publishes_again_and_the_consumer_counts_once() -> None:
    """The restarted operator (a new Recorder: nothing remembered) finds the Job held and unrecorded and
    publishes its run again: same runId, which consumer.staging.stage drops (its key `openlineage:<runId>`
    is in the objet's `recent` keys once the first end counted it)."""
    api, publisher = FakeJobs(job()), FakePublisher()
    recorder = started(api, publisher)

    def crash() -> None:
        raise Crash

    publisher.after_ack = crash
    with pytest.raises(Crash):
        recorder.handle(finish(api), SELECTION)
    assert finalizers(api) == [MARKS.finalizer] and MARKS.recorded not in annotations_of(api)
    restarted = started(api, publisher)
    assert publisher.types == [["START"], ["START", "COMPLETE"], ["START", "COMPLETE"]]
    assert finalizers(api) == [] and MARKS.recorded in annotations_of(api)
    first, second = ends(publisher)
    assert first == second  # the same runId, the same times: the same run
    assert restarted.snapshot().last_run == LastRun("load-1", "load-1", "SUCCESS", T_END)
    partition, batch = staged([event for events in publisher.batches for event in events])
    state = partition.committed[(SOURCE, "load-1")]
    assert state.runs == {("SUCCESS", "", ""): 1} and batch.duplicates == 2
    assert sum(state.histograms[catalog.DURATION.name].counts) == 1
    assert state.histograms[catalog.DURATION.name].total == 150.0 and batch.loki.count == 1


@pytest.mark.parametrize("restarted", [False, True])
def test_a_stale_event_is_read_again_and_not_published_again(restarted: bool) -> None:
    """An event older than the recorded annotation (queued before the recorder's own patch) shows the Job
    finished and unrecorded: the fresh read says recorded, nothing is published (not from memory: a
    restarted recorder does the same)."""
    api, publisher = FakeJobs(job()), FakePublisher()
    recorder = started(api, publisher)
    stale = finish(api)
    recorder.handle(stale, SELECTION)
    patches, batches = len(api.patches), len(publisher.batches)
    if restarted:
        recorder = Recorder(api, publisher, NAMESPACE, NAME)
    api.calls.clear()
    recorder.handle(stale, SELECTION)
    assert api.calls == ["get_job"]
    assert (len(api.patches), len(publisher.batches)) == (patches, batches)
    assert recorder.snapshot().held == 0


def test_conflicts_are_retried_from_a_fresh_read_and_other_finalizers_kept() -> None:
    api, publisher = FakeJobs(job(finalizers=["example.com/keep"])), FakePublisher()

    def other_writer() -> None:  # another controller adds its finalizer just before each of our patches
        racing = live(api)
        racing["metadata"]["finalizers"].append(OTHER)
        api.put(racing)

    api.before_patch = other_writer
    recorder = started(api, publisher)
    assert finalizers(api) == ["example.com/keep", OTHER, MARKS.finalizer]
    assert api.calls == ["list_jobs", "patch_job", "get_job", "patch_job"]
    done = finish(api)
    api.before_patch = lambda: api.put(live(api))  # the Job controller writes the status again
    recorder.handle(done, SELECTION)
    assert finalizers(api) == ["example.com/keep", OTHER] and MARKS.recorded in annotations_of(api)
    assert len(ends(publisher)) == 1 and recorder.snapshot().problems == {}


def test_endless_conflicts_give_up_with_a_problem() -> None:
    conflict = ApplyError("the object has been modified", reason="Conflict", retryable=True)
    api, publisher = FakeJobs(job()), FakePublisher()
    api.fail("patch_job", conflict, times=PATCH_ATTEMPTS)
    recorder = started(api, publisher)
    assert api.calls.count("patch_job") == PATCH_ATTEMPTS and finalizers(api) == []
    assert recorder.snapshot().problems["HoldFailed"] == (
        f"Job load-1: still conflicting after {PATCH_ATTEMPTS} attempts"
    )
    assert recorder.snapshot().held == 0


def test_list_pods_forbidden_still_publishes_the_run_without_the_container_message() -> None:
    api, publisher = FakeJobs(job()), FakePublisher()
    api.pods["uid-load-1"] = [pod([("main", terminated("main", 1, T_END, "Timeout on /invoices"), None)])]
    recorder = started(api, publisher)
    api.fail("list_pods", FORBIDDEN)
    recorder.handle(finish(api, failed), SELECTION)
    [end_batch] = ends(publisher)
    assert end_batch[1]["eventType"] == "FAIL"
    message = end_batch[1]["run"]["facets"]["errorMessage"]["message"]
    assert message == "BackoffLimitExceeded: Job has reached the specified backoff limit"
    assert recorder.snapshot().problems == {"PodsUnreadable": f"termination messages not read: {FORBIDDEN}"}
    assert finalizers(api) == [] and MARKS.recorded in annotations_of(api)


def test_pods_readable_add_the_container_message() -> None:
    api, publisher = FakeJobs(job()), FakePublisher()
    api.pods["uid-load-1"] = [pod([("main", terminated("main", 1, T_END, "Timeout on /invoices"), None)])]
    started(api, publisher).handle(finish(api, failed), SELECTION)
    [end_batch] = ends(publisher)
    assert end_batch[1]["run"]["facets"]["errorMessage"]["message"].endswith(
        "\ncontainer main exited with code 1: Timeout on /invoices"
    )


def test_patch_forbidden_is_a_problem_not_a_crash() -> None:
    """Not held: HoldFailed (its START still published). Its run published but not marked: ReleaseFailed,
    the Job stays held and the next pass publishes it again (same runId) and lets it go."""
    api, publisher = FakeJobs(job(finalizers=[MARKS.finalizer])), FakePublisher()
    api.put(job("load-2"))
    api.fail("patch_job", FORBIDDEN)
    recorder = started(api, publisher)
    assert recorder.snapshot().problems == {"HoldFailed": f"cannot patch Job load-2: {FORBIDDEN}"}
    assert finalizers(api, "load-2") == [] and publisher.types == [["START"], ["START"]]
    api.fail("patch_job", FORBIDDEN)
    recorder.handle(finish(api), SELECTION)
    assert recorder.snapshot().problems["ReleaseFailed"] == f"cannot patch Job load-1: {FORBIDDEN}"
    assert finalizers(api) == [MARKS.finalizer] and recorder.snapshot().held == 1
    recorder.sync(api.list_jobs(NAMESPACE)[0], SELECTION)  # only the patch is retried
    [end_batch] = ends(publisher)
    assert end_batch[1]["run"]["runId"] == "uid-load-1"
    assert finalizers(api) == [] and "ReleaseFailed" not in recorder.snapshot().problems
    assert MARKS.recorded in api.jobs["load-1"]["metadata"]["annotations"]


def test_get_forbidden_publishes_nothing_yet() -> None:
    api, publisher = FakeJobs(job()), FakePublisher()
    recorder = started(api, publisher)
    done = finish(api)
    api.fail("get_job", FORBIDDEN)
    recorder.handle(done, SELECTION)
    assert ends(publisher) == [] and finalizers(api) == [MARKS.finalizer]
    assert recorder.snapshot().problems == {
        "ReadFailed": f"cannot read Job load-1 before publishing its run: {FORBIDDEN}"
    }


# --- deletions ----------------------------------------------------------------------------------------------


def test_ttl_zero_the_deletion_of_a_held_job_waits_for_its_run() -> None:
    """ttlSecondsAfterFinished: 0 deletes the Job as it finishes: it stays (deletionTimestamp) until the
    recorder published its run and removed its finalizer; its run is a SUCCESS, not a deletion."""
    api, publisher = FakeJobs(job()), FakePublisher()
    recorder = started(api, publisher)
    finish(api)
    deleting = api.delete("load-1")
    assert deleting is not None and deleting["metadata"]["deletionTimestamp"] == T_DELETED
    recorder.handle(deleting, SELECTION)
    [end_batch] = ends(publisher)
    assert (end_batch[1]["eventType"], end_batch[1]["eventTime"]) == ("COMPLETE", T_END)
    assert "load-1" not in api.jobs  # our finalizer was the last: the deletion completed
    # its DELETED event: the state our patch left, recorded
    recorder.handle(
        _merge(deleting, finalizers=[], annotations={MARKS.recorded: T_END}), SELECTION, gone=True
    )
    assert len(publisher.batches) == 2


def test_a_job_deleted_by_the_patch_that_let_it_go_is_not_published_again() -> None:
    """The API server may send the DELETED event of a Job whose last finalizer our patch removed with the
    state before that patch (held, not marked recorded, as a real node showed): the run this recorder just
    published is not published a second time."""
    api, publisher = FakeJobs(job()), FakePublisher()
    recorder = started(api, publisher)
    finish(api)
    deleting = api.delete("load-1")
    assert deleting is not None
    recorder.handle(deleting, SELECTION)
    recorder.handle(deleting, SELECTION, gone=True)  # the state before the patch
    assert len(publisher.batches) == 2 and len(ends(publisher)) == 1


def test_ttl_zero_a_job_never_held_is_published_once_from_its_deleted_event() -> None:
    api, publisher = FakeJobs(), FakePublisher()
    recorder = Recorder(api, publisher, NAMESPACE, NAME)
    recorder.handle(completed(job()), SELECTION, gone=True)
    assert publisher.types == [["START", "COMPLETE"]] and api.calls == []  # nothing to read or mark
    assert recorder.snapshot() == Snapshot(0, 0, LastRun("load-1", "load-1", "SUCCESS", T_END), {})


def test_ttl_zero_a_finished_job_gone_before_its_read_is_published_from_its_deleted_event() -> None:
    """Seen finished (MODIFIED) but deleted before the re-read: nothing then, its DELETED event publishes."""
    api, publisher = FakeJobs(), FakePublisher()
    recorder = Recorder(api, publisher, NAMESPACE, NAME)
    recorder.handle(completed(job()), SELECTION)
    assert publisher.batches == [] and api.calls == ["get_job"]
    recorder.handle(completed(job()), SELECTION, gone=True)
    assert publisher.types == [["START", "COMPLETE"]]


@pytest.mark.parametrize(
    "body",
    [
        completed(job(annotations={MARKS.recorded: T_END})),  # recorded: published already
        completed(job(labels={"app": "other"})),  # not selected
        job(),  # unfinished, not deleting: no end to publish
    ],
    ids=["recorded", "unselected", "unfinished"],
)
def test_deleted_events_publish_nothing_else(body: dict[str, Any]) -> None:
    api, publisher = FakeJobs(), FakePublisher()
    Recorder(api, publisher, NAMESPACE, NAME).handle(body, SELECTION, gone=True)
    assert publisher.batches == [] and api.calls == []


def test_a_held_job_deleted_unfinished_is_a_failed_run_then_let_go() -> None:
    api, publisher = FakeJobs(job()), FakePublisher()
    recorder = started(api, publisher)
    deleting = api.delete("load-1")
    assert deleting is not None
    recorder.handle(deleting, SELECTION)
    [end_batch] = ends(publisher)
    fail = end_batch[1]
    assert (fail["eventType"], fail["eventTime"]) == ("FAIL", T_DELETED)
    assert (
        fail["run"]["facets"]["errorMessage"]["message"] == "Deleted: the Job was deleted before it finished"
    )
    assert "load-1" not in api.jobs
    assert recorder.snapshot().last_run == LastRun("load-1", "load-1", "FAILED", T_DELETED)


# --- selection, sources, no intake --------------------------------------------------------------------------


@pytest.mark.parametrize("selection", [Selection(SOURCE, Selector({"app": "other"})), None])
def test_a_job_no_longer_selected_is_let_go_unpublished(selection: Selection | None) -> None:
    api, publisher = FakeJobs(job()), FakePublisher()
    recorder = started(api, publisher)
    assert recorder.snapshot().held == 1
    recorder.handle(finish(api), selection)
    assert finalizers(api) == [] and annotations_of(api) == {} and publisher.types == [["START"]]
    assert recorder.snapshot() == Snapshot(0, 0, None, {})


def test_labels_changed_let_the_job_go() -> None:
    api, publisher = FakeJobs(job()), FakePublisher()
    recorder = started(api, publisher)
    relabelled = live(api)
    relabelled["metadata"]["labels"] = {"app": "other"}
    recorder.handle(api.put(relabelled), SELECTION)
    assert finalizers(api) == [] and recorder.snapshot().held == 0
    recorder.handle(finish(api), SELECTION)
    assert publisher.types == [["START"]]


def test_two_sources_record_the_same_job_independently() -> None:
    api, publisher_a, publisher_b = FakeJobs(job()), FakePublisher(), FakePublisher()
    a = Recorder(api, publisher_a, NAMESPACE, "a")
    b = Recorder(api, publisher_b, NAMESPACE, "b")
    a_marks, b_marks = Marks.of("a"), Marks.of("b")
    for recorder in (a, b):
        recorder.sync(api.list_jobs(NAMESPACE)[0], SELECTION)
    assert finalizers(api) == [a_marks.finalizer, b_marks.finalizer]
    done = finish(api)
    a.handle(done, SELECTION)
    assert finalizers(api) == [b_marks.finalizer] and annotations_of(api) == {a_marks.recorded: T_END}
    a.handle(live(api), SELECTION)  # b's finalizer is none of a's business
    assert finalizers(api) == [b_marks.finalizer]
    b.handle(live(api), SELECTION)
    assert finalizers(api) == [] and annotations_of(api) == {a_marks.recorded: T_END, b_marks.recorded: T_END}
    assert publisher_a.types == publisher_b.types == [["START"], ["START", "COMPLETE"]]


def test_one_source_letting_go_leaves_the_others_marks() -> None:
    api = FakeJobs(job(finalizers=[Marks.of("b").finalizer], annotations={"recorded.example.com/x": "y"}))
    recorder = started(api, FakePublisher(), "a")
    recorder.handle(live(api), None)
    assert finalizers(api) == [Marks.of("b").finalizer]
    assert annotations_of(api) == {"recorded.example.com/x": "y"}


def test_without_an_intake_nothing_is_held_and_held_jobs_are_let_go() -> None:
    api = FakeJobs(job(), job("load-2", finalizers=[MARKS.finalizer]))
    recorder = started(api, None)
    assert finalizers(api) == finalizers(api, "load-2") == []
    assert recorder.snapshot().problems == {
        "NoIntake": "no intake URL configured (--intake-url): runs are not recorded"
    }
    recorder.handle(completed(live(api)), SELECTION, gone=True)  # nothing to publish to
    assert recorder.snapshot().held == 0


# --- what the status shows ----------------------------------------------------------------------------------


def test_snapshot_counts() -> None:
    api = FakeJobs(job(), completed(job("load-2")), job("other", labels={"app": "other"}))
    recorder = started(api, FakePublisher())
    assert recorder.snapshot() == Snapshot(2, 1, LastRun("load-2", "load-2", "SUCCESS", T_END), {})
    del api.jobs["load-2"]
    recorder.sync(api.list_jobs(NAMESPACE)[0], SELECTION)  # what is not listed any more is forgotten
    assert (recorder.snapshot().selected, recorder.snapshot().held) == (1, 1)
    recorder.handle(live(api), SELECTION, gone=True)
    assert (recorder.snapshot().selected, recorder.snapshot().held) == (0, 0)


def test_a_problem_lasts_until_the_next_pass() -> None:
    api, publisher = FakeJobs(job()), FakePublisher()
    publisher.failures = [DOWN]
    recorder = started(api, publisher)
    assert set(recorder.snapshot().problems) == {"IntakeUnavailable"}
    recorder.sync(api.list_jobs(NAMESPACE)[0], SELECTION)
    assert recorder.snapshot().problems == {} and publisher.types == [["START"]]


# --- re-reads that change the picture -----------------------------------------------------------------------


def test_a_conflicting_hold_does_not_hold_a_job_recorded_meanwhile() -> None:
    """A running Job's event older than its recording (another replica recorded it): the hold conflicts,
    and the fresh read shows the run recorded: it is not held again."""
    api = FakeJobs(completed(job(annotations={MARKS.recorded: T_END})))
    stale = _merge(job(), resourceVersion="0")  # older than the stored one
    recorder = Recorder(api, FakePublisher(), NAMESPACE, NAME)
    recorder.handle(stale, SELECTION)
    assert finalizers(api) == [] and recorder.snapshot().held == 0


def test_a_conflicting_hold_of_a_job_deleted_meanwhile_does_not_count_it_held() -> None:
    api = FakeJobs(job(finalizers=["example.com/keep"], deleted=T_DELETED))
    stale = _merge(job(), resourceVersion="0")
    recorder = Recorder(api, FakePublisher(), NAMESPACE, NAME)
    recorder.handle(stale, SELECTION)
    assert finalizers(api) == ["example.com/keep"] and recorder.snapshot().held == 0
