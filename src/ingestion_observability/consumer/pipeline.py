"""The batch pipeline: stage → push the log lines (on a worker) → one transaction, in order, per epoch.

A due batch's lines are pushed on a worker thread while the loop stages the next batches; batches are
committed in order, each once its lines are stored. A batch belongs to the ownership epoch it was staged
in: after any rebalance it is abandoned, never committed (the partitions' next owner, maybe this member
again, starts over from what Kafka holds).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ingestion_observability.consumer.delivery import Delivery, Result, Verdict
from ingestion_observability.consumer.health import HealthState
from ingestion_observability.consumer.loki import LokiBatch, Outcome, PushResult
from ingestion_observability.consumer.metrics import ConsumerMetrics
from ingestion_observability.consumer.ownership import Ownership
from ingestion_observability.consumer.staging import Message, StagedBatch, StagingLimits, stage
from ingestion_observability.settings import setting

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchLimits:
    """When a batch is due. The changelog bounds keep a transaction well under its timeout, whatever the
    number of objets a batch touches (one state record each)."""

    max_bytes: int = setting(
        "--batch-max-bytes",
        "BATCH_MAX_BYTES",
        1024 * 1024,
        "log line bytes that make a batch due",
        type=int,
    )
    max_seconds: float = setting(
        "--batch-max-seconds", "BATCH_MAX_SECONDS", 1.0, "batch age that makes it due", type=float
    )
    max_changelog_records: int = setting(
        "--batch-max-changelog-records",
        "BATCH_MAX_CHANGELOG_RECORDS",
        10_000,
        "state records (touched objets) that make a batch due: bounds a transaction's size",
        type=int,
    )
    max_changelog_bytes: int = setting(
        "--batch-max-changelog-bytes",
        "BATCH_MAX_CHANGELOG_BYTES",
        16 * 1024 * 1024,
        "estimated state bytes that make a batch due: bounds a transaction's size",
        type=int,
    )
    # the log store ingests a push mostly on one core: two at once nearly double what it accepts
    pushes_in_flight: int = setting(
        "--pushes-in-flight",
        "PUSHES_IN_FLIGHT",
        2,
        "batches whose log lines are being pushed at once (they are committed in order)",
        type=int,
    )


class _Pending:
    __slots__ = ("batch", "push")

    def __init__(self, batch: StagedBatch, push: Future[PushResult | None]) -> None:
        self.batch = batch
        self.push = push


class Pipeline:
    def __init__(
        self,
        delivery: Delivery,
        ownership: Ownership,
        group_metadata: Callable[[], Any],
        idle: Callable[[float], None],
        limits: BatchLimits,
        staging: StagingLimits,
        job: str,
        metrics: ConsumerMetrics,
        health: HealthState,
    ) -> None:
        self.delivery = delivery
        self.ownership = ownership
        self._group_metadata = group_metadata
        self._idle = idle  # waits while keeping the membership alive (a rebalance may happen meanwhile)
        self.limits = limits
        self.staging = staging
        self.job = job
        self.metrics = metrics
        self.health = health
        self._pusher = ThreadPoolExecutor(max(1, limits.pushes_in_flight), thread_name_prefix="log-push")
        self._inflight: deque[_Pending] = deque()
        self.deadline: float | None = None  # at shutdown: how long a last delivery may retry
        self._new_batch()

    def _new_batch(self) -> None:
        self.batch = StagedBatch(LokiBatch(self.job), epoch=self.ownership.epoch)
        self._started = time.monotonic()

    def close(self) -> None:
        self._pusher.shutdown(wait=True)

    # --- the loop's calls ------------------------------------------------------------------------------

    def stage(self, polled: Mapping[Any, Sequence[Message]]) -> None:
        """Stage what a poll returned, in batches within their changelog bound (a poll may hold more
        objets than one transaction may carry); abandon everything when ownership changed since."""
        epoch = self.ownership.epoch
        if self.batch.epoch != epoch:
            self.abandon()  # records of this poll too: every partition is sought again before it is served
            return
        for tp, messages in polled.items():
            partition = self.ownership.served.get(tp.partition)
            start = 0
            while partition is not None and start < len(messages) and self.ownership.epoch == epoch:
                room = max(1, self.limits.max_changelog_records - self.batch.changelog_records)
                stage(self.batch, partition, messages[start : start + room], self.staging)
                start += room
                if start < len(messages) and self._due():
                    self._dispatch()  # may complete older batches: ownership may change meanwhile

    def step(self) -> None:
        """Commit the batches whose push ended, and start the current one's when it is due."""
        while self._inflight and self._inflight[0].push.done() and self._complete_oldest():
            pass
        if self._due():
            self._dispatch()

    def flush(self) -> bool:
        """Deliver the batches in flight and the current one; True when all are committed."""
        self._dispatch()
        while self._inflight:
            if not self._complete_oldest():
                return False
        return True

    def abandon(self) -> None:
        """Drop the batches not committed: Kafka redelivers them to the partitions' owner."""
        dropped = len(self._inflight) + (not self.batch.empty)
        for later in self._inflight:
            later.push.cancel()
        self._inflight.clear()
        self._new_batch()
        for partition in self.ownership.served.values():
            partition.discard_staged()
        if dropped:
            log.warning("%d batch(es) not committed were dropped: Kafka will redeliver them", dropped)

    # --- batches ---------------------------------------------------------------------------------------

    def _due(self) -> bool:
        batch, limits = self.batch, self.limits
        if batch.empty:
            self._started = time.monotonic()
            return False
        return (
            batch.loki.size >= limits.max_bytes
            or batch.changelog_records >= limits.max_changelog_records
            or batch.changelog_bytes >= limits.max_changelog_bytes
            or time.monotonic() - self._started >= limits.max_seconds
        )

    def _dispatch(self) -> None:
        """Start pushing this batch's lines and stage the next meanwhile (once a push slot is free)."""
        while len(self._inflight) >= max(1, self.limits.pushes_in_flight):
            if not self._complete_oldest():
                return
        if self.batch.empty:
            return
        batch, now = self.batch, time.time()
        self._inflight.append(_Pending(batch, self._pusher.submit(self.delivery.push_lines, batch, now)))
        self._new_batch()

    def _complete_oldest(self) -> bool:
        """Commit the oldest batch in flight; when it cannot be, the later ones are abandoned with it."""
        done = self._complete(self._inflight.popleft())
        if not done:
            self.abandon()
        return done

    def _complete(self, pending: _Pending) -> bool:
        batch, delivery, m = pending.batch, self.delivery, self.metrics
        pushed: list[PushResult | None] = [pending.push.result()]  # the worker's push is the first attempt

        def push() -> str | None:
            result = pushed.pop() if pushed else delivery.push_lines(batch, time.time())
            if result is not None and result.outcome is Outcome.ACCEPTED:
                m.loki_push.observe(result.seconds)
                m.loki_entries.inc(batch.loki.count)
            elif result is not None:
                m.loki_failures.labels(result.outcome.value).inc()
            return delivery.settle_push(batch, result)

        outcomes: list[Result] = []

        def commit() -> str | None:
            started = time.perf_counter()
            outcomes.append(outcome := delivery.commit(batch, self._group_metadata()))
            if outcome.verdict is Verdict.COMMITTED:
                m.transaction_seconds.observe(time.perf_counter() - started)
            if outcome.verdict is Verdict.RETRY:
                m.transactions.labels("aborted").inc()
                return outcome.reason
            return None  # committed, or nothing more to try here

        if not (
            self._until_done(push, "the log store", batch)
            and self._until_done(commit, "the transaction", batch)
        ):
            return False
        outcome = outcomes[-1]
        if outcome.verdict is Verdict.LOST:
            m.transactions.labels("lost").inc()
            self.ownership.lose_all(outcome.reason)
            return False
        if outcome.verdict is Verdict.RESET:
            log.warning("transaction outcome unknown: %s", outcome.reason)
            m.transactions.labels("reset").inc()
            self.ownership.reset()
            return False
        self._apply(batch, outcome.changelog_bytes)
        return True

    def _apply(self, batch: StagedBatch, changelog_bytes: int) -> None:
        """The batch is committed: its states become what /metrics exports."""
        for partition, states in batch.states.items():
            owner = self.ownership.served.get(partition)
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

    def _until_done(self, attempt: Callable[[], str | None], what: str, batch: StagedBatch) -> bool:
        """Retry `attempt` (None = done, else an error) with backoff, consumption paused meanwhile.

        Gives up as soon as ownership changes (the batch is void), or at shutdown once the deadline is near.
        """
        delay = 0.5
        try:
            while batch.epoch == self.ownership.epoch and (error := attempt()) is not None:
                if self.deadline is not None and time.monotonic() + delay > self.deadline:
                    log.error("giving up on %s at shutdown: %s", what, error)
                    return False
                log.warning("%s failed (%s): retrying in %.1fs, consumption paused", what, error, delay)
                self.health.waiting_for = what
                self._idle(delay)
                delay = min(delay * 2, 30.0)
            return batch.epoch == self.ownership.epoch
        finally:
            self.health.waiting_for = ""
