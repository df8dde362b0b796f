"""Delivery: the Loki push and one Kafka transaction per batch, with a fake sink and a fake producer."""

from __future__ import annotations

import gzip
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest
from kafka import TopicPartition
from kafka.errors import CommitFailedError, IllegalGenerationError, KafkaError, UnknownMemberIdError
from kafka.structs import ConsumerGroupMetadata, OffsetAndMetadata

from ingestion_observability.consumer.delivery import Delivery, Topics, Verdict
from ingestion_observability.consumer.loki import Entry, LokiBatch, Outcome, PushResult
from ingestion_observability.consumer.staging import DeadLetter, StagedBatch
from ingestion_observability.consumer.state import ObjetState, decode, encode

TOPICS = Topics(input="in", dlq="in.dlq", state="in.state")
# what KafkaConsumer.group_metadata() returns for a member of generation 7: passed through untouched
GROUP_METADATA = ConsumerGroupMetadata("group", 7, "member-1", None)
NOW = 1_800_000_000.0


@dataclass
class FakeSink:
    result: PushResult = field(default_factory=lambda: PushResult(Outcome.ACCEPTED, "", 0.01))
    bodies: list[bytes] = field(default_factory=list)

    def push(self, body: bytes) -> PushResult:
        self.bodies.append(body)
        return self.result


class FakeProducer:
    """The transactional part of a KafkaProducer: records every call, raises where told to."""

    def __init__(self, fail: dict[str, Exception] | None = None, hang: str = "") -> None:
        self.fail = fail or {}
        self.hang = hang  # a call that never returns, as kafka-python's waits can after a broker restart
        self.released = threading.Event()
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _call(self, name: str, **args: Any) -> None:
        self.calls.append((name, args))
        if name == self.hang:
            self.released.wait()
        if name in self.fail:
            raise self.fail[name]

    def close(self, timeout: float | None = None) -> None:
        self._call("close", timeout=timeout)
        self.released.set()

    def begin_transaction(self) -> None:
        self._call("begin_transaction")

    def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> Any:
        self._call("send", topic=topic, value=value, key=key, headers=headers, partition=partition)
        return None

    def send_offsets_to_transaction(self, offsets: dict[Any, Any], group_metadata: Any) -> None:
        self._call("send_offsets_to_transaction", offsets=offsets, group_metadata=group_metadata)

    def commit_transaction(self) -> None:
        self._call("commit_transaction")

    def abort_transaction(self) -> None:
        self._call("abort_transaction")

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def sent(self, topic: str) -> list[dict[str, Any]]:
        return [args for name, args in self.calls if name == "send" and args["topic"] == topic]


class Factory:
    """Creates the producers Delivery asks for, in order; raises when the list is empty."""

    def __init__(self, *producers: FakeProducer | Exception) -> None:
        self.pending = list(producers)
        self.created: list[FakeProducer] = []

    def __call__(self) -> FakeProducer:
        item = self.pending.pop(0)
        if isinstance(item, Exception):
            raise item
        self.created.append(item)
        return item


def state(objet: str, failures: int = 0) -> ObjetState:
    new = ObjetState.new("PowerBI", objet)
    new.runs[("SUCCESS", "akonovia", "1-Raw")] = 3
    new.failures = failures
    return new


def batch() -> StagedBatch:
    loki = LokiBatch("ingestion-logs")
    loki.add(("PowerBI", "SUCCESS", "akonovia", "1-Raw"), Entry(NOW - 5, NOW, '{"n":1}', "a"))
    loki.add(("PowerBI", "FAILED", "akonovia", "1-Raw"), Entry(NOW - 3, NOW, '{"n":2}', "b"))
    return StagedBatch(
        loki,
        states={
            3: {("PowerBI", "a"): state("a"), ("PowerBI", "b"): state("b", 1)},
            7: {("PowerBI", "c"): state("c")},
        },
        dead_letters=[DeadLetter(b"junk", b"PowerBI/x", "in", 3, 17, "not valid JSON: x")],
        offsets={3: 42, 7: 5},
        tombstones={3: [b"PowerBI/gone"]},
        messages=4,
    )


def delivery(
    *producers: FakeProducer | Exception, sink: FakeSink | None = None, timeout: float = 30.0
) -> tuple[Delivery, Factory]:
    factory = Factory(*producers)
    return Delivery(TOPICS, sink or FakeSink(), factory, timeout), factory


# --- the transaction ---------------------------------------------------------------------------------


def test_a_committed_transaction_holds_dead_letters_state_and_offsets() -> None:
    producer = FakeProducer()
    deliver, _ = delivery(producer)
    staged = batch()
    result = deliver.commit(staged, GROUP_METADATA)
    assert result.verdict is Verdict.COMMITTED
    assert result.reason == ""
    assert producer.names == [
        "begin_transaction",
        "send",  # the dead letter
        "send",  # the tombstone
        "send",
        "send",
        "send",  # one changelog record per touched state
        "send_offsets_to_transaction",
        "commit_transaction",
    ]
    assert producer.sent(TOPICS.dlq) == [
        {
            "topic": "in.dlq",
            "value": b"junk",
            "key": b"PowerBI/x",
            "headers": [
                ("error", b"not valid JSON: x"),
                ("source.topic", b"in"),
                ("source.partition", b"3"),
                ("source.offset", b"17"),
            ],
            "partition": None,
        }
    ]
    changelog = producer.sent(TOPICS.state)
    assert changelog[0] == {
        "topic": "in.state",
        "value": None,
        "key": b"PowerBI/gone",
        "headers": None,
        "partition": 3,
    }
    records = [(r["partition"], r["key"], decode(r["value"])) for r in changelog[1:]]
    assert records == [
        (3, b"PowerBI/a", state("a")),
        (3, b"PowerBI/b", state("b", 1)),
        (7, b"PowerBI/c", state("c")),  # on the input partition's number
    ]
    [(_, offsets)] = [call for call in producer.calls if call[0] == "send_offsets_to_transaction"]
    assert offsets["group_metadata"] is GROUP_METADATA
    assert offsets["offsets"] == {
        TopicPartition("in", 3): OffsetAndMetadata(42, "", -1),
        TopicPartition("in", 7): OffsetAndMetadata(5, "", -1),
    }
    assert result.changelog_bytes == sum(len(encode(s)) for s in (state("a"), state("b", 1), state("c")))


def test_the_producer_is_created_once_and_reused() -> None:
    deliver, factory = delivery(FakeProducer(), FakeProducer())
    assert deliver.commit(batch(), GROUP_METADATA).verdict is Verdict.COMMITTED
    assert deliver.commit(batch(), GROUP_METADATA).verdict is Verdict.COMMITTED
    assert len(factory.created) == 1
    assert factory.created[0].names.count("commit_transaction") == 2


def test_a_rebuild_batch_without_offsets_sends_only_tombstones() -> None:
    producer = FakeProducer()
    deliver, _ = delivery(producer)
    staged = StagedBatch(LokiBatch("j"), tombstones={2: [b"s/a", b"s/b"]})
    result = deliver.commit(staged, GROUP_METADATA)
    assert result.verdict is Verdict.COMMITTED and result.changelog_bytes == 0
    assert producer.names == ["begin_transaction", "send", "send", "commit_transaction"]
    assert [(r["key"], r["value"], r["partition"]) for r in producer.sent("in.state")] == [
        (b"s/a", None, 2),
        (b"s/b", None, 2),
    ]


@pytest.mark.parametrize(
    "failing", ["begin_transaction", "send", "send_offsets_to_transaction", "commit_transaction"]
)
def test_a_kafka_error_aborts_and_retries_with_the_same_producer(failing: str) -> None:
    producer = FakeProducer({failing: KafkaError("broker down")})
    deliver, factory = delivery(producer)
    result = deliver.commit(batch(), GROUP_METADATA)
    assert result.verdict is Verdict.RETRY
    assert result.reason.startswith("transaction aborted: ") and "broker down" in result.reason
    assert producer.names[-2:] == [failing, "abort_transaction"]  # nothing more after the failure
    assert producer.names.count("commit_transaction") == (failing == "commit_transaction")
    producer.fail.clear()
    assert deliver.commit(batch(), GROUP_METADATA).verdict is Verdict.COMMITTED
    assert factory.created == [producer]


def test_an_abort_that_fails_resets_and_a_new_producer_is_created() -> None:
    fenced = FakeProducer(
        {"commit_transaction": KafkaError("fenced"), "abort_transaction": KafkaError("fenced")}
    )
    fresh = FakeProducer()
    deliver, factory = delivery(fenced, fresh)
    result = deliver.commit(batch(), GROUP_METADATA)
    assert result.verdict is Verdict.RESET
    assert result.reason.startswith("transaction failed: ") and "fenced" in result.reason
    assert fenced.names[-2:] == ["commit_transaction", "abort_transaction"]
    assert deliver.commit(batch(), GROUP_METADATA).verdict is Verdict.COMMITTED
    assert factory.created == [fenced, fresh]
    assert fresh.names[0] == "begin_transaction" and fresh.names[-1] == "commit_transaction"


@pytest.mark.parametrize("failing", ["send_offsets_to_transaction", "commit_transaction"])
@pytest.mark.parametrize("error", [CommitFailedError, IllegalGenerationError, UnknownMemberIdError])
def test_offsets_refused_by_the_group_mean_the_partitions_are_lost(failing: str, error: type) -> None:
    producer = FakeProducer({failing: error("generation is stale")})
    deliver, factory = delivery(producer, FakeProducer())
    result = deliver.commit(batch(), GROUP_METADATA)
    assert result.verdict is Verdict.LOST
    assert result.reason.startswith("offsets refused by the group: ")
    assert producer.names[-1] == "abort_transaction"
    assert result.changelog_bytes == 0
    deliver.commit(batch(), GROUP_METADATA)
    assert len(factory.created) == 1  # the abort worked: the producer is still usable


def test_offsets_refused_and_abort_failing_drops_the_producer() -> None:
    producer = FakeProducer(
        {"commit_transaction": CommitFailedError("stale"), "abort_transaction": KafkaError("fenced")}
    )
    deliver, factory = delivery(producer, FakeProducer())
    assert deliver.commit(batch(), GROUP_METADATA).verdict is Verdict.LOST
    assert deliver.commit(batch(), GROUP_METADATA).verdict is Verdict.COMMITTED
    assert len(factory.created) == 2


@pytest.mark.parametrize(
    "membership",
    [
        ConsumerGroupMetadata("group", -1, "", None),  # reset after a lost session (kafka-python)
        ConsumerGroupMetadata("group", -1, "member-1", None),
        ConsumerGroupMetadata("group", 7, "", None),
        None,
    ],
)
def test_no_transaction_without_a_membership(membership: Any) -> None:
    """The broker accepts transactional offsets sent without a generation: they must never be sent."""
    producer = FakeProducer()
    deliver, factory = delivery(producer)
    result = deliver.commit(batch(), membership)
    assert result.verdict is Verdict.LOST and "not a member of the group" in result.reason
    assert producer.names == [] and factory.created == []  # no producer made, no transaction opened


def test_a_producer_that_cannot_be_created_is_retried() -> None:
    producer = FakeProducer()
    deliver, factory = delivery(KafkaError("no broker"), producer)
    result = deliver.commit(batch(), GROUP_METADATA)
    assert result.verdict is Verdict.RETRY
    assert result.reason.startswith("transactional producer not ready: ") and "no broker" in result.reason
    assert deliver.commit(batch(), GROUP_METADATA).verdict is Verdict.COMMITTED
    assert factory.created == [producer]


# --- the Loki push -------------------------------------------------------------------------------------


def test_push_lines_sends_the_batch_payload() -> None:
    sink = FakeSink()
    deliver, _ = delivery(sink=sink)
    staged = batch()
    result = deliver.push_lines(staged, NOW)
    assert result is sink.result
    [body] = sink.bodies
    assert body == staged.loki.payload(NOW)
    lines = [v[1] for s in json.loads(gzip.decompress(body))["streams"] for v in s["values"]]
    assert lines == ['{"n":1}', '{"n":2}']


def test_a_batch_without_lines_is_not_pushed() -> None:
    sink = FakeSink()
    deliver, _ = delivery(sink=sink)
    staged = StagedBatch(LokiBatch("j"), offsets={0: 3}, messages=3)
    assert deliver.push_lines(staged, NOW) is None
    assert sink.bodies == []
    assert deliver.settle_push(staged, None) is None


def test_accepted_lines_are_settled() -> None:
    deliver, _ = delivery()
    staged = batch()
    assert deliver.settle_push(staged, PushResult(Outcome.ACCEPTED, "", 0.2)) is None
    assert len(staged.dead_letters) == 1 and staged.loki.count == 2


def test_loki_retry_returns_the_reason_and_keeps_the_batch() -> None:
    deliver, _ = delivery()
    staged = batch()
    assert deliver.settle_push(staged, PushResult(Outcome.RETRY, "HTTP 503: overloaded", 0.1)) == (
        "HTTP 503: overloaded"
    )
    assert staged.loki.count == 2
    assert len(staged.dead_letters) == 1


def test_lines_rejected_by_loki_become_dead_letters() -> None:
    producer = FakeProducer()
    deliver, _ = delivery(producer)
    staged = batch()
    assert deliver.settle_push(staged, PushResult(Outcome.REJECTED, "HTTP 400: bad labels", 0.1)) is None
    assert staged.loki.count == 0 and staged.loki.streams == {}
    assert staged.loki.job == "ingestion-logs"
    rejected = staged.dead_letters[1:]
    assert [(d.value, d.key, d.topic, d.partition, d.offset, d.error) for d in rejected] == [
        (b'{"n":1}', None, "in", -1, -1, "loki rejected: HTTP 400: bad labels"),
        (b'{"n":2}', None, "in", -1, -1, "loki rejected: HTTP 400: bad labels"),
    ]
    assert deliver.push_lines(staged, NOW) is None  # nothing left to push
    assert deliver.commit(staged, GROUP_METADATA).verdict is Verdict.COMMITTED
    assert [r["value"] for r in producer.sent(TOPICS.dlq)] == [b"junk", b'{"n":1}', b'{"n":2}']


def test_a_transaction_that_never_completes_resets_and_drops_the_producer() -> None:
    stuck, fresh = FakeProducer(hang="commit_transaction"), FakeProducer()
    deliver, factory = delivery(stuck, fresh, timeout=0.2)
    result = deliver.commit(batch(), GROUP_METADATA)
    assert result.verdict is Verdict.RESET and "not completed in 0s" in result.reason
    assert stuck.released.wait(5) and ("close", {"timeout": 0}) in stuck.calls
    assert deliver.commit(batch(), GROUP_METADATA).verdict is Verdict.COMMITTED  # a new producer, same id
    assert factory.created == [stuck, fresh]
