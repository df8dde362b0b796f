"""The targets, checked against a run's results, and the table printed at the end of `make bench`."""

from __future__ import annotations

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
    targets = []
    consumer = results["consumer"]
    targets.append(
        _target(
            "consumer end to end",
            f">= {CONSUMER_EPS} events/s",
            consumer["events_per_second"],
            consumer["events_per_second"] >= CONSUMER_EPS,
        )
    )
    targets.append(
        _target(
            "consumer / raw poll loop",
            f">= {CONSUMER_RATIO}",
            consumer["ratio_to_raw"],
            consumer["ratio_to_raw"] >= CONSUMER_RATIO,
        )
    )
    eps = results["producer"]["events_per_second"]
    targets.append(_target("producer acks=all", f">= {PRODUCER_EPS} events/s", eps, eps >= PRODUCER_EPS))
    if "intake" in results:
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


def _n(value: float) -> str:
    return f"{value:,.0f}".replace(",", " ")


def rows(results: dict[str, Any]) -> list[list[str]]:
    """[measure, measured, target, note] for every figure of the run."""
    out: list[list[str]] = []
    targets = {t["name"]: t for t in results["targets"]}

    def add(measure: str, measured: str, note: str = "", target: str | None = None) -> None:
        wanted = ""
        if target in targets:
            wanted = f"{targets[target]['target']} ({'met' if targets[target]['met'] else 'NOT met'})"
        out.append([measure, measured, wanted, note])

    raw, consumer, prod = results["raw_poll"], results["consumer"], results["producer"]
    cores = results["environment"]["host_cpus"]
    add(
        "raw kafka-python poll loop (the limit)",
        f"{_n(raw['events_per_second'])} ev/s",
        f"{raw['us_per_event']} µs/event, {raw['cpu_us_per_event']} CPU µs/event",
    )
    services = ", ".join(f"{k} {v}" for k, v in consumer["services_cpu_us_per_event"].items())
    add(
        "consumer end to end (real log store: VictoriaLogs)",
        f"{_n(consumer['events_per_second'])} ev/s",
        f"{consumer['us_per_event']} µs/event; CPU µs/event: consumer {consumer['cpu_us_per_event']}, "
        + services,
        "consumer end to end",
    )
    add("consumer / raw poll loop", f"{consumer['ratio_to_raw']:.2f}", "", "consumer / raw poll loop")
    add(
        "log-store push of one batch",
        f"{consumer['loki_push_ms_avg']} ms",
        f"{_n(consumer['loki_lines_per_push'])} lines per push, two pushes in flight while the next batch "
        "is staged",
    )
    add(
        "Kafka transaction per batch",
        f"{consumer['transaction_ms_avg']} ms",
        f"{_n(consumer['transactions'])} transactions (dead letters, state records, offsets, commit); "
        f"changelog {consumer['changelog_bytes_per_event']} bytes/event",
    )
    for restored in results.get("restore", []):
        add(
            f"restore of {_n(restored['series'])} series",
            f"{restored['restore_seconds']} s",
            f"{_n(restored['states'])} objet states; spawn to ready {restored['spawn_to_ready_seconds']} s; "
            f"{_n(restored['changelog_bytes_per_state'])} changelog bytes per state",
        )
    add(
        "consumer CPU: events/s on one core",
        f"{_n(consumer['one_core_events_per_second'])} ev/s",
        f"1e6 / {consumer['cpu_us_per_event']} CPU µs/event (all its threads); its loop alone (main "
        f"thread, {consumer['main_thread_cpu_us_per_event']} µs/event): "
        f"{_n(consumer['main_thread_events_per_second'])} ev/s",
    )
    add(
        "whole pipeline, CPU bound of this machine",
        f"{_n(consumer['machine_cpu_bound_events_per_second'])} ev/s",
        f"{cores} cores / (consumer + log store + Kafka CPU per event)",
    )
    if "consumer_null_loki" in results:
        alone = results["consumer_null_loki"]
        add(
            "consumer, Loki replaced by a null sink",
            f"{_n(alone['events_per_second'])} ev/s",
            f"ratio {alone['ratio_to_raw']:.2f}, {alone['cpu_us_per_event']} CPU µs/event",
        )
    if "raw_produce" in results:
        rp = results["raw_produce"]
        add(
            "raw kafka-python producer (the producer's limit)",
            f"{_n(rp['events_per_second'])} ev/s",
            f"pre-encoded events, the CLI's KafkaProducer; {rp['cpu_us_per_event']} CPU µs/event",
        )
    add(
        f"producer acks=all, idempotent ({_n(prod['events'])} events)",
        f"{_n(prod['events_per_second'])} ev/s",
        f"{prod['cpu_us_per_event']} CPU µs/event, whole CLI run"
        + (f"; ratio to raw {prod['ratio_to_raw']:.2f}" if "ratio_to_raw" in prod else ""),
        "producer acks=all",
    )
    if "intake" in results:
        single, arrays = results["intake"]["single"], results["intake"]["arrays"]
        add(
            "intake, single-event POSTs",
            f"{_n(single['events_per_second'])} ev/s",
            f"{single['clients']} clients, keep-alive; {single['cpu_us_per_event']} intake CPU µs/event; "
            f"ratio {single['ratio_to_raw_producer']:.2f} to the raw producer",
        )
        add(
            f"intake, {_n(arrays['events_per_request'])}-event arrays",
            f"{_n(arrays['events_per_second'])} ev/s",
            f"{arrays['cpu_us_per_event']} intake CPU µs/event; ratio {arrays['ratio_to_raw_producer']:.2f} "
            "to the raw producer",
            "intake arrays / raw producer",
        )
    if "producer_memory_run" in results:
        big = results["producer_memory_run"]
        add(f"producer ({_n(big['events'])} events)", f"{_n(big['events_per_second'])} ev/s")
    for key, suffix in (("memory", ""), ("memory_malloc_tuned", ", tuned malloc")):
        if key not in results:
            continue
        m = results[key]
        marks = ", ".join(f"{v} after {_n(int(k))}" for k, v in m["rss_after_mb"].items())
        env = " ".join(f"{k}={v}" for k, v in m.get("env", {}).items())
        add(
            f"consumer RSS{suffix}",
            f"{m['rss_peak_mb']} MB peak",
            f"MB: {m['rss_start_mb']} at start, {marks}" + (f" ({env})" if env else ""),
            f"consumer RSS{suffix}",
        )
        flat = targets.get(f"consumer RSS flat{suffix}")
        add(
            f"consumer RSS growth{suffix}",
            str(flat["measured"]) if flat else "",
            f"{_n(m['events_per_second'])} ev/s over {_n(m['events'])} events",
            f"consumer RSS flat{suffix}",
        )
    if "cardinality" in results:
        c = results["cardinality"]
        add(
            f"series, {c['sources']} sources × {c['objets_per_source']} objets",
            _n(c["series_ingestion"]),
            f"ingestion_* ({c['series_per_pair']} per pair); {_n(c['series_total'])} in /metrics, "
            f"{c['metrics_body_kb']} KiB",
        )
        add(
            "scrape of /metrics",
            f"{c['scrape_ms_median']} ms",
            f"median of {c['scrapes']}; Prometheus scrape_duration_seconds "
            f"{c['prometheus'].get('scrape_duration_ms_avg', 0)} ms",
        )
    for name, n in results.get("notification", {}).items():
        t = n["timings"]
        add(
            f"time to notification, {name}",
            f"p50 {n['p50_s']} s, p95 {n['p95_s']} s",
            f"limit {n['limit_s']} s = batch {t['batch_window_s']} s + scrape {t['scrape']} + evaluation "
            f"{t['evaluation']} + group_wait {t['group_wait']}; max {n['max_s']} s over {n['runs']} runs",
            f"time to notification p95, {name}",
        )
    operator = results.get("operator")
    if operator and operator.get("skipped"):
        add("operator", "skipped", operator["reason"])
    elif operator:
        render = operator["render_ms_per_source"]
        count = operator["sources"]
        add(
            f"operator: {count} IngestionSources Ready",
            f"{operator['ready_seconds']} s",
            f"{operator['operator_cpu_ms_per_source']} operator CPU ms/source",
            f"operator {count} sources Ready",
        )
        add(
            "render rules + dashboard of one source",
            f"{render['total_ms']} ms",
            f"rules {render['rules_ms']} ms, dashboard {render['dashboard_ms']} ms",
        )
    return out


def _grid(header: list[str], body: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in body)])


def headline(results: dict[str, Any]) -> str:
    env, config = results["environment"], results["config"]
    return (
        f"{env['date']}, {env['host_cpus']} CPUs, load average {env['load_average_start'][0]:.2f} at start "
        f"and {env['load_average_end'][0]:.2f} at the end, N = {_n(config['events'])} events "
        f"(memory run {_n(config['memory_events'])}), crc32c in C: {env['crc32c_in_c']}"
    )


def table(results: dict[str, Any]) -> str:
    out = [f"Benchmark {headline(results)}", "", _grid(["measure", "measured", "target", ""], rows(results))]
    if "profile" in results:
        out += ["", "consumer main thread, wall-clock profile (py-spy, idle included), self time:"]
        out += [f"  {e['percent']:5.1f} %  {e['function']}" for e in results["profile"]["self"][:12]]
    if results.get("producer_profile"):
        out += ["", "producer, all threads, CPU profile (py-spy), self time:"]
        out += [f"  {e['percent']:5.1f} %  {e['function']}" for e in results["producer_profile"]["self"][:12]]
    return "\n".join(out)


def markdown(results: dict[str, Any]) -> str:
    """The same table for the README."""
    lines = ["| measure | measured | target | |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows(results)]
    return "\n".join([f"Run of {headline(results)}:", "", *lines])
