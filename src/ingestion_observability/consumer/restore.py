"""Restore on assignment: read a partition's changelog to its end (read_committed), newest record per key.

`Changelog` is what the loop needs of it (a Protocol, so the ownership tests restore from a fake);
`KafkaChangelog` reads the real topic.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from kafka import KafkaConsumer, TopicPartition

from ingestion_observability.consumer.state import ObjetState, PartitionState, StateError, decode


@dataclass(frozen=True)
class Refused:
    """A partition whose changelog holds a record this consumer cannot read: it is not served."""

    partition: int
    reason: str


def read_changelog(
    reader: KafkaConsumer, topic: str, partitions: list[int], timeout: float = 120.0
) -> dict[int, dict[bytes, tuple[int, bytes | None]]]:
    """Per partition, each key's newest (offset, value) up to the last committed record."""
    if not partitions:
        return {}
    tps = [TopicPartition(topic, p) for p in partitions]
    reader.assign(tps)
    reader.seek_to_beginning(*tps)
    end = reader.end_offsets(tps)  # read_committed: the last stable offset
    latest: dict[int, dict[bytes, tuple[int, bytes | None]]] = {p: {} for p in partitions}
    deadline = time.monotonic() + timeout
    pending = {tp for tp in tps if end[tp] > 0}
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError(f"changelog {topic} not read to its end in {timeout:.0f}s: {sorted(pending)}")
        for tp, records in reader.poll(timeout_ms=500, max_records=50_000).items():
            for record in records:
                if record.offset < end[tp] and record.key is not None:
                    latest[tp.partition][record.key] = (record.offset, record.value)
        pending = {tp for tp in pending if reader.position(tp) < end[tp]}
    reader.assign([])
    return latest


def restore(
    reader: KafkaConsumer, topic: str, partitions: list[int], group: str | None = None
) -> tuple[dict[int, PartitionState], list[Refused]]:
    """The states of `partitions`; a partition with an unreadable record is refused, never read as 0."""
    restored: dict[int, PartitionState] = {}
    refused: list[Refused] = []
    for partition, records in read_changelog(reader, topic, partitions).items():
        states: dict[tuple[str, str], ObjetState] = {}
        try:
            for key, (offset, value) in records.items():
                if value is None:  # a tombstone (--rebuild-state)
                    continue
                try:
                    state = decode(value, group)
                except StateError as exc:
                    raise StateError(f"{topic}[{partition}]@{offset} key {key!r}: {exc}") from None
                states[(state.source, state.objet)] = state
        except StateError as exc:
            refused.append(Refused(partition, str(exc)))
            continue
        restored[partition] = PartitionState(partition, states)
    return restored, refused


class Changelog(Protocol):
    def restore(self, partitions: list[int]) -> tuple[dict[int, PartitionState], list[Refused]]: ...

    def live_keys(self, partitions: list[int]) -> dict[int, list[bytes]]: ...


class KafkaChangelog:
    """The compacted changelog topic of one consumer group, read with a consumer of no group."""

    def __init__(self, reader: KafkaConsumer, topic: str, group: str) -> None:
        self.reader, self.topic, self.group = reader, topic, group

    def restore(self, partitions: list[int]) -> tuple[dict[int, PartitionState], list[Refused]]:
        return restore(self.reader, self.topic, partitions, self.group)

    def live_keys(self, partitions: list[int]) -> dict[int, list[bytes]]:
        """Per partition, the keys whose newest record is not a tombstone (what a rebuild forgets)."""
        latest = read_changelog(self.reader, self.topic, partitions)
        return {p: [key for key, (_, value) in records.items() if value] for p, records in latest.items()}
