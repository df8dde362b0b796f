"""Command-line flags that default to the environment variables the deployment sets (seed names)."""

from __future__ import annotations

import argparse
import logging
import os

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


def env_flag(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    if raw.strip().lower() in TRUE:
        return True
    if raw.strip().lower() in FALSE:
        return False
    raise SystemExit(f"{name}={raw!r}: expected true or false")


def add_flag(
    parser: argparse.ArgumentParser, flag: str, env: str, default: str | None, help_text: str, **kw: object
) -> None:
    """`--flag`, defaulting to $ENV then to `default`; the help shows both."""
    parser.add_argument(
        flag,
        default=os.environ.get(env, default),
        help=f"{help_text} (env {env}, default {default!r})",
        **kw,  # type: ignore[arg-type]
    )


def add_common_flags(parser: argparse.ArgumentParser, topic_help: str) -> None:
    add_flag(parser, "--bootstrap-servers", "KAFKA_BOOTSTRAP_SERVERS", "localhost:9092", "Kafka brokers")
    add_flag(parser, "--topic", "KAFKA_TOPIC", "ingestion-logs", topic_help)
    add_flag(parser, "--log-level", "LOG_LEVEL", "INFO", "logging level")
    add_flag(
        parser,
        "--kafka-log-level",
        "KAFKA_LOG_LEVEL",
        "WARNING",
        "kafka-python's logging level (chatty at INFO: connection churn; DEBUG to trace the group protocol)",
    )


def setup_logging(level: str, kafka_level: str = "WARNING") -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("kafka").setLevel(kafka_level.upper())
