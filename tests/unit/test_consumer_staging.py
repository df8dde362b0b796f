"""The pure staging step, fed with fake Kafka messages (no Kafka)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from ingestion_observability import catalog
from ingestion_observability.consumer.loki import Entry, LokiBatch
from ingestion_observability.consumer.staging import DeadLetter, StagedBatch, StagingLimits, stage
from ingestion_observability.consumer.state import ObjetState, PartitionState, decode, encode
from ingestion_observability.event import normalise, parse_event
from ingestion_observability.producer.generate import generate_records

DURATION, CPU, MEMORY, RECOVERY = catalog.HISTOGRAMS
TOPIC = "ingestion-logs"
START = datetime(2025, 9, 15, 10, 30, tzinfo=UTC)
T0 = START.timestamp()
KEY = ("PowerBI", "workspaces")


@dataclass
class FakeMessage:
    topic: str
    partition: int
    offset: int
    timestamp: int  # ms
    key: bytes | None
    value: bytes | None


def raw(
    at: float = 0.0,
    *,
    etat: str = "SUCCESS",
    duree: float = 1.5,
    objet: str = "workspaces",
    source: str = "PowerBI",
    **overrides: Any,
) -> dict[str, Any]:
    """A connector's raw record of a run that started `at` seconds after START and lasted `duree` s."""
    debut = START + timedelta(seconds=at)
    record = {
        "ID": 1,
        "Entreprise": "akonovia",
        "Zone": "1-Raw",
        "Source": source,
        "Objet": objet,
        "Transformation": "PowerBI_API_get_data",
        "Etat": etat,
        "Debut": debut.isoformat(timespec="milliseconds"),
        "Fin": (debut + timedelta(seconds=duree)).isoformat(timespec="milliseconds"),
        "Duree secondes": duree,
        "cpu_time": 0.2,
        "memory_used": 8 << 20,
        "Description": "ok",
    }
    record.update(overrides)
    return record


def event(at: float = 0.0, **fields: Any) -> bytes:
    """The enriched event (what the producer publishes) of raw(at, **fields)."""
    return orjson.dumps(normalise(raw(at, **fields)))


def messages(values: Iterable[bytes | None], partition: int = 0, first: int = 0) -> list[FakeMessage]:
    return [
        FakeMessage(TOPIC, partition, first + i, int(T0 * 1000) + 1000 * (first + i), b"PowerBI/x", v)
        for i, v in enumerate(values)
    ]


def staged(
    partition: PartitionState,
    values: Iterable[bytes | None],
    limits: StagingLimits | None = None,
    first: int = 0,
) -> StagedBatch:
    batch = StagedBatch(LokiBatch("ingestion-logs"))
    stage(batch, partition, messages(values, partition.partition, first), limits or StagingLimits())
    return batch


def committed(partition: PartitionState, batch: StagedBatch) -> None:
    partition.commit(batch.states.get(partition.partition, {}))


def expected_counts(bounds: tuple[float, ...], values: Iterable[float]) -> list[int]:
    counts = [0] * (len(bounds) + 1)
    for value in values:
        counts[bisect_left(bounds, value)] += 1
    return counts


# --- what runs do to their objet's state ----------------------------------------------------------------


def test_runs_by_etat_entreprise_and_zone_and_failures() -> None:
    partition = PartitionState(0)
    batch = staged(
        partition,
        [
            event(0),
            event(10),
            event(20, etat="FAILED"),
            event(30, Entreprise="globex"),
            event(40, Zone="2-Curated", etat="FAILED"),
            event(50, Entreprise=None, Zone=None),
            event(60, objet="datasets"),
        ],
    )
    state = batch.states[0][KEY]
    assert state.runs == {
        ("SUCCESS", "akonovia", "1-Raw"): 2,
        ("FAILED", "akonovia", "1-Raw"): 1,
        ("SUCCESS", "globex", "1-Raw"): 1,
        ("FAILED", "akonovia", "2-Curated"): 1,
        ("SUCCESS", "", ""): 1,
    }
    assert state.failures == 2
    assert batch.states[0][("PowerBI", "datasets")].runs == {("SUCCESS", "akonovia", "1-Raw"): 1}
    assert batch.states[0][("PowerBI", "datasets")].failures == 0
    assert (batch.messages, batch.processed, batch.duplicates, batch.invalid) == (7, 7, 0, 0)


def test_histogram_buckets_and_sums_follow_the_catalog_buckets() -> None:
    durations = [0.1, 1.0, 2.5, 60.0, 700.0]  # 1.0 and 60.0 sit on a bound; 700 is past the last one
    cpus = [0.0, 0.05, 0.3, 200.0, 1.0]
    memories = [0, 1 << 20, 5 << 20, 300 << 20, 2048 << 20]
    values = [
        event(i * 1000, duree=d, cpu_time=c, memory_used=m)
        for i, (d, c, m) in enumerate(zip(durations, cpus, memories, strict=True))
    ]
    state = staged(PartitionState(0), values).states[0][KEY]
    duration, cpu, memory = (state.histograms[f.name] for f in (DURATION, CPU, MEMORY))
    assert duration.counts == expected_counts(DURATION.buckets, durations)
    assert duration.counts == [1, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]  # le=0.25, 1, 3, 60, +Inf
    assert duration.total == pytest.approx(sum(durations))
    assert cpu.counts == expected_counts(CPU.buckets, cpus)
    assert cpu.counts[0] == 2 and cpu.counts[-1] == 1
    assert cpu.total == pytest.approx(sum(cpus))
    assert memory.counts == expected_counts(MEMORY.buckets, [float(m) for m in memories])
    assert memory.counts[0] == 2 and memory.counts[-1] == 1
    assert memory.total == sum(memories)
    assert state.histograms[RECOVERY.name].counts == [0] * (len(RECOVERY.buckets) + 1)


def test_mttr_from_the_first_failure_to_the_next_success() -> None:
    partition = PartitionState(0)
    batch = staged(
        partition,
        [
            event(0, duree=10),  # a success before any failure: no recovery
            event(90, etat="FAILED", duree=10),  # ends at 100: the outage starts
            event(150, etat="FAILED", duree=10),
        ],
    )
    state = batch.states[0][KEY]
    assert state.failed_since == T0 + 100
    assert sum(state.histograms[RECOVERY.name].counts) == 0
    committed(partition, batch)

    batch = staged(partition, [event(390, duree=10), event(490, duree=10)], first=3)  # ends at 400, 500
    state = batch.states[0][KEY]
    recovery = state.histograms[RECOVERY.name]
    assert recovery.counts == expected_counts(RECOVERY.buckets, [300.0])
    assert recovery.counts[1] == 1  # le=300
    assert recovery.total == 300.0
    assert state.failed_since is None


def test_a_late_older_success_does_not_end_an_outage() -> None:
    batch = staged(
        PartitionState(0),
        [event(990, etat="FAILED", duree=10), event(490, duree=10), event(1990, duree=10)],
    )  # FAILED ends at 1000; a late success ended at 500; the objet recovers at 2000
    recovery = batch.states[0][KEY].histograms[RECOVERY.name]
    assert recovery.total == 1000.0
    assert sum(recovery.counts) == 1


def test_last_run_is_the_newest_by_event_time() -> None:
    batch = staged(PartitionState(0), [event(100, duree=1), event(0, etat="FAILED", duree=1)])
    state = batch.states[0][KEY]
    assert (state.last_end, state.last_etat) == (T0 + 101, "SUCCESS")  # the late older run did not move it
    assert state.failures == 1
    batch = staged(PartitionState(0), [event(0, duree=1), event(100, etat="FAILED", duree=1)])
    state = batch.states[0][KEY]
    assert (state.last_end, state.last_etat) == (T0 + 101, "FAILED")


# --- dedupe ------------------------------------------------------------------------------------------


def test_a_duplicate_in_the_batch_is_counted_once() -> None:
    batch = staged(PartitionState(0), [event(0), event(0), event(1), event(0, etat="FAILED")])
    state = batch.states[0][KEY]
    assert (batch.processed, batch.duplicates) == (2, 2)  # same debut: the same run, whatever else
    assert state.runs == {("SUCCESS", "akonovia", "1-Raw"): 2}
    assert state.failures == 0
    assert batch.loki.count == 2


def test_a_duplicate_of_a_committed_run_is_counted_once() -> None:
    partition = PartitionState(0)
    committed(partition, staged(partition, [event(0), event(1)]))
    batch = staged(partition, [event(1), event(2)], first=2)
    assert (batch.processed, batch.duplicates) == (1, 1)
    assert batch.states[0][KEY].runs == {("SUCCESS", "akonovia", "1-Raw"): 3}


def test_a_duplicate_of_a_batch_still_in_flight_is_counted_once() -> None:
    partition = PartitionState(0)
    staged(partition, [event(0)])  # not committed yet
    batch = staged(partition, [event(0)], first=1)
    assert (batch.processed, batch.duplicates) == (0, 1)


def test_a_duplicate_after_a_restore_is_counted_once() -> None:
    before = PartitionState(0)
    committed(before, staged(before, [event(0), event(1), event(2)]))
    restored = PartitionState(0, {k: decode(encode(s)) for k, s in before.committed.items()})
    batch = staged(restored, [event(2), event(0), event(3)], first=3)
    assert (batch.processed, batch.duplicates) == (1, 2)
    assert batch.states[0][KEY].runs == {("SUCCESS", "akonovia", "1-Raw"): 4}


def test_recent_keys_are_bounded_oldest_first() -> None:
    limits = StagingLimits(recent_keys_per_objet=3)
    partition = PartitionState(0)
    batch = staged(partition, [event(at) for at in (0, 1, 2, 3, 4)], limits)
    state = batch.states[0][KEY]
    assert list(state.recent) == [
        "2025-09-15T10:30:02.000Z",
        "2025-09-15T10:30:03.000Z",
        "2025-09-15T10:30:04.000Z",
    ]
    committed(partition, batch)
    again = staged(partition, [event(4), event(0)], limits, first=5)
    assert (again.duplicates, again.processed) == (1, 1)  # 0 was forgotten: the bound is the window


def test_folded_objets_runs_that_started_together_are_not_duplicates() -> None:
    limits = StagingLimits(max_objets_per_source=1)
    batch = staged(PartitionState(0), [event(0, objet=o) for o in ("a", "b", "c")], limits)
    assert batch.duplicates == 0
    assert batch.states[0][("PowerBI", "other-p0")].runs == {("SUCCESS", "akonovia", "1-Raw"): 2}


# --- rows written -------------------------------------------------------------------------------------


def _with_lignes(event: dict[str, Any], lignes: object) -> dict[str, Any]:
    event["performance"]["lignes"] = lignes
    return event


def lineage_end(at: str = "2025-09-15T10:31:00Z", run_id: str = "r1", **statistics: Any) -> bytes:
    """An OpenLineage COMPLETE of PowerBI/workspaces whose one output reports `statistics`."""
    return orjson.dumps(
        {
            "eventType": "COMPLETE",
            "eventTime": at,
            "run": {"runId": run_id},
            "job": {"namespace": "PowerBI", "name": "workspaces"},
            "outputs": [{"namespace": "lake", "name": "w", "outputFacets": {"outputStatistics": statistics}}],
        }
    )


def test_rows_are_summed_and_the_last_is_the_newest_by_event_time() -> None:
    batch = staged(PartitionState(0), [event(0, Lignes=100), event(100, Lignes=250), event(50, Lignes=7)])
    state = batch.states[0][KEY]
    assert state.rows_total == 357
    assert state.last_rows == (T0 + 101.5, 250)  # the late older run (50 s) counts, but is not the last


def test_a_newer_run_with_zero_rows_is_the_last() -> None:
    state = staged(PartitionState(0), [event(0, Lignes=100), event(10, Lignes=0)]).states[0][KEY]
    assert (state.rows_total, state.last_rows) == (100, (T0 + 11.5, 0))


def test_runs_that_do_not_report_rows_leave_them_unknown() -> None:
    state = staged(PartitionState(0), [event(0), event(10, Lignes=None)]).states[0][KEY]
    assert (state.rows_total, state.last_rows) == (None, None)  # unknown: not 0
    assert sum(state.runs.values()) == 2
    # a newer run without rows moves the last run, not the last rows
    state = staged(PartitionState(0), [event(0, Lignes=40), event(10)]).states[0][KEY]
    assert (state.rows_total, state.last_rows) == (40, (T0 + 1.5, 40))
    assert state.last_end == T0 + 11.5


def test_a_redelivered_run_s_rows_are_counted_once() -> None:
    partition = PartitionState(0)
    committed(partition, staged(partition, [event(0, Lignes=10), event(1, Lignes=20), event(1, Lignes=20)]))
    assert partition.committed[KEY].rows_total == 30
    restored = PartitionState(0, {k: decode(encode(s)) for k, s in partition.committed.items()})
    batch = staged(restored, [event(0, Lignes=10), event(1, Lignes=20), event(2, Lignes=5)], first=3)
    assert (batch.processed, batch.duplicates) == (1, 2)
    assert batch.states[0][KEY].rows_total == 35
    assert batch.states[0][KEY].last_rows == (T0 + 3.5, 5)


def test_raw_records_with_lignes_are_counted() -> None:
    state = staged(PartitionState(0), [orjson.dumps(raw(0, Lignes=3864.0))]).states[0][KEY]
    assert (state.rows_total, state.last_rows) == (3864, (T0 + 1.5, 3864))


def test_lineage_rows_are_counted_once_and_logged() -> None:
    partition = PartitionState(0)
    end = lineage_end(rowCount=1200)
    batch = staged(partition, [end, end, lineage_end("2025-09-15T10:32:00Z", "r2", size=10)])
    state = batch.states[0][KEY]
    assert (batch.processed, batch.duplicates) == (2, 1)
    assert state.rows_total == 1200 and state.last_rows == (T0 + 60, 1200)  # r2 reports no rowCount
    lines = [orjson.loads(e.line) for entries in batch.loki.streams.values() for e in entries]
    assert [line["performance"]["lignes"] for line in lines] == [1200, None]


def test_an_absurd_total_stays_writable() -> None:
    records = [event(i, Lignes=2**53) for i in range(3000)]
    state = staged(PartitionState(0), records, StagingLimits(recent_keys_per_objet=4000)).states[0][KEY]
    assert state.rows_total == 2**64 - 1
    assert decode(encode(state)).rows_total == 2**64 - 1


# --- invalid messages ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (None, "empty message (no value)"),
        (b"x" * 2001, "2001 bytes exceeds the 2000 limit"),
        (b'{"Source": ', "not valid JSON: "),
        (b"\xff\xfe", "not valid JSON: "),
        (b"[1, 2]", "an event must be a JSON object, got list"),
        (
            orjson.dumps({**normalise(raw()), "etat": "MAYBE"}),
            "'etat' must be SUCCESS or FAILED, got 'MAYBE'",
        ),
        (orjson.dumps({**normalise(raw()), "@version": "0"}), "unsupported '@version' '0'"),
        (orjson.dumps(raw(Objet=None)), "'Objet' is missing"),
        (orjson.dumps(raw(Fin="2025-09-15T10:29:00")), "'Fin' (2025-09-15T10:29:00) is before 'Debut'"),
        (orjson.dumps(raw(Lignes=-1)), "'Lignes' must be >= 0, got -1"),
        (orjson.dumps(raw(Lignes=1.5)), "'Lignes' must be a whole number of rows, got 1.5"),
        (
            orjson.dumps(_with_lignes(normalise(raw()), "12")),
            "'performance.lignes' must be an integer (rows written), got str",
        ),
        (
            lineage_end(rowCount=-5),
            "'outputs[0].outputFacets.outputStatistics.rowCount' must be >= 0, got -5",
        ),
    ],
    ids=[
        "none",
        "too-big",
        "truncated-json",
        "not-utf8",
        "list",
        "etat",
        "version",
        "raw-objet",
        "raw-fin",
        "raw-lignes-negative",
        "raw-lignes-fraction",
        "event-lignes-text",
        "lineage-rowcount",
    ],
)
def test_invalid_messages_are_dead_lettered_with_the_reason(value: bytes | None, error: str) -> None:
    partition = PartitionState(2)
    batch = staged(partition, [event(0), value, event(1)], StagingLimits(max_message_bytes=2000), first=40)
    assert (batch.invalid, batch.processed) == (1, 2)
    assert len(batch.dead_letters) == 1
    letter = batch.dead_letters[0]
    assert letter.error.startswith(error), letter.error
    assert (letter.value, letter.key, letter.topic, letter.partition, letter.offset) == (
        value,
        b"PowerBI/x",
        TOPIC,
        2,
        41,
    )
    assert letter.headers() == [
        ("error", letter.error.encode()),
        ("source.topic", TOPIC.encode()),
        ("source.partition", b"2"),
        ("source.offset", b"41"),
    ]
    assert batch.offsets == {2: 43}
    assert batch.loki.count == 2


def test_a_batch_of_only_invalid_messages_touches_no_state() -> None:
    partition = PartitionState(0)
    batch = staged(partition, [None, b"nope"])
    assert batch.states == {0: {}}
    assert partition.staged == {}
    assert batch.loki.count == 0
    assert [d.offset for d in batch.dead_letters] == [0, 1]
    assert batch.offsets == {0: 2}


# --- raw connector records, enriched events ----------------------------------------------------------


def test_raw_connector_records_are_normalised() -> None:
    records = list(generate_records(40, sources=2, objets_per_source=3, failure_ratio=0.2, seed=7))
    batch = staged(PartitionState(0), [orjson.dumps(r) for r in records])
    assert (batch.processed, batch.invalid, batch.duplicates) == (40, 0, 0)
    events = [normalise(r) for r in records]
    runs = [parse_event(e) for e in events]
    expected: dict[tuple[str, str], dict[tuple[str, str, str], int]] = {}
    for run in runs:
        counts = expected.setdefault((run.source, run.objet), {})
        counts[(run.etat, run.entreprise, run.zone)] = counts.get((run.etat, run.entreprise, run.zone), 0) + 1
    assert {k: s.runs for k, s in batch.states[0].items()} == expected
    assert sum(s.failures for s in batch.states[0].values()) == sum(r.failed for r in runs) > 0
    # the Loki line is the enriched event, not the raw record
    lines = sorted(e.line for entries in batch.loki.streams.values() for e in entries)
    assert lines == sorted(orjson.dumps(e).decode() for e in events)


def test_an_enriched_event_is_logged_as_published() -> None:
    value = orjson.dumps(normalise(raw(0)), option=orjson.OPT_INDENT_2)
    batch = staged(PartitionState(0), [value])
    [[entry]] = batch.loki.streams.values()
    assert entry.line == value.decode()


# --- offsets, commit, the Loki batch -------------------------------------------------------------------


def test_offsets_are_the_last_offset_plus_one_per_partition() -> None:
    p0, p5 = PartitionState(0), PartitionState(5)
    batch = StagedBatch(LokiBatch("ingestion-logs"))
    stage(batch, p0, messages([event(0), event(1)], 0, first=41), StagingLimits())
    stage(batch, p5, messages([event(0, objet="other")], 5, first=7), StagingLimits())
    stage(batch, p0, messages([b"junk"], 0, first=43), StagingLimits())
    stage(batch, p5, [], StagingLimits())
    assert batch.offsets == {0: 44, 5: 8}
    assert batch.messages == 4
    assert set(batch.states[0]) == {KEY}
    assert set(batch.states[5]) == {("PowerBI", "other")}


def test_an_empty_poll_stages_nothing() -> None:
    batch = staged(PartitionState(0), [])
    assert batch.empty
    assert batch.offsets == {} and batch.states == {}


def test_staged_states_are_not_committed_until_the_commit() -> None:
    partition = PartitionState(0)
    committed(partition, staged(partition, [event(0)]))
    before = partition.committed[KEY]
    snapshot = decode(encode(before))
    batch = staged(partition, [event(1, etat="FAILED"), event(2, objet="datasets")], first=1)
    assert partition.committed == {KEY: before}
    assert partition.committed[KEY] is before and before == snapshot  # the committed state is untouched
    new = batch.states[0][KEY]
    assert new is not before and new.failures == 1
    assert partition.staged == batch.states[0]
    committed(partition, batch)
    assert partition.committed[KEY] is new
    assert set(partition.committed) == {KEY, ("PowerBI", "datasets")}
    assert partition.staged == {}


def test_discarded_staged_states_restart_from_the_committed_ones() -> None:
    partition = PartitionState(0)
    committed(partition, staged(partition, [event(0)]))
    staged(partition, [event(1)], first=1)
    partition.discard_staged()
    batch = staged(partition, [event(1)], first=1)  # the redelivery
    assert (batch.processed, batch.duplicates) == (1, 0)
    assert batch.states[0][KEY].runs == {("SUCCESS", "akonovia", "1-Raw"): 2}


def test_objets_past_the_cap_are_folded_into_other() -> None:
    limits = StagingLimits(max_objets_per_source=2)
    partition = PartitionState(3)
    batch = staged(partition, [event(i, objet=o) for i, o in enumerate("abcdc")], limits)
    assert set(batch.states[3]) == {("PowerBI", "a"), ("PowerBI", "b"), ("PowerBI", "other-p3")}
    other = batch.states[3][("PowerBI", "other-p3")]
    assert other.objet == "other-p3" and other.key == b"PowerBI/other-p3"
    assert other.runs == {("SUCCESS", "akonovia", "1-Raw"): 3}
    assert batch.folded == {"PowerBI": 3}
    # the Loki line keeps the real objet
    assert sorted(e.objet for entries in batch.loki.streams.values() for e in entries) == list("abccd")


def test_the_loki_batch_has_one_entry_per_processed_run() -> None:
    ok, failed, curated = event(0), event(5, etat="FAILED", duree=2), event(9, Zone="2-Curated")
    batch = staged(PartitionState(0), [ok, ok, None, failed, curated], first=10)
    assert batch.loki.count == batch.processed == 3
    ms = int(T0 * 1000)
    assert batch.loki.streams == {
        ("PowerBI", "SUCCESS", "akonovia", "1-Raw"): [
            Entry(T0 + 1.5, (ms + 10_000) / 1000, ok.decode(), "workspaces")
        ],
        ("PowerBI", "FAILED", "akonovia", "1-Raw"): [
            Entry(T0 + 7, (ms + 13_000) / 1000, failed.decode(), "workspaces")
        ],
        ("PowerBI", "SUCCESS", "akonovia", "2-Curated"): [
            Entry(T0 + 10.5, (ms + 14_000) / 1000, curated.decode(), "workspaces")
        ],
    }
    assert batch.loki.size == sum(len(v) + 64 for v in (ok, failed, curated))


def test_dead_letter_headers_name_the_source_record() -> None:
    letter = DeadLetter(b"v", None, "in", 4, 1234, "bad thing")
    assert dict(letter.headers()) == {
        "error": b"bad thing",
        "source.topic": b"in",
        "source.partition": b"4",
        "source.offset": b"1234",
    }


def test_a_new_objet_state_starts_from_scratch() -> None:
    partition = PartitionState(0, {("PowerBI", "old"): ObjetState.new("PowerBI", "old")})
    batch = staged(partition, [event(0)])
    state = batch.states[0][KEY]
    assert state.runs == {("SUCCESS", "akonovia", "1-Raw"): 1}
    assert list(state.recent) == ["2025-09-15T10:30:00.000Z"]
    assert ("PowerBI", "old") not in batch.states[0]  # untouched objets are not rewritten
