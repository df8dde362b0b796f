"""Publish enriched events to Kafka: keyed by source/objet, acks=all, idempotent, compressed, batched."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import orjson
from kafka import KafkaProducer
from kafka.errors import KafkaError

from ingestion_observability.producer.settings import ProducerSettings

log = logging.getLogger(__name__)


@dataclass
class Delivery:
    """Counts confirmed and failed deliveries (callbacks run on the producer's I/O thread)."""

    sent: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def ok(self, _metadata: Any) -> None:
        self.sent += 1

    def error(self, exc: BaseException) -> None:
        self.failed += 1
        if len(self.errors) < 10:  # a broker outage fails every record: keep the first few reasons
            self.errors.append(repr(exc))


def event_key(event: dict[str, Any]) -> bytes:
    """`source/objet`: every run of an objet lands in one partition, in order (MTTR needs that)."""
    return f"{event['source']['name']}/{event['objet']['name']}".encode()


class Publisher:
    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        timeout_seconds: float = ProducerSettings.delivery_timeout,
        **overrides: Any,
    ) -> None:
        self.topic = topic
        self.delivery = Delivery()
        timeout_ms = int(timeout_seconds * 1000)
        config: dict[str, Any] = {
            "bootstrap_servers": bootstrap_servers.split(","),
            "acks": "all",
            "enable_idempotence": True,
            "compression_type": "lz4",
            "linger_ms": 20,
            "batch_size": 256 * 1024,
            "max_in_flight_requests_per_connection": 5,
            "client_id": "ingestion-producer",
            # a record waits at most this long for the topic's metadata, then for its acknowledgement
            "max_block_ms": timeout_ms,
            "request_timeout_ms": min(30_000, timeout_ms // 2),
            "delivery_timeout_ms": timeout_ms,
        }
        config.update(overrides)
        self._producer = KafkaProducer(**config)

    def send(self, event: dict[str, Any]) -> None:
        try:
            future = self._producer.send(self.topic, key=event_key(event), value=orjson.dumps(event))
        except KafkaError as exc:  # e.g. no metadata for the topic within max_block_ms
            self.delivery.error(exc)
            return
        future.add_callback(self.delivery.ok)
        future.add_errback(self.delivery.error)

    def close(self, timeout: float = 30.0) -> Delivery:
        """Flush what is buffered (every send is confirmed or failed by then) and close."""
        try:
            self._producer.flush(timeout=timeout)
        finally:
            self._producer.close(timeout=timeout)
        return self.delivery
