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
from ingestion_observability.consumer.delivery import Delivery, Topics
from ingestion_observability.consumer.export import StateCollector
from ingestion_observability.consumer.health import HealthState, serve
from ingestion_observability.consumer.loki import LokiClient
from ingestion_observability.consumer.loop import ConsumerConfig, IngestionConsumer
from ingestion_observability.consumer.metrics import ConsumerMetrics
from ingestion_observability.consumer.pipeline import BatchLimits
from ingestion_observability.consumer.restore import KafkaChangelog
from ingestion_observability.consumer.staging import StagingLimits
from ingestion_observability.consumer.topics import StateTopicError, ensure_state_topic
from ingestion_observability.settings import add_common_flags, add_flag, env_flag, setup_logging

log = logging.getLogger("ingestion_observability.consumer")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ingestion-consumer",
        description="Turn ingestion events from Kafka into Prometheus metrics and Loki log lines.",
    )
    add_common_flags(parser, "topic to consume")
    add_flag(parser, "--group-id", "KAFKA_GROUP_ID", "ingestion-consumer-group", "consumer group")
    add_flag(
        parser,
        "--session-timeout-ms",
        "KAFKA_SESSION_TIMEOUT_MS",
        "45000",
        "a crashed consumer's partitions wait this long before another member takes them",
        type=int,
    )
    add_flag(parser, "--dlq-topic", "KAFKA_DLQ_TOPIC", None, "dead-letter topic (default: <topic>.dlq)")
    add_flag(parser, "--loki-url", "LOKI_URL", "http://localhost:3100", "Loki base URL")
    add_flag(parser, "--loki-tenant", "LOKI_TENANT_ID", None, "X-Scope-OrgID for a multi-tenant Loki")
    add_flag(
        parser, "--loki-job", "LOKI_JOB", "ingestion-logs", "value of the `job` label of the Loki streams"
    )
    add_flag(parser, "--loki-username", "LOKI_USERNAME", None, "basic-auth user for Loki")
    add_flag(
        parser, "--metrics-port", "METRICS_PORT", "8000", "port of /metrics, /healthz, /readyz", type=int
    )
    add_flag(parser, "--metrics-address", "METRICS_ADDRESS", "0.0.0.0", "address the HTTP server binds")
    add_flag(
        parser,
        "--max-objets-per-source",
        "MAX_OBJETS_PER_SOURCE",
        "500",
        "distinct objet label values per source before folding into 'other'",
        type=int,
    )
    add_flag(
        parser,
        "--recent-keys-per-objet",
        "RECENT_KEYS_PER_OBJET",
        "512",
        "run keys remembered per objet (in its state) to count a redelivered or replayed run once",
        type=int,
    )
    add_flag(
        parser, "--state-topic", "KAFKA_STATE_TOPIC", None, "compacted changelog (default: <topic>.state)"
    )
    add_flag(
        parser,
        "--transactional-id",
        "KAFKA_TRANSACTIONAL_ID",
        None,
        "transactional id, stable per replica (the pod name); default: <group>-<host>-<pid>",
    )
    parser.add_argument(
        "--rebuild-state",
        action=argparse.BooleanOptionalAction,
        default=env_flag("REBUILD_STATE"),
        help="recount the partitions whose state is refused (unreadable changelog) from the topic's start "
        "(env REBUILD_STATE, default false)",
    )
    add_flag(
        parser,
        "--batch-max-bytes",
        "BATCH_MAX_BYTES",
        "1048576",
        "Loki batch size that triggers a flush",
        type=int,
    )
    add_flag(
        parser,
        "--batch-max-seconds",
        "BATCH_MAX_SECONDS",
        "1.0",
        "batch age that triggers a flush",
        type=float,
    )
    add_flag(
        parser,
        "--batch-max-changelog-records",
        "BATCH_MAX_CHANGELOG_RECORDS",
        "10000",
        "state records (touched objets) that make a batch due: bounds a transaction's size",
        type=int,
    )
    add_flag(
        parser,
        "--batch-max-changelog-bytes",
        "BATCH_MAX_CHANGELOG_BYTES",
        "16777216",
        "estimated state bytes that make a batch due: bounds a transaction's size",
        type=int,
    )
    add_flag(
        parser,
        "--max-message-bytes",
        "MAX_MESSAGE_BYTES",
        "65536",
        "larger messages are dead-lettered",
        type=int,
    )
    return parser


def config_from(args: argparse.Namespace) -> ConsumerConfig:
    return ConsumerConfig(
        bootstrap_servers=args.bootstrap_servers,
        topic=args.topic,
        group_id=args.group_id,
        dlq_topic=args.dlq_topic or f"{args.topic}.dlq",
        loki_url=args.loki_url,
        loki_tenant=args.loki_tenant,
        loki_username=args.loki_username,
        loki_job=args.loki_job,
        # A password only from the environment (a Secret), never from a flag visible in `ps`.
        loki_password=os.environ.get("LOKI_PASSWORD"),
        state_topic=args.state_topic or f"{args.topic}.state",
        transactional_id=args.transactional_id or "",
        rebuild_state=args.rebuild_state,
        limits=StagingLimits(
            max_message_bytes=args.max_message_bytes,
            max_objets_per_source=args.max_objets_per_source,
            recent_keys_per_objet=args.recent_keys_per_objet,
        ),
        batches=BatchLimits(
            max_bytes=args.batch_max_bytes,
            max_seconds=args.batch_max_seconds,
            max_changelog_records=args.batch_max_changelog_records,
            max_changelog_bytes=args.batch_max_changelog_bytes,
        ),
        session_timeout_ms=args.session_timeout_ms,
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
    consumer = build(config_from(args), metrics, health)
    business = StateCollector(consumer.exported)
    server = serve(registry, health, args.metrics_port, args.metrics_address, business.text)

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
