"""A real single-node Kafka (KRaft, broker and controller in one JVM) from the jars `make tools` fetched."""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from .process import OneProcessService, ServiceProcess, free_port, port_open
from .tools import ToolMissingError, tools_dir

KAFKA_VERSION = "3.9.2"  # what scripts/tools/20-kafka.sh installs by default
DEFAULT_HEAP = "512m"
BIND_ATTEMPTS = 3
BIND_FAILURE = "Address already in use"


class PortTakenError(RuntimeError):
    """The broker exited: one of its ports was bound by another process since it was found free."""


# Tuned for one node and fast tests: no rebalance delay, replication 1 everywhere, small internal topics.
# Topics are not auto-created: the project creates its own (with their partition counts) explicitly.
BASE_CONFIG: dict[str, str] = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    "auto.create.topics.enable": "false",
    "num.partitions": "3",
    "default.replication.factor": "1",
    "min.insync.replicas": "1",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "1",
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "2000",  # tests replace a killed consumer in seconds
    "num.network.threads": "2",
    "num.io.threads": "4",
    "num.recovery.threads.per.data.dir": "1",
    "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
    "log.retention.hours": "168",
}

LOG4J = """\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.org.apache.kafka.storage.internals.log=WARN
log4j.logger.kafka.log=WARN
log4j.logger.org.apache.kafka.common.utils.AppInfoParser=WARN
"""


def kafka_libs(version: str | None = None) -> Path:
    """The directory of jars for `version` (default: $INGESTION_KAFKA_VERSION, else KAFKA_VERSION)."""
    version = version or os.environ.get("INGESTION_KAFKA_VERSION", KAFKA_VERSION)
    libs = tools_dir() / "kafka" / version / "libs"
    if not (libs / f"kafka_2.13-{version}.jar").is_file():
        raise ToolMissingError(f"kafka {version} jars not found in {libs}: run `make tools`")
    return libs


def _cluster_id() -> str:
    """A KRaft cluster id, as `kafka-storage.sh random-uuid` makes: 16 random bytes, base64url, no padding.

    Like Kafka's Uuid.randomUuid(), never one starting with "-" (command lines would take it for an option).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _format_storage(jvm: list[str], server_properties: Path, timeout: float) -> None:
    """`kafka-storage.sh format`: meta.properties and the bootstrap metadata in the (empty) log dir."""
    argv = [*jvm, "kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(server_properties)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"kafka storage format failed ({done.returncode}):\n{done.stdout}{done.stderr}")


def _previous_controller_port(work_dir: Path, host: str) -> int | None:
    """The last run's controller port in `work_dir` if still free: a restart keeps its quorum address."""
    with contextlib.suppress(OSError, ValueError):
        for line in (work_dir / "server.properties").read_text().splitlines():
            if line.startswith("controller.quorum.voters="):
                port = int(line.rsplit(":", 1)[1])
                return None if port_open(host, port) else port
    return None


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    return "java"


class KafkaBroker(OneProcessService):
    """A running broker; `stop()` (or leaving the `with` block) ends it. Data stays in `work_dir/data`."""

    def __init__(
        self, process: ServiceProcess, host: str, port: int, controller_port: int, work_dir: Path
    ) -> None:
        self.process = process
        self.host = host
        self.port = port
        self.controller_port = controller_port
        self.work_dir = work_dir

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def start(
        cls,
        work_dir: Path,
        port: int | None = None,
        *,
        controller_port: int | None = None,
        host: str = "127.0.0.1",
        config: Mapping[str, str | int] | None = None,
        heap: str = DEFAULT_HEAP,
        version: str | None = None,
        timeout: float = 90.0,
    ) -> KafkaBroker:
        """Format `work_dir/data` (kept if already formatted), start the broker, wait until it answers.

        `config` overrides or adds server.properties entries (e.g. {"num.partitions": 6}). Ports it chose
        are chosen again when another process bound one of them first (the JVM takes seconds to bind).
        """
        args = (work_dir, port, controller_port, host, config, heap, version, timeout)
        chosen = port is None and controller_port is None
        for _ in range(BIND_ATTEMPTS - 1 if chosen else 0):
            with contextlib.suppress(PortTakenError):
                return cls._start(*args)
        return cls._start(*args)

    @classmethod
    def _start(
        cls,
        work_dir: Path,
        port: int | None,
        controller_port: int | None,
        host: str,
        config: Mapping[str, str | int] | None,
        heap: str,
        version: str | None,
        timeout: float,
    ) -> KafkaBroker:
        libs = kafka_libs(version)
        work_dir = Path(work_dir).resolve()
        work_dir.mkdir(parents=True, exist_ok=True)
        port = port or free_port()
        controller_port = controller_port or _previous_controller_port(work_dir, host) or free_port()
        if controller_port == port:
            controller_port = free_port()
        props = {
            **BASE_CONFIG,
            "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://{host}:{port}",
            "controller.quorum.voters": f"1@{host}:{controller_port}",
            "log.dirs": str(work_dir / "data"),
            **{k: str(v) for k, v in (config or {}).items()},
        }
        server_properties = work_dir / "server.properties"
        server_properties.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        log4j = work_dir / "log4j.properties"
        log4j.write_text(LOG4J)
        jvm = [
            _java(),
            f"-Xmx{heap}",
            f"-Xms{heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration={log4j.as_uri()}",
            f"-Dkafka.logs.dir={work_dir}",
            "-cp",
            f"{libs}/*",
        ]
        if not (work_dir / "data" / "meta.properties").is_file():  # a restart keeps its data and cluster id
            _format_storage(jvm, server_properties, timeout)
        log = work_dir / "kafka.log"
        logged = log.stat().st_size if log.exists() else 0  # a restart appends to the log
        process = ServiceProcess("kafka", [*jvm, "kafka.Kafka", server_properties], log)
        broker = cls(process, host, port, controller_port, work_dir)
        try:
            broker.wait_or_stop(lambda: port_open(host, port) and broker.answers(), timeout, "answering")
        except RuntimeError as err:
            if BIND_FAILURE.encode() in log.read_bytes()[logged:]:
                raise PortTakenError(str(err)) from err
            raise
        return broker

    def admin(self, **kwargs: Any) -> Any:
        """A kafka-python KafkaAdminClient on this broker (close it when done)."""
        kwargs.setdefault("request_timeout_ms", 10_000)
        return KafkaAdminClient(bootstrap_servers=self.bootstrap_servers, client_id="localstack", **kwargs)

    def answers(self) -> bool:
        """True once the broker serves metadata (a KafkaAdminClient can list topics)."""
        try:
            admin = self.admin(request_timeout_ms=3_000)
        except Exception:  # NoBrokersAvailable, connection errors while the broker starts
            return False
        try:
            admin.list_topics()
            return True
        except Exception:
            return False
        finally:
            admin.close()

    def list_topics(self) -> set[str]:
        admin = self.admin()
        try:
            return set(admin.list_topics())
        finally:
            admin.close()

    def create_topics(
        self,
        names: Iterable[str],
        partitions: int = 3,
        *,
        replication_factor: int = 1,
        topic_config: Mapping[str, str] | None = None,
    ) -> None:
        """Create the topics that do not exist yet and wait until their metadata is visible."""
        wanted = list(dict.fromkeys(names))
        admin = self.admin()
        try:
            missing = [n for n in wanted if n not in set(admin.list_topics())]
            if missing:
                new = [
                    NewTopic(n, partitions, replication_factor, topic_configs=dict(topic_config or {}))
                    for n in missing
                ]
                with contextlib.suppress(TopicAlreadyExistsError):  # created meanwhile: fine
                    admin.create_topics(new, timeout_ms=30_000, wait_for_metadata=True)
        finally:
            admin.close()
