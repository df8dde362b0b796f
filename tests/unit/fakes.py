"""Scripted fakes of Kafka for the consumer loop: one broker (topic, committed offsets, changelog, group
generation), a group member, a transactional producer and a changelog reader over it.

They behave as kafka-python 3 and Kafka's group coordinator do where the loop's correctness depends on it:
- rebalance listeners run inside poll(), and a blocking consumer call made from one raises RuntimeError;
- an eager rebalance keeps the fetch position of a partition the member keeps;
- a transactional offset commit is checked against the group only when it carries a generation or a
  member id: one with kafka-python's reset membership (-1, '') is accepted whoever owns the partitions;
- what a transaction wrote becomes visible (read_committed) only when it commits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kafka import TopicPartition
from kafka.errors import CommitFailedError
from kafka.structs import ConsumerGroupMetadata, OffsetAndMetadata

from ingestion_observability.consumer.loki import Outcome, PushResult
from ingestion_observability.consumer.restore import Refused
from ingestion_observability.consumer.state import PartitionState, StateError, decode
from tests.unit.test_consumer_staging import FakeMessage

GROUP = "group"


@dataclass
class Broker:
    topic: str
    partitions: int = 3
    records: dict[int, list[FakeMessage]] = field(default_factory=dict)
    committed: dict[int, int] = field(default_factory=dict)
    changelog: dict[int, dict[bytes, bytes | None]] = field(default_factory=dict)
    generation: int = 0  # the group's current generation, and its member that owns our partitions
    owner: str = ""
    transactions: list[int] = field(default_factory=list)  # changelog records of each committed one
    pending: list[Callable[[], None]] = field(default_factory=list)  # transactions not yet ended
    metadata_known: bool = True  # whether a member's metadata shows the topic's partitions
    calls: list[str] = field(default_factory=list)  # what the loop asked of Kafka, in order

    def publish(self, partition: int, values: list[bytes]) -> None:
        log = self.records.setdefault(partition, [])
        for value in values:
            log.append(
                FakeMessage(self.topic, partition, len(log), 1_757_000_000_000 + len(log), b"k", value)
            )


class Member:
    """The group member (the loop's GroupConsumer). `script` runs inside the next poll, as kafka-python
    runs rebalances; `rebalance` and `lose` are what it can do there."""

    def __init__(self, broker: Broker, member_id: str = "m-1") -> None:
        self.broker = broker
        self.member_id = member_id
        self.generation = -1
        self.listener: Any = None
        self.assigned: set[int] = set()
        self._paused: set[int] = set()
        self.positions: dict[int, int] = {}
        self.heartbeat_at = 0.0  # when the coordinator last accepted a heartbeat (time.monotonic())
        self.script: list[Callable[[], None]] = []
        self.in_listener = False
        self.metadata_refreshes = 0

    # --- what the test scripts -------------------------------------------------------------------------

    def rebalance(self, partitions: set[int]) -> None:
        """An eager rebalance: everything revoked, then `partitions` assigned in a new generation."""
        self._listen("on_partitions_revoked", self.assigned)
        self._join(partitions)

    def lose(self, then: set[int] | None = None) -> None:
        """The membership is gone (kafka-python reset it): partitions lost, then maybe assigned again."""
        self.generation, self.member_id = -1, ""
        self._listen("on_partitions_lost", self.assigned)
        self.assigned = set()
        if then is not None:
            self.member_id = "m-2"
            self._join(then)

    def _join(self, partitions: set[int]) -> None:
        self.broker.generation += 1
        self.generation, self.broker.owner = self.broker.generation, self.member_id
        kept = {p: o for p, o in self.positions.items() if p in partitions}  # eager keeps their positions
        self.assigned, self.positions = set(partitions), kept
        self._paused &= self.assigned
        self._listen("on_partitions_assigned", self.assigned)

    def _listen(self, method: str, partitions: set[int]) -> None:
        self.in_listener = True
        try:
            getattr(self.listener, method)({self._tp(p) for p in partitions})
        finally:
            self.in_listener = False

    def _tp(self, partition: int) -> TopicPartition:
        return TopicPartition(self.broker.topic, partition)

    def _blocking(self, call: str) -> None:
        if self.in_listener:
            raise RuntimeError(f"{call}() from a rebalance listener: kafka-python's IO thread")
        self.broker.calls.append(call)

    # --- GroupConsumer -----------------------------------------------------------------------------------

    def subscribe(self, topics: list[str], listener: Any = None) -> None:
        self.listener = listener

    def poll(self, timeout_ms: int = 0) -> dict[TopicPartition, list[FakeMessage]]:
        script, self.script = self.script, []
        for action in script:
            action()
        out: dict[TopicPartition, list[FakeMessage]] = {}
        for partition in sorted(self.assigned - self._paused):
            log = self.broker.records.get(partition, [])
            start = self.positions.get(partition, self.broker.committed.get(partition, 0))
            if log[start:]:
                out[self._tp(partition)] = log[start:]
                self.positions[partition] = len(log)
        return out

    def assignment(self) -> set[TopicPartition]:
        return {self._tp(p) for p in self.assigned}

    def paused(self) -> set[TopicPartition]:
        return {self._tp(p) for p in self._paused}

    def pause(self, *partitions: TopicPartition) -> None:
        self._paused.update(tp.partition for tp in partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self._paused.difference_update(tp.partition for tp in partitions)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self._blocking(f"seek {partition.partition}@{offset}")
        self.positions[partition.partition] = offset

    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        for tp in partitions:
            self.seek(tp, 0)

    def committed(self, partition: TopicPartition, timeout_ms: int | None = None) -> int | None:
        self._blocking(f"committed {partition.partition}")
        while self.broker.pending:  # read_committed: the broker answers once no transaction is pending
            self.broker.pending.pop(0)()
        return self.broker.committed.get(partition.partition)

    def group_metadata(self) -> ConsumerGroupMetadata:
        return ConsumerGroupMetadata(GROUP, self.generation, self.member_id, None)

    def last_heartbeat(self) -> float:
        return self.heartbeat_at

    def finish_pending_join(self) -> bool:
        return False  # the fake's rebalances complete inside poll()

    def end_offsets(self, partitions: list[TopicPartition], timeout_ms: int | None = None) -> Any:
        return {tp: len(self.broker.records.get(tp.partition, [])) for tp in partitions}

    def position(self, partition: TopicPartition, timeout_ms: int | None = None) -> int | None:
        return self.positions.get(partition.partition)

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.broker.partitions)) if self.broker.metadata_known else set()

    def topics(self) -> set[str]:
        self.metadata_refreshes += 1
        return {self.broker.topic}

    def close(self, autocommit: bool = True, timeout_ms: int | None = None) -> None:
        pass


class Producer:
    """A transactional producer over the broker; `during_offsets` runs inside send_offsets_to_transaction."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.during_offsets: Callable[[], None] = lambda: None
        self.late = False  # its commits end later, when a member next reads committed offsets
        self.hang = threading.Event()  # commit_transaction blocks while this is clear, when `hanging`
        self.hanging = False
        self._writes: list[tuple[int, bytes, bytes | None]] = []
        self._offsets: dict[int, int] = {}

    def begin_transaction(self) -> None:
        self.broker.calls.append("begin")
        self._writes, self._offsets = [], {}

    def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> Any:
        if topic.endswith(".state"):
            assert key is not None and partition is not None
            self._writes.append((partition, key, value))

    def send_offsets_to_transaction(self, offsets: dict[Any, Any], group_metadata: Any) -> None:
        self.during_offsets()
        checked = group_metadata.generation_id >= 0 or group_metadata.member_id
        if checked and (group_metadata.generation_id, group_metadata.member_id) != (
            self.broker.generation,
            self.broker.owner,
        ):
            raise CommitFailedError("ILLEGAL_GENERATION")  # as kafka-python raises it
        self._offsets = {tp.partition: meta.offset for tp, meta in offsets.items()}
        assert all(isinstance(meta, OffsetAndMetadata) for meta in offsets.values())

    def commit_transaction(self) -> None:
        if self.hanging:
            self.hang.wait()  # as kafka-python can wait forever after a broker restart
            return
        writes, offsets = self._writes, self._offsets

        def end() -> None:
            for partition, key, value in writes:
                self.broker.changelog.setdefault(partition, {})[key] = value
            self.broker.committed.update(offsets)
            self.broker.transactions.append(len(writes))
            self.broker.calls.append("commit")

        if self.late:
            self.broker.pending.append(end)
        else:
            end()

    def abort_transaction(self) -> None:
        self._writes, self._offsets = [], {}

    def close(self, timeout: float | None = None) -> None:
        pass


class Producers:
    """The producer factory: each call is a new producer (its init_transactions() is the call)."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.made: list[Producer] = []

    def __call__(self) -> Producer:
        self.broker.calls.append("init_transactions")
        self.made.append(producer := Producer(self.broker))
        return producer


class Changelog:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def restore(self, partitions: list[int]) -> tuple[dict[int, PartitionState], list[Refused]]:
        self.broker.calls.append(f"restore {partitions}")
        restored, refused = {}, []
        for partition in partitions:
            try:
                states = [decode(v, GROUP) for v in self.broker.changelog.get(partition, {}).values() if v]
            except StateError as exc:
                refused.append(Refused(partition, str(exc)))
                continue
            restored[partition] = PartitionState(partition, {(s.source, s.objet): s for s in states})
        return restored, refused

    def live_keys(self, partitions: list[int]) -> dict[int, list[bytes]]:
        return {p: [k for k, v in self.broker.changelog.get(p, {}).items() if v] for p in partitions}


@dataclass
class Sink:
    """The log store: accepts, or answers what `outcomes` says first."""

    outcomes: list[Outcome] = field(default_factory=list)
    pushes: int = 0

    def push(self, body: bytes) -> PushResult:
        self.pushes += 1
        outcome = self.outcomes.pop(0) if self.outcomes else Outcome.ACCEPTED
        return PushResult(outcome, "" if outcome is Outcome.ACCEPTED else "503 from the store", 0.001)
