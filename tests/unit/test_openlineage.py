"""OpenLineage RunEvents → runs: recognition, validation, key, pairing and the log line."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from openlineage.client.event_v2 import Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import error_message_run, output_statistics_output_dataset
from openlineage.client.serde import Serde

from ingestion_observability.event import InvalidRecord, normalise, parse_event
from ingestion_observability.openlineage import (
    LineageEvent,
    event_key,
    is_run_event,
    lineage_line,
    parse_run_event,
    to_run,
)
from ingestion_observability.producer.publisher import event_key as record_key

RUN_ID = "0190a8f5-3c1e-7d2a-9b4f-5e6d7c8b9a01"


def event(
    event_type: str = "COMPLETE", time: str = "2026-03-02T10:00:05.250Z", **run_facets: Any
) -> dict[str, Any]:
    return {
        "eventType": event_type,
        "eventTime": time,
        "producer": "https://example.com/connector",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": RUN_ID, "facets": run_facets},
        "job": {"namespace": "PowerBI", "name": "workspaces", "facets": {}},
        "inputs": [],
        "outputs": [],
    }


def resources(**values: Any) -> dict[str, Any]:
    return {
        "_producer": "https://example.com/connector",
        "_schemaURL": "https://example.com/schemas/IngestionResourcesRunFacet.json",
        **values,
    }


def test_the_real_client_s_events_are_recognised_and_parsed() -> None:
    run_id = str(uuid.uuid4())
    facet = error_message_run.ErrorMessageRunFacet(message="division by zero", programmingLanguage="python")
    client_event = RunEvent(
        eventType=RunState.FAIL,
        eventTime="2026-03-02T10:00:05.250000+00:00",
        run=Run(runId=run_id, facets={"errorMessage": facet}),
        job=Job(namespace="dbt_prod", name="orders"),
        producer="https://example.com/test",
    )
    obj = json.loads(Serde.to_json(client_event))
    assert is_run_event(obj)
    parsed = parse_run_event(obj)
    assert parsed == LineageEvent(
        "FAIL",
        datetime(2026, 3, 2, 10, 0, 5, 250000, tzinfo=UTC).timestamp(),
        run_id,
        "dbt_prod",
        "orders",
        "division by zero",
    )


def test_connector_records_and_enriched_events_are_not_run_events() -> None:
    record = {
        "Source": "PowerBI",
        "Objet": "w",
        "Etat": "SUCCESS",
        "Debut": "2025-09-15 10:30:00",
        "Fin": "2025-09-15 10:30:01",
        "cpu_time": 0.1,
        "memory_used": 1,
    }
    assert not is_run_event(record)
    assert not is_run_event(normalise(record))
    assert not is_run_event({**event(), "@version": "1"})
    assert not is_run_event([event()])
    assert not is_run_event({"eventTime": "2026-03-02T10:00:00Z", "job": {}})  # a JobEvent: no run
    # malformed RunEvents are still recognised, so that parse_run_event says what is wrong
    assert is_run_event({**event(), "eventType": "DONE"})
    assert is_run_event({**event(), "run": {}})


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"run": {"facets": {}}}, "'run.runId' is missing"),
        ({"run": {"runId": 12}}, "'run.runId' must be a string"),
        ({"eventType": "DONE"}, "unknown 'eventType' 'DONE'"),
        ({"eventType": None}, "'eventType' is missing"),
        ({"eventTime": "yesterday"}, "'eventTime': unrecognised timestamp 'yesterday'"),
        ({"eventTime": None}, "'eventTime' is missing"),
        ({"job": {"namespace": "PowerBI"}}, "'job.name' is missing"),
        ({"job": {"namespace": " ", "name": "w"}}, "'job.namespace' is blank"),
        ({"job": {"namespace": "x" * 257, "name": "w"}}, "'job.namespace' is longer than 256 characters"),
        ({"job": "PowerBI/workspaces"}, "'job' must be an object, got str"),
        ({"run": {"runId": RUN_ID, "facets": []}}, "'run.facets' and 'job.facets' must be objects"),
    ],
)
def test_invalid_events_say_why(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidRecord, match="^" + re.escape(reason)):
        parse_run_event({**event(), **change})


def test_not_an_object() -> None:
    with pytest.raises(InvalidRecord, match="must be a JSON object, got list"):
        parse_run_event([event()])


def test_resources_facet_is_read_and_checked() -> None:
    parsed = parse_run_event(event(ingestion_resources=resources(cpuSeconds=12.5, memoryBytes=73400320)))
    assert (parsed.cpu_seconds, parsed.memory_bytes) == (12.5, 73400320.0)
    only_cpu = parse_run_event(event(ingestion_resources=resources(cpuSeconds=3)))
    assert (only_cpu.cpu_seconds, only_cpu.memory_bytes) == (3.0, None)
    absent = parse_run_event(event())
    assert (absent.cpu_seconds, absent.memory_bytes) == (None, None)
    for bad, reason in ((-1, "finite number >= 0"), (True, "must be a number, got bool"), ("1", "got str")):
        with pytest.raises(InvalidRecord, match=f"'ingestion_resources.cpuSeconds' .*{reason}"):
            parse_run_event(event(ingestion_resources=resources(cpuSeconds=bad)))


def test_error_message_facet() -> None:
    facet = {"_producer": "p", "_schemaURL": "s", "message": "boom", "programmingLanguage": "SQL"}
    assert parse_run_event(event("FAIL", errorMessage=facet)).error == "boom"
    with pytest.raises(InvalidRecord, match=re.escape("'errorMessage.message' must be a string")):
        parse_run_event(event("FAIL", errorMessage={**facet, "message": 3}))


def test_source_from_facet_falls_back_to_the_namespace() -> None:
    obj = event()
    assert parse_run_event(obj, source_from="facet").source == "PowerBI"
    obj["job"]["facets"]["ingestion_source"] = {"_producer": "p", "_schemaURL": "s", "source": "Zoho"}
    assert parse_run_event(obj, source_from="facet").source == "Zoho"
    assert parse_run_event(obj).source == "PowerBI"


def test_key_is_the_connector_records_key() -> None:
    parsed = parse_run_event(event())
    record = {
        "Source": "PowerBI",
        "Objet": "workspaces",
        "Etat": "SUCCESS",
        "Debut": "2026-03-02 10:00:00",
        "Fin": "2026-03-02 10:00:05",
        "cpu_time": 0.1,
        "memory_used": 1,
    }
    assert event_key(parsed) == record_key(normalise(record)) == b"PowerBI/workspaces"


def test_start_and_complete_make_a_success() -> None:
    start = parse_run_event(event("START", "2026-03-02T10:00:00.000Z"))
    end = parse_run_event(event("COMPLETE", "2026-03-02T10:00:05.250+00:00"))
    run = to_run(start, end)
    assert run.etat == "SUCCESS" and not run.failed
    assert (run.source, run.objet, run.entreprise, run.zone) == ("PowerBI", "workspaces", "", "")
    assert run.debut == "2026-03-02T10:00:00.000Z"
    assert run.fin == end.event_time
    assert run.duree == pytest.approx(5.25)
    assert (run.cpu, run.memory) == (None, None)


@pytest.mark.parametrize("end_type", ["FAIL", "ABORT"])
def test_fail_and_abort_are_failed(end_type: str) -> None:
    run = to_run(parse_run_event(event("START", "2026-03-02T10:00:00Z")), parse_run_event(event(end_type)))
    assert run.etat == "FAILED"


def test_an_end_without_its_start_lasts_zero_seconds() -> None:
    end = parse_run_event(event("FAIL", ingestion_resources=resources(cpuSeconds=0.5, memoryBytes=2048)))
    run = to_run(None, end)
    assert run.debut == "2026-03-02T10:00:05.250Z"
    assert (run.duree, run.cpu, run.memory) == (0.0, 0.5, 2048.0)


def test_a_start_after_its_end_is_clamped() -> None:
    run = to_run(parse_run_event(event("START", "2026-03-02T10:00:09Z")), parse_run_event(event()))
    assert run.duree == 0.0


@pytest.mark.parametrize("event_type", ["START", "RUNNING", "OTHER"])
def test_only_an_end_event_ends_a_run(event_type: str) -> None:
    with pytest.raises(InvalidRecord, match=f"a {event_type} event does not end a run"):
        to_run(None, parse_run_event(event(event_type)))


def test_log_line_has_the_enriched_event_layout() -> None:
    start = parse_run_event(event("START", "2026-03-02T10:00:00.000Z"))
    message = {"_producer": "p", "_schemaURL": "s", "message": "timeout talking to the API"}
    end = parse_run_event(
        event("FAIL", errorMessage=message, ingestion_resources=resources(memoryBytes=2**20))
    )
    line = json.loads(lineage_line(end, to_run(start, end)))
    assert line["@timestamp"] == line["fin"] == "2026-03-02T10:00:05.250Z"
    assert line["debut"] == "2026-03-02T10:00:00.000Z"
    assert line["etat"] == "FAILED" and line["labels"]["etat"] == "FAILED"
    assert line["description"] == "timeout talking to the API"
    assert line["objet"] == {"id": RUN_ID, "name": "workspaces", "transformation": ""}
    assert line["source"] == {"name": "PowerBI", "type": "openlineage"}
    assert line["performance"] == {
        "duree_secondes": 5.25,
        "cpu_time_sec": None,  # not reported: null, not 0 (the dashboards' unwrap skips it)
        "memory_used_bytes": 1048576,
        "memory_used_mb": 1.0,
        "lignes": None,  # no outputStatistics: unknown
    }
    assert line["openlineage"] == {"runId": RUN_ID, "eventType": "FAIL"}
    # same keys as an enriched event, which the dashboards' `| json` extractions read
    enriched = normalise(
        {
            "Source": "s",
            "Objet": "o",
            "Etat": "SUCCESS",
            "Debut": "2026-03-02 10:00:00",
            "Fin": "2026-03-02 10:00:01",
            "cpu_time": 0.1,
            "memory_used": 1,
        }
    )
    assert set(line) - set(enriched) == {"openlineage"}
    assert line["performance"].keys() == enriched["performance"].keys()


def test_log_line_of_a_measured_success_is_an_enriched_event() -> None:
    measured = event(ingestion_resources=resources(cpuSeconds=0.4, memoryBytes=8196180))
    end = parse_run_event({**measured, "outputs": [output("workspaces", rowCount=3864)]})
    run = to_run(parse_run_event(event("START", "2026-03-02T10:00:00.000Z")), end)
    line = json.loads(lineage_line(end, run))
    reread = parse_event(line)
    assert reread.rows == 3864
    assert (reread.source, reread.objet, reread.etat, reread.debut) == (
        run.source,
        run.objet,
        "SUCCESS",
        run.debut,
    )
    assert (reread.cpu, reread.memory) == (0.4, 8196180.0)


def test_abort_without_message_says_aborted() -> None:
    end = parse_run_event(event("ABORT"))
    assert (
        json.loads(lineage_line(end, to_run(None, end)))["description"] == "run aborted (OpenLineage ABORT)"
    )


# --- rows written: outputs[].outputFacets.outputStatistics.rowCount -----------------------------------------


def output(name: str, **statistics: Any) -> dict[str, Any]:
    facets = {"outputStatistics": {"_producer": "p", "_schemaURL": "s", **statistics}} if statistics else {}
    return {"namespace": "s3://lake", "name": name, "facets": {}, "outputFacets": facets}


def test_rows_are_the_sum_of_the_real_client_s_output_statistics() -> None:
    statistics = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet
    client_event = RunEvent(
        eventType=RunState.COMPLETE,
        eventTime="2026-03-02T10:00:05.250000+00:00",
        run=Run(runId=str(uuid.uuid4())),
        job=Job(namespace="dbt_prod", name="orders"),
        producer="https://example.com/test",
        outputs=[
            OutputDataset(
                "s3://lake", "orders", outputFacets={"outputStatistics": statistics(rowCount=3864)}
            ),
            OutputDataset(
                "s3://lake", "orders_by_day", outputFacets={"outputStatistics": statistics(size=10)}
            ),
            OutputDataset("s3://lake", "audit", outputFacets={"outputStatistics": statistics(rowCount=136)}),
            OutputDataset("s3://lake", "untracked"),
        ],
    )
    parsed = parse_run_event(json.loads(Serde.to_json(client_event)))
    assert parsed.rows == 4000  # the outputs without a rowCount add nothing
    run = to_run(None, parsed)
    assert run.rows == 4000
    line = json.loads(lineage_line(parsed, run))
    assert line["performance"]["lignes"] == 4000


@pytest.mark.parametrize(
    "outputs",
    [..., None, [], [output("a")], [output("a", size=10)], [{"namespace": "n", "name": "a"}]],
    ids=["no-outputs", "null", "empty", "no-facet", "no-rowCount", "no-outputFacets"],
)
def test_rows_reported_by_no_output_are_unknown(outputs: Any) -> None:
    obj = event()
    if outputs is ...:
        del obj["outputs"]
    else:
        obj["outputs"] = outputs
    parsed = parse_run_event(obj)
    assert parsed.rows is None
    assert to_run(None, parsed).rows is None
    assert json.loads(lineage_line(parsed, to_run(None, parsed)))["performance"]["lignes"] is None


def test_zero_rows_and_whole_floats_are_rows() -> None:
    assert parse_run_event({**event(), "outputs": [output("a", rowCount=0)]}).rows == 0
    assert (
        parse_run_event({**event(), "outputs": [output("a", rowCount=12.0), output("b", rowCount=3)]}).rows
        == 15
    )


def test_rows_are_the_end_event_s() -> None:
    start = parse_run_event({**event("START", "2026-03-02T10:00:00Z"), "outputs": [output("a", rowCount=5)]})
    end = parse_run_event({**event(), "outputs": [output("a", rowCount=7)]})
    assert to_run(start, end).rows == 7


STATS = "'outputs[1].outputFacets.outputStatistics"


@pytest.mark.parametrize(
    ("outputs", "reason"),
    [
        ([output("a", rowCount=1), output("b", rowCount=-5)], f"{STATS}.rowCount' must be >= 0, got -5"),
        (
            [output("a"), output("b", rowCount=1.5)],
            f"{STATS}.rowCount' must be a whole number of rows, got 1.5",
        ),
        (
            [output("a"), output("b", rowCount="12")],
            f"{STATS}.rowCount' must be an integer (rows written), got str",
        ),
        (
            [output("a"), output("b", rowCount=True)],
            f"{STATS}.rowCount' must be an integer (rows written), got bool",
        ),
        ([output("a"), output("b", rowCount=2**53 + 1)], f"{STATS}.rowCount' must be at most 2**53"),
        (
            [output("a", rowCount=2**53), output("b", rowCount=1)],
            "the outputs' rowCount add up to more than 2**53",
        ),
        ({"a": 1}, "'outputs' must be an array, got dict"),
        (["a"], "'outputs[0]' must be an object, got str"),
        ([{"name": "a", "outputFacets": []}], "'outputs[0].outputFacets' must be an object, got list"),
        (
            [{"name": "a", "outputFacets": {"outputStatistics": 12}}],
            "'outputs[0].outputFacets.outputStatistics' must be an object, got int",
        ),
    ],
)
def test_bad_row_counts_say_why(outputs: Any, reason: str) -> None:
    with pytest.raises(InvalidRecord, match="^" + re.escape(reason)):
        parse_run_event({**event(), "outputs": outputs})
