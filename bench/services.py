"""The real services the bench runs on: Kafka, VictoriaLogs (Loki push API), Prometheus."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devstack.kafka import KafkaBroker
from devstack.prometheus import PrometheusServer
from devstack.victorialogs import VictoriaLogsServer

PARTITIONS = 3


@dataclass
class Services:
    kafka: KafkaBroker
    logstore: VictoriaLogsServer
    prometheus: PrometheusServer

    def topic(self, name: str) -> str:
        """A fresh topic of PARTITIONS partitions and its dead-letter topic."""
        self.kafka.create_topics([name, f"{name}.dlq"], partitions=PARTITIONS)
        return name


@contextlib.contextmanager
def running(work: Path) -> Iterator[Services]:
    with (
        KafkaBroker.start(work / "kafka") as kafka,
        VictoriaLogsServer.start(work / "victorialogs", log_level="WARN") as logstore,
        PrometheusServer.start(work / "prometheus", scrape_interval="1s") as prometheus,
    ):
        yield Services(kafka, logstore, prometheus)
