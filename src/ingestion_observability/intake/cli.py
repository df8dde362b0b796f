"""`ingestion-intake`: HTTP endpoints for OpenLineage RunEvents and connector records, published to Kafka."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from datetime import tzinfo
from pathlib import Path
from types import FrameType
from typing import get_args
from zoneinfo import ZoneInfo

from prometheus_client import disable_created_metrics

from ingestion_observability.intake.server import (
    Intake,
    IntakeConfig,
    Tokens,
    new_registry,
    serve,
    static_tokens,
)
from ingestion_observability.openlineage import SourceFrom
from ingestion_observability.settings import add_common_flags, add_flag, setup_logging

log = logging.getLogger("ingestion_observability.intake")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ingestion-intake",
        description="Take OpenLineage RunEvents (POST /api/v1/lineage) and connector records "
        "(POST /api/v1/runs) over HTTP and publish them to Kafka; 2xx only once Kafka acknowledged.",
    )
    add_common_flags(parser, "topic to publish to")
    add_flag(parser, "--port", "INTAKE_PORT", "5000", "HTTP port (5000: Marquez's)", type=int)
    add_flag(parser, "--address", "INTAKE_ADDRESS", "0.0.0.0", "HTTP address")
    add_flag(
        parser,
        "--delivery-timeout",
        "DELIVERY_TIMEOUT_SECONDS",
        "4",
        "seconds Kafka has to acknowledge a request's events before the request gets 503 (below the "
        "OpenLineage client's 5 s request timeout)",
        type=float,
    )
    add_flag(
        parser, "--max-body-bytes", "INTAKE_MAX_BODY_BYTES", str(4 * 1024 * 1024), "413 beyond", type=int
    )
    add_flag(
        parser,
        "--max-message-bytes",
        "MAX_MESSAGE_BYTES",
        str(64 * 1024),
        "the consumer's message limit: a larger RunEvent is published with only the fields the product reads",
        type=int,
    )
    add_flag(parser, "--retry-after", "INTAKE_RETRY_AFTER_SECONDS", "5", "Retry-After of a 503", type=int)
    add_flag(
        parser, "--max-concurrent", "INTAKE_MAX_CONCURRENT", "32", "POSTs in progress, 503 beyond", type=int
    )
    add_flag(
        parser,
        "--source-from",
        "INTAKE_SOURCE_FROM",
        "namespace",
        "RunEvent field giving the run's source: job.namespace, or the ingestion_source job facet",
        choices=get_args(SourceFrom),
    )
    add_flag(
        parser, "--timezone", "SOURCE_TIMEZONE", "UTC", "zone of connector timestamps written without one"
    )
    add_flag(
        parser,
        "--token-file",
        "INTAKE_TOKEN_FILE",
        None,
        "bearer tokens, one per line (a mounted Secret; re-read when it changes); $INTAKE_TOKEN adds one",
        type=Path,
    )
    return parser


def config_from(args: argparse.Namespace) -> IntakeConfig:
    timezone: tzinfo | None = None if args.timezone.upper() == "UTC" else ZoneInfo(args.timezone)
    return IntakeConfig(
        bootstrap_servers=args.bootstrap_servers,
        topic=args.topic,
        delivery_timeout=args.delivery_timeout,
        max_body_bytes=args.max_body_bytes,
        max_message_bytes=args.max_message_bytes,
        retry_after=args.retry_after,
        max_concurrent=args.max_concurrent,
        source_from=args.source_from,
        timezone=timezone,
        token_file=args.token_file,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, args.kafka_log_level)
    disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` twin per counter
    config = config_from(args)
    tokens = Tokens(static_tokens(), config.token_file)
    if not tokens.enabled:
        log.warning("no INTAKE_TOKEN nor --token-file: the endpoints accept unauthenticated requests")
    intake = Intake(config, tokens, new_registry())
    server = serve(intake, args.port, args.address)
    threading.Thread(target=intake.connect, name="kafka-connect", daemon=True).start()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("%s received: finishing the requests in progress", signal.Signals(signum).name)
        threading.Thread(target=server.shutdown, daemon=True).start()  # shutdown() waits for serve_forever

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("listening on %s:%d", args.address, args.port)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        intake.close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
