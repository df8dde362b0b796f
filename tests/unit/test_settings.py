"""Settings declared once (ingestion_observability.settings): each field carries its flag, variable, default
and help; the CLIs of the consumer, the producer, the intake and the operator are built from the fields."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ingestion_observability.consumer import cli as consumer_cli
from ingestion_observability.consumer.config import ConsumerConfig
from ingestion_observability.consumer.pipeline import BatchLimits
from ingestion_observability.consumer.staging import StagingLimits
from ingestion_observability.event import MAX_MESSAGE_BYTES
from ingestion_observability.intake import cli as intake_cli
from ingestion_observability.intake.server import IntakeConfig
from ingestion_observability.producer import cli as producer_cli
from ingestion_observability.producer.publisher import Publisher
from ingestion_observability.producer.settings import ProducerSettings
from ingestion_observability.settings import Setting, add_settings, from_args, setting
from ingestion_operator import cli as operator_cli
from ingestion_operator.settings import ChildSettings, OperatorConfig

ENV_IN_HELP = re.compile(r"\(env ([A-Z0-9_]+),")


# (the settings dataclasses, the parser built from them, the flags it may have with a variable that no field
# declares: the operator's --dashboard-label sets two fields, its --defaults names the file of one)
PROGRAMS: dict[str, tuple[tuple[type[Any], ...], Callable[[], argparse.ArgumentParser], set[str]]] = {
    "consumer": ((ConsumerConfig, StagingLimits, BatchLimits), consumer_cli.build_parser, set()),
    "producer": ((ProducerSettings,), producer_cli.build_parser, set()),
    "intake": ((IntakeConfig,), intake_cli.build_parser, set()),
    "operator": (
        (OperatorConfig, ChildSettings),
        lambda: operator_cli.subcommand("run"),
        {"--dashboard-label", "--defaults"},
    ),
}


def _declared(classes: tuple[type[Any], ...]) -> dict[str, tuple[dataclasses.Field[Any], Setting]]:
    return {
        spec.flag: (field, spec)
        for cls in classes
        for field in dataclasses.fields(cls)
        if isinstance(spec := field.metadata.get("setting"), Setting)
    }


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for classes, _, _ in PROGRAMS.values():
        for _, spec in _declared(classes).values():
            monkeypatch.delenv(spec.env, raising=False)
    for name in ("INGESTION_OPERATOR_DASHBOARD_LABEL", "INGESTION_OPERATOR_DEFAULTS"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("program", PROGRAMS)
def test_every_flag_with_a_variable_is_a_declared_field(program: str, clean_env: None) -> None:
    classes, build, exceptions = PROGRAMS[program]
    declared = _declared(classes)
    with_env = {
        action.option_strings[0]: ENV_IN_HELP.search(action.help or "")
        for action in build()._actions
        if action.option_strings and "(env " in (action.help or "")
    }
    assert set(with_env) - exceptions == set(declared)
    for flag, (_, spec) in declared.items():
        match = with_env[flag]
        assert match is not None and match.group(1) == spec.env, flag


@pytest.mark.parametrize("program", PROGRAMS)
def test_the_cli_defaults_are_the_fields_defaults(program: str, clean_env: None) -> None:
    classes, build, _ = PROGRAMS[program]
    args = build().parse_args([])
    for field, spec in _declared(classes).values():
        if spec.repeated:
            assert getattr(args, field.name) is None  # from_args reads the variable, then the default
            continue
        assert getattr(args, field.name) == field.default, spec.flag


def test_the_dataclasses_built_from_no_flag_are_their_defaults(clean_env: None) -> None:
    assert intake_cli.config_from(intake_cli.build_parser().parse_args([])) == IntakeConfig()
    producer_args = producer_cli.build_parser().parse_args([])
    assert from_args(ProducerSettings, producer_args) == ProducerSettings()
    assert inspect.signature(Publisher).parameters["timeout_seconds"].default == 120.0
    assert consumer_cli.config_from(consumer_cli.build_parser().parse_args([])) == ConsumerConfig()


def test_the_consumer_derives_its_topics_and_reads_its_password_from_the_environment_only(
    clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_TOPIC", "runs")
    monkeypatch.setenv("LOKI_PASSWORD", "s3cret")
    config = consumer_cli.config_from(consumer_cli.build_parser().parse_args(["--pushes-in-flight=3"]))
    assert (config.dlq_topic, config.state_topic) == ("runs.dlq", "runs.state")
    assert config.loki_password == "s3cret" and config.batches.pushes_in_flight == 3
    given = ConsumerConfig(topic="runs", dlq_topic="dead", state_topic="counts")
    assert (given.dlq_topic, given.state_topic) == ("dead", "counts")
    assert not any("password" in action.dest for action in consumer_cli.build_parser()._actions)


def test_the_intake_publishes_within_the_consumers_message_limit(clean_env: None) -> None:
    assert IntakeConfig().max_message_bytes == StagingLimits().max_message_bytes == MAX_MESSAGE_BYTES


@dataclass(frozen=True)
class Example:
    count: int = setting("--count", "EXAMPLE_COUNT", 3, "how many", type=int)
    name: str | None = setting("--name", "EXAMPLE_NAME", None, "a name")
    on: bool = setting("--on", "EXAMPLE_ON", False, "switch", boolean=True)
    items: tuple[str, ...] = setting("--item", "EXAMPLE_ITEMS", ("a",), "items", repeated=True)
    path: Path | None = setting("--path", "EXAMPLE_PATH", None, "a file", type=Path)
    other: str = "not a setting"


def _example(argv: list[str], **others: Any) -> Example:
    parser = argparse.ArgumentParser()
    add_settings(parser, Example)
    return from_args(Example, parser.parse_args(argv), **others)


def test_defaults_variables_and_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EXAMPLE_COUNT", "EXAMPLE_NAME", "EXAMPLE_ON", "EXAMPLE_ITEMS", "EXAMPLE_PATH"):
        monkeypatch.delenv(name, raising=False)
    assert _example([]) == Example()
    monkeypatch.setenv("EXAMPLE_COUNT", "7")
    monkeypatch.setenv("EXAMPLE_ON", "true")
    monkeypatch.setenv("EXAMPLE_ITEMS", "b, c")
    monkeypatch.setenv("EXAMPLE_PATH", "/tmp/x")
    assert _example([], other="given") == Example(7, None, True, ("b", "c"), Path("/tmp/x"), "given")
    flags = ["--count=9", "--no-on", "--item=d,e", "--item", "f", "--name=n"]
    assert _example(flags) == Example(9, "n", False, ("d", "e", "f"), Path("/tmp/x"))


def test_help_names_the_variable_and_the_default() -> None:
    parser = argparse.ArgumentParser()
    add_settings(parser, Example)
    helps = {a.option_strings[0]: a.help for a in parser._actions if a.option_strings}
    assert helps["--count"] == "how many (env EXAMPLE_COUNT, default 3)"
    assert helps["--on"] == "switch (env EXAMPLE_ON, default false)"
    assert helps["--item"] == "items (env EXAMPLE_ITEMS, comma-separated, default ('a',))"


def test_a_wrong_time_zone_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_TIMEZONE", "Mars/Olympus")
    with pytest.raises(SystemExit):
        intake_cli.build_parser().parse_args([])
    with pytest.raises(SystemExit):
        producer_cli.build_parser().parse_args([])
    monkeypatch.setenv("SOURCE_TIMEZONE", "utc")
    assert producer_cli.build_parser().parse_args([]).timezone == "utc"
