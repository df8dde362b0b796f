"""Consumers of one topic and group, scraped by one Prometheus with the chart's rules and relabelings."""

from __future__ import annotations

import signal
from pathlib import Path

from devstack.consumer import ConsumerProcess
from devstack.kafka import KafkaBroker
from devstack.prometheus import CONSUMER_JOB, PrometheusServer
from devstack.stackcheck import scalar
from devstack.victorialogs import VictoriaLogsServer
from ingestion_observability import catalog
from tests.integration.support import CHART_RULES, Aggregates, prometheus_aggregates, wait_until

SESSION_TIMEOUT_MS = 3000  # a killed or frozen consumer's partitions move on within seconds
# the business counters' samples, histograms' included: none may ever decrease
COUNTERS = [
    name
    for f in catalog.BUSINESS
    if f.kind != "gauge"
    for name in ([f.sample] if f.kind == "counter" else [f"{f.name}_{s}" for s in ("bucket", "count", "sum")])
]


class Fleet:
    """Consumers of one topic and group, each with its own transactional id, scraped by one Prometheus."""

    def __init__(self, kafka: KafkaBroker, store: VictoriaLogsServer, topic: str, work: Path) -> None:
        self.kafka, self.store, self.topic, self.work = kafka, store, topic, work
        self.members: dict[str, ConsumerProcess] = {}
        self.prometheus = PrometheusServer.start(
            work / "prometheus",
            targets=[],
            scrape_interval="1s",
            evaluation_interval="1s",
            rule_files=[CHART_RULES],
        )
        self._started = 0

    def start(
        self, name: str, *, ready: bool = True, args: tuple[str, ...] = (), logs_url: str = ""
    ) -> ConsumerProcess:
        """Member `name` (its log store: the local one, or `logs_url`, e.g. a gate in front of it)."""
        self._started += 1
        consumer = ConsumerProcess.start(
            self.work / f"{name}-{self._started}.log",
            self.kafka.bootstrap_servers,
            logs_url or self.store.push_url,
            topic=self.topic,
            group_id=f"{self.topic}-group",
            extra_args=[
                f"--loki-job={self.topic}",
                f"--session-timeout-ms={SESSION_TIMEOUT_MS}",
                f"--transactional-id={self.topic}-{name}",  # stable per member: a restart fences the dead one
                *args,
            ],
        )
        self.members[name] = consumer
        self._retarget()
        if ready:
            consumer.wait_ready(timeout=90)
        return consumer

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        consumer = self.members.pop(name)
        consumer.process.signal(sig)
        consumer.stop()
        self._retarget()

    def _retarget(self) -> None:
        self.prometheus.reload(jobs={CONSUMER_JOB: [c.target for c in self.members.values()]})

    def wait_exact(self, expected: Aggregates, timeout: float = 180.0) -> None:
        wait_until(
            lambda: prometheus_aggregates(self.prometheus.url).exactly(expected),
            timeout=timeout,
            what="Prometheus' totals equal to the produced runs",
            seen=lambda: prometheus_aggregates(self.prometheus.url),
        )

    def counter_resets(self) -> float:
        """How often any business counter went backwards in Prometheus (two exporters of one series)."""
        resets = [scalar(self.prometheus.url, f"sum(resets({name}[1h]))") for name in COUNTERS]
        assert None not in resets, f"business counters absent from Prometheus: {COUNTERS}, {resets}"
        total = sum(r or 0.0 for r in resets)
        return total

    def close(self) -> None:
        for consumer in self.members.values():
            consumer.stop()
        self.prometheus.stop()
