"""Session-wide real services (Kafka, VictoriaLogs: devstack/localstack.py) on free ports; each test has its
own topic, group, job."""

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
from devstack.localstack import ConsumerOptions, LocalStack, PrometheusOptions, running
from devstack.prometheus import PrometheusServer
from devstack.victorialogs import VictoriaLogsServer
from tests.integration.fleet import Fleet
from tests.integration.support import CHART_RULES, produce, wait_until

_names = itertools.count(1)


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The session's Kafka and VictoriaLogs."""
    with running(tmp_path_factory.mktemp("services")) as stack:
        yield stack


@pytest.fixture(scope="session")
def kafka(services: LocalStack) -> KafkaBroker:
    return services.kafka


@pytest.fixture(scope="session")
def logstore(services: LocalStack) -> VictoriaLogsServer:
    return services.logstore


@pytest.fixture
def topic(services: LocalStack) -> str:
    """A fresh topic (3 partitions) and its dead-letter topic."""
    return services.create_topic(f"runs-{next(_names)}")


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
    topic = "ingestion-logs"
    with running(
        tmp_path_factory.mktemp("pipeline"),
        kafka=kafka,
        logstore=logstore,
        topic=topic,
        consumer=ConsumerOptions(),
        prometheus=PrometheusOptions(
            scrape_interval="1s", evaluation_interval="1s", rule_files=(CHART_RULES,)
        ),
    ) as stack:
        consumer, prometheus = stack.consumer, stack.prometheus
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
