"""A Kubernetes Job as an ingestion run (pure): how it ended, its objet, its description, and RunEvents that
the product's own OpenLineage parser accepts and pairs into the expected run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from ingestion_observability import openlineage
from ingestion_observability.event import Run
from ingestion_operator.jobrun import (
    DELETED_REASON,
    MAX_CONDITION,
    MAX_TERMINATION,
    Ending,
    Selection,
    Selector,
    description,
    ending,
    objet_name,
    run_events,
    start_time,
    termination,
)
from tests.operator.fake_jobs import (
    SELECTION,
    SOURCE,
    T_DELETED,
    T_END,
    T_START,
    completed,
    condition,
    failed,
    job,
    pod,
    terminated,
)

EPOCH_START = 1772359200.0  # T_START
EPOCH_END = EPOCH_START + 150  # T_END


def paired(body: Mapping[str, Any], pods: list[dict[str, Any]] | None = None) -> Run:
    """The run the consumer makes of the Job's RunEvents, each validated by the intake's parser in both
    of its source modes."""
    events = run_events(body, SELECTION, ending(body), pods or [])
    assert len(events) == 2 and events[0]["eventType"] == "START"
    modes: tuple[openlineage.SourceFrom, ...] = ("namespace", "facet")
    for mode in modes:
        parsed = [openlineage.parse_run_event(e, source_from=mode) for e in events]
        assert {p.source for p in parsed} == {SOURCE}
        assert {p.run_id for p in parsed} == {body["metadata"]["uid"]}
    start, end = (openlineage.parse_run_event(e) for e in events)
    return openlineage.to_run(start, end)


# --- how a Job ended ----------------------------------------------------------------------------------------


def test_complete_ends_at_its_completion_time() -> None:
    """SUCCESS at status.completionTime, not at the condition's (later) transition."""
    body = job(conditions=[condition("Complete", "2026-03-01T10:02:31Z")], completion=T_END)
    assert ending(body) == Ending("SUCCESS", T_END)


def test_complete_without_completion_time_ends_at_its_condition() -> None:
    body = job(conditions=[condition("Complete", "2026-03-01T10:02:31Z")])
    assert ending(body) == Ending("SUCCESS", "2026-03-01T10:02:31Z")


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("BackoffLimitExceeded", "Job has reached the specified backoff limit"),
        ("DeadlineExceeded", "Job was active longer than specified deadline"),
        (
            "PodFailurePolicy",
            "Container main for pod ns/load-1-x failed with exit code 42 matching FailJob rule",
        ),
    ],
)
def test_failed_ends_at_its_condition_with_its_reason(reason: str, message: str) -> None:
    body = failed(job(), reason, message)
    assert ending(body) == Ending("FAILED", T_END, reason, message)
    run = paired(body)
    assert (run.etat, run.description) == ("FAILED", f"{reason}: {message}")


@pytest.mark.parametrize(
    "conditions",
    [
        [condition("FailureTarget", reason="BackoffLimitExceeded")],  # pods still terminating
        [condition("SuccessCriteriaMet", reason="CompletionsReached")],
        [condition("Suspended", reason="JobSuspended")],
        [condition("Complete", status="False"), condition("Failed", status="False")],
    ],
    ids=["FailureTarget", "SuccessCriteriaMet", "Suspended", "status-False"],
)
def test_interim_suspended_or_false_conditions_are_not_an_end(conditions: list[dict[str, Any]]) -> None:
    body = job(conditions=conditions)
    assert ending(body) is None
    assert [e["eventType"] for e in run_events(body, SELECTION, None)] == ["START"]


def test_a_job_not_started_has_no_event() -> None:
    """A suspended or pending Job (no startTime) publishes nothing until it starts."""
    body = job(start=None, conditions=[condition("Suspended")])
    assert start_time(body, ending(body)) is None and run_events(body, SELECTION, None) == []


def test_an_end_without_start_time_lasted_zero_seconds() -> None:
    body = failed(job(start=None), "DeadlineExceeded", "Job was active longer than specified deadline")
    assert start_time(body, ending(body)) == T_END
    run = paired(body)
    assert (run.debut, run.fin, run.duree) == ("2026-03-01T10:02:30.000Z", EPOCH_END, 0.0)


def test_a_job_deleted_unfinished_failed_at_its_deletion() -> None:
    body = job(deleted=T_DELETED)
    end = ending(body)
    assert end is not None and (end.etat, end.time, end.reason) == ("FAILED", T_DELETED, DELETED_REASON)
    run = paired(body)
    assert run.etat == "FAILED" and run.duree == 300.0
    assert run.description == "Deleted: the Job was deleted before it finished"


def test_a_job_deleted_once_finished_keeps_its_end() -> None:
    """ttlSecondsAfterFinished deletes finished Jobs: that deletion is no failure."""
    body = completed(job(deleted=T_DELETED))
    assert ending(body) == Ending("SUCCESS", T_END)


# --- the run and its events ---------------------------------------------------------------------------------


def test_a_complete_job_is_a_success_run() -> None:
    run = paired(completed(job()))
    assert run == Run(
        source=SOURCE,
        objet="load-1",
        etat="SUCCESS",
        entreprise="",
        zone="",
        debut="2026-03-01T10:00:00.000Z",
        fin=EPOCH_END,
        duree=150.0,
        cpu=None,  # Kubernetes keeps no per-run usage: absent, never 0
        memory=None,
        description="",
        rows=None,
    )


def test_a_failed_job_is_a_failed_run_with_its_container_message() -> None:
    pods = [pod([("main", terminated("main", 1, "2026-03-01T10:02:29Z", "Timeout on /invoices"), None)])]
    run = paired(failed(job()), pods)
    assert (run.etat, run.debut, run.fin, run.duree) == (
        "FAILED",
        "2026-03-01T10:00:00.000Z",
        EPOCH_END,
        150.0,
    )
    assert run.description == (
        "BackoffLimitExceeded: Job has reached the specified backoff limit\n"
        "container main exited with code 1: Timeout on /invoices"
    )
    assert (run.cpu, run.memory) == (None, None)


def test_events_carry_the_source_in_the_namespace_and_the_facet() -> None:
    start, end = run_events(completed(job()), SELECTION, ending(completed(job())))
    assert (start["eventTime"], end["eventType"], end["eventTime"]) == (T_START, "COMPLETE", T_END)
    for event in (start, end):
        assert event["job"]["namespace"] == SOURCE
        assert event["job"]["facets"][openlineage.SOURCE_FACET]["source"] == SOURCE
        assert event["run"]["runId"] == "uid-load-1" and "errorMessage" not in event["run"]["facets"]


# --- objet names --------------------------------------------------------------------------------------------

CRON = {"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly", "uid": "c1", "controller": True}


@pytest.mark.parametrize(
    ("objet_label", "labels", "owners", "objet"),
    [
        ("ingestion/objet", {"app": "ingest", "ingestion/objet": "Contact"}, [CRON], "Contact"),
        ("ingestion/objet", {"app": "ingest"}, [CRON], "nightly"),  # label absent: the CronJob's name
        ("ingestion/objet", {"app": "ingest", "ingestion/objet": ""}, [], "load-1"),  # empty: absent
        (None, {"app": "ingest", "ingestion/objet": "Contact"}, [CRON], "nightly"),  # no objetLabel set
        (None, {"app": "ingest"}, [{**CRON, "controller": False}], "load-1"),  # not its controller
        (None, {"app": "ingest"}, [{**CRON, "kind": "Workflow"}], "load-1"),
        (None, {"app": "ingest"}, [], "load-1"),  # a plain Job: its own name
    ],
)
def test_objet_name(
    objet_label: str | None, labels: dict[str, str], owners: list[dict[str, Any]], objet: str
) -> None:
    selection = Selection(SOURCE, Selector({"app": "ingest"}), objet_label)
    body = completed(job(labels=labels, owners=owners))
    assert objet_name(body, selection) == objet
    assert {e["job"]["name"] for e in run_events(body, selection, ending(body))} == {objet}


# --- termination messages -----------------------------------------------------------------------------------


def test_termination_state_and_last_state_newest_wins() -> None:
    """A restarted container's earlier failure is in lastState; the newest finishedAt across the Job's pods
    (and init containers) is the one described."""
    first = pod([("main", None, terminated("main", 2, "2026-03-01T10:00:30Z", "first try"))])
    second = pod(
        [("main", terminated("main", 3, "2026-03-01T10:01:00Z", "second try"), None)],
        init=[("migrate", terminated("migrate", 4, "2026-03-01T10:01:30Z", "schema locked"), None)],
    )
    assert termination([first, second]) == "container migrate exited with code 4: schema locked"
    assert termination([first]) == "container main exited with code 2: first try"


def test_termination_ignores_successes_and_shows_a_telling_reason() -> None:
    ok = pod([("sidecar", terminated("sidecar", 0, "2026-03-01T10:02:00Z", "bye", "Completed"), None)])
    oom = pod([("main", terminated("main", 137, "2026-03-01T10:01:00Z", reason="OOMKilled"), None)])
    assert termination([ok]) == ""
    assert termination([ok, oom]) == "container main exited with code 137 (OOMKilled)"  # no message
    assert termination([pod([("main", None, None)]), {"status": {}}]) == ""  # running, or no status yet


def test_no_container_message_leaves_the_condition_alone() -> None:
    end = ending(failed(job()))
    assert end is not None
    assert description(end, []) == "BackoffLimitExceeded: Job has reached the specified backoff limit"
    assert description(Ending("SUCCESS", T_END), [pod([("m", terminated("m", 1, T_END, "x"), None)])]) == ""


def test_long_messages_keep_their_tail_and_the_description_fits() -> None:
    condition_message = "c" * (MAX_CONDITION + 100) + " CONDITION-END"
    log_tail = "l" * (MAX_TERMINATION + 500) + " Traceback: KeyError 'id'"
    body = failed(job(), "BackoffLimitExceeded", condition_message)
    pods = [pod([("main", terminated("main", 1, T_END, log_tail), None)])]
    end = ending(body)
    assert end is not None
    head, tail = description(end, pods).split("\n")
    assert head.startswith("BackoffLimitExceeded: …c") and head.endswith(" CONDITION-END")
    assert len(head) == len("BackoffLimitExceeded: ") + MAX_CONDITION
    container = "container main exited with code 1: "
    assert tail.startswith(container + "…l") and tail.endswith("Traceback: KeyError 'id'")
    assert len(tail) == len(container) + MAX_TERMINATION
    run = paired(body, pods)
    assert run.description == f"{head}\n{tail}"


def test_the_description_never_exceeds_the_parsers_limit() -> None:
    """Even a condition reason without bound (not cut on its own) ends in a description of at most
    MAX_DESCRIPTION characters, its tail kept."""
    body = failed(job(), "R" * 20_000, "the end")
    _, end_event = run_events(body, SELECTION, ending(body))
    message = end_event["run"]["facets"]["errorMessage"]["message"]
    assert len(message) == openlineage.MAX_DESCRIPTION and message.startswith("…")
    assert message.endswith("R: the end") and paired(body).description == message


def test_unicode_is_kept_and_cut_by_characters() -> None:
    said = "échec d'ingestion 💥 数据源不可用"
    long = "é" * MAX_TERMINATION + "💥 fin"  # 2 bytes each in UTF-8: cut on characters, not bytes
    short = [pod([("main", terminated("main", 1, T_END, said), None)])]
    cut = [pod([("main", terminated("main", 1, T_END, long), None)])]
    assert paired(failed(job()), short).description.endswith(f"exited with code 1: {said}")
    text = termination(cut)
    message = text.split(": ", 1)[1]
    assert len(message) == MAX_TERMINATION and message.startswith("…é") and message.endswith("é💥 fin")
    assert paired(failed(job()), cut).description.endswith(message)


# --- selectors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "selected", "not_selected"),
    [
        (Selector({"app": "ingest"}), [{"app": "ingest", "x": "y"}], [{"app": "other"}, {}]),
        (
            Selector({}, (("tier", "In", ("raw", "gold")),)),
            [{"tier": "raw"}, {"tier": "gold"}],
            [{"tier": "x"}, {}],
        ),
        (
            Selector({}, (("tier", "NotIn", ("raw",)),)),
            [{"tier": "gold"}, {}],
            [{"tier": "raw"}],
        ),  # absent: in
        (Selector({}, (("tier", "Exists", ()),)), [{"tier": ""}], [{"app": "ingest"}]),
        (Selector({}, (("tier", "DoesNotExist", ()),)), [{"app": "x"}], [{"tier": "raw"}]),
        (
            Selector({"app": "ingest"}, (("tier", "In", ("raw",)), ("skip", "DoesNotExist", ()))),
            [{"app": "ingest", "tier": "raw"}],
            [
                {"app": "ingest", "tier": "raw", "skip": "1"},
                {"app": "ingest", "tier": "gold"},
                {"tier": "raw"},
            ],
        ),
    ],
    ids=["matchLabels", "In", "NotIn", "Exists", "DoesNotExist", "combined"],
)
def test_selector(
    selector: Selector, selected: list[dict[str, str]], not_selected: list[dict[str, str]]
) -> None:
    assert all(selector.selects(labels) for labels in selected)
    assert not any(selector.selects(labels) for labels in not_selected)


def test_unknown_operator_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown label selector operator 'Gt'"):
        Selector({}, (("n", "Gt", ("1",)),)).selects({"n": "2"})
