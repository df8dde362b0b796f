"""Partition ownership: which input partitions this member serves, a state machine the main loop drives.

kafka-python calls rebalance listeners on its IO thread, the one that sends heartbeats, from inside the
loop's poll(): a listener that restores, pushes or commits stops the heartbeats, and a blocking consumer
call made from it raises. So the listeners only record what happened:
- assigned: the partitions are paused and become *pending*;
- revoked (the generation is still ours) or lost (it is not): they stop being served and exported at once;
and each event starts a new *epoch*: a batch staged in an older epoch is never committed (Kafka redelivers
it to whoever owns its partitions).

The loop then acts (`take`), for every pending partition, retained or new, in this order:
1. a transactional producer exists: its init_transactions() ended whatever transaction an older producer of
   our id left open (after an unknown outcome, that is the one that may still commit);
2. the committed offset, read_committed: the broker answers once no transactional offset is pending;
3. the changelog restored to its end;
4. seek to the committed offset;
5. served: exported, and resumed by `sync_pauses`.
A commit refused for want of a membership (`lose_all`) drops everything: no Kafka write, no restore and no
seek until the group assigns partitions again. An unknown outcome (`reset`) makes every partition pending.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from kafka import TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError

from ingestion_observability.consumer.clients import GroupConsumer
from ingestion_observability.consumer.delivery import is_member
from ingestion_observability.consumer.restore import Changelog
from ingestion_observability.consumer.state import PartitionState

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0  # between two attempts to take partitions while Kafka cannot be read


class Ownership(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(
        self,
        consumer: GroupConsumer,
        topic: str,
        session_timeout: float,
        on_event: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.consumer = consumer
        self.topic = topic
        self.session_timeout = session_timeout  # seconds
        self.on_event = on_event  # counts assigned / revoked / lost
        self.epoch = 0
        self.pending: set[int] = set()  # assigned; committed offset, restore and seek still to do
        self.served: dict[int, PartitionState] = {}  # restored and sought: staged, committed, exported
        self.refused: dict[int, str] = {}  # their changelog cannot be read: not served (why)
        self._retry_at = 0.0
        self._joined_at = float("-inf")  # when the group last gave us partitions (time.monotonic())

    # --- the listeners (kafka-python's IO thread): record, pause, nothing else ------------------------

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        assigned = list(assigned)
        self._joined_at = time.monotonic()
        self.consumer.pause(*assigned)  # nothing is fetched before the loop has sought them
        self._event("assigned")
        self.pending.update(self._mine(assigned))
        log.info("assigned %s", sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned))

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self._release(revoked, "revoked")

    def on_partitions_lost(self, lost: Iterable[TopicPartition]) -> None:
        self._release(lost, "lost")

    def _release(self, tps: Iterable[TopicPartition], event: str) -> None:
        self._event(event)
        for partition in self._mine(tps):
            self.served.pop(partition, None)
            self.pending.discard(partition)
            self.refused.pop(partition, None)

    def _event(self, event: str) -> None:
        self.epoch += 1
        self.on_event(event)

    def _mine(self, tps: Iterable[TopicPartition]) -> set[int]:
        return {tp.partition for tp in tps if tp.topic == self.topic}

    # --- the loop's side -------------------------------------------------------------------------------

    def lose_all(self, reason: str) -> None:
        """The group refused our commit, or we are no member: another member may own the partitions."""
        log.warning("partitions lost (%s): nothing served until the group assigns partitions again", reason)
        assignment = self.consumer.assignment()
        self._release(assignment, "lost")
        self.consumer.pause(*assignment)

    def reset(self) -> None:
        """A transaction's outcome is unknown: every assigned partition is taken again from Kafka (their
        committed states stay exported meanwhile: what Kafka holds is never less)."""
        self.epoch += 1
        self.pending.update(self._mine(self.consumer.assignment()))

    def member(self) -> bool:
        """A live member of the group: a generation, confirmed (joined, or a heartbeat accepted) within the
        session timeout by our own clock."""
        confirmed = max(self._joined_at, self.consumer.last_heartbeat())
        alive = time.monotonic() - confirmed < self.session_timeout
        return alive and is_member(self.consumer.group_metadata())

    def exported(self) -> list[PartitionState]:
        """What /metrics shows: nothing while the membership is unknown (a thawed process whose partitions
        another member may already export: two exporters of one series make a counter go backwards)."""
        return list(self.served.values()) if self.member() else []

    def take(
        self, changelog: Changelog, ready: Callable[[], str | None], rebuild: bool
    ) -> dict[int, list[bytes]]:
        """Serve the pending partitions (see the module's steps); `ready` makes the transactional producer.

        Returns, with `rebuild`, the changelog keys to forget of the refused partitions, which are then
        recounted from the topic's start. A partition Kafka cannot give stays pending, tried again later.
        """
        if not self.pending or time.monotonic() < self._retry_at:
            return {}
        partitions = sorted(self.pending)
        tps = {p: TopicPartition(self.topic, p) for p in partitions}
        started = time.monotonic()
        try:
            if (error := ready()) is not None:
                raise KafkaError(error)
            committed = {p: self.consumer.committed(tp, timeout_ms=10_000) for p, tp in tps.items()}
            restored, refused = changelog.restore(partitions)
            stale = changelog.live_keys([bad.partition for bad in refused]) if rebuild and refused else {}
        except (KafkaError, TimeoutError) as exc:
            log.warning("partitions %s not taken (%r): trying again", partitions, exc)
            self._retry_at = time.monotonic() + RETRY_SECONDS
            return {}
        for partition, state in restored.items():
            offset = committed[partition]
            if offset is None:  # nothing committed yet: from the start
                self.consumer.seek_to_beginning(tps[partition])
            else:
                self.consumer.seek(tps[partition], offset)
            self.served[partition] = state
        for partition in stale:
            log.warning("recounting partition %d from the start of %s", partition, self.topic)
            self.consumer.seek_to_beginning(tps[partition])
            self.served[partition] = PartitionState(partition)
        for bad in refused:
            if bad.partition not in stale:
                log.error(
                    "partition %d not served: %s (see docs/consumer.md: --rebuild-state)",
                    bad.partition,
                    bad.reason,
                )
                self.refused[bad.partition] = bad.reason
        self.pending.difference_update(partitions)
        log.info(
            "took %d partition(s), %d objet state(s), in %.2fs",
            len(restored),
            sum(len(p.committed) for p in restored.values()),
            time.monotonic() - started,
        )
        return stale

    def sync_pauses(self) -> None:
        """Fetch exactly the served partitions: pending, refused and foreign ones stay paused."""
        assigned = set(self.consumer.assignment())
        served = {tp for tp in assigned if tp.topic == self.topic and tp.partition in self.served}
        paused = set(self.consumer.paused())
        if paused & served:
            self.consumer.resume(*(paused & served))
        if (assigned - served) - paused:
            self.consumer.pause(*((assigned - served) - paused))
