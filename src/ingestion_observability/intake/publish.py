"""Publish a request's items and wait for Kafka: an item is published only once the broker acknowledged it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from kafka.errors import KafkaError, MessageSizeTooLargeError

from ingestion_observability.producer.publisher import Publisher


class IntakePublisher(Publisher):
    """The producer's Publisher (same config: acks=all, idempotent, lz4), waiting on each record's future."""

    def __init__(self, bootstrap_servers: str, topic: str, timeout_seconds: float) -> None:
        # Requests flush their own records: lingering would only add latency to each POST.
        super().__init__(bootstrap_servers, topic, timeout_seconds, client_id="ingestion-intake", linger_ms=2)
        self.timeout_seconds = timeout_seconds
        try:  # KafkaTimeoutError until the topic's metadata is known: the intake is not ready yet
            self._producer.partitions_for(topic)
        except KafkaError:
            self._producer.close(timeout=0)
            raise

    def publish(self, records: Sequence[tuple[bytes, bytes]]) -> list[BaseException | None]:
        """Send every (key, value) and wait for each acknowledgement; per record, None or what failed."""
        futures: list[Any] = []
        for key, value in records:
            try:
                futures.append(self._producer.send(self.topic, key=key, value=value))
            except KafkaError as exc:  # no metadata within max_block_ms, record too large
                futures.append(exc)
        deadline = time.monotonic() + self.timeout_seconds + 1.0
        outcomes: list[BaseException | None] = []
        for future in futures:
            if isinstance(future, BaseException):
                outcomes.append(future)
                continue
            try:
                future.get(timeout=max(0.0, deadline - time.monotonic()))
                outcomes.append(None)
            except KafkaError as exc:
                outcomes.append(exc)
        return outcomes


def retriable(error: BaseException) -> bool:
    """Whether the client may succeed later with the same item (everything but a record Kafka refuses)."""
    return not isinstance(error, MessageSizeTooLargeError)
