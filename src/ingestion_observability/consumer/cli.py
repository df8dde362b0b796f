"""`ingestion-consumer`: Kafka → Prometheus metrics + Loki lines, with a dead-letter topic."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from types import FrameType

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from ingestion_observability.consumer.clients import connect
from ingestion_observability.consumer.config import ConsumerConfig
from ingestion_observability.consumer.delivery import Delivery, Topics
from ingestion_observability.consumer.export import StateCollector
from ingestion_observability.consumer.health import HealthState, serve
from ingestion_observability.consumer.loki import LokiClient
from ingestion_observability.consumer.loop import IngestionConsumer
from ingestion_observability.consumer.metrics import ConsumerMetrics
from ingestion_observability.consumer.pipeline import BatchLimits
from ingestion_observability.consumer.restore import KafkaChangelog
from ingestion_observability.consumer.staging import StagingLimits
from ingestion_observability.consumer.topics import StateTopicError, ensure_state_topic
from ingestion_observability.settings import add_settings, from_args, setup_logging

log = logging.getLogger("ingestion_observability.consumer")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ingestion-consumer",
        description="Turn ingestion events from Kafka into Prometheus metrics and Loki log lines.",
        epilog="LOKI_PASSWORD: basic-auth password for Loki, from the environment only (a Secret).",
    )
    add_settings(parser, ConsumerConfig, helps={"topic": "topic to consume"})
    add_settings(parser, StagingLimits)
    add_settings(parser, BatchLimits)
    return parser


def config_from(args: argparse.Namespace) -> ConsumerConfig:
    return from_args(
        ConsumerConfig,
        args,
        limits=from_args(StagingLimits, args),
        batches=from_args(BatchLimits, args),
        # A password only from the environment (a Secret), never from a flag visible in `ps`.
        loki_password=os.environ.get("LOKI_PASSWORD"),
    )


def build(config: ConsumerConfig, metrics: ConsumerMetrics, health: HealthState) -> IngestionConsumer:
    """The consumer on real clients: Kafka (group member, changelog reader, transactional producer), Loki."""
    member, reader, producer = connect(
        config.bootstrap_servers,
        config.group_id,
        config.session_timeout_ms,
        config.transactional_id,
        config.transaction_timeout_ms,
    )
    sink = LokiClient(
        config.loki_url,
        tenant=config.loki_tenant,
        username=config.loki_username,
        password=config.loki_password,
    )
    topics = Topics(config.topic, config.dlq_topic, config.state_topic, config.group_id)
    return IngestionConsumer(
        config,
        metrics,
        health,
        member,
        KafkaChangelog(reader, config.state_topic, config.group_id),
        Delivery(topics, sink, producer),
        prepare=lambda wait: ensure_state_topic(
            config.bootstrap_servers, config.topic, config.state_topic, wait
        ),
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, args.kafka_log_level)
    disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` twin per counter
    registry = CollectorRegistry()
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        collector(registry=registry)
    metrics = ConsumerMetrics(registry)
    health = HealthState()
    metrics.watch(health)
    config = config_from(args)
    consumer = build(config, metrics, health)
    business = StateCollector(consumer.exported)
    server = serve(registry, health, config.metrics_port, config.metrics_address, business.text)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("%s received: finishing the batch", signal.Signals(signum).name)
        consumer.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        consumer.run()
    except StateTopicError as exc:
        log.error("%s", exc)
        return 2
    finally:
        server.shutdown()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
