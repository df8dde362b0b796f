"""Series exported for a dataset of S sources × O objets, and what a scrape of /metrics costs."""

from __future__ import annotations

import statistics
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import consumer as consumer_bench
from bench import producer
from devstack.consumer import ConsumerProcess
from devstack.localstack import LocalStack
from devstack.prometheus import CONSUMER_JOB


@dataclass
class Cardinality:
    sources: int
    objets_per_source: int
    runs: int
    series_total: int = 0
    series_ingestion: int = 0
    pairs: int = 0
    body_bytes: int = 0
    scrape_ms: list[float] = field(default_factory=list)
    prometheus: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sources": self.sources,
            "objets_per_source": self.objets_per_source,
            "runs": self.runs,
            "source_objet_pairs": self.pairs,
            "series_total": self.series_total,
            "series_ingestion": self.series_ingestion,
            "series_per_pair": round(self.series_ingestion / self.pairs, 1) if self.pairs else 0,
            "metrics_body_kb": round(self.body_bytes / 1024, 1),
            "scrape_ms_median": round(statistics.median(self.scrape_ms), 2),
            "scrape_ms_max": round(max(self.scrape_ms), 2),
            "scrapes": len(self.scrape_ms),
            "prometheus": self.prometheus,
        }


def measure(
    services: LocalStack,
    work: Path,
    *,
    runs_per_pair: int = 10,
    sources: int = 10,
    objets_per_source: int = 50,
    scrapes: int = 20,
) -> Cardinality:
    pairs = sources * objets_per_source
    result = Cardinality(sources, objets_per_source, runs_per_pair * pairs)
    path = producer.cardinality_file(work / "cardinality.ndjson", result.runs, sources, objets_per_source)
    topic = services.create_topic("bench-cardinality")
    producer.publish(services.kafka.bootstrap_servers, topic, path, result.runs)

    def inspect(consumer: ConsumerProcess) -> None:
        for _ in range(scrapes):
            started = time.perf_counter()
            with urllib.request.urlopen(f"{consumer.url}/metrics", timeout=30) as resp:
                body = resp.read()
            result.scrape_ms.append(1000 * (time.perf_counter() - started))
        result.body_bytes = len(body)
        lines = [line for line in body.decode().splitlines() if line and not line.startswith("#")]
        result.series_total = len(lines)
        result.series_ingestion = sum(line.startswith("ingestion_") for line in lines)
        result.pairs = sum(line.startswith("ingestion_duration_seconds_count{") for line in lines)
        result.prometheus = _prometheus_view(services, consumer)

    consumer_bench.run(
        work / "consumer-cardinality.log",
        services.kafka.bootstrap_servers,
        services.logstore.push_url,
        topic,
        result.runs,
        group="bench-cardinality",
        inspect=inspect,
    )
    return result


def _prometheus_view(services: LocalStack, consumer: ConsumerProcess) -> dict[str, float]:
    """What the real Prometheus sees scraping the consumer every second: series, scrape duration."""
    prometheus = services.prometheus
    prometheus.reload(jobs={CONSUMER_JOB: [consumer.target]})
    job = f'job="{CONSUMER_JOB}"'
    prometheus.wait_for(f"count_over_time(scrape_samples_scraped{{{job}}}[1m]) >= 5", timeout=60)

    def value(promql: str) -> float:
        result = prometheus.query(promql)
        return float(result[0]["value"][1]) if result else 0.0

    view = {
        "scrape_samples_scraped": value(f"scrape_samples_scraped{{{job}}}"),
        "series_in_tsdb": value(f"count({{{job}}})"),
        "scrape_duration_ms_avg": 1000 * value(f"avg_over_time(scrape_duration_seconds{{{job}}}[1m])"),
        "scrape_duration_ms_max": 1000 * value(f"max_over_time(scrape_duration_seconds{{{job}}}[1m])"),
    }
    prometheus.reload(jobs={})
    return {k: round(v, 2) for k, v in view.items()}
