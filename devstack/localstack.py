"""The local stack, wired once: Kafka, VictoriaLogs (the log store: it takes Loki's pushes), the consumer,
Prometheus, and Alertmanager with a local inbox as its webhook receiver, as processes on this machine.

`make demo` (devstack/demo.py), the bench (bench/run.py, bench/notification.py) and the integration tests
(tests/integration/conftest.py) start what they need with `running()`, which yields a `LocalStack`:

    with running(work, topic="runs", consumer=ConsumerOptions(), prometheus=PrometheusOptions()) as stack:
        stack.consumer.url, stack.prometheus.query(...)

Each part's data and log are in `work/<part>` (`work/consumer.log` for the consumer). Ports are free ones
unless `ports` (a stackcheck.Stack) names them. A Kafka or VictoriaLogs already running (a test session's)
may be given instead of starting one: it is used, and left running.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from devstack.alertmanager import AlertmanagerServer
from devstack.consumer import GROUP, ConsumerProcess
from devstack.inbox import InboxServer
from devstack.kafka import KafkaBroker
from devstack.process import OneProcessService
from devstack.prometheus import PrometheusServer
from devstack.stackcheck import Stack
from devstack.victorialogs import VictoriaLogsServer
from ingestion_observability.render import RenderConfig, render_rules
from ingestion_observability.render import notifications as routes
from ingestion_observability.render.cli import rules_yaml

P = TypeVar("P", bound=OneProcessService)
PARTITIONS = 3  # of every topic the stack creates (its dead-letter topic too)


@dataclass(frozen=True)
class ConsumerOptions:
    """The consumer reads the stack's `topic` and pushes to its VictoriaLogs."""

    group_id: str = GROUP
    extra_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class PrometheusOptions:
    """Prometheus scrapes the consumer (when there is one) and evaluates `rule_files` (and the alerting
    config's rules)."""

    scrape_interval: str = "5s"
    evaluation_interval: str = "5s"
    rule_files: tuple[Path, ...] = ()
    extra_args: tuple[str, ...] = ()


class LocalStack:
    """The running parts. Asking for a part the stack was not started with raises LookupError."""

    def __init__(self, exit_stack: contextlib.ExitStack[bool | None]) -> None:
        self._exit_stack = exit_stack
        self._parts: dict[str, OneProcessService] = {}
        self._started: dict[str, OneProcessService] = {}

    def create_topic(self, name: str, partitions: int = PARTITIONS) -> str:
        """`name` and its dead-letter topic `name.dlq` (existing topics are left alone)."""
        self.kafka.create_topics([name, f"{name}.dlq"], partitions=partitions)
        return name

    def _part(self, name: str, kind: type[P]) -> P:
        part = self._parts.get(name)
        if part is None:
            raise LookupError(f"this local stack was started without {name}")
        assert isinstance(part, kind)
        return part

    @property
    def kafka(self) -> KafkaBroker:
        return self._part("kafka", KafkaBroker)

    @property
    def logstore(self) -> VictoriaLogsServer:
        return self._part("victorialogs", VictoriaLogsServer)

    @property
    def consumer(self) -> ConsumerProcess:
        return self._part("consumer", ConsumerProcess)

    @property
    def prometheus(self) -> PrometheusServer:
        return self._part("prometheus", PrometheusServer)

    @property
    def alertmanager(self) -> AlertmanagerServer:
        return self._part("alertmanager", AlertmanagerServer)

    @property
    def inbox(self) -> InboxServer:
        return self._part("inbox", InboxServer)

    def pids(self) -> dict[str, int]:
        """The processes this stack started, by name: kafka, victorialogs, consumer, prometheus,
        alertmanager, inbox."""
        return {name: part.pid for name, part in self._started.items()}

    def detach(self) -> None:
        """Leave what the stack started running after the `with` block (`make demo`: until `demo-down`)."""
        self._exit_stack.pop_all()

    def _add(self, name: str, part: OneProcessService, *, started: bool = True) -> None:
        """A part the stack started (stopped when the block ends) or was given (left running)."""
        self._parts[name] = part
        if started:
            self._started[name] = self._exit_stack.enter_context(part)


@contextlib.contextmanager
def running(
    work: Path,
    *,
    ports: Stack | None = None,
    kafka: KafkaBroker | None = None,
    logstore: VictoriaLogsServer | None = None,
    logstore_log_level: str = "INFO",
    topic: str | None = None,
    consumer: ConsumerOptions | None = None,
    prometheus: PrometheusOptions | None = None,
    alerting: RenderConfig | None = None,
) -> Iterator[LocalStack]:
    """Start the stack in `work` and stop what it started when the block ends.

    `topic` is created (and its dead-letter topic); `consumer` reads it. `alerting`: an inbox, an
    Alertmanager routing every ingestion alert to it with that config's routes and templates, and its rules
    in Prometheus (`prometheus` is then needed), which sends its alerts there. The consumer is ready
    (/readyz) when the block starts.
    """
    if consumer is not None and topic is None:
        raise ValueError("the consumer needs a topic")
    if alerting is not None and prometheus is None:
        raise ValueError("alerting needs Prometheus: its rules fire the alerts")

    def port(name: str) -> int | None:
        return getattr(ports, f"{name}_port") if ports is not None else None

    with contextlib.ExitStack() as exit_stack:
        stack = LocalStack(exit_stack)
        if kafka is not None:
            stack._add("kafka", kafka, started=False)
        else:
            stack._add("kafka", KafkaBroker.start(work / "kafka", port("kafka")))
        if logstore is not None:
            stack._add("victorialogs", logstore, started=False)
        else:
            logs = VictoriaLogsServer.start(work / "victorialogs", port("logs"), log_level=logstore_log_level)
            stack._add("victorialogs", logs)
        if topic is not None:
            stack.create_topic(topic)
        if consumer is not None:
            assert topic is not None
            stack._add(
                "consumer",
                ConsumerProcess.start(
                    work / "consumer.log",
                    stack.kafka.bootstrap_servers,
                    stack.logstore.push_url,
                    port=port("metrics"),
                    topic=topic,
                    extra_args=consumer.extra_args,
                    group_id=consumer.group_id,
                ),
            )
        rule_files = list(prometheus.rule_files) if prometheus else []
        alertmanagers: list[str] = []
        if alerting is not None:
            stack._add("inbox", InboxServer.start(work / "inbox", port("inbox")))
            receivers = {routes.DEFAULT_RECEIVER: {"webhook_configs": [{"url": stack.inbox.url}]}}
            stack._add(
                "alertmanager",
                AlertmanagerServer.start(
                    work / "alertmanager",
                    port("alertmanager"),
                    config=routes.alertmanager_config(
                        alerting, receivers, template_dir=str(work / "alertmanager")
                    ),
                    templates={routes.TEMPLATE_FILE: routes.templates()},
                ),
            )
            alertmanagers.append(stack.alertmanager.target)
            rules = work / "rules" / "ingestion-rules.yaml"
            rules.parent.mkdir(parents=True, exist_ok=True)
            rules.write_text(rules_yaml(render_rules(alerting)), encoding="utf-8")
            rule_files.append(rules)
        if prometheus is not None:
            stack._add(
                "prometheus",
                PrometheusServer.start(
                    work / "prometheus",
                    port("prometheus"),
                    targets=[stack.consumer.target] if consumer is not None else [],
                    scrape_interval=prometheus.scrape_interval,
                    evaluation_interval=prometheus.evaluation_interval,
                    rule_files=rule_files,
                    alertmanagers=alertmanagers,
                    extra_args=prometheus.extra_args,
                ),
            )
        if consumer is not None:
            stack.consumer.wait_ready()
        yield stack
