"""The real `ingestion-consumer` as a process, timed from its first committed batch to lag 0.

Progress is read from the broker (the group's committed offsets, polled every 50 ms without joining the
group: no CPU taken from the consumer) and checked against the consumer's own metrics at the end
(`ingestion_consumer_messages_total`, `ingestion_consumer_loki_entries_total`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from bench import procstat
from bench.profile import Sampler, summarise
from devstack.consumer import ConsumerProcess

POLL_SECONDS = 0.05
MIB = 1024 * 1024


class GroupOffsets:
    """Sum of a consumer group's committed offsets, read with the admin API."""

    def __init__(self, bootstrap: str) -> None:
        self._admin = KafkaAdminClient(
            bootstrap_servers=bootstrap.split(","), client_id="bench-offsets", request_timeout_ms=10_000
        )

    def committed(self, group: str) -> int | None:
        """None while the broker cannot tell yet (coordinator loading, group not there yet)."""
        try:
            offsets = self._admin.list_group_offsets({group: None}).get(group, {})
        except KafkaError as exc:
            if exc.retriable:
                return None
            raise
        return int(sum(o.offset for o in offsets.values() if o.offset is not None and o.offset >= 0))

    def close(self) -> None:
        self._admin.close()


@dataclass
class ConsumerRun:
    events: int
    seconds: float  # first committed batch → lag 0
    events_timed: int  # events committed in that window
    cpu_seconds: float  # consumer process CPU in that window (all its threads)
    main_cpu_seconds: float  # its main thread's (the loop; Loki payloads are built on another thread)
    startup_seconds: float  # spawn → /healthz answers
    to_lag_zero_seconds: float  # /healthz answers → lag 0 (group join and first fetch included)
    rss_start: int  # VmRSS once /healthz answers (consumption may have begun)
    rss_marks: dict[int, int] = field(default_factory=dict)  # committed count → VmRSS when first reached
    rss_end: int = 0
    rss_peak: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    exit_code: int | None = None
    profile: dict[str, Any] | None = None
    others_cpu: dict[str, float] = field(default_factory=dict)  # CPU of the services in the same window

    @property
    def events_per_second(self) -> float:
        return self.events_timed / self.seconds

    def throughput(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "events_timed": self.events_timed,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.events_per_second),
            "us_per_event": round(1e6 * self.seconds / self.events_timed, 2),
            "cpu_us_per_event": round(1e6 * self.cpu_seconds / self.events_timed, 2),
            "main_thread_cpu_us_per_event": round(1e6 * self.main_cpu_seconds / self.events_timed, 2),
            "cpu_cores_used": round(self.cpu_seconds / self.seconds, 2),
            "startup_seconds": round(self.startup_seconds, 3),
            "ready_to_lag_zero_seconds": round(self.to_lag_zero_seconds, 3),
            "services_cpu_us_per_event": {
                name: round(1e6 * cpu / self.events_timed, 2) for name, cpu in self.others_cpu.items()
            },
            "metrics": self.metrics,
        }

    def memory(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "rss_start_mb": round(self.rss_start / MIB, 1),
            "rss_after_mb": {str(k): round(v / MIB, 1) for k, v in sorted(self.rss_marks.items())},
            "rss_end_mb": round(self.rss_end / MIB, 1),
            "rss_peak_mb": round(self.rss_peak / MIB, 1),
            "process_resident_memory_mb": round(
                self.metrics.get("process_resident_memory_bytes", 0) / MIB, 1
            ),
            "owned_objets": self.metrics.get("ingestion_consumer_owned_objets", 0),
        }


METRICS = (
    "ingestion_consumer_messages_total",
    "ingestion_consumer_loki_entries_total",
    "ingestion_consumer_loki_push_failures_total",
    "ingestion_consumer_batch_size_count",
    "ingestion_consumer_loki_push_seconds_sum",
    "ingestion_consumer_loki_push_seconds_count",
    "ingestion_consumer_owned_objets",
    "ingestion_consumer_transactions_total",
    "ingestion_consumer_transaction_seconds_sum",
    "ingestion_consumer_transaction_seconds_count",
    "ingestion_consumer_changelog_bytes_total",
    "process_resident_memory_bytes",
)


def run(
    log_path: Path,
    bootstrap: str,
    loki_url: str,
    topic: str,
    expected: int,
    *,
    group: str,
    marks: Sequence[int] = (),
    extra_args: Sequence[str] = (),
    inspect: Callable[[ConsumerProcess], None] | None = None,
    profile: Path | None = None,
    others: Mapping[str, int] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 1800.0,
) -> ConsumerRun:
    """Start a consumer on a topic already holding `expected` events; wait for lag 0; stop it.

    `inspect` is called with the consumer once it is done, before it is stopped. `others` (name → pid):
    processes whose CPU time over the timed window is reported too (Loki, Kafka). `profile`: a py-spy
    profile of the consumer from /healthz to lag 0 is written there and summarised.
    """
    offsets = GroupOffsets(bootstrap)
    spawned = time.perf_counter()
    consumer = ConsumerProcess.start(
        log_path,
        bootstrap,
        loki_url,
        topic=topic,
        group_id=group,
        # each group its own changelog: several groups read the same topic here
        extra_args=["--log-level=WARNING", f"--state-topic={topic}.{group}.state", *extra_args],
        env=dict(env or {}),
    )
    sampler: Sampler | None = None
    try:
        pid = consumer.process.pid
        healthy = time.perf_counter()
        if profile is not None:  # from /healthz: the group join is in it too
            sampler = Sampler.attach(pid, profile)
        result = ConsumerRun(
            events=expected,
            seconds=0.0,
            events_timed=0,
            cpu_seconds=0.0,
            main_cpu_seconds=0.0,
            startup_seconds=healthy - spawned,
            to_lag_zero_seconds=0.0,
            rss_start=procstat.rss_bytes(pid),
        )
        pending = sorted(m for m in marks if m <= expected)
        others_before: dict[str, float] = {}
        first: tuple[float, int, float, float] | None = None
        deadline = healthy + timeout
        committed = 0
        while committed < expected:
            time.sleep(POLL_SECONDS)
            committed = offsets.committed(group) or committed
            now = time.perf_counter()
            if first is None and committed:
                first = (now, committed, procstat.cpu_seconds(pid), procstat.cpu_seconds(pid, pid))
                others_before = {name: procstat.cpu_seconds(p) for name, p in (others or {}).items()}
            while pending and committed >= pending[0]:
                result.rss_marks[pending.pop(0)] = procstat.rss_bytes(pid)
            if now > deadline:
                raise TimeoutError(f"consumer committed {committed} of {expected} in {timeout:.0f}s")
            if not consumer.process.alive():
                raise RuntimeError(f"consumer exited:\n{consumer.process.tail()}")
        end = time.perf_counter()
        cpu_end, main_end = procstat.cpu_seconds(pid), procstat.cpu_seconds(pid, pid)
        result.others_cpu = {
            name: procstat.cpu_seconds(p) - others_before[name] for name, p in (others or {}).items()
        }
        if sampler is not None:
            sampler.stop()
            result.profile = summarise(sampler.output)
        assert first is not None
        if first[1] < committed:
            result.seconds, result.events_timed = end - first[0], committed - first[1]
            result.cpu_seconds, result.main_cpu_seconds = cpu_end - first[2], main_end - first[3]
        else:  # one batch held everything (a tiny smoke run): time from /healthz instead
            result.seconds, result.events_timed = end - healthy, committed
            result.cpu_seconds, result.main_cpu_seconds = cpu_end, main_end
        result.to_lag_zero_seconds = end - healthy
        result.rss_end = procstat.rss_bytes(pid)
        result.rss_peak = procstat.peak_rss_bytes(pid)
        result.metrics = _final_metrics(consumer, expected)
        if inspect is not None:
            inspect(consumer)
    finally:
        if sampler is not None:
            sampler.stop()
        result_code = consumer.stop()
        offsets.close()
    result.exit_code = result_code
    return result


def _final_metrics(consumer: ConsumerProcess, expected: int) -> dict[str, float]:
    """The consumer's own counters once the last batch is applied (applied right after its commit)."""
    deadline = time.monotonic() + 30
    while True:
        samples = consumer.samples()
        values: dict[str, float] = {}
        for name, labels, value in samples:
            if name in METRICS:
                key = name + "".join(f"{{{k}={v}}}" for k, v in sorted(labels.items()))
                values[key] = value
        handled = sum(v for k, v in values.items() if k.startswith("ingestion_consumer_messages_total"))
        if handled >= expected or time.monotonic() > deadline:
            return values
        time.sleep(0.1)
