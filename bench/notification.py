"""Time to notification: from a FAILED run's publication (acknowledged by Kafka) to its arrival at the
webhook receiver, through the consumer, Prometheus (the rendered rules), Alertmanager (the rendered routes).

Its physical limit is the sum of the waits on the path, each taken whole in the worst case: the consumer's
batch window, the scrape interval, the evaluation interval and Alertmanager's group_wait. Each run is its
own source, so its own Alertmanager group; the runs are spread over the longest interval so that every
phase of the scrape and evaluation cycles is sampled.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaProducer

from devstack.inbox import InboxServer
from devstack.localstack import ConsumerOptions, LocalStack, PrometheusOptions, running
from ingestion_observability.consumer.pipeline import BatchLimits
from ingestion_observability.event import normalise
from ingestion_observability.producer.publisher import event_key
from ingestion_observability.render import RenderConfig
from ingestion_observability.render.config import Notifications, duration_seconds


@dataclass(frozen=True)
class Timings:
    name: str
    scrape: str
    evaluation: str
    group_wait: str

    def limit(self) -> float:
        waits = (self.scrape, self.evaluation, self.group_wait)
        return BatchLimits().max_seconds + sum(duration_seconds(w) for w in waits)


DEMO = Timings("demo", scrape="2s", evaluation="2s", group_wait="2s")
# kube-prometheus-stack's scrape interval, the chart's evaluationInterval, the render config's group_wait
CHART = Timings("chart defaults", scrape="30s", evaluation="30s", group_wait=Notifications().group_wait)


def _failed_run(source: str) -> dict[str, Any]:
    end = datetime.now(UTC)
    return normalise(
        {
            "ID": 1,
            "Source": source,
            "Objet": "bench",
            "Etat": "FAILED",
            "Debut": end.isoformat(),
            "Fin": end.isoformat(),
            "Duree secondes": 0.0,
            "cpu_time": 0.0,
            "memory_used": 0.0,
            "Description": "bench: time to notification",
        }
    )


def measure(services: LocalStack, work: Path, timings: Timings, runs: int = 20) -> dict[str, Any]:
    """p50/p95/max of `runs` failures' time to notification, and their distance to the limit."""
    work = work / f"notification-{timings.scrape}"
    topic = f"bench-notify-{duration_seconds(timings.scrape)}"
    with (
        running(
            work,
            kafka=services.kafka,
            logstore=services.logstore,
            topic=topic,
            consumer=ConsumerOptions(group_id=topic),
            prometheus=PrometheusOptions(
                scrape_interval=timings.scrape, evaluation_interval=timings.evaluation
            ),
            alerting=RenderConfig(
                notifications=Notifications(group_wait=timings.group_wait, group_interval="5m")
            ),
        ) as stack,
        contextlib.closing(
            KafkaProducer(bootstrap_servers=stack.kafka.bootstrap_servers, acks="all")
        ) as producer,
    ):
        spacing = max(duration_seconds(timings.scrape), duration_seconds(timings.evaluation)) / runs
        published: dict[str, float] = {}
        for i in range(runs):
            event = _failed_run(f"bench-notify-{i:02d}")
            producer.send(topic, key=event_key(event), value=orjson.dumps(event)).get(timeout=30)
            published[event["source"]["name"]] = time.time()
            time.sleep(spacing)
        received = _wait_for(stack.inbox, set(published), timeout=timings.limit() + 60)
    latencies = sorted(received[source][0] - published[source] for source in published)
    # the alert's startsAt is the evaluation that fired it: the path splits there
    firing = [received[source][1] - published[source] for source in published]
    sending = [received[source][0] - received[source][1] for source in published]
    p95 = statistics.quantiles(latencies, n=20, method="inclusive")[18]
    limit = timings.limit()
    return {
        "timings": {
            "batch_window_s": BatchLimits().max_seconds,
            "scrape": timings.scrape,
            "evaluation": timings.evaluation,
            "group_wait": timings.group_wait,
        },
        "runs": runs,
        "p50_s": round(statistics.median(latencies), 2),
        "p95_s": round(p95, 2),
        "max_s": round(latencies[-1], 2),
        "limit_s": limit,
        "p95_minus_limit_s": round(p95 - limit, 2),
        # publication → the firing evaluation (batch, scrape, evaluation), then → the webhook (group_wait)
        "to_firing_p50_s": round(statistics.median(firing), 2),
        "firing_to_webhook_p50_s": round(statistics.median(sending), 2),
    }


def _wait_for(inbox: InboxServer, sources: set[str], timeout: float) -> dict[str, tuple[float, float]]:
    """When each source's first firing notification arrived, and its alert's startsAt (epoch seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        received: dict[str, tuple[float, float]] = {}
        for notification in inbox.notifications():
            source = notification["groupLabels"].get("source")
            if notification["status"] == "firing" and source in sources and source not in received:
                starts = datetime.fromisoformat(notification["alerts"][0]["startsAt"]).timestamp()
                received[source] = (notification["received_at"], starts)
        if set(received) == sources or time.monotonic() > deadline:
            missing = sources - set(received)
            if missing:
                raise TimeoutError(f"no notification for {sorted(missing)} after {timeout:.0f}s")
            return received
        time.sleep(0.2)
