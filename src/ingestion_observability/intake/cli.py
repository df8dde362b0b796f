"""`ingestion-intake`: HTTP endpoints for OpenLineage RunEvents and connector records, published to Kafka."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from prometheus_client import disable_created_metrics

from ingestion_observability.intake.server import (
    Intake,
    IntakeConfig,
    Tokens,
    new_registry,
    serve,
    static_tokens,
)
from ingestion_observability.settings import add_settings, from_args, setup_logging

log = logging.getLogger("ingestion_observability.intake")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ingestion-intake",
        description="Take OpenLineage RunEvents (POST /api/v1/lineage) and connector records "
        "(POST /api/v1/runs) over HTTP and publish them to Kafka; 2xx only once Kafka acknowledged.",
    )
    add_settings(parser, IntakeConfig, helps={"topic": "topic to publish to"})
    return parser


def config_from(args: argparse.Namespace) -> IntakeConfig:
    return from_args(IntakeConfig, args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, args.kafka_log_level)
    disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` twin per counter
    config = config_from(args)
    tokens = Tokens(static_tokens(), config.token_file)
    if not tokens.enabled:
        log.warning("no INTAKE_TOKEN nor --token-file: the endpoints accept unauthenticated requests")
    intake = Intake(config, tokens, new_registry())
    server = serve(intake, config.port, config.address)
    threading.Thread(target=intake.connect, name="kafka-connect", daemon=True).start()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("%s received: finishing the requests in progress", signal.Signals(signum).name)
        threading.Thread(target=server.shutdown, daemon=True).start()  # shutdown() waits for serve_forever

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("listening on %s:%d", config.address, config.port)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        intake.close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
