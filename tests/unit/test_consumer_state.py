"""The consumer's state: the changelog codec, copies of committed states, the per-partition objet cap."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from kafka import TopicPartition

from ingestion_observability import catalog
from ingestion_observability.consumer.restore import restore
from ingestion_observability.consumer.state import (
    BOUNDS,
    HISTOGRAMS,
    STATE_VERSION,
    Histogram,
    ObjetState,
    PartitionState,
    StateError,
    decode,
    encode,
)

DURATION, CPU, MEMORY, RECOVERY = catalog.HISTOGRAMS
T0 = 1_757_894_400.0  # 2025-09-15T00:00:00Z


def full_state(failed_since: float | None = T0 + 60.5) -> ObjetState:
    """A state with every field away from its default."""
    state = ObjetState.new("PowerBI", "workspaces")
    state.runs = {("SUCCESS", "akonovia", "1-Raw"): 3, ("FAILED", "akonovia", ""): 1, ("SUCCESS", "", ""): 2}
    state.failures = 1
    for value in (0.1, 1.0, 2.5, 700.0):
        state.histograms[DURATION.name].observe(DURATION.buckets, value)
    state.histograms[CPU.name].observe(CPU.buckets, 0.21)
    state.histograms[MEMORY.name].observe(MEMORY.buckets, 8_987_734.0)
    state.histograms[RECOVERY.name].observe(RECOVERY.buckets, 300.0)
    state.last_end = T0 + 61.25
    state.last_etat = "FAILED"
    state.failed_since = failed_since
    state.last_failure = (T0 + 61.25, 'HTTP 504 "Gateway Timeout"\nréessai')
    state.rows_total = 2**53 + 7  # past float64's exact integers: kept exact as an int
    state.last_rows = (T0 + 60.75, 3864)
    # insertion order, not sorted: the oldest key is evicted first
    state.recent = dict.fromkeys(
        ["2025-09-15T00:00:02.000Z", "2025-09-15T00:00:00.000Z", "2025-09-15T00:00:01Z"]
    )
    return state


def document(state: ObjetState | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(encode(state or full_state()))
    return doc


def dumps(doc: object) -> bytes:
    return orjson.dumps(doc)


# --- codec ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("failed_since", [None, T0 + 60.5], ids=["not-failing", "failing"])
def test_round_trip_keeps_every_field(failed_since: float | None) -> None:
    state = full_state(failed_since)
    restored = decode(encode(state))
    assert restored == state
    assert restored.failed_since == failed_since
    assert list(restored.recent) == [
        "2025-09-15T00:00:02.000Z",
        "2025-09-15T00:00:00.000Z",
        "2025-09-15T00:00:01Z",
    ]
    assert list(restored.runs) == list(state.runs)
    assert restored.histograms[DURATION.name] == Histogram([1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1], 703.6)
    assert restored.histograms[RECOVERY.name].counts[1] == 1  # 300 s: le="300"
    assert restored.key == b"PowerBI/workspaces"
    assert (restored.rows_total, restored.last_rows) == (2**53 + 7, (T0 + 60.75, 3864))
    assert type(restored.rows_total) is int


def test_round_trip_of_a_state_without_a_run() -> None:
    state = ObjetState.new("Efficy", "Contact")
    restored = decode(encode(state))
    assert restored == state
    assert restored.last_end == float("-inf") and restored.last_etat == ""
    assert document(state)["last"] is None
    assert set(restored.histograms) == set(HISTOGRAMS)
    assert all(h.counts == [0] * (len(BOUNDS[name]) + 1) for name, h in restored.histograms.items())


def test_a_record_written_before_last_failure_existed_reads_it_as_unknown() -> None:
    doc = document()
    del doc["last_failure"]
    restored = decode(dumps(doc))
    assert restored.last_failure is None  # unknown until the next failure: never a made-up error
    assert restored.failures == 1


def test_a_record_written_before_rows_existed_reads_them_as_unknown() -> None:
    doc = document()
    del doc["rows_total"], doc["last_rows"]
    restored = decode(dumps(doc))
    assert (restored.rows_total, restored.last_rows) == (None, None)  # unknown until a run reports rows
    assert restored.runs == full_state().runs


def test_unknown_rows_round_trip_as_null() -> None:
    state = ObjetState.new("Efficy", "Contact")
    assert (document(state)["rows_total"], document(state)["last_rows"]) == (None, None)
    assert decode(encode(state)).rows_total is None


def test_encoded_record_is_versioned() -> None:
    doc = document()
    assert doc["v"] == STATE_VERSION == 1
    assert doc["source"] == "PowerBI" and doc["objet"] == "workspaces"
    assert ["FAILED", "akonovia", "", 1] in doc["runs"]
    assert doc["last"] == [T0 + 61.25, "FAILED"]


def _with(**changes: Any) -> bytes:
    doc = document()
    doc.update(changes)
    return dumps({k: v for k, v in doc.items() if v is not ...})


def _histograms(**changes: Any) -> dict[str, Any]:
    histograms: dict[str, Any] = document()["histograms"]
    histograms.update(changes)
    return {k: v for k, v in histograms.items() if v is not ...}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (_with(v=2), "unknown state schema version 2 (this consumer reads 1)"),
        (_with(v="1"), "unknown state schema version '1'"),
        (_with(v=...), "unknown state schema version None"),
        (b"\xff\xfe not json", "undecodable state record"),
        (b'{"v": 1, "source": ', "undecodable state record"),
        (b"", "undecodable state record"),
        (None, "undecodable state record"),
        (b"[1, 2, 3]", "state record is not a JSON object"),
        (b'"a string"', "state record is not a JSON object"),
        (b"null", "state record is not a JSON object"),
        (
            _with(histograms=_histograms(**{DURATION.name: [[0] * len(DURATION.buckets), 0.0]})),
            "histograms do not match this consumer's buckets",
        ),
        (
            _with(histograms=_histograms(**{CPU.name: [[0] * (len(CPU.buckets) + 2), 0.0]})),
            "histograms do not match this consumer's buckets",
        ),
        (
            _with(histograms=_histograms(**{RECOVERY.name: ...})),
            "histograms do not match this consumer's buckets",
        ),
        (
            _with(histograms=_histograms(ingestion_extra_seconds=[[0, 0], 0.0])),
            "histograms do not match this consumer's buckets",
        ),
        (_with(histograms=_histograms(**{CPU.name: [[0, "x"], 0.0]})), "malformed state record"),
        (_with(histograms=_histograms(**{CPU.name: [0, 0, 0]})), "malformed state record"),
        (_with(runs=[["SUCCESS", "akonovia", 3]]), "malformed state record"),
        (_with(runs=5), "malformed state record"),
        (_with(failures="many"), "malformed state record"),
        (_with(failed_since="yesterday"), "malformed state record"),
        (_with(last=["noon", "SUCCESS"]), "malformed state record"),
        (_with(recent=7), "malformed state record"),
        (_with(rows_total=-1), "malformed state record"),
        (_with(rows_total=12.5), "malformed state record"),
        (_with(rows_total="12"), "malformed state record"),
        (_with(last_rows=[T0, -3]), "malformed state record"),
        (_with(last_rows=[T0, 1.5]), "malformed state record"),
        (_with(last_rows=12), "malformed state record"),
        (_with(last_rows=["noon", 12]), "malformed state record"),
    ],
    ids=lambda p: p if isinstance(p, str) else None,
)
def test_decode_refuses_what_it_cannot_read(value: bytes | None, message: str) -> None:
    with pytest.raises(StateError) as refused:
        decode(value)
    assert message in str(refused.value)


@pytest.mark.parametrize(
    "missing", ["source", "objet", "runs", "failures", "histograms", "last", "failed_since", "recent"]
)
def test_decode_refuses_a_record_with_a_missing_field(missing: str) -> None:
    with pytest.raises(StateError, match=rf"malformed state record: KeyError\('{missing}'\)"):
        decode(_with(**{missing: ...}))


@pytest.mark.parametrize("histograms", [[], None, "buckets"], ids=["list", "null", "string"])
def test_decode_refuses_histograms_that_are_not_an_object(histograms: object) -> None:
    with pytest.raises(StateError, match="malformed state record"):
        decode(_with(histograms=histograms))


# --- copies --------------------------------------------------------------------------------------------


def test_evolve_copies_deeply() -> None:
    original = full_state()
    snapshot = decode(encode(original))
    copy = original.evolve()
    assert copy == original and copy is not original
    copy.runs[("SUCCESS", "akonovia", "1-Raw")] += 1
    copy.runs[("FAILED", "x", "y")] = 1
    copy.failures += 1
    copy.histograms[DURATION.name].observe(DURATION.buckets, 1.0)
    copy.histograms[CPU.name].counts[0] = 99
    copy.histograms[MEMORY.name].total = -1.0
    copy.last_end, copy.last_etat, copy.failed_since = T0 + 999, "SUCCESS", None
    copy.recent["2025-09-16T00:00:00.000Z"] = None
    copy.rows_total, copy.last_rows = 1, (T0 + 999, 1)
    del copy.recent["2025-09-15T00:00:02.000Z"]
    assert original == snapshot
    assert copy != original
    assert all(copy.histograms[n] is not original.histograms[n] for n in HISTOGRAMS)


# --- PartitionState --------------------------------------------------------------------------------------


def test_label_folds_objets_past_the_cap_into_the_partitions_other() -> None:
    partition = PartitionState(3)
    assert partition.other == "other-p3"
    assert partition.label("s", "a", cap=2) == ("a", False)
    assert partition.label("s", "b", cap=2) == ("b", False)
    assert partition.label("s", "c", cap=2) == ("other-p3", True)
    assert partition.label("s", "d", cap=2) == ("other-p3", True)
    assert partition.label("t", "c", cap=2) == ("c", False)  # the cap is per source


def test_other_is_per_partition() -> None:
    assert PartitionState(0).other == "other-p0"
    assert PartitionState(11).other == "other-p11"
    assert PartitionState(11).label("s", "a", cap=0) == ("other-p11", True)


def test_existing_objets_keep_their_label() -> None:
    committed = {("s", o): ObjetState.new("s", o) for o in ("a", "b", "c")}
    partition = PartitionState(1, committed)  # restored past today's cap (the cap was lowered)
    assert partition.label("s", "c", cap=2) == ("c", False)
    assert partition.label("s", "d", cap=2) == ("other-p1", True)
    partition.staged[("s", "e")] = ObjetState.new("s", "e")
    assert partition.label("s", "e", cap=2) == ("e", False)  # staged by a batch in flight


def test_committed_other_does_not_take_a_slot() -> None:
    committed = {("s", "a"): ObjetState.new("s", "a"), ("s", "other-p2"): ObjetState.new("s", "other-p2")}
    partition = PartitionState(2, committed)
    assert partition.label("s", "b", cap=2) == ("b", False)
    assert partition.label("s", "c", cap=2) == ("other-p2", True)


def test_discard_staged_recounts_from_the_committed_states() -> None:
    partition = PartitionState(0, {("s", "a"): ObjetState.new("s", "a")})
    assert partition.label("s", "b", cap=2) == ("b", False)
    partition.staged[("s", "b")] = ObjetState.new("s", "b")
    assert partition.label("s", "c", cap=2) == ("other-p0", True)
    partition.discard_staged()
    assert partition.staged == {}
    assert list(partition.committed) == [("s", "a")]
    assert partition.label("s", "c", cap=2) == ("c", False)  # b's slot was freed
    assert partition.label("s", "b", cap=2) == ("other-p0", True)


def test_latest_prefers_the_staged_version() -> None:
    old = ObjetState.new("s", "a")
    partition = PartitionState(0, {("s", "a"): old})
    assert partition.latest(("s", "a")) is old
    staged = partition.staged[("s", "a")] = old.evolve()
    assert partition.latest(("s", "a")) is staged
    assert partition.latest(("s", "zz")) is None


def test_commit_replaces_states_and_clears_their_staged_entries() -> None:
    old = ObjetState.new("s", "a")
    partition = PartitionState(0, {("s", "a"): old})
    new_a, new_b, pending = old.evolve(), ObjetState.new("s", "b"), ObjetState.new("s", "c")
    new_a.failures = 4
    partition.staged.update({("s", "a"): new_a, ("s", "b"): new_b, ("s", "c"): pending})
    partition.commit({("s", "a"): new_a, ("s", "b"): new_b})
    assert partition.committed == {("s", "a"): new_a, ("s", "b"): new_b}
    assert partition.committed[("s", "a")] is new_a
    assert old.failures == 0
    assert partition.staged == {("s", "c"): pending}  # a later batch's state stays staged


def test_commit_keeps_a_newer_staged_version() -> None:
    partition = PartitionState(0)
    first = ObjetState.new("s", "a")
    newer = first.evolve()  # staged by the next batch, still in flight
    newer.failures = 1
    partition.staged[("s", "a")] = newer
    partition.commit({("s", "a"): first})
    assert partition.committed[("s", "a")] is first
    assert partition.staged[("s", "a")] is newer


# --- restore (a fake changelog reader) -------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    offset: int
    key: bytes | None
    value: bytes | None


class FakeReader:
    """The part of a KafkaConsumer that restore() uses, over an in-memory changelog."""

    def __init__(self, topic: str, log: dict[int, list[tuple[bytes | None, bytes | None]]]) -> None:
        self.records = {
            TopicPartition(topic, p): [Record(o, k, v) for o, (k, v) in enumerate(rs)]
            for p, rs in log.items()
        }
        self.positions: dict[Any, int] = {}
        self.assigned: list[Any] = []

    def assign(self, tps: list[Any]) -> None:
        self.assigned = list(tps)

    def seek_to_beginning(self, *tps: Any) -> None:
        for tp in tps:
            self.positions[tp] = 0

    def end_offsets(self, tps: list[Any]) -> dict[Any, int]:
        return {tp: len(self.records.get(tp, [])) for tp in tps}

    def poll(self, timeout_ms: int, max_records: int) -> dict[Any, list[Record]]:
        polled = {}
        for tp in self.assigned:
            records = self.records.get(tp, [])[self.positions[tp] :][:max_records]
            if records:
                polled[tp] = records
                self.positions[tp] += len(records)
        return polled

    def position(self, tp: Any) -> int:
        return self.positions[tp]


def test_restore_reads_the_newest_record_per_key() -> None:
    a1, a2, b = full_state(), full_state(None), ObjetState.new("Efficy", "Contact")
    a2.failures = 7
    reader = FakeReader(
        "in.state",
        {
            0: [(a1.key, encode(a1)), (b.key, encode(b)), (a2.key, encode(a2)), (b.key, None)],
            1: [],
        },
    )
    restored, refused = restore(reader, "in.state", [0, 1])
    assert refused == []
    assert set(restored) == {0, 1}
    assert restored[0].partition == 0
    assert restored[0].committed == {("PowerBI", "workspaces"): a2}  # b's tombstone removed it
    assert restored[1].committed == {}
    assert reader.assigned == []  # the reader is released


def test_restore_refuses_a_partition_with_an_unreadable_record() -> None:
    state = full_state()
    bad = dumps({**document(), "v": 99})
    reader = FakeReader(
        "in.state", {0: [(state.key, encode(state))], 4: [(state.key, encode(state)), (b"x", bad)]}
    )
    restored, refused = restore(reader, "in.state", [0, 4])
    assert list(restored) == [0]
    assert [r.partition for r in refused] == [4]
    assert refused[0].reason.startswith("in.state[4]@1 key b'x': unknown state schema version 99")


def test_restored_partition_counts_its_objets_for_the_cap() -> None:
    states = [ObjetState.new("s", o) for o in ("a", "b")]
    reader = FakeReader("t", {5: [(s.key, encode(s)) for s in states]})
    restored, _ = restore(reader, "t", [5])
    partition = restored[5]
    assert partition.label("s", "c", cap=2) == ("other-p5", True)
    assert partition.label("s", "a", cap=2) == ("a", False)


def test_decode_refuses_the_state_of_another_consumer_group() -> None:
    value = encode(ObjetState.new("s", "a"), "group-a")
    assert decode(value, "group-a").objet == "a"
    with pytest.raises(StateError, match="consumer group 'group-a', not 'group-b'"):
        decode(value, "group-b")
