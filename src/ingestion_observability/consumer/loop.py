"""The consumer loop: take partitions → poll → stage → push log lines → one transaction (dead letters, state,
offsets), on clients it is given.

The Kafka Streams pattern: each input partition's state lives in the compacted changelog `<topic>.state`,
written in the transaction that commits the partition's offsets. A crash anywhere leaves Kafka holding a
committed state that matches the committed offsets; the next owner restores it and goes on from there.
What /metrics shows is that committed state, so Prometheus' totals are exact through restarts, crashes,
rebalances and zombies. Who may commit and export what is `ownership.py`; batches are `pipeline.py`.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kafka import TopicPartition
from kafka.errors import KafkaError

from ingestion_observability.consumer.clients import GroupConsumer
from ingestion_observability.consumer.config import ConsumerConfig
from ingestion_observability.consumer.delivery import Delivery
from ingestion_observability.consumer.health import HealthState
from ingestion_observability.consumer.metrics import ConsumerMetrics
from ingestion_observability.consumer.ownership import Ownership
from ingestion_observability.consumer.pipeline import Pipeline
from ingestion_observability.consumer.restore import Changelog
from ingestion_observability.consumer.state import PartitionState

log = logging.getLogger(__name__)

METADATA_REFRESH_SECONDS = 2.0  # an empty assignment re-reads the topic's partitions this often


class IngestionConsumer:
    def __init__(
        self,
        config: ConsumerConfig,
        metrics: ConsumerMetrics,
        health: HealthState,
        consumer: GroupConsumer,
        changelog: Changelog,
        delivery: Delivery,
        prepare: Callable[[Callable[[str], bool]], bool] = lambda _: True,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.health = health
        self._consumer = consumer
        self._changelog = changelog
        self._delivery = delivery
        self._prepare = prepare  # before subscribing (the changelog topic); given a wait, False to give up
        self.ownership = Ownership(
            consumer,
            config.topic,
            config.session_timeout_ms / 1000,
            lambda event: metrics.ownership.labels(event).inc(),
        )
        self.pipeline = Pipeline(
            delivery,
            self.ownership,
            consumer.group_metadata,
            self._idle,
            config.batches,
            config.limits,
            config.loki_job,
            metrics,
            health,
        )
        metrics.owned_objets.set_function(lambda: sum(len(p.committed) for p in self.exported()))
        self._stop = threading.Event()
        self._next_lag = 0.0
        self._next_metadata = 0.0
        self._lagging: set[TopicPartition] = set()  # partitions whose lag gauge is set

    def exported(self) -> list[PartitionState]:
        """The partitions /metrics shows: served, by a live member of the group."""
        return self.ownership.exported()

    def stop(self) -> None:
        """Ask the loop to finish its batches and exit (signal handlers call this)."""
        if not self._stop.is_set():
            self.pipeline.deadline = time.monotonic() + self.config.shutdown_seconds
            self._stop.set()

    def run(self) -> None:
        if not self._prepare(self._wait):
            return
        self.subscribe()
        # Everything alive now lives as long as the process: keep it out of every collection, and collect
        # the young generation less often (each message allocates a dozen short-lived containers).
        gc.freeze()
        gc.set_threshold(20_000, 20, 20)
        try:
            while not self._stop.is_set():
                self.step()
            if self.pipeline.flush():
                log.info("last batch committed")
        finally:
            self.pipeline.close()
            self._consumer.close(autocommit=False, timeout_ms=2000)

    def subscribe(self) -> None:
        self._consumer.subscribe([self.config.topic], listener=self.ownership)
        log.info("consuming %s as group %s", self.config.topic, self.config.group_id)

    def step(self) -> None:
        """One turn of the loop: take what was assigned, poll, stage, deliver what is due."""
        self._report()
        self._take()
        self.ownership.sync_pauses()
        self.pipeline.stage(self._poll(200))
        self.pipeline.step()
        self._refresh()

    def _take(self) -> None:
        if self.pipeline.batch.epoch != self.ownership.epoch:
            self.pipeline.abandon()  # staged in an older epoch: void before any partition is sought again
        if self.ownership.pending:
            self.health.restoring = True
            started = time.monotonic()
            stale = self.ownership.take(self._changelog, self._delivery.ready, self.config.rebuild_state)
            if not self.ownership.pending:
                self.metrics.restore_seconds.observe(time.monotonic() - started)
            self.pipeline.batch.tombstones.update(stale)

    def _report(self) -> None:
        """Health and the ownership gauges, from the ownership state, in one place."""
        own, health = self.ownership, self.health
        health.beat()
        health.assigned = len(own.served)
        health.restoring = bool(own.pending)
        for partition in own.refused.keys() - health.refused.keys():
            self.metrics.state_errors.labels(str(partition)).inc()
        health.refused = dict(own.refused)

    def _wait(self, reason: str) -> bool:
        """Wait a second for what `reason` says, alive but not ready; False once asked to stop."""
        self.health.beat()
        self.health.waiting_for = reason
        stopped = self._stop.wait(1.0)
        self.health.waiting_for = ""
        return not stopped

    def _idle(self, seconds: float) -> None:
        """Wait while keeping the group membership alive (polling paused partitions returns nothing)."""
        end, epoch = time.monotonic() + seconds, self.ownership.epoch
        while self.ownership.epoch == epoch and (left := end - time.monotonic()) > 0:
            self.health.beat()
            # Nothing may be fetched here: a record this poll returned would be skipped, never counted.
            # Partitions a rebalance assigns inside the poll are paused by the ownership listener.
            self._consumer.pause(*self._consumer.assignment())
            self._poll(int(min(left, 0.5) * 1000))
            self._refresh()

    def _poll(self, timeout_ms: int) -> dict[TopicPartition, list[Any]]:
        if self._consumer.finish_pending_join():
            log.warning("a group join kafka-python left in flight is completed by this poll")
        return self._consumer.poll(timeout_ms=timeout_ms)

    def _refresh(self) -> None:
        """Lag, and the topic's partitions when none are assigned (a member that joined while the broker had
        no metadata for the topic would otherwise wait for the periodic refresh, minutes by default)."""
        now = time.monotonic()
        assignment = list(self._consumer.assignment())
        if not assignment and now >= self._next_metadata:
            self._next_metadata = now + METADATA_REFRESH_SECONDS
            if not self._consumer.partitions_for_topic(self.config.topic):
                self._consumer.topics()  # a metadata request: new partitions make the group rebalance
        if now < self._next_lag or not assignment:
            return
        self._next_lag = now + self.config.lag_interval_seconds
        try:
            ends = self._consumer.end_offsets(assignment, timeout_ms=5000)
            for tp, end in ends.items():
                position = self._consumer.position(tp, timeout_ms=5000)
                if position is not None:
                    self.metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, end - position))
        except KafkaError as exc:
            log.warning("could not read end offsets: %r", exc)
            return
        for tp in self._lagging - set(assignment):
            self.metrics.lag.remove(tp.topic, str(tp.partition))
        self._lagging = set(assignment)
        self.health.kafka_ok_at = time.monotonic()
