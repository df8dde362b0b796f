"""Session-wide real services (Kafka, Loki) on free ports; each test has its own topic, group, Loki job."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingestion_observability.localstack.kafka import KafkaBroker
from ingestion_observability.localstack.loki import LokiServer

_names = itertools.count(1)


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    with KafkaBroker.start(tmp_path_factory.mktemp("kafka")) as broker:
        yield broker


@pytest.fixture(scope="session")
def loki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LokiServer]:
    with LokiServer.start(tmp_path_factory.mktemp("loki")) as server:
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
