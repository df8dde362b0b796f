"""The launchers start the real services and those really work (needs `make tools`)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaTimeoutError
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from devstack import kafka as kafka_launcher
from devstack.kafka import KafkaBroker
from devstack.process import free_port
from devstack.prometheus import PrometheusError, PrometheusServer
from devstack.victorialogs import LogStoreError, VictoriaLogsServer
from tests.integration.support import wait_until

pytestmark = pytest.mark.integration


# `kafka`: the session broker of tests/integration/conftest.py (KafkaBroker.start in a tmp dir).


def test_kafka_topic_produce_consume(kafka: KafkaBroker) -> None:
    assert kafka.bootstrap_servers == f"127.0.0.1:{kafka.port}"
    kafka.create_topics(["runs", "runs-dlq"], partitions=3)
    kafka.create_topics(["runs"], partitions=3)  # existing topics are left alone
    assert {"runs", "runs-dlq"} <= kafka.list_topics()

    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    try:
        producer.send("runs", key=b"k", value=b'{"run": 1}').get(timeout=15)
    finally:
        producer.close()
    consumer = KafkaConsumer(
        "runs",
        bootstrap_servers=kafka.bootstrap_servers,
        group_id="test",
        auto_offset_reset="earliest",
        consumer_timeout_ms=20_000,
    )
    try:
        got = next((m.key, m.value) for m in consumer)  # StopIteration after 20s without a message
    finally:
        consumer.close()
    assert got == (b"k", b'{"run": 1}')


def test_kafka_does_not_auto_create_topics(kafka: KafkaBroker) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers, max_block_ms=2_000)
    try:
        with pytest.raises(KafkaTimeoutError, match="metadata"):
            producer.send("nobody-created-me", b"x").get(timeout=5)
    finally:
        producer.close(timeout=2)
    assert "nobody-created-me" not in kafka.list_topics()


def test_kafka_restart_keeps_topics(tmp_path: Path) -> None:
    """`make demo` restarts on the same directory: same cluster id, same controller port, data kept."""
    with KafkaBroker.start(tmp_path) as first:
        first.create_topics(["kept"], partitions=1)
    assert not first.process.alive()
    with KafkaBroker.start(tmp_path) as again:
        assert again.controller_port == first.controller_port
        assert "kept" in again.list_topics()


def test_kafka_chooses_its_port_again_when_another_process_took_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The free port found first is bound by another process before the broker binds it (held open here)."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        ports = iter([taken.getsockname()[1]])
        monkeypatch.setattr(kafka_launcher, "free_port", lambda: next(ports, None) or free_port())
        with KafkaBroker.start(tmp_path) as broker:
            assert broker.port != taken.getsockname()[1]
            assert kafka_launcher.BIND_FAILURE in (tmp_path / "kafka.log").read_text()  # the first attempt's
            broker.create_topics(["after-a-taken-port"], partitions=1)
            assert "after-a-taken-port" in broker.list_topics()


def test_kafka_keeps_a_port_it_was_given_even_taken(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken, pytest.raises(kafka_launcher.PortTakenError):
        KafkaBroker.start(tmp_path, taken.getsockname()[1])


def test_victorialogs_push_and_query(tmp_path: Path) -> None:
    with VictoriaLogsServer.start(tmp_path / "logstore") as store:
        store.push({"job": "ingestion", "source": "test"}, ['{"a": 1}', "plain line"])
        assert store.lines('job:="ingestion"') == ['{"a": 1}', "plain line"]  # kept whole, not parsed
        assert store.count('job:="ingestion" source:="test"') == 2
        # an identical entry pushed again is stored again (Loki would keep one)
        at = time.time_ns()
        store.push({"job": "again"}, ["same"], at_ns=at)
        store.push({"job": "again"}, ["same"], at_ns=at)
        assert (store.count('job:="again"'), store.count_distinct('job:="again"')) == (2, 1)
        # out of the retention window: dropped with a 204, and counted (what the pipeline test asserts is 0)
        assert store.rows_dropped() == 0
        store.push({"job": "old"}, ["30 days ago"], at_ns=at - 30 * 86400 * 10**9)
        assert store.count('job:="old"') == 0
        wait_until(lambda: store.rows_dropped() == 1, timeout=10, what="the old row counted as dropped")
        with pytest.raises(LogStoreError, match="400"):
            store.query("job:=(")


@pytest.fixture
def exporter() -> Iterator[tuple[str, Gauge]]:
    """A tiny prometheus_client HTTP server on a free port, as the consumer exposes its metrics."""
    registry = CollectorRegistry()
    gauge = Gauge("localstack_test_value", "A value for the scrape test.", registry=registry)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        yield f"127.0.0.1:{port}", gauge
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_prometheus_scrapes_and_reloads_rules(tmp_path: Path, exporter: tuple[str, Gauge]) -> None:
    target, gauge = exporter
    gauge.set(42)
    work = tmp_path / "prometheus"
    rules = work / "rules"
    rules.mkdir(parents=True)
    with PrometheusServer.start(
        work,
        targets=[target],
        scrape_interval="1s",
        evaluation_interval="1s",
        rule_files=[rules / "*.yml"],
    ) as prom:
        result = prom.wait_for('localstack_test_value{job="ingestion-consumer"}', timeout=30)
        assert result[0]["value"][1] == "42"
        assert prom.query('up{job="ingestion-consumer"}')[0]["value"][1] == "1"
        assert prom.rules() == []

        # A rule file dropped into the globbed directory is picked up on reload().
        (rules / "test.yml").write_text(
            "groups:\n"
            "  - name: localstack-test\n"
            "    rules:\n"
            "      - record: localstack_test_value:doubled\n"
            "        expr: localstack_test_value * 2\n"
        )
        prom.reload()
        assert [g["name"] for g in prom.rules()] == ["localstack-test"]
        assert prom.wait_for("localstack_test_value:doubled", timeout=30)[0]["value"][1] == "84"

        # reload() with an explicit list rewrites the config; a broken rule file is refused loudly.
        broken = work / "broken.yml"
        broken.write_text("groups:\n  - name: broken\n    rules:\n      - record: x\n        expr: sum(\n")
        with pytest.raises(PrometheusError, match="reload failed"):
            prom.reload(rule_files=[broken])
        with pytest.raises(PrometheusError):
            prom.query("sum(")
        prom.reload(rule_files=[])
        deadline = time.monotonic() + 10
        while prom.rules() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert prom.rules() == []
