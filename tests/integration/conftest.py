"""Session-wide real services (Kafka, VictoriaLogs) on free ports; each test has its own topic, group, job."""

from __future__ import annotations

import contextlib
import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.consumer import ConsumerProcess
from devstack.kafka import KafkaBroker
from devstack.prometheus import PrometheusServer
from devstack.victorialogs import VictoriaLogsServer
from tests.integration.fleet import Fleet
from tests.integration.support import CHART_RULES, produce, wait_until

_names = itertools.count(1)


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    with KafkaBroker.start(tmp_path_factory.mktemp("kafka")) as broker:
        yield broker


@pytest.fixture(scope="session")
def logstore(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaLogsServer]:
    with VictoriaLogsServer.start(tmp_path_factory.mktemp("victorialogs")) as server:
        yield server


@pytest.fixture
def topic(kafka: KafkaBroker) -> str:
    """A fresh topic (3 partitions) and its dead-letter topic."""
    name = f"runs-{next(_names)}"
    kafka.create_topics([name, f"{name}.dlq"], partitions=3)
    return name


@pytest.fixture
def logs_dir(tmp_path: Path) -> Path:
    return tmp_path


@dataclass
class Pipeline:
    kafka: KafkaBroker
    logstore: VictoriaLogsServer
    prometheus: PrometheusServer
    consumer: ConsumerProcess
    producer_exit: int
    producer_output: str


@pytest.fixture(scope="session")
def pipeline(
    kafka: KafkaBroker, logstore: VictoriaLogsServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    """The sample logs.json ingested through the real services, Prometheus loaded with the chart's rules."""
    work = tmp_path_factory.mktemp("pipeline")
    topic = "ingestion-logs"
    kafka.create_topics([topic, f"{topic}.dlq"], partitions=3)
    with (
        ConsumerProcess.start(
            work / "consumer.log", kafka.bootstrap_servers, logstore.push_url, topic=topic
        ) as consumer,
        PrometheusServer.start(
            work / "prometheus",
            targets=[consumer.target],
            scrape_interval="1s",
            evaluation_interval="1s",
            rule_files=[CHART_RULES],
        ) as prometheus,
    ):
        consumer.wait_ready()
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exit_code = produce(kafka.bootstrap_servers, topic, "--rebase-time")
        wait_until(lambda: consumer.total("ingestion_runs_total") == 72, what="72 runs counted")
        prometheus.wait_for("count(ingestion_runs_total) == 72", timeout=30)
        yield Pipeline(kafka, logstore, prometheus, consumer, exit_code, out.getvalue())


@pytest.fixture
def fleet(kafka: KafkaBroker, logstore: VictoriaLogsServer, topic: str, tmp_path: Path) -> Iterator[Fleet]:
    fleet = Fleet(kafka, logstore, topic, tmp_path)
    try:
        yield fleet
    finally:
        fleet.close()
