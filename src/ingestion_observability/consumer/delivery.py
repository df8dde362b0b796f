"""The delivery step: a staged batch's Loki lines, then one Kafka transaction holding its dead letters, the
changelog records of the objets it touched and its input offsets (KIP-447: the consumer's group metadata
fences a zombie that lost its partitions).

Behind two small Protocols, so that it is unit-tested with fakes: `LogSink` (Loki's push API) and
`Transactions` (the part of a transactional KafkaProducer it uses).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from kafka import TopicPartition
from kafka.errors import CommitFailedError, IllegalGenerationError, KafkaError, UnknownMemberIdError
from kafka.structs import OffsetAndMetadata

from ingestion_observability.consumer.loki import LokiBatch, Outcome, PushResult
from ingestion_observability.consumer.staging import DeadLetter, StagedBatch
from ingestion_observability.consumer.state import encode

log = logging.getLogger(__name__)


class LogSink(Protocol):
    def push(self, body: bytes) -> PushResult: ...


class Transactions(Protocol):
    def begin_transaction(self) -> None: ...

    def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> Any: ...

    def send_offsets_to_transaction(self, offsets: dict[Any, Any], group_metadata: Any) -> None: ...

    def commit_transaction(self) -> None: ...

    def abort_transaction(self) -> None: ...

    def close(self, timeout: float | None = None) -> None: ...


class Verdict(Enum):
    COMMITTED = "committed"
    RETRY = "retry"  # Loki down, or the transaction aborted cleanly: try the same batch again later
    LOST = "lost"  # not a member of the group's generation: the partitions are another member's now
    RESET = "reset"  # producer fenced or the outcome unknown: a new producer, then redo from committed state


def is_member(group_metadata: Any) -> bool:
    """True while `group_metadata` names a generation of the group.

    Kafka's group coordinator checks a transactional offset commit against the group only when it carries a
    generation (>= 0) or a member id: one sent with kafka-python's reset membership (-1, '') is accepted
    even while another member owns the partitions. A commit therefore needs this to be true.
    """
    return (
        bool(getattr(group_metadata, "member_id", "")) and getattr(group_metadata, "generation_id", -1) >= 0
    )


@dataclass(frozen=True)
class Result:
    verdict: Verdict
    reason: str = ""
    changelog_bytes: int = 0


@dataclass(frozen=True)
class Topics:
    input: str
    dlq: str
    state: str
    group: str = ""  # recorded in every state record (see state.decode)


class Delivery:
    def __init__(
        self,
        topics: Topics,
        sink: LogSink,
        producer: Callable[[], Transactions],
        transaction_timeout: float = 30.0,
    ) -> None:
        self.topics = topics
        self.sink = sink
        self._new_producer = producer
        self._producer: Transactions | None = None
        # kafka-python waits for a transaction's steps without a deadline; a broker restart can leave one
        # waiting forever: past this, the producer is dropped and the outcome taken as unknown.
        self.transaction_timeout = transaction_timeout

    def push_lines(self, batch: StagedBatch, now: float) -> PushResult | None:
        """Push the batch's lines (None when it has none). Safe on a worker thread."""
        return self.sink.push(batch.loki.payload(now)) if batch.loki.count else None

    def settle_push(self, batch: StagedBatch, result: PushResult | None) -> str | None:
        """None when the lines are stored (or dead-lettered because Loki refused them), else why not."""
        if result is None or result.outcome is Outcome.ACCEPTED:
            return None
        if result.outcome is Outcome.RETRY:
            return result.reason
        # Loki refused the content: keep the lines in the dead-letter topic rather than lose them.
        log.error("Loki rejected %d line(s): %s", batch.loki.count, result.reason)
        batch.dead_letters.extend(
            DeadLetter(e.line.encode(), None, self.topics.input, -1, -1, f"loki rejected: {result.reason}")
            for entries in batch.loki.streams.values()
            for e in entries
        )
        batch.loki = LokiBatch(batch.loki.job)
        return None

    def ready(self) -> str | None:
        """Make sure a transactional producer exists: None when it does, else why not.

        A new producer's init_transactions() completes or aborts whatever transaction an older producer of
        the same id left open, so the loop calls this before it reads committed offsets and restores.
        """
        try:
            self._producer = self._producer or self._new_producer()
        except KafkaError as exc:
            return f"transactional producer not ready: {exc!r}"
        return None

    def commit(self, batch: StagedBatch, group_metadata: Any) -> Result:
        """The batch's transaction: dead letters, changelog records, offsets; aborted on any failure.

        Never opened without a membership (`is_member`): the broker would accept its offsets anyway.
        """
        if not is_member(group_metadata):
            return Result(Verdict.LOST, f"not a member of the group ({group_metadata}): nothing committed")
        if (error := self.ready()) is not None:
            return Result(Verdict.RETRY, error)
        producer = self._producer
        assert producer is not None
        outcome: list[Result] = []
        worker = threading.Thread(
            target=lambda: outcome.append(self._transaction(producer, batch, group_metadata)),
            name="kafka-transaction",
            daemon=True,  # left behind if kafka-python never answers: it must not hold the exit
        )
        worker.start()
        worker.join(self.transaction_timeout)
        if outcome:
            return outcome[0]
        self._producer = None  # a new one (same transactional id) fences this one and ends its transaction
        threading.Thread(target=producer.close, args=(0,), daemon=True).start()
        return Result(Verdict.RESET, f"transaction not completed in {self.transaction_timeout:.0f}s")

    def _transaction(self, producer: Transactions, batch: StagedBatch, group_metadata: Any) -> Result:
        size = 0
        try:
            producer.begin_transaction()
            for letter in batch.dead_letters:
                producer.send(self.topics.dlq, value=letter.value, key=letter.key, headers=letter.headers())
            for partition, keys in batch.tombstones.items():
                for key in keys:
                    producer.send(self.topics.state, value=None, key=key, partition=partition)
            for partition, states in batch.states.items():
                for state in states.values():
                    value = encode(state, self.topics.group)
                    size += len(value)
                    producer.send(self.topics.state, value=value, key=state.key, partition=partition)
            offsets = {
                TopicPartition(self.topics.input, partition): OffsetAndMetadata(offset, "", -1)
                for partition, offset in batch.offsets.items()
            }
            if offsets:
                producer.send_offsets_to_transaction(offsets, group_metadata)
            producer.commit_transaction()
        except (CommitFailedError, IllegalGenerationError, UnknownMemberIdError) as exc:
            # KIP-447: our generation is stale, the partitions are another member's
            self._abort(producer)
            return Result(Verdict.LOST, f"offsets refused by the group: {exc}")
        except KafkaError as exc:
            if self._abort(producer):
                return Result(Verdict.RETRY, f"transaction aborted: {exc!r}")
            # Fenced by a newer producer with our transactional id, or the outcome is unknown: start over
            # from what Kafka holds as committed.
            return Result(Verdict.RESET, f"transaction failed: {exc!r}")
        for letter in batch.dead_letters:
            log.warning(
                "dead letter %s[%d]@%d: %s", letter.topic, letter.partition, letter.offset, letter.error
            )
        return Result(Verdict.COMMITTED, changelog_bytes=size)

    def _abort(self, producer: Transactions) -> bool:
        """Abort the open transaction; False when the producer cannot even do that."""
        try:
            producer.abort_transaction()
        except KafkaError as exc:
            log.warning("abort failed: %r", exc)
            self._producer = None
            return False
        return True
