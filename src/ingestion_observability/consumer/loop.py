"""The consumer loop: poll → stage → push lines to Loki → one transaction (dead letters, state, offsets).

The Kafka Streams pattern: each input partition's state lives in the compacted changelog `<topic>.state`,
written in the transaction that commits the partition's offsets. A crash anywhere leaves Kafka holding a
committed state that matches the committed offsets; the next owner restores it and goes on from there.
What /metrics shows is that committed state, so Prometheus' totals are exact through restarts, crashes,
rebalances and zombies (KIP-447 fencing). Loki lines are pushed before the commit with timestamps fixed by
the record, so a redelivered batch's lines are the same entries (Loki stores them once).

Pipelined: a due batch's Loki push runs on a worker thread while the loop stages the next batches; batches
are committed in order, each once Loki has accepted its lines.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError

from ingestion_observability.consumer.delivery import Delivery, Result, Topics, Verdict
from ingestion_observability.consumer.health import HealthState
from ingestion_observability.consumer.loki import LokiBatch, LokiClient, Outcome, PushResult
from ingestion_observability.consumer.metrics import ConsumerMetrics
from ingestion_observability.consumer.restore import read_changelog, restore
from ingestion_observability.consumer.staging import StagedBatch, StagingLimits, stage
from ingestion_observability.consumer.state import PartitionState
from ingestion_observability.consumer.topics import ensure_state_topic

log = logging.getLogger(__name__)

# How much the consumer fetches and returns per poll (`make bench` runs its raw poll loop with the same).
# kafka-python asks for a partition's next data only once its buffered records are all consumed, and the
# loop waits for that answer: 4 MiB per partition (16 MiB per request) instead of 1 MiB makes those waits
# rarer (+~20 % events/s in `make bench`) for ~20-30 MB more RSS. 5000 records per poll: fewer polls.
KAFKA_CONSUMER_CONFIG: dict[str, Any] = {
    "max_poll_records": 5000,
    "max_partition_fetch_bytes": 4 * 1024 * 1024,
    "fetch_max_bytes": 16 * 1024 * 1024,
}


def default_transactional_id(group_id: str) -> str:
    """Unique per process; on Kubernetes the chart sets the pod name, stable across container restarts."""
    return f"{group_id}-{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class ConsumerConfig:
    bootstrap_servers: str
    topic: str = "ingestion-logs"
    group_id: str = "ingestion-consumer-group"
    dlq_topic: str = "ingestion-logs.dlq"
    state_topic: str = "ingestion-logs.state"
    transactional_id: str = ""  # default_transactional_id(group_id) when empty
    # A crashed process's open transaction blocks its offsets this long at most.
    transaction_timeout_ms: int = 10_000
    rebuild_state: bool = False
    loki_url: str = "http://localhost:3100"
    loki_tenant: str | None = None
    loki_username: str | None = None
    loki_password: str | None = None
    loki_job: str = "ingestion-logs"
    limits: StagingLimits = field(default_factory=StagingLimits)
    batch_max_bytes: int = 1024 * 1024
    batch_max_seconds: float = 1.0
    shutdown_seconds: float = 8.0
    lag_interval_seconds: float = 5.0
    session_timeout_ms: int = 45000  # how long a crashed member holds its partitions
    # Loki ingests a push mostly on one core: two at once nearly double what it accepts (`make bench`)
    loki_pushes_in_flight: int = 2


class _Pending:
    __slots__ = ("batch", "push")

    def __init__(self, batch: StagedBatch, push: Future[PushResult | None]) -> None:
        self.batch = batch
        self.push = push


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: IngestionConsumer) -> None:
        self.owner = owner

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.owner.partitions_revoked(revoked)

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.owner.partitions_assigned(assigned)


class IngestionConsumer:
    def __init__(self, config: ConsumerConfig, metrics: ConsumerMetrics, health: HealthState) -> None:
        self.config = config
        self.metrics = metrics
        self.health = health
        self.partitions: dict[int, PartitionState] = {}  # owned and served (what /metrics exports)
        # read at each scrape: follows restores, commits and revocations alike
        metrics.owned_objets.set_function(lambda: self._owned_objets())
        servers = config.bootstrap_servers.split(",")
        common: dict[str, Any] = {"bootstrap_servers": servers, "isolation_level": "read_committed"}
        self._consumer = KafkaConsumer(
            **common,
            group_id=config.group_id,
            client_id="ingestion-consumer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **KAFKA_CONSUMER_CONFIG,
            request_timeout_ms=15000,
            session_timeout_ms=config.session_timeout_ms,
            heartbeat_interval_ms=min(3000, config.session_timeout_ms // 3),
        )
        self._reader = KafkaConsumer(
            **common,
            group_id=None,
            client_id="ingestion-consumer-restore",
            enable_auto_commit=False,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        transactional_id = config.transactional_id or default_transactional_id(config.group_id)

        def producer() -> KafkaProducer:
            new = KafkaProducer(
                bootstrap_servers=servers,
                client_id="ingestion-consumer-tx",
                transactional_id=transactional_id,
                transaction_timeout_ms=config.transaction_timeout_ms,
                enable_idempotence=True,
                acks="all",
                compression_type="lz4",
                linger_ms=0,
                max_request_size=8 * 1024 * 1024,
            )
            new.init_transactions()  # fences an older producer of this id and ends its transaction
            return new

        sink = LokiClient(
            config.loki_url,
            tenant=config.loki_tenant,
            username=config.loki_username,
            password=config.loki_password,
        )
        self._delivery = Delivery(
            Topics(config.topic, config.dlq_topic, config.state_topic, config.group_id), sink, producer
        )
        self._pusher = ThreadPoolExecutor(
            max(1, config.loki_pushes_in_flight), thread_name_prefix="loki-push"
        )
        self._inflight: deque[_Pending] = deque()
        self._stop = threading.Event()
        self._flushing = False
        self._revoked = False
        self._rebuilt: set[int] = set()
        self._unrestored: set[int] = set()  # assigned, but their restore failed: tried again
        self._reseek: set[int] = set()  # reset: consumption resumes at the committed offset
        self._next_lag = 0.0
        self._deadline: float | None = None  # set by stop(): how long a last flush may retry
        self._new_batch()

    # --- lifecycle -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish its batches and exit (signal handlers call this)."""
        if not self._stop.is_set():
            self._deadline = time.monotonic() + self.config.shutdown_seconds
            self._stop.set()

    def run(self) -> None:
        ensure_state_topic(self.config.bootstrap_servers, self.config.topic, self.config.state_topic)
        self._consumer.subscribe([self.config.topic], listener=_Rebalance(self))
        log.info("consuming %s as group %s", self.config.topic, self.config.group_id)
        # Everything alive now lives as long as the process: keep it out of every collection, and collect
        # the young generation less often (each message allocates a dozen short-lived containers).
        gc.freeze()
        gc.set_threshold(20_000, 20, 20)
        try:
            while not self._stop.is_set():
                self.health.beat()
                if self._unrestored:
                    self._take([TopicPartition(self.config.topic, p) for p in sorted(self._unrestored)])
                self._sync_pauses()
                for tp, messages in self._consumer.poll(timeout_ms=200).items():
                    partition = self.partitions.get(tp.partition)
                    if partition is not None:  # a refused partition is paused: nothing more comes
                        stage(self._batch, partition, messages, self.config.limits)
                while self._inflight and self._inflight[0].push.done() and self._complete_oldest():
                    pass
                if self._batch_due():
                    self._dispatch()
                self._refresh_lag()
            if self._flush():
                log.info("last batch committed")
        finally:
            self._pusher.shutdown(wait=True)
            self._consumer.close(autocommit=False, timeout_ms=2000)
            self._reader.close()

    # --- batches -------------------------------------------------------------------------------

    def _new_batch(self) -> None:
        self._batch = StagedBatch(LokiBatch(self.config.loki_job))
        self._batch_started = time.monotonic()

    def _batch_due(self) -> bool:
        if self._batch.empty:
            self._batch_started = time.monotonic()
            return False
        return (
            self._batch.loki.size >= self.config.batch_max_bytes
            or time.monotonic() - self._batch_started >= self.config.batch_max_seconds
        )

    def _dispatch(self) -> None:
        """Start pushing this batch's lines and stage the next meanwhile (once a push slot is free)."""
        while len(self._inflight) >= max(1, self.config.loki_pushes_in_flight):
            if not self._complete_oldest():
                return
        if self._batch.empty:
            return
        batch, now = self._batch, time.time()
        self._inflight.append(_Pending(batch, self._pusher.submit(self._delivery.push_lines, batch, now)))
        self._new_batch()

    def _flush(self) -> bool:
        """Deliver the batches in flight and the current one; True when all are committed."""
        self._dispatch()
        while self._inflight:
            if not self._complete_oldest():
                return False
        return True

    def _complete_oldest(self) -> bool:
        """Commit the oldest batch in flight; when it cannot be, the later ones are abandoned with it."""
        pending = self._inflight.popleft()
        self._flushing, self._revoked = True, False
        try:
            done = self._complete(pending)
        finally:
            self._flushing = False
        if not done:
            self._abandon()
        return done

    def _complete(self, pending: _Pending) -> bool:
        batch, delivery = pending.batch, self._delivery
        pushed: list[PushResult | None] = [pending.push.result()]  # the worker's push is the first attempt

        def push() -> str | None:
            result = pushed.pop() if pushed else delivery.push_lines(batch, time.time())
            if result is not None and result.outcome is Outcome.ACCEPTED:
                self.metrics.loki_push.observe(result.seconds)
                self.metrics.loki_entries.inc(batch.loki.count)
            elif result is not None:
                self.metrics.loki_failures.labels(result.outcome.value).inc()
            return delivery.settle_push(batch, result)

        outcomes: list[Result] = []

        def commit() -> str | None:
            started = time.perf_counter()
            outcomes.append(outcome := delivery.commit(batch, self._consumer.group_metadata()))
            if outcome.verdict is Verdict.COMMITTED:
                self.metrics.transaction_seconds.observe(time.perf_counter() - started)
            if outcome.verdict is Verdict.RETRY:
                self.metrics.transactions.labels("aborted").inc()
                return outcome.reason
            return None  # committed, or nothing more to try here

        if not (self._until_done(push, "Loki") and self._until_done(commit, "the transaction")):
            return False
        if outcomes[-1].verdict is Verdict.RESET:
            log.warning("transaction not committed: %s", outcomes[-1].reason)
            self.metrics.transactions.labels("reset").inc()
            self._reset()
            return False
        self._apply(batch, outcomes[-1].changelog_bytes)
        return True

    def _apply(self, batch: StagedBatch, changelog_bytes: int) -> None:
        """The batch is committed: its states become what /metrics exports."""
        for partition, states in batch.states.items():
            owner = self.partitions.get(partition)
            if owner is not None:
                owner.commit(states)
        m = self.metrics
        m.transactions.labels("committed").inc()
        m.changelog_bytes.inc(changelog_bytes)
        for source, count in batch.folded.items():
            m.folded.labels(source).inc(count)
        m.result("processed").inc(batch.processed)
        m.result("invalid").inc(batch.invalid)
        m.result("duplicate").inc(batch.duplicates)
        m.dlq_writes.inc(len(batch.dead_letters))
        m.batch_size.observe(batch.messages)
        self.health.kafka_ok_at = time.monotonic()

    def _abandon(self) -> None:
        """Drop the batches not committed: Kafka redelivers them (after a rebalance or a reset)."""
        for later in self._inflight:
            later.push.cancel()
        self._inflight.clear()
        self._new_batch()
        for partition in self.partitions.values():
            partition.discard_staged()
        log.warning("batches not committed were dropped: Kafka will redeliver them")

    def _reset(self) -> None:
        """A transaction's outcome is unknown, or our partitions are gone: redo from what Kafka holds."""
        self._abandon()
        owned = [tp for tp in self._consumer.assignment() if tp.topic == self.config.topic]
        self._reseek.update(tp.partition for tp in owned)
        self._take(owned)

    def _until_done(self, attempt: Callable[[], str | None], what: str) -> bool:
        """Retry `attempt` (None = done, else an error) with backoff, consumption paused meanwhile.

        Gives up when the partitions are revoked, or at shutdown once the deadline is near.
        """
        delay, paused = 0.5, False
        try:
            while (error := attempt()) is not None:
                if self._revoked:
                    return False
                if self._deadline is not None and time.monotonic() + delay > self._deadline:
                    log.error("giving up on %s at shutdown: %s", what, error)
                    return False
                log.warning("%s failed (%s): retrying in %.1fs, consumption paused", what, error, delay)
                if not paused:
                    self._consumer.pause(*self._consumer.assignment())
                    paused, self.health.waiting_for = True, what
                self._idle(delay)
                delay = min(delay * 2, 30.0)
            return True
        finally:
            if paused:  # the loop resumes what it serves (_sync_pauses)
                self.health.waiting_for = ""

    def _idle(self, seconds: float) -> None:
        """Wait while keeping the group membership alive (polling paused partitions returns nothing)."""
        end = time.monotonic() + seconds
        while not self._revoked and (left := end - time.monotonic()) > 0:
            self.health.beat()
            # Nothing may be fetched here: a record this poll returned would be skipped, never counted.
            # Partitions assigned by a rebalance inside the poll are paused by partitions_assigned.
            self._consumer.pause(*self._consumer.assignment())
            self._consumer.poll(timeout_ms=int(min(left, 0.5) * 1000))
            self._refresh_lag()  # the lag keeps growing while paused: show it

    # --- group membership, restore, lag ----------------------------------------------------------

    def partitions_revoked(self, revoked: Any) -> None:
        if self._flushing:
            self._revoked = True
        else:
            self._flush()  # the generation is still ours: commit what is staged before letting go
        for tp in revoked:
            self.partitions.pop(tp.partition, None)
            self._unrestored.discard(tp.partition)
            self._reseek.discard(tp.partition)
            self.health.refused.pop(tp.partition, None)
            self.metrics.lag.remove(tp.topic, str(tp.partition))
        self.health.assigned = 0

    def partitions_assigned(self, assigned: Any) -> None:
        if self._flushing:  # a rebalance inside _idle's poll: nothing is fetched until the loop says so
            self._consumer.pause(*assigned)
        self._take([tp for tp in assigned if tp.topic == self.config.topic])
        self.health.assigned = len(assigned)
        self.health.kafka_ok_at = time.monotonic()
        log.info("assigned %s", sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned))

    def _take(self, tps: list[TopicPartition]) -> None:
        """Restore the states of `tps` from the changelog; a partition that cannot be read is not served."""
        partitions = [tp.partition for tp in tps]
        self.health.restoring = True
        started = time.monotonic()
        try:
            restored, refused = restore(
                self._reader, self.config.state_topic, partitions, self.config.group_id
            )
            for partition in self._reseek.intersection(restored):
                tp = TopicPartition(self.config.topic, partition)
                committed = self._consumer.committed(tp, timeout_ms=10_000)
                self._consumer.seek(tp, committed or 0)  # kafka-python: None when nothing is committed yet
                self._reseek.discard(partition)
            if self.config.rebuild_state:  # the documented recovery of a refused partition
                rebuild = [bad.partition for bad in refused if bad.partition not in self._rebuilt]
                restored.update(self._rebuild(rebuild))
                refused = [bad for bad in refused if bad.partition not in rebuild]
        except (KafkaError, TimeoutError) as exc:  # Kafka unreachable: paused, tried again by the loop
            log.warning("restore of %s failed (%r): trying again", partitions, exc)
            self._unrestored.update(partitions)
            self._consumer.pause(*(TopicPartition(self.config.topic, p) for p in partitions))
            return
        finally:
            self.health.restoring = bool(self._unrestored)
        self._unrestored.difference_update(partitions)
        self.metrics.restore_seconds.observe(time.monotonic() - started)
        self.partitions.update(restored)
        for bad in refused:
            log.error("partition %d not served: %s (see README: --rebuild-state)", bad.partition, bad.reason)
            self.metrics.state_errors.labels(str(bad.partition)).inc()
            self.health.refused[bad.partition] = bad.reason
            self.partitions.pop(bad.partition, None)
        self._consumer.pause(*(TopicPartition(self.config.topic, bad.partition) for bad in refused))
        log.info(
            "restored %d objet state(s) of %d partition(s) in %.2fs",
            sum(len(p.committed) for p in restored.values()),
            len(restored),
            time.monotonic() - started,
        )

    def _rebuild(self, partitions: list[int]) -> dict[int, PartitionState]:
        """--rebuild-state: forget the changelog of `partitions` and recount them from the input's start."""
        if not partitions:
            return {}
        stale = read_changelog(self._reader, self.config.state_topic, partitions)
        for partition in partitions:
            self._batch.tombstones[partition] = [key for key, (_, value) in stale[partition].items() if value]
            self._consumer.seek_to_beginning(TopicPartition(self.config.topic, partition))
            self._rebuilt.add(partition)
        log.warning("recounting partition(s) %s from the start of %s", partitions, self.config.topic)
        return {partition: PartitionState(partition) for partition in partitions}

    def _owned_objets(self) -> int:
        return sum(len(partition.committed) for partition in list(self.partitions.values()))

    def _sync_pauses(self) -> None:
        """Fetch exactly the partitions this process serves: restored, not refused, not waiting."""
        assigned = set(self._consumer.assignment())
        served = {
            tp for tp in assigned if tp.partition in self.partitions and tp.partition not in self._unrestored
        }
        paused = set(self._consumer.paused())
        if paused & served:
            self._consumer.resume(*(paused & served))
        if (assigned - served) - paused:
            self._consumer.pause(*((assigned - served) - paused))

    def _refresh_lag(self) -> None:
        now = time.monotonic()
        if now < self._next_lag:
            return
        self._next_lag = now + self.config.lag_interval_seconds
        assignment = list(self._consumer.assignment())
        if not assignment:
            return
        try:
            ends = self._consumer.end_offsets(assignment, timeout_ms=5000)
            for tp, end in ends.items():
                position = self._consumer.position(tp, timeout_ms=5000)
                if position is not None:
                    self.metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, end - position))
        except KafkaError as exc:
            log.warning("could not read end offsets: %r", exc)
            return
        self.health.kafka_ok_at = time.monotonic()
