"""The Kafka clients the consumer uses, behind Protocols: the loop takes them as arguments, so that its hard
paths (rebalances, lost memberships, refused commits) are unit-tested with scripted fakes.

`connect()` builds the real ones from the configuration.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any, Protocol, cast

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from ingestion_observability.consumer.delivery import Transactions

# How much the consumer fetches and returns per poll (`make bench` runs its raw poll loop with the same).
# kafka-python asks for a partition's next data only once its buffered records are all consumed, and the
# loop waits for that answer: 4 MiB per partition (16 MiB per request) instead of 1 MiB makes those waits
# rarer for a little more memory (see the benchmark page). 5000 records per poll: fewer polls.
KAFKA_CONSUMER_CONFIG: dict[str, Any] = {
    "max_poll_records": 5000,
    "max_partition_fetch_bytes": 4 * 1024 * 1024,
    "fetch_max_bytes": 16 * 1024 * 1024,
}


class GroupConsumer(Protocol):
    """The part of a subscribed KafkaConsumer the loop uses."""

    def subscribe(self, topics: list[str], listener: Any = None) -> None: ...

    def poll(self, timeout_ms: int = 0) -> dict[TopicPartition, list[Any]]: ...

    def assignment(self) -> set[TopicPartition]: ...

    def paused(self) -> set[TopicPartition]: ...

    def pause(self, *partitions: TopicPartition) -> None: ...

    def resume(self, *partitions: TopicPartition) -> None: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...

    def seek_to_beginning(self, *partitions: TopicPartition) -> None: ...

    def committed(self, partition: TopicPartition, timeout_ms: int | None = None) -> int | None: ...

    def group_metadata(self) -> Any: ...

    def end_offsets(self, partitions: list[TopicPartition], timeout_ms: int | None = None) -> Any: ...

    def position(self, partition: TopicPartition, timeout_ms: int | None = None) -> int | None: ...

    def partitions_for_topic(self, topic: str) -> set[int]: ...

    def topics(self) -> set[str]: ...

    def last_heartbeat(self) -> float: ...

    def finish_pending_join(self) -> bool: ...

    def close(self, autocommit: bool = True, timeout_ms: int | None = None) -> None: ...


class SubscribedConsumer(KafkaConsumer):  # type: ignore[misc]
    """A KafkaConsumer with two calls kafka-python has no public form of (they use its coordinator)."""

    def last_heartbeat(self) -> float:
        """When the coordinator last accepted our heartbeat (time.monotonic()).

        A process thawed after a freeze learns that it left the group only at its next heartbeat; until then
        kafka-python still reports its old generation (and its own "session expired" flag is cleared as soon
        as it finds the coordinator again). No heartbeat accepted for a session timeout is what tells, at
        once, that another member may already own the partitions.
        """
        return float(self._coordinator.heartbeat.last_receive)

    def finish_pending_join(self) -> bool:
        """Make the next poll() complete a group join left in flight; True when there was one.

        kafka-python 3.0.12 leaves a join behind when poll() returns on its timeout while the join is in
        flight, and the leader's own assignment meanwhile makes need_rejoin() false: the SyncGroup answer is
        never applied, no listener runs, heartbeats stay off, the member is evicted and holds no partition
        (after a broker restart: "No partition metadata for topic", then an empty assignment for minutes).
        """
        coordinator = self._coordinator
        if coordinator.rejoining and not coordinator.need_rejoin():
            coordinator.request_rejoin()
            return True
        return False


def default_transactional_id(group_id: str) -> str:
    """Unique per process; on Kubernetes the chart sets the pod name, stable across container restarts."""
    return f"{group_id}-{socket.gethostname()}-{os.getpid()}"


def connect(
    bootstrap_servers: str,
    group_id: str,
    session_timeout_ms: int,
    transactional_id: str,
    transaction_timeout_ms: int,
) -> tuple[SubscribedConsumer, KafkaConsumer, Callable[[], Transactions]]:
    """The group member, the changelog reader and the transactional producer factory."""
    servers = bootstrap_servers.split(",")
    common: dict[str, Any] = {"bootstrap_servers": servers, "isolation_level": "read_committed"}
    member = SubscribedConsumer(
        **common,
        group_id=group_id,
        client_id="ingestion-consumer",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **KAFKA_CONSUMER_CONFIG,
        request_timeout_ms=15000,
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=min(3000, session_timeout_ms // 3),
    )
    reader = KafkaConsumer(
        **common,
        group_id=None,
        client_id="ingestion-consumer-restore",
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )

    def producer() -> Transactions:
        new = KafkaProducer(
            bootstrap_servers=servers,
            client_id="ingestion-consumer-tx",
            transactional_id=transactional_id or default_transactional_id(group_id),
            transaction_timeout_ms=transaction_timeout_ms,
            enable_idempotence=True,
            acks="all",
            compression_type="lz4",
            linger_ms=0,
            max_request_size=8 * 1024 * 1024,
        )
        new.init_transactions()  # fences an older producer of this id and ends its open transaction
        return cast(Transactions, new)

    return member, reader, producer
