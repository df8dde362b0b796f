"""OpenLineage RunEvents in the consumer's staging: a START opens a run, its end closes and counts it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from ingestion_observability import catalog
from ingestion_observability.consumer.export import samples
from ingestion_observability.consumer.loki import LokiBatch
from ingestion_observability.consumer.staging import StagedBatch, StagingLimits, stage
from ingestion_observability.consumer.state import PartitionState, decode, encode
from tests.unit.test_consumer_staging import FakeMessage

KEY = ("airflow", "load_invoices")
T0 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC).timestamp()


def lineage(event_type: str, run_id: str, at: str, **run_facets: Any) -> bytes:
    return orjson.dumps(
        {
            "eventType": event_type,
            "eventTime": f"2026-11-30T10:{at}Z",
            "run": {"runId": run_id, "facets": run_facets},
            "job": {"namespace": "airflow", "name": "load_invoices"},
            "producer": "https://example.com/test",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        }
    )


def staged(partition: PartitionState, *values: bytes) -> StagedBatch:
    batch = StagedBatch(LokiBatch("ingestion-logs"))
    msgs = [
        FakeMessage("t", 0, i, 1_764_496_800_000 + i, b"airflow/load_invoices", v)
        for i, v in enumerate(values)
    ]
    stage(batch, partition, msgs, StagingLimits())
    partition.commit(batch.states.get(0, {}))
    return batch


def test_a_start_is_open_until_its_end_pairs_with_it() -> None:
    partition = PartitionState(0)
    batch = staged(partition, lineage("START", "r1", "00:00"))
    state = partition.committed[KEY]
    assert state.open_runs == {"r1": T0} and not state.runs and batch.loki.count == 0
    in_progress = samples(state)
    assert in_progress[catalog.IN_PROGRESS.name][0][2] == 1
    assert in_progress[catalog.OLDEST_OPEN.name][0][2] == T0
    # the open run survives a restore, then its COMPLETE closes it
    partition = PartitionState(0, {KEY: decode(encode(state))})
    batch = staged(partition, lineage("COMPLETE", "r1", "02:30"))
    state = partition.committed[KEY]
    assert state.runs == {("SUCCESS", "", ""): 1} and state.open_runs == {}
    assert sum(state.histograms[catalog.DURATION.name].counts) == 1
    assert state.histograms[catalog.DURATION.name].total == 150.0
    assert (
        samples(state)[catalog.IN_PROGRESS.name][0][2] == 0 and not samples(state)[catalog.OLDEST_OPEN.name]
    )
    assert batch.loki.count == 1


def test_a_fail_is_a_failure_with_its_message_and_no_resources_read_as_zero() -> None:
    partition = PartitionState(0)
    failure = {"errorMessage": {"message": "Timeout on /invoices", "programmingLanguage": "python"}}
    batch = staged(partition, lineage("START", "r2", "00:00"), lineage("FAIL", "r2", "00:10", **failure))
    state = partition.committed[KEY]
    assert state.failures == 1 and state.runs == {("FAILED", "", ""): 1}
    # no resources facet: the cpu and memory histograms stay empty (never observed as 0)
    assert (
        sum(state.histograms[catalog.CPU.name].counts)
        == sum(state.histograms[catalog.MEMORY.name].counts)
        == 0
    )
    [entries] = batch.loki.streams.values()
    line = orjson.loads(entries[0].line)
    assert line["description"] == "Timeout on /invoices" and line["etat"] == "FAILED"


def test_the_same_run_id_twice_counts_once() -> None:
    partition = PartitionState(0)
    events = (lineage("START", "r3", "00:00"), lineage("COMPLETE", "r3", "00:05"))
    staged(partition, *events)
    again = staged(partition, *events)
    assert (again.duplicates, again.processed) == (2, 0)  # the ended run is not opened again
    assert partition.committed[KEY].runs == {("SUCCESS", "", ""): 1}


def test_an_end_without_its_start_lasts_zero_seconds() -> None:
    partition = PartitionState(0)
    staged(partition, lineage("COMPLETE", "r4", "00:05"))
    state = partition.committed[KEY]
    assert state.runs == {("SUCCESS", "", ""): 1} and state.histograms[catalog.DURATION.name].total == 0.0


def test_an_invalid_run_event_is_dead_lettered_with_its_reason() -> None:
    partition = PartitionState(0)
    bad = orjson.dumps({"eventType": "START", "eventTime": "2026-11-30T10:00:00Z", "run": {}, "job": {}})
    batch = staged(partition, bad)
    assert batch.invalid == 1 and "runId" in batch.dead_letters[0].error
