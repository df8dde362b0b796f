"""The consumer loop: poll → decode → stage metrics and Loki lines → DLQ, Loki, commit → apply.

At-least-once delivery from Kafka (auto-commit off, commit after the batch's Loki lines and
dead letters are confirmed), made exact in effect by staging metrics until the commit and by the
run-key cache. When Loki or the DLQ is unavailable, consumption pauses (group membership kept alive)
and nothing is committed or dropped.

Pipelined: a due batch's Loki push runs on a worker thread while the loop stages the next batches (up to
`loki_pushes_in_flight` pushes at once); batches are committed and applied in order, each once Loki has
accepted it. When one cannot be delivered, the batches after it are dropped uncommitted with it (Kafka
redelivers them all; lines Loki already took come back with the same timestamps and are stored once).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata

from ingestion_observability.consumer.batch import DeadLetter, StagedBatch
from ingestion_observability.consumer.cardinality import ObjetCap
from ingestion_observability.consumer.dedupe import SeenCache
from ingestion_observability.consumer.health import HealthState
from ingestion_observability.consumer.loki import Entry, LokiBatch, LokiClient, Outcome, PushResult
from ingestion_observability.consumer.metrics import IngestionMetrics, ObjetSeries
from ingestion_observability.consumer.recovery import RecoveryTracker
from ingestion_observability.event import InvalidRecord, normalise, parse_event

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


@dataclass(frozen=True)
class ConsumerConfig:
    bootstrap_servers: str
    topic: str = "ingestion-logs"
    group_id: str = "ingestion-consumer-group"
    dlq_topic: str = "ingestion-logs.dlq"
    loki_url: str = "http://localhost:3100"
    loki_tenant: str | None = None
    loki_username: str | None = None
    loki_password: str | None = None
    loki_job: str = "ingestion-logs"
    max_objets_per_source: int = 500
    dedupe_ttl_seconds: float = 6 * 3600.0
    dedupe_max_entries: int = 200_000
    batch_max_bytes: int = 1024 * 1024
    batch_max_seconds: float = 1.0
    max_message_bytes: int = 64 * 1024
    shutdown_seconds: float = 8.0
    lag_interval_seconds: float = 5.0
    session_timeout_ms: int = 45000  # how long a crashed member holds its partitions
    # Loki ingests a push mostly on one core: two at once nearly double what it accepts (`make bench`)
    loki_pushes_in_flight: int = 2


class _Pending:
    """A batch on its way out: dead letters, Loki lines (maybe being pushed already), offsets to commit."""

    __slots__ = ("loki", "push", "staged")

    def __init__(self, staged: StagedBatch, loki: LokiBatch) -> None:
        self.staged = staged
        self.loki = loki
        self.push: Future[PushResult] | None = None  # the push started on the worker thread, if any

    def pushed(self) -> bool:
        """The worker thread has Loki's answer (or there was nothing to push)."""
        return self.push is None or self.push.done()


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: IngestionConsumer) -> None:
        self.owner = owner

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.owner.partitions_revoked(revoked)

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.owner.partitions_assigned(assigned)


class IngestionConsumer:
    def __init__(self, config: ConsumerConfig, metrics: IngestionMetrics, health: HealthState) -> None:
        self.config = config
        self.metrics = metrics
        self.health = health
        servers = config.bootstrap_servers.split(",")
        self._consumer = KafkaConsumer(
            bootstrap_servers=servers,
            group_id=config.group_id,
            client_id="ingestion-consumer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **KAFKA_CONSUMER_CONFIG,
            request_timeout_ms=15000,
            session_timeout_ms=config.session_timeout_ms,
            heartbeat_interval_ms=min(3000, config.session_timeout_ms // 3),
        )
        self._dlq = KafkaProducer(
            bootstrap_servers=servers,
            client_id="ingestion-consumer-dlq",
            acks="all",
            enable_idempotence=True,
            compression_type="lz4",
            linger_ms=5,
            max_request_size=8 * 1024 * 1024,
        )
        self._loki = LokiClient(
            config.loki_url,
            tenant=config.loki_tenant,
            username=config.loki_username,
            password=config.loki_password,
        )
        self._pusher = ThreadPoolExecutor(
            max_workers=max(1, config.loki_pushes_in_flight), thread_name_prefix="loki-push"
        )
        self._inflight: deque[_Pending] = deque()  # being pushed or pushed, not committed yet, oldest first
        self._inflight_keys: set[int] = set()  # their run keys (a redelivery among them is a duplicate too)
        self._seen = SeenCache(config.dedupe_max_entries, config.dedupe_ttl_seconds)
        self._cap = ObjetCap(config.max_objets_per_source)
        # (source, objet) → (objet label, folded, its series): the cap's answer never changes once given
        self._labels: dict[tuple[str, str], tuple[str, bool, ObjetSeries]] = {}
        self._recovery = RecoveryTracker()
        self._stop = threading.Event()
        self._flushing = False
        self._revoked = False
        self._next_lag = 0.0
        self._deadline: float | None = None  # set by stop(): how long a last flush may retry
        self._new_batch()

    # --- lifecycle -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish its batch and exit (signal handlers call this)."""
        if not self._stop.is_set():
            self._deadline = time.monotonic() + self.config.shutdown_seconds
            self._stop.set()

    def run(self) -> None:
        self._consumer.subscribe([self.config.topic], listener=_Rebalance(self))
        log.info("consuming %s as group %s", self.config.topic, self.config.group_id)
        # Everything alive now lives as long as the process: keep it out of every collection, and collect
        # the young generation less often (each message allocates a dozen short-lived containers).
        gc.freeze()
        gc.set_threshold(20_000, 20, 20)
        try:
            while not self._stop.is_set():
                self.health.beat()
                records = self._consumer.poll(timeout_ms=200)
                for tp, messages in records.items():
                    self.handle_all(messages)
                    self._batch.offsets[(tp.topic, tp.partition)] = messages[-1].offset + 1
                while self._inflight and self._inflight[0].pushed() and self._complete_inflight():
                    pass
                if self._batch_due():
                    self._flush_async()
                self._refresh_lag()
            if (self._inflight or self._batch.messages) and self._flush():
                log.info("last batch committed")
        finally:
            self._pusher.shutdown(wait=True)
            self._consumer.close(autocommit=False, timeout_ms=2000)
            self._dlq.close(timeout=2)

    # --- per message (hot path) ----------------------------------------------------------------

    def handle_all(self, messages: Sequence[Any]) -> None:
        """Decode, validate and stage messages of one partition, in order (the hot path: locals only)."""
        batch, loki_batch = self._batch, self._loki_batch
        batch.messages += len(messages)
        key_set, seen, labels, inflight = batch.key_set, self._seen, self._labels, self._inflight_keys
        max_bytes = self.config.max_message_bytes
        loads, observe_recovery = orjson.loads, self._recovery.observe
        for message in messages:
            value: bytes | None = message.value
            try:
                if value is None:
                    raise InvalidRecord("empty message (no value)")
                if len(value) > max_bytes:
                    raise InvalidRecord(f"{len(value)} bytes exceeds the {max_bytes} limit")
                obj = loads(value)
                if type(obj) is dict and "@version" not in obj and "Source" in obj:
                    obj = normalise(obj)  # a raw record published straight by a connector
                    line = orjson.dumps(obj).decode()
                else:
                    line = value.decode()
                run = parse_event(obj)
            except (orjson.JSONDecodeError, InvalidRecord) as exc:
                error = f"not valid JSON: {exc}" if isinstance(exc, orjson.JSONDecodeError) else str(exc)
                batch.invalid += 1
                batch.dead_letters.append(
                    DeadLetter(value, message.key, message.topic, message.partition, message.offset, error)
                )
                continue
            source, objet = run.source, run.objet
            key = hash((source, objet, run.debut))
            if key in key_set or key in inflight or key in seen:
                batch.duplicates += 1
                continue
            label = labels.get((source, objet))
            if label is None:
                objet_label, folded = self._cap.label(source, objet)
                series = self.metrics.objet(source, objet_label)
                label = labels[(source, objet)] = (objet_label, folded, series)
            objet_label, folded, series = label
            if folded:
                batch.folded[source] += 1
            recovered = observe_recovery(source, objet, run.etat == "FAILED", run.fin)
            if recovered is not None:
                batch.recoveries.append((series, recovered))
            batch.add_run(run, objet_label, series, key)
            loki_batch.add(
                (source, run.etat, run.entreprise, run.zone),
                Entry(run.fin, message.timestamp / 1000.0, line, objet),
            )

    # --- batches -------------------------------------------------------------------------------

    def _new_batch(self) -> None:
        self._batch = StagedBatch()
        self._loki_batch = LokiBatch(self.config.loki_job)
        self._batch_started = time.monotonic()

    def _batch_due(self) -> bool:
        if not self._batch.messages:
            self._batch_started = time.monotonic()
            return False
        return (
            self._loki_batch.size >= self.config.batch_max_bytes
            or time.monotonic() - self._batch_started >= self.config.batch_max_seconds
        )

    def _flush_async(self) -> None:
        """Start pushing this batch and stage the next meanwhile (once a push slot is free)."""
        while len(self._inflight) >= max(1, self.config.loki_pushes_in_flight):
            if not self._complete_inflight():
                return
        if not self._batch.messages:
            return
        pending = _Pending(self._batch, self._loki_batch)
        self._new_batch()
        if not pending.loki.count and not self._inflight:  # nothing for Loki (dead letters, duplicates)
            if not self._complete(pending):
                self._new_batch()
            return
        if pending.loki.count:
            loki, now = pending.loki, time.time()
            pending.push = self._pusher.submit(lambda: self._loki.push(loki.payload(now)))
        self._inflight.append(pending)
        self._inflight_keys.update(pending.staged.key_set)

    def _flush(self) -> bool:
        """Deliver the batches in flight and the current one; True when all are committed and applied."""
        while self._inflight:
            if not self._complete_inflight():
                return False
        if not self._batch.messages:
            return True
        pending = _Pending(self._batch, self._loki_batch)
        self._new_batch()
        return self._complete(pending)

    def _complete_inflight(self) -> bool:
        """Commit the oldest batch in flight; when it cannot be, every batch after it is dropped too (Kafka
        redelivers them all from the last committed offset: committing a later one would skip it)."""
        pending = self._inflight.popleft()
        done = self._complete(pending)
        self._inflight_keys.difference_update(pending.staged.key_set)
        if done:
            return True
        for later in self._inflight:
            if later.push is not None:
                later.push.cancel()
        self._inflight.clear()
        self._inflight_keys.clear()
        self._new_batch()
        return False

    def _complete(self, pending: _Pending) -> bool:
        """Deliver a batch: dead letters, Loki, commit, then its metrics; False when it was abandoned."""
        batch = pending.staged
        if not batch.messages:
            return True
        self._flushing, self._revoked = True, False
        try:
            done = (
                self._until_done(lambda: self._send_dead_letters(batch), "the dead-letter topic")
                and self._until_done(lambda: self._push_loki(pending), "Loki")
                and self._until_done(lambda: self._commit(batch), "the offset commit")
            )
        finally:
            self._flushing = False
        if done:
            batch.apply(self.metrics)
            self._seen.add_all(batch.keys)  # type: ignore[arg-type]
            self.metrics.dedupe_size.set(len(self._seen))
        else:
            log.warning("batch of %d message(s) not committed: Kafka will redeliver it", batch.messages)
        return done

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
            if paused:
                self._consumer.resume(*self._consumer.paused())
                self.health.waiting_for = ""

    def _idle(self, seconds: float) -> None:
        """Wait while keeping the group membership alive (polling paused partitions returns nothing)."""
        end = time.monotonic() + seconds
        while not self._revoked and (left := end - time.monotonic()) > 0:
            self.health.beat()
            self._consumer.poll(timeout_ms=int(min(left, 0.5) * 1000))
            self._refresh_lag()  # the lag keeps growing while paused: show it

    def _send_dead_letters(self, batch: StagedBatch) -> str | None:
        """Write the batch's unsent dead letters and wait for the broker to confirm them."""
        unsent = [letter for letter in batch.dead_letters if not letter.sent]
        if not unsent:
            return None
        futures = [(letter, self._dlq.send(self.config.dlq_topic, **letter.record())) for letter in unsent]
        self._dlq.flush(timeout=10)
        failures = []
        for letter, future in futures:
            if future.succeeded():
                letter.sent = True
                log.warning(
                    "dead letter %s[%d]@%d: %s", letter.topic, letter.partition, letter.offset, letter.error
                )
            else:
                failures.append(future.exception)
        if failures:
            return f"{len(failures)} of {len(futures)} dead letters not confirmed: {failures[0]!r}"
        return None

    def _push_loki(self, pending: _Pending) -> str | None:
        batch = pending.loki
        if not batch.count:
            return self._send_dead_letters(pending.staged)  # lines Loki refused earlier, if any
        if pending.push is not None:  # started on the worker thread: its outcome
            result, pending.push = pending.push.result(), None
        else:
            result = self._loki.push(batch.payload(time.time()))
        if result.outcome is Outcome.ACCEPTED:
            self.metrics.loki_push.observe(result.seconds)
            self.metrics.loki_entries.inc(batch.count)
            return None
        self.metrics.loki_failures.labels(result.outcome.value).inc()
        if result.outcome is Outcome.RETRY:
            return result.reason
        # Loki refused the content: keep the lines in the dead-letter topic rather than lose them.
        log.error("Loki rejected %d line(s): %s", batch.count, result.reason)
        pending.staged.dead_letters.extend(
            DeadLetter(e.line.encode(), None, self.config.topic, -1, -1, f"loki rejected: {result.reason}")
            for entries in batch.streams.values()
            for e in entries
        )
        pending.loki = LokiBatch(self.config.loki_job)
        return self._send_dead_letters(pending.staged)

    def _commit(self, batch: StagedBatch) -> str | None:
        offsets = {
            TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
            for (topic, partition), offset in batch.offsets.items()
        }
        try:
            self._consumer.commit(offsets, timeout_ms=10000)
        except CommitFailedError as exc:
            self._revoked = True  # the group moved on: these partitions belong to someone else now
            return f"commit refused by the group: {exc}"
        except KafkaError as exc:
            return f"commit failed: {exc!r}"
        self.health.kafka_ok_at = time.monotonic()
        return None

    # --- group membership and lag --------------------------------------------------------------

    def partitions_revoked(self, revoked: Any) -> None:
        if self._flushing:
            self._revoked = True
        else:
            self._flush()
        for tp in revoked:
            self.metrics.lag.remove(tp.topic, str(tp.partition))
        self.health.assigned = 0

    def partitions_assigned(self, assigned: Any) -> None:
        self.health.assigned = len(assigned)
        self.health.kafka_ok_at = time.monotonic()
        log.info("assigned %s", sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned))

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
