"""`make bench` with tiny numbers, so that it cannot rot: every section is there with sane figures.

Speed targets are not asserted (a smoke run on a shared machine says nothing about speed): only that each
measurement ran on the real services and produced positive numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import run
from bench.profile import py_spy

pytestmark = pytest.mark.integration

EVENTS, MEMORY_EVENTS, SOURCES, RESTORED = 2_000, 4_000, 3, 300


def positive(section: dict[str, Any], *keys: str) -> None:
    for key in keys:
        assert section[key] > 0, f"{key} = {section[key]!r}"


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench")


@pytest.fixture(scope="module")
def results(work: Path) -> dict[str, Any]:
    out = work / "results.json"
    argv = [
        f"--events={EVENTS}",
        f"--memory-events={MEMORY_EVENTS}",
        "--cardinality-runs=1",
        f"--operator-sources={SOURCES}",
        f"--restore-series={RESTORED}",
        "--notification-runs=3",
        "--notification-settings=1",
        f"--work-dir={work / 'services'}",
        f"--out={out}",
        f"--page={work / 'benchmarks.md'}",
        "--note=smoke",
        "--profile",
        "--markdown",
    ]
    assert run.main(argv) == 0
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def test_environment_and_config(results: dict[str, Any]) -> None:
    env = results["environment"]
    assert env["host_cpus"] >= 1 and env["crc32c_in_c"] is True
    assert len(env["load_average_start"]) == len(env["load_average_end"]) == 3
    assert results["config"]["events"] == EVENTS
    assert results["config"]["log_store"].startswith("VictoriaLogs")


def test_producer(results: dict[str, Any]) -> None:
    for name, events in (("producer", EVENTS), ("producer_memory_run", MEMORY_EVENTS)):
        section = results[name]
        assert section["events"] == events
        positive(section, "seconds", "events_per_second", "us_per_event", "cpu_us_per_event")


def test_raw_producer(results: dict[str, Any]) -> None:
    raw = results["raw_produce"]
    assert raw["events"] == EVENTS
    positive(raw, "seconds", "events_per_second", "us_per_event", "cpu_us_per_event")
    positive(results["producer"], "ratio_to_raw")


def test_raw_poll_loop_and_consumer(results: dict[str, Any]) -> None:
    raw = results["raw_poll"]
    positive(raw, "events", "seconds", "events_per_second", "us_per_event")
    assert len(raw["runs_events_per_second"]) == 2
    for name in ("consumer", "consumer_null_loki"):
        section = results[name]
        positive(section, "events_timed", "seconds", "events_per_second", "us_per_event", "cpu_us_per_event")
        positive(section, "main_thread_cpu_us_per_event", "ratio_to_raw")
        assert section["exit_code"] == 0
        metrics = section["metrics"]
        assert metrics["ingestion_consumer_messages_total{result=processed}"] == EVENTS
        assert metrics["ingestion_consumer_messages_total{result=duplicate}"] == 0
    consumer = results["consumer"]
    assert consumer["metrics"]["ingestion_consumer_loki_entries_total"] == EVENTS  # accepted by the real Loki
    assert set(consumer["services_cpu_us_per_event"]) == {"logstore", "kafka"}
    positive(consumer, "one_core_events_per_second", "machine_cpu_bound_events_per_second")
    positive(consumer, "loki_push_ms_avg", "loki_lines_per_push")
    positive(consumer, "transactions", "transaction_ms_avg", "changelog_bytes_per_event")


def test_restore(results: dict[str, Any]) -> None:
    [restore] = results["restore"]
    assert restore["states"] == restore["owned_after_restore"] == 10  # one objet per source: >= 300 series
    assert restore["series"] >= RESTORED
    positive(restore, "restore_seconds", "spawn_to_ready_seconds", "changelog_bytes_per_state")


def test_profiles(results: dict[str, Any]) -> None:
    assert py_spy() is not None, "py-spy is a dev dependency: `make install`"
    for profile in (results["profile"], results["producer_profile"]):
        assert profile["samples"] > 0
        assert profile["self"] and all(entry["percent"] > 0 for entry in profile["self"])


def test_memory(results: dict[str, Any]) -> None:
    marks = [str(EVENTS), str((EVENTS + MEMORY_EVENTS) // 2), str(MEMORY_EVENTS)]
    for name in ("memory", "memory_malloc_tuned"):
        memory = results[name]
        assert memory["events"] == MEMORY_EVENTS and memory["exit_code"] == 0
        assert list(memory["rss_after_mb"]) == marks
        assert all(mb > 10 for mb in memory["rss_after_mb"].values())
        positive(memory, "rss_start_mb", "rss_end_mb", "rss_peak_mb", "process_resident_memory_mb")
    assert results["memory_malloc_tuned"]["env"]["MALLOC_ARENA_MAX"] == "2"


def test_cardinality(results: dict[str, Any]) -> None:
    card = results["cardinality"]
    assert (card["sources"], card["objets_per_source"], card["runs"]) == (10, 50, 500)
    assert card["source_objet_pairs"] == 500
    assert card["series_total"] > card["series_ingestion"] > 500
    positive(card, "scrape_ms_median", "metrics_body_kb")
    assert card["prometheus"]["scrape_samples_scraped"] >= card["series_total"]
    positive(card["prometheus"], "scrape_duration_ms_avg", "series_in_tsdb")


def test_operator(results: dict[str, Any]) -> None:
    operator = results["operator"]
    assert not operator.get("skipped"), operator.get("reason")
    assert operator["sources"] == SOURCES
    assert operator["prometheus_rules"] == operator["dashboard_config_maps"] == SOURCES
    positive(operator, "ready_seconds", "sources_per_second", "operator_cpu_ms_per_source")
    positive(operator["render_ms_per_source"], "rules_ms", "dashboard_ms", "total_ms")


def test_targets(results: dict[str, Any]) -> None:
    names = {target["name"] for target in results["targets"]}
    assert {"consumer end to end", "consumer / raw poll loop", "producer acks=all", "consumer RSS"} <= names
    assert {"consumer RSS flat", "consumer RSS, tuned malloc", "operator 3 sources Ready"} <= names
    assert all(isinstance(target["met"], bool) for target in results["targets"])


def test_page(results: dict[str, Any], work: Path) -> None:
    """The run's page: this run alone (the results files of --out's directory), every section's rows."""
    page = (work / "benchmarks.md").read_text()
    assert page.startswith("<!-- Generated by `python -m bench.page`")
    assert results["environment"]["note"] == "smoke" and "\nsmoke\n" in page
    for measure in ("consumer end to end", "intake, 1 000-event arrays", "consumer RSS, tuned malloc"):
        assert f"| {measure}" in page
    assert "| time to notification, demo: p95" in page and "| operator: 3 IngestionSources Ready" in page


def test_time_to_notification(results: dict[str, Any]) -> None:
    [(name, demo)] = results["notification"].items()
    assert name == "demo" and demo["runs"] == 3
    positive(demo, "p50_s", "p95_s", "max_s", "limit_s", "to_firing_p50_s", "firing_to_webhook_p50_s")
    assert demo["p50_s"] <= demo["p95_s"] <= demo["max_s"]
