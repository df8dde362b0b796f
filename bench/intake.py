"""Intake throughput: the real `ingestion-intake` process, POSTed to over keep-alive connections.

Single-event POSTs (what an OpenLineage client sends: one RunEvent per request, from several jobs at once)
and 1 000-event arrays, each timed from the first request to the last answer; every answer must be a 200
(every event acknowledged by Kafka). The clients run on the same machine and share its cores with the
intake and Kafka; their CPU is reported apart.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import urllib3

from bench.procstat import cpu_seconds
from bench.report import rates
from devstack.intake import IntakeProcess

LINEAGE = "/api/v1/lineage"
ARRAY = 1000
SINGLE_CLIENTS = 4  # concurrent reporters: several jobs report at once


def run_events(count: int, *, sources: int = 10, jobs: int = 50) -> Iterator[dict[str, Any]]:
    """`count` RunEvents: a START then a COMPLETE per run, runs spread over sources × jobs."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for index in range(count):
        run, end = divmod(index, 2)
        at = start + timedelta(seconds=run * 10 + end * 3)
        yield {
            "eventType": "COMPLETE" if end else "START",
            "eventTime": at.isoformat(),
            "producer": "https://example.com/bench",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
            "run": {"runId": str(uuid.UUID(int=run + 1)), "facets": {}},
            "job": {"namespace": f"source-{run % sources}", "name": f"job-{run % jobs}", "facets": {}},
            "inputs": [],
            "outputs": [],
        }


@dataclass(frozen=True)
class IntakeResult:
    events: int
    requests: int
    seconds: float
    intake_cpu_seconds: float
    client_cpu_seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            **rates(self.events, self.seconds, self.intake_cpu_seconds),  # cpu_us_per_event: the intake's
            "requests": self.requests,
            "events_per_request": self.events // self.requests,
            "client_cpu_us_per_event": round(1e6 * self.client_cpu_seconds / self.events, 2),
        }


def _post_all(url: str, bodies: list[bytes], clients: int) -> None:
    pool = urllib3.PoolManager(maxsize=clients, headers={"Content-Type": "application/json"})
    errors: list[str] = []

    def client(share: list[bytes]) -> None:
        for body in share:
            resp = pool.request("POST", url, body=body, retries=False, timeout=60)
            if resp.status != 200:
                errors.append(f"HTTP {resp.status}: {resp.data[:300]!r}")
                return

    threads = [threading.Thread(target=client, args=(bodies[i::clients],)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pool.clear()
    if errors:
        raise RuntimeError(f"intake bench: {len(errors)} request(s) failed, first: {errors[0]}")


def measure(
    intake: IntakeProcess, events: list[dict[str, Any]], per_request: int, clients: int
) -> IntakeResult:
    """POST `events` in requests of `per_request` (1: one object per request, else JSON arrays)."""
    if per_request == 1:
        bodies = [orjson.dumps(event) for event in events]
    else:
        bodies = [orjson.dumps(events[i : i + per_request]) for i in range(0, len(events), per_request)]
    intake_cpu, started, client_cpu = cpu_seconds(intake.pid), time.perf_counter(), time.process_time()
    _post_all(f"{intake.url}{LINEAGE}", bodies, clients)
    seconds = time.perf_counter() - started
    return IntakeResult(
        len(events),
        len(bodies),
        seconds,
        cpu_seconds(intake.pid) - intake_cpu,
        time.process_time() - client_cpu,
    )


def run(work: Path, bootstrap: str, topic: str, events: int, single_events: int) -> dict[str, Any]:
    """Both shapes against one intake process; events/s of each."""
    batch = list(run_events(events))
    singles = batch[:single_events]
    with IntakeProcess.start(
        work / "intake.log", bootstrap, topic, extra_args=["--log-level=WARNING"]
    ) as intake:
        intake.wait_ready()
        measure(
            intake, singles[: min(200, len(singles))], 1, SINGLE_CLIENTS
        )  # warm-up: connections, metadata
        single = measure(intake, singles, 1, SINGLE_CLIENTS)
        arrays = measure(intake, batch, ARRAY, 2)
    return {
        "single": {**single.as_dict(), "clients": SINGLE_CLIENTS},
        "arrays": {**arrays.as_dict(), "clients": 2},
    }
