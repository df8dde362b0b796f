"""The targets, checked against a run's results, and the rows of a run: each figure with the limit measured in
the same run and its ratio to it. `table` prints them at the end of `make bench`; `bench.page` writes them to
docs/benchmarks.md."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CONSUMER_EPS = 50_000
CONSUMER_RATIO = 0.33
PRODUCER_EPS = 30_000
INTAKE_ARRAY_RATIO = 0.5  # 1000-event arrays: at least half the bare kafka-python producer
RSS_MAX_MB = 200
RSS_FLAT_MAX_GROWTH = 0.10  # "flat": at most 10 % more RSS after M events than after N
OPERATOR_SECONDS = 60
NOTIFICATION_MARGIN_S = 2  # issue 16: p95 within 2 s of batch window + scrape + evaluation + group_wait


def rates(events: int, seconds: float, cpu_seconds: float) -> dict[str, Any]:
    """Throughput figures every measurement reports the same way."""
    return {
        "events": events,
        "seconds": round(seconds, 3),
        "events_per_second": round(events / seconds),
        "us_per_event": round(1e6 * seconds / events, 2),
        "cpu_us_per_event": round(1e6 * cpu_seconds / events, 2),
    }


def _target(name: str, target: str, measured: Any, met: bool | None) -> dict[str, Any]:
    return {"name": name, "target": target, "measured": measured, "met": met}


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets of the sections `results` holds (a run may skip some)."""
    targets = []
    consumer = results.get("consumer")
    if consumer:
        eps = consumer["events_per_second"]
        targets.append(
            _target("consumer end to end", f">= {CONSUMER_EPS} events/s", eps, eps >= CONSUMER_EPS)
        )
        ratio = consumer["ratio_to_raw"]
        targets.append(
            _target("consumer / raw poll loop", f">= {CONSUMER_RATIO}", ratio, ratio >= CONSUMER_RATIO)
        )
    if "producer" in results:
        eps = results["producer"]["events_per_second"]
        targets.append(_target("producer acks=all", f">= {PRODUCER_EPS} events/s", eps, eps >= PRODUCER_EPS))
    if "ratio_to_raw_producer" in results.get("intake", {}).get("arrays", {}):
        ratio = results["intake"]["arrays"]["ratio_to_raw_producer"]
        targets.append(
            _target(
                "intake arrays / raw producer", f">= {INTAKE_ARRAY_RATIO}", ratio, ratio >= INTAKE_ARRAY_RATIO
            )
        )
    for key, suffix in (("memory", ""), ("memory_malloc_tuned", ", tuned malloc")):
        memory = results.get(key)
        if not memory:
            continue
        marks = list(memory["rss_after_mb"].values())
        worst = max([memory["rss_peak_mb"], *marks])
        targets.append(_target(f"consumer RSS{suffix}", f"< {RSS_MAX_MB} MB", worst, worst < RSS_MAX_MB))
        if len(marks) >= 2:
            growth = (marks[-1] - marks[0]) / marks[0]
            events = list(memory["rss_after_mb"])
            targets.append(
                _target(
                    f"consumer RSS flat{suffix}",
                    f"<= {RSS_FLAT_MAX_GROWTH:.0%} growth {events[0]} → {events[-1]} events",
                    f"{growth:+.1%}",
                    growth <= RSS_FLAT_MAX_GROWTH,
                )
            )
    for name, measured in results.get("notification", {}).items():
        over = measured["p95_minus_limit_s"]
        targets.append(
            _target(
                f"time to notification p95, {name}",
                f"<= limit + {NOTIFICATION_MARGIN_S} s",
                over,
                over <= NOTIFICATION_MARGIN_S,
            )
        )
    operator = results.get("operator")
    if operator and not operator.get("skipped"):
        seconds = operator["ready_seconds"]
        targets.append(
            _target(
                f"operator {operator['sources']} sources Ready",
                f"< {OPERATOR_SECONDS} s",
                seconds,
                seconds < OPERATOR_SECONDS,
            )
        )
    return targets


def n(value: float) -> str:
    """`1 234 567`: thousands apart, as the tables print counts and rates."""
    return f"{value:,.0f}".replace(",", " ")


def eps(value: float) -> str:
    return f"{n(value)} ev/s"


@dataclass(frozen=True)
class Row:
    """One figure of a run. `limit`: the physical limit it is compared with, measured in the same run (empty
    where there is none); `ratio`: the figure over that limit; `target`: the goal and whether it is met."""

    measure: str
    measured: str
    limit: str = ""
    ratio: str = ""
    target: str = ""
    note: str = ""

    def cells(self) -> list[str]:
        return [self.measure, self.measured, self.limit, self.ratio, self.target, self.note]


HEADER = ["measure", "measured", "limit (same run)", "ratio", "target", "notes"]


class _Rows:
    def __init__(self, results: dict[str, Any]) -> None:
        self.out: list[Row] = []
        self.targets = {t["name"]: t for t in evaluate_targets(results)}

    def add(self, measure: str, measured: str, *, target: str | tuple[str, ...] = (), **fields: str) -> None:
        names = (target,) if isinstance(target, str) else target
        wanted = [self.targets[name] for name in names if name in self.targets]
        text = "; ".join(f"{t['target']} ({'met' if t['met'] else 'NOT met'})" for t in wanted)
        self.out.append(Row(measure, measured, target=text, **fields))


def _ratio(value: float) -> str:
    return f"{value:.2f}"


def _consumer(rows: _Rows, results: dict[str, Any]) -> None:
    raw, consumer = results["raw_poll"], results["consumer"]
    limit = f"{eps(raw['events_per_second'])} (raw poll loop)"
    runs = ", ".join(n(v) for v in raw.get("runs_events_per_second", []))
    rows.add(
        "raw kafka-python poll loop (the consumer's limit)",
        eps(raw["events_per_second"]),
        note=f"{raw['us_per_event']} µs/event, {raw['cpu_us_per_event']} CPU µs/event"
        + (f"; best of {runs} ev/s" if runs else ""),
    )
    services = ", ".join(f"{k} {v}" for k, v in consumer["services_cpu_us_per_event"].items())
    rows.add(
        "consumer end to end (real log store: VictoriaLogs)",
        eps(consumer["events_per_second"]),
        limit=limit,
        ratio=_ratio(consumer["ratio_to_raw"]),
        target=("consumer end to end", "consumer / raw poll loop"),
        note=f"{consumer['us_per_event']} µs/event; CPU µs/event: consumer {consumer['cpu_us_per_event']}, "
        + services,
    )
    if "consumer_null_loki" in results:
        alone = results["consumer_null_loki"]
        rows.add(
            "consumer, log store replaced by a null sink",
            eps(alone["events_per_second"]),
            limit=limit,
            ratio=_ratio(alone["ratio_to_raw"]),
            note=f"{alone['cpu_us_per_event']} CPU µs/event: the consumer's own limit",
        )
    if "loki_push_ms_avg" in consumer:
        rows.add(
            "log-store push of one batch",
            f"{consumer['loki_push_ms_avg']} ms",
            note=f"{n(consumer['loki_lines_per_push'])} lines per push, two pushes in flight while the next "
            "batch is staged",
        )
    if "transaction_ms_avg" in consumer:
        rows.add(
            "Kafka transaction per batch",
            f"{consumer['transaction_ms_avg']} ms",
            note=f"{n(consumer['transactions'])} transactions (dead letters, state records, offsets, "
            f"commit); changelog {consumer['changelog_bytes_per_event']} bytes/event",
        )
    rows.add(
        "consumer CPU: events/s on one core",
        eps(consumer["one_core_events_per_second"]),
        note=f"1e6 / {consumer['cpu_us_per_event']} CPU µs/event (all its threads); its loop alone (main "
        f"thread, {consumer['main_thread_cpu_us_per_event']} µs/event): "
        f"{eps(consumer['main_thread_events_per_second'])}",
    )
    bound = consumer["machine_cpu_bound_events_per_second"]
    cores = results["environment"]["host_cpus"]
    rows.add(
        "whole pipeline, CPU bound of this machine",
        eps(bound),
        note=f"{cores} cores / (consumer + log store + Kafka CPU per event); the consumer end to end reached "
        f"{_ratio(consumer['events_per_second'] / bound)} of it",
    )


def _producer(rows: _Rows, results: dict[str, Any]) -> None:
    prod = results["producer"]
    raw = results.get("raw_produce")
    limit = f"{eps(raw['events_per_second'])} (raw producer)" if raw else ""
    if raw:
        rows.add(
            "raw kafka-python producer (the producer's limit)",
            eps(raw["events_per_second"]),
            note=f"pre-encoded events, the CLI's KafkaProducer; {raw['cpu_us_per_event']} CPU µs/event",
        )
    rows.add(
        f"producer acks=all, idempotent ({n(prod['events'])} events)",
        eps(prod["events_per_second"]),
        limit=limit,
        ratio=_ratio(prod["events_per_second"] / raw["events_per_second"]) if raw else "",
        target="producer acks=all",
        note=f"{prod['cpu_us_per_event']} CPU µs/event, whole CLI run",
    )
    if "producer_memory_run" in results:
        big = results["producer_memory_run"]
        rows.add(
            f"producer ({n(big['events'])} events)",
            eps(big["events_per_second"]),
            limit=limit,
            ratio=_ratio(big["events_per_second"] / raw["events_per_second"]) if raw else "",
            note=f"{big['cpu_us_per_event']} CPU µs/event; the input of the memory run",
        )


def _intake(rows: _Rows, results: dict[str, Any]) -> None:
    raw = results["raw_produce"]
    limit = f"{eps(raw['events_per_second'])} (raw producer)"
    single, arrays = results["intake"]["single"], results["intake"]["arrays"]
    rows.add(
        "intake, single-event POSTs",
        eps(single["events_per_second"]),
        limit=limit,
        ratio=_ratio(single["events_per_second"] / raw["events_per_second"]),
        note=f"{single['clients']} clients, keep-alive; {single['cpu_us_per_event']} intake CPU µs/event",
    )
    rows.add(
        f"intake, {n(arrays['events_per_request'])}-event arrays",
        eps(arrays["events_per_second"]),
        limit=limit,
        ratio=_ratio(arrays["events_per_second"] / raw["events_per_second"]),
        target="intake arrays / raw producer",
        note=f"{arrays['clients']} clients; {arrays['cpu_us_per_event']} intake CPU µs/event",
    )


def _restore(rows: _Rows, results: dict[str, Any]) -> None:
    for restored in results["restore"]:
        rows.add(
            f"restore of {n(restored['series'])} series",
            f"{restored['restore_seconds']} s",
            note=f"{n(restored['states'])} objet states; spawn to ready "
            f"{restored['spawn_to_ready_seconds']} s; {n(restored['changelog_bytes_per_state'])} changelog "
            "bytes per state",
        )


def _memory(rows: _Rows, results: dict[str, Any]) -> None:
    for key, suffix in (("memory", ""), ("memory_malloc_tuned", ", tuned malloc")):
        if key not in results:
            continue
        m = results[key]
        marks = ", ".join(f"{v} after {n(int(k))}" for k, v in m["rss_after_mb"].items())
        env = " ".join(f"{k}={v}" for k, v in m.get("env", {}).items())
        rows.add(
            f"consumer RSS{suffix}",
            f"{m['rss_peak_mb']} MB peak",
            target=f"consumer RSS{suffix}",
            note=f"MB: {m['rss_start_mb']} at start, {marks}" + (f" ({env})" if env else ""),
        )
        flat = rows.targets.get(f"consumer RSS flat{suffix}")
        rows.add(
            f"consumer RSS growth{suffix}",
            str(flat["measured"]) if flat else "",
            target=f"consumer RSS flat{suffix}",
            note=f"{eps(m['events_per_second'])} over {n(m['events'])} events",
        )


def _cardinality(rows: _Rows, results: dict[str, Any]) -> None:
    c = results["cardinality"]
    rows.add(
        f"series, {c['sources']} sources × {c['objets_per_source']} objets",
        n(c["series_ingestion"]),
        note=f"ingestion_* ({c['series_per_pair']} per pair); {n(c['series_total'])} in /metrics, "
        f"{c['metrics_body_kb']} KiB",
    )
    rows.add(
        "scrape of /metrics",
        f"{c['scrape_ms_median']} ms",
        note=f"median of {c['scrapes']}; Prometheus scrape_duration_seconds "
        f"{c['prometheus'].get('scrape_duration_ms_avg', 0)} ms",
    )


def _notification(rows: _Rows, results: dict[str, Any]) -> None:
    for name, m in results["notification"].items():
        t = m["timings"]
        rows.add(
            f"time to notification, {name}: p95",
            f"{m['p95_s']} s",
            limit=f"{m['limit_s']} s (batch {t['batch_window_s']} s + scrape {t['scrape']} + evaluation "
            f"{t['evaluation']} + group_wait {t['group_wait']})",
            ratio=_ratio(m["p95_s"] / m["limit_s"]),
            target=f"time to notification p95, {name}",
            note=f"p50 {m['p50_s']} s, max {m['max_s']} s over {m['runs']} runs; publication → firing "
            f"{m['to_firing_p50_s']} s, firing → webhook {m['firing_to_webhook_p50_s']} s (p50)",
        )


def _operator(rows: _Rows, results: dict[str, Any]) -> None:
    operator = results["operator"]
    if operator.get("skipped"):
        rows.add("operator", "skipped", note=operator["reason"])
        return
    render = operator["render_ms_per_source"]
    count = operator["sources"]
    rows.add(
        f"operator: {count} IngestionSources Ready",
        f"{operator['ready_seconds']} s",
        target=f"operator {count} sources Ready",
        note=f"{operator['operator_cpu_ms_per_source']} operator CPU ms/source",
    )
    rows.add(
        "render rules + dashboard of one source",
        f"{render['total_ms']} ms",
        note=f"rules {render['rules_ms']} ms, dashboard {render['dashboard_ms']} ms",
    )


# section of the results → its rows, in the table's order; a run that skipped a section has no rows for it
SECTIONS = (
    ("consumer", _consumer),
    ("producer", _producer),
    ("intake", _intake),
    ("restore", _restore),
    ("memory", _memory),
    ("cardinality", _cardinality),
    ("notification", _notification),
    ("operator", _operator),
)


def rows(results: dict[str, Any]) -> list[Row]:
    """Every figure of the run, each with its limit and ratio where the run measured one."""
    out = _Rows(results)
    for key, add in SECTIONS:
        if key in results:
            add(out, results)
    return out.out


def _grid(header: list[str], body: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in body)])


def headline(results: dict[str, Any]) -> str:
    """Date, machine, load and sizes of a run, in one line (what the figures depend on)."""
    env, config = results["environment"], results.get("config", {})
    parts = [env["date"].replace("T", " ").removesuffix("+00:00")]
    if "host_cpus" in env:
        parts.append(f"{env['host_cpus']} CPUs")
    if "load_average_start" in env and "load_average_end" in env:
        parts.append(
            f"load average {env['load_average_start'][0]:.2f} at start and "
            f"{env['load_average_end'][0]:.2f} at the end"
        )
    if "events" in config:
        parts.append(f"N = {n(config['events'])} events (memory run {n(config['memory_events'])})")
    if "crc32c_in_c" in env:
        parts.append(f"crc32c in C: {env['crc32c_in_c']}")
    return ", ".join(parts)


def table(results: dict[str, Any]) -> str:
    body = [row.cells() for row in rows(results)]
    out = [f"Benchmark {headline(results)}", "", _grid(HEADER, body)]
    if "profile" in results:
        out += ["", "consumer main thread, wall-clock profile (py-spy, idle included), self time:"]
        out += [f"  {e['percent']:5.1f} %  {e['function']}" for e in results["profile"]["self"][:12]]
    if results.get("producer_profile"):
        out += ["", "producer, all threads, CPU profile (py-spy), self time:"]
        out += [f"  {e['percent']:5.1f} %  {e['function']}" for e in results["producer_profile"]["self"][:12]]
    return "\n".join(out)


def markdown_table(header: list[str], body: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header), *(line(r) for r in body)])


def markdown(results: dict[str, Any]) -> str:
    """The run's table in Markdown, as docs/benchmarks.md shows it."""
    return markdown_table(HEADER, [row.cells() for row in rows(results)])
