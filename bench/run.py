"""`make bench`: one run on the real local services, a table on stdout, the figures as JSON and the page.

    python -m bench.run --events 200000 --memory-events 1000000 --out bench/results.json

Written to bench/results.json, the run then rewrites docs/benchmarks.md from the results files (`bench.page`);
written elsewhere (`--out`), only `--page` writes a page, from the results files of that directory.

Sections: producer (acks=all), the raw kafka-python poll loop (the limit), the consumer end to end and its
ratio to the raw loop, consumer memory, series and scrape cost of a 10 × 50 dataset, time to notification,
the operator.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from bench import cardinality, kafka_raw, notification, operator, procstat, producer, restore
from bench import consumer as consumer_bench
from bench import intake as intake_bench
from bench.null_loki import NullLoki
from bench.page import PAGE, RESULTS
from bench.page import write as write_page
from bench.report import evaluate_targets, markdown, table
from devstack.localstack import PARTITIONS, PrometheusOptions, running
from ingestion_observability.consumer.clients import KAFKA_CONSUMER_CONFIG

# glibc's malloc as the consumer image may set it: two arenas instead of one per thread, and large buffers
# (Loki payloads, fetch responses) always in their own mappings, given back when freed.
MALLOC_TUNED = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": "131072"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=200_000, help="events for the throughput runs")
    parser.add_argument(
        "--memory-events",
        type=int,
        default=1_000_000,
        help="events for the memory run (RSS after --events and after this many)",
    )
    parser.add_argument("--cardinality-runs", type=int, default=10, help="runs per (source, objet) pair")
    parser.add_argument("--operator-sources", type=int, default=200, help="IngestionSources to reconcile")
    parser.add_argument("--notification-runs", type=int, default=20, help="failures timed to the webhook")
    parser.add_argument(
        "--notification-settings",
        type=int,
        choices=(1, 2),
        default=2,
        help="1: the demo's timings only; 2: also the chart's defaults (30 s intervals: the slow part)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results")
    parser.add_argument(
        "--page",
        type=Path,
        help=f"the page to write from the results files of --out's directory (default: {PAGE.name} in docs/ "
        "when --out is bench/results.json, none otherwise)",
    )
    parser.add_argument("--note", help="why this run was made (kept in the results, shown on the page)")
    parser.add_argument("--work-dir", type=Path, help="service data and logs (default: a temp dir, removed)")
    parser.add_argument(
        "--profile", action="store_true", help="attach py-spy to the consumer of the throughput run"
    )
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    parser.add_argument(
        "--restore-series",
        type=int,
        action="append",
        help="series whose state a consumer restores from the changelog (repeatable; default 1000, 100000)",
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["operator", "memory", "cardinality", "restore", "notification"],
    )
    return parser


def environment() -> dict[str, Any]:
    from kafka.record import util as kafka_record_util

    crc = getattr(kafka_record_util, "crc32c_c", None)
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host_cpus": os.cpu_count(),
        "load_average_start": [round(v, 2) for v in procstat.load_average()],
        "python": platform.python_version(),
        "kafka_python": importlib.metadata.version("kafka-python"),
        "crc32c_in_c": crc is not None and kafka_record_util._crc32c is crc,
    }


@contextlib.contextmanager
def work_dir(path: Path | None) -> Iterator[Path]:
    if path is not None:  # kept afterwards for the logs, but every run starts from empty services
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        yield path.resolve()
        return
    temp = Path(tempfile.mkdtemp(prefix="ingestion-bench-"))
    try:
        yield temp
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def step(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"environment": environment()}
    if args.note:
        results["environment"]["note"] = args.note
    results["config"] = {
        "events": args.events,
        "memory_events": args.memory_events,
        "partitions": PARTITIONS,
        "log_store": "VictoriaLogs (Loki push API)",
        "consumer_kafka_config": KAFKA_CONSUMER_CONFIG,
    }
    with work_dir(args.work_dir) as work:
        step(f"starting Kafka, VictoriaLogs, Prometheus in {work}")
        with running(
            work, logstore_log_level="WARN", prometheus=PrometheusOptions(scrape_interval="1s")
        ) as services:
            bootstrap = services.kafka.bootstrap_servers
            step(f"generating {args.events} records (ingestion-producer --generate --output)")
            events_file = producer.generate_file(work / "events.ndjson", args.events)
            topic = services.create_topic("bench-events")
            step("producer: publishing them (acks=all, idempotent)")
            published = producer.publish(bootstrap, topic, events_file, args.events)
            results["producer"] = published.as_dict()
            if args.profile:  # again, under py-spy (a profiled run is not the measured one)
                step("producer under py-spy")
                profile_topic = services.create_topic("bench-producer-profile")
                profiled = producer.publish(
                    bootstrap, profile_topic, events_file, args.events, profile=work / "producer-profile.txt"
                )
                results["producer_profile"] = profiled.profile
            step("raw kafka-python producer (pre-encoded events, the producer's settings)")
            encoded = kafka_raw.encoded_events(events_file)
            raw_produce = kafka_raw.produce_loop(
                bootstrap, services.create_topic("bench-raw-produce"), encoded
            )
            del encoded
            results["raw_produce"] = raw_produce.as_dict()
            results["producer"]["ratio_to_raw"] = round(
                results["producer"]["events_per_second"] / raw_produce.events_per_second, 3
            )
            step("intake: single-event POSTs and 1000-event arrays of RunEvents")
            results["intake"] = intake_bench.run(
                work, bootstrap, services.create_topic("bench-intake"), args.events, min(args.events, 5_000)
            )
            for shape in ("single", "arrays"):
                results["intake"][shape]["ratio_to_raw_producer"] = round(
                    results["intake"][shape]["events_per_second"] / raw_produce.events_per_second, 3
                )

            step("raw kafka-python poll loop")
            raw = [kafka_raw.poll_loop(bootstrap, topic, args.events, KAFKA_CONSUMER_CONFIG)]
            step("consumer end to end (real log store: VictoriaLogs)")
            run_ = consumer_bench.run(
                work / "consumer-throughput.log",
                bootstrap,
                services.logstore.push_url,
                topic,
                args.events,
                group="bench-throughput",
                profile=work / "profile.txt" if args.profile else None,
                others={"logstore": services.logstore.pid, "kafka": services.kafka.pid},
            )
            step("consumer, Loki replaced by a null sink (the consumer's own limit)")
            with NullLoki() as null_loki:
                alone = consumer_bench.run(
                    work / "consumer-null-loki.log",
                    bootstrap,
                    null_loki.url,
                    topic,
                    args.events,
                    group="bench-null-loki",
                    others={"kafka": services.kafka.pid},
                )
            step("raw kafka-python poll loop again")
            raw.append(kafka_raw.poll_loop(bootstrap, topic, args.events, KAFKA_CONSUMER_CONFIG))
            best = max(raw, key=lambda r: r.events_per_second)
            results["raw_poll"] = {
                **best.as_dict(),
                "runs_events_per_second": [round(r.events_per_second) for r in raw],
            }
            throughput = run_.throughput()
            metrics = throughput["metrics"]
            pushes = metrics.get("ingestion_consumer_loki_push_seconds_count", 0) or 1
            throughput["loki_push_ms_avg"] = round(
                1000 * metrics.get("ingestion_consumer_loki_push_seconds_sum", 0) / pushes, 1
            )
            throughput["loki_lines_per_push"] = round(
                metrics.get("ingestion_consumer_loki_entries_total", 0) / pushes
            )
            transactions = metrics.get("ingestion_consumer_transaction_seconds_count", 0) or 1
            throughput["transactions"] = int(transactions)
            throughput["transaction_ms_avg"] = round(
                1000 * metrics.get("ingestion_consumer_transaction_seconds_sum", 0) / transactions, 1
            )
            throughput["changelog_bytes_per_event"] = round(
                metrics.get("ingestion_consumer_changelog_bytes_total", 0) / run_.events, 1
            )
            cpu_total = throughput["cpu_us_per_event"] + sum(throughput["services_cpu_us_per_event"].values())
            results["consumer"] = {
                **throughput,
                "ratio_to_raw": round(run_.events_per_second / best.events_per_second, 3),
                "one_core_events_per_second": round(1e6 / throughput["cpu_us_per_event"]),
                "main_thread_events_per_second": round(1e6 / throughput["main_thread_cpu_us_per_event"]),
                "machine_cpu_bound_events_per_second": round((os.cpu_count() or 1) * 1e6 / cpu_total),
                "exit_code": run_.exit_code,
            }
            results["consumer_null_loki"] = {
                **alone.throughput(),
                "ratio_to_raw": round(alone.events_per_second / best.events_per_second, 3),
                "exit_code": alone.exit_code,
            }
            if run_.profile is not None:
                results["profile"] = run_.profile

            if "memory" not in args.skip:
                step(f"memory: generating and publishing {args.memory_events} records")
                memory_file = producer.generate_file(work / "memory.ndjson", args.memory_events)
                memory_topic = services.create_topic("bench-memory")
                results["producer_memory_run"] = producer.publish(
                    bootstrap, memory_topic, memory_file, args.memory_events
                ).as_dict()
                memory_file.unlink()
                marks = (args.events, (args.events + args.memory_events) // 2, args.memory_events)
                for name, env in (("memory", {}), ("memory_malloc_tuned", MALLOC_TUNED)):
                    settings = " ".join(f"{k}={v}" for k, v in env.items()) or "default malloc"
                    step(f"memory: consumer, {settings}")
                    mem = consumer_bench.run(
                        work / f"consumer-{name}.log",
                        bootstrap,
                        services.logstore.push_url,
                        memory_topic,
                        args.memory_events,
                        group=f"bench-{name}",
                        marks=marks,
                        env=env,
                    )
                    results[name] = {
                        **mem.memory(),
                        "env": env,
                        "events_per_second": round(mem.events_per_second),
                        "exit_code": mem.exit_code,
                    }

            if "restore" not in args.skip:
                results["restore"] = []
                for series in args.restore_series or (1_000, 100_000):
                    step(f"restore: the state of {series} series from the changelog")
                    results["restore"].append(restore.measure(services, work, series))

            if "notification" not in args.skip:
                results["notification"] = {}
                for timings in (notification.DEMO, notification.CHART)[: args.notification_settings]:
                    step(f"time to notification, {timings.name}: {args.notification_runs} failures")
                    results["notification"][timings.name] = notification.measure(
                        services, work, timings, args.notification_runs
                    )

            if "cardinality" not in args.skip:
                step("cardinality: 10 sources × 50 objets")
                results["cardinality"] = cardinality.measure(
                    services, work, runs_per_pair=args.cardinality_runs
                ).as_dict()

        if "operator" not in args.skip:
            step(f"operator: {args.operator_sources} IngestionSources")
            results["operator"] = operator.measure(work / "operator", args.operator_sources)
    results["environment"]["load_average_end"] = [round(v, 2) for v in procstat.load_average()]
    results["targets"] = evaluate_targets(results)
    return results


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    results = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    print(table(results))
    if args.markdown:
        print("\n" + markdown(results))
    print(f"\nJSON: {args.out}")
    page = args.page or (PAGE if args.out.resolve() == RESULTS else None)
    if page is not None:
        print(f"page: {write_page(page, args.out.resolve().parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
