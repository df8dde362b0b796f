"""The consumer as a child process (what tests kill and restart, and what `make demo` runs)."""

from __future__ import annotations

import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from devstack.process import LocalHttpProcess, ServiceProcess, free_port, http_ok

GROUP = "ingestion-consumer-group"  # the consumer's default --group-id


class ConsumerProcess(LocalHttpProcess):
    stop_timeout = 15.0

    @classmethod
    def start(
        cls,
        log_path: Path,
        bootstrap_servers: str,
        loki_url: str,
        *,
        port: int | None = None,
        topic: str = "ingestion-logs",
        group_id: str = GROUP,
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> ConsumerProcess:
        port = port or free_port()
        argv = [
            sys.executable,
            "-m",
            "ingestion_observability.consumer.cli",
            f"--bootstrap-servers={bootstrap_servers}",
            f"--topic={topic}",
            f"--group-id={group_id}",
            f"--loki-url={loki_url}",
            f"--metrics-port={port}",
            "--metrics-address=127.0.0.1",
            *extra_args,
        ]
        process = ServiceProcess("ingestion-consumer", argv, log_path, env=env)
        consumer = cls(process, port)
        consumer.wait_or_stop(lambda: http_ok(f"{consumer.url}/healthz"), timeout)
        return consumer

    def samples(self) -> list[tuple[str, dict[str, str], float]]:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        return [
            (sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    def total(self, name: str, **labels: str) -> float:
        """Sum of the samples named `name` whose labels include `labels`."""
        return sum(
            value
            for sample, sample_labels, value in self.samples()
            if sample == name and labels.items() <= sample_labels.items()
        )
