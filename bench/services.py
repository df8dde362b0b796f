"""The real services the bench runs on: Kafka, Loki (ingestion limits raised), Prometheus."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.kafka import KafkaBroker
from devstack.loki import LokiServer
from devstack.prometheus import PrometheusServer

# Loki's defaults (4 MB/s per tenant, 3 MB/s per stream) are far below what the consumer sends at
# 50 000 events/s (~35 MB/s of lines): the bench raises them so that Loki's limits are not what is measured.
BENCH_LOKI_LIMITS: dict[str, Any] = {
    "ingestion_rate_mb": 1024,
    "ingestion_burst_size_mb": 2048,
    "per_stream_rate_limit": "1GB",
    "per_stream_rate_limit_burst": "2GB",
}
PARTITIONS = 3


@dataclass
class Services:
    kafka: KafkaBroker
    loki: LokiServer
    prometheus: PrometheusServer

    def topic(self, name: str) -> str:
        """A fresh topic of PARTITIONS partitions and its dead-letter topic."""
        self.kafka.create_topics([name, f"{name}.dlq"], partitions=PARTITIONS)
        return name


@contextlib.contextmanager
def running(work: Path) -> Iterator[Services]:
    with (
        KafkaBroker.start(work / "kafka") as kafka,
        LokiServer.start(work / "loki", limits=BENCH_LOKI_LIMITS, log_level="warn") as loki,
        PrometheusServer.start(work / "prometheus", scrape_interval="1s") as prometheus,
    ):
        yield Services(kafka, loki, prometheus)
