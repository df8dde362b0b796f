"""Settings declared once: each is a dataclass field that carries its flag, environment variable (the name the
deployment sets), default and help (Pyrra's one-field-per-flag idea). The CLI is built from the fields
(`add_settings`) and the dataclass from the parsed flags (`from_args`): the field's default is the only one.

    @dataclass(frozen=True)
    class Settings(CommonSettings):
        port: int = setting("--port", "PORT", 5000, "HTTP port", type=int)

A flag defaults to $ENV, then to the field's default; its help ends with `(env ENV, default X)`, which the
chart tests read to check that every variable the chart sets is one the program reads.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}
_SETTING = "setting"  # the key of a field's metadata that holds its Setting

T = TypeVar("T")


def env_flag(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    if raw.strip().lower() in TRUE:
        return True
    if raw.strip().lower() in FALSE:
        return False
    raise SystemExit(f"{name}={raw!r}: expected true or false")


@dataclass(frozen=True)
class Setting:
    """How a field is set from outside: `flag`, `env`, `help`; `type` turns a string (flag or variable)
    into the value; `boolean`: --flag/--no-flag, the variable true or false; `repeated`: the flag is
    repeatable and each value, as the variable's, comma-separated (the field is a tuple)."""

    flag: str
    env: str
    help: str
    type: Callable[[str], Any] | None = None
    choices: Sequence[str] | None = None
    boolean: bool = False
    repeated: bool = False
    metavar: str | None = None


def setting(
    flag: str,
    env: str,
    default: Any,
    help: str,
    *,
    type: Callable[[str], Any] | None = None,
    choices: Sequence[str] | None = None,
    boolean: bool = False,
    repeated: bool = False,
    metavar: str | None = None,
) -> Any:
    """A dataclass field whose default is `default`, set by `flag` or `env` (see Setting)."""
    spec = Setting(flag, env, help, type, choices, boolean, repeated, metavar)
    return dataclasses.field(default=default, metadata={_SETTING: spec})


def _settings(cls: type[Any]) -> Iterable[tuple[dataclasses.Field[Any], Setting]]:
    for field in dataclasses.fields(cls):
        spec = field.metadata.get(_SETTING)
        if spec is not None:
            yield field, spec


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def add_settings(
    parser: argparse.ArgumentParser, cls: type[Any], *, helps: Mapping[str, str] | None = None
) -> None:
    """A flag per setting field of the dataclass `cls` (its `dest` the field's name); `helps` replaces the
    help of some fields (by name)."""
    for field, spec in _settings(cls):
        text = (helps or {}).get(field.name, spec.help)
        where = f"env {spec.env}, comma-separated" if spec.repeated else f"env {spec.env}"
        help_text = f"{text} ({where}, default {_shown(field.default)})"
        if spec.boolean:
            parser.add_argument(
                spec.flag,
                dest=field.name,
                action=argparse.BooleanOptionalAction,
                default=env_flag(spec.env, bool(field.default)),
                help=help_text,
            )
        elif spec.repeated:  # the variable is read by from_args: argparse appends to a default list
            parser.add_argument(
                spec.flag,
                dest=field.name,
                action="append",
                default=None,
                metavar=spec.metavar,
                help=help_text,
            )
        else:
            parser.add_argument(
                spec.flag,
                dest=field.name,
                default=os.environ.get(spec.env, field.default),  # a string is converted by `type`
                choices=spec.choices,
                metavar=spec.metavar,
                type=spec.type or str,
                help=help_text,
            )


def _items(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(item.strip() for value in values for item in value.split(",") if item.strip())


def from_args(cls: type[T], args: argparse.Namespace, **others: Any) -> T:
    """The dataclass `cls` from the parsed flags of its setting fields; `others` gives the other fields."""
    values = dict(others)
    for field, spec in _settings(cls):
        value = getattr(args, field.name)
        if spec.repeated:
            given = value or ([os.environ[spec.env]] if spec.env in os.environ else [])
            value = _items(given) if given else field.default
        values[field.name] = value
    return cls(**values)


@dataclass(frozen=True)
class CommonSettings:
    """What the producer, the intake and the consumer share: where Kafka is, what is logged."""

    bootstrap_servers: str = setting(
        "--bootstrap-servers", "KAFKA_BOOTSTRAP_SERVERS", "localhost:9092", "Kafka brokers"
    )
    topic: str = setting("--topic", "KAFKA_TOPIC", "ingestion-logs", "Kafka topic")
    log_level: str = setting("--log-level", "LOG_LEVEL", "INFO", "logging level")
    kafka_log_level: str = setting(
        "--kafka-log-level",
        "KAFKA_LOG_LEVEL",
        "WARNING",
        "kafka-python's logging level (chatty at INFO: connection churn; DEBUG to trace the group protocol)",
    )


def zone(name: str) -> tzinfo:
    """The time zone called `name` (UTC in any case)."""
    return UTC if name.upper() == "UTC" else ZoneInfo(name)


def zone_name(name: str) -> str:
    """`name` if it is a time zone (the `type` of a zone setting: a wrong one is refused at start)."""
    try:
        zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None
    return name


def add_flag(
    parser: argparse.ArgumentParser, flag: str, env: str, default: str | None, help_text: str, **kw: object
) -> None:
    """`--flag`, defaulting to $ENV then to `default`; the help shows both. For a flag that is no field of
    a settings dataclass (the operator's `--dashboard-label` and `--defaults`, parsed into other types)."""
    parser.add_argument(
        flag,
        default=os.environ.get(env, default),
        help=f"{help_text} (env {env}, default {default!r})",
        **kw,  # type: ignore[arg-type]
    )


def setup_logging(level: str, kafka_level: str = "WARNING") -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("kafka").setLevel(kafka_level.upper())
