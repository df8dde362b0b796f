"""/metrics of the business series (a Collector over committed states) and the readiness probe."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ingestion_observability import catalog
from ingestion_observability.consumer.export import StateCollector
from ingestion_observability.consumer.health import HealthState
from ingestion_observability.consumer.metrics import ConsumerMetrics
from ingestion_observability.consumer.staging import observe
from ingestion_observability.consumer.state import ObjetState, PartitionState
from ingestion_observability.event import Run

T0 = 1_757_894_400.0
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def run(
    objet: str,
    etat: str = "SUCCESS",
    fin: float = T0,
    duree: float = 1.5,
    description: str = "",
    rows: int | None = None,
    **labels: str,
) -> Run:
    return Run(
        "PowerBI",
        objet,
        etat,
        labels.get("entreprise", "akonovia"),
        labels.get("zone", "1-Raw"),
        f"debut-{fin}-{duree}",
        fin,
        duree,
        0.2,
        float(8 << 20),
        description,
        rows,
    )


def objet_state(objet: str, *runs: Run) -> ObjetState:
    state = ObjetState.new("PowerBI", objet)
    for r in runs:
        observe(state, r, r.debut, 512)
    return state


def partition(number: int, *states: ObjetState) -> PartitionState:
    return PartitionState(number, {(s.source, s.objet): s for s in states})


def scrape(registry: CollectorRegistry) -> tuple[str, Samples]:
    text = generate_latest(registry).decode()
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    return text, samples


def registry_over(*partitions: PartitionState) -> tuple[CollectorRegistry, dict[int, PartitionState]]:
    owned = {p.partition: p for p in partitions}
    registry = CollectorRegistry()
    registry.register(StateCollector(lambda: owned.values()))
    return registry, owned


def labels(objet: str, **extra: str) -> frozenset[tuple[str, str]]:
    return frozenset({"source": "PowerBI", "objet": objet, **extra}.items())


def test_runs_and_failures_by_labels() -> None:
    a = objet_state(
        "a",
        run("a", fin=T0),
        run("a", fin=T0 + 1),
        run("a", "FAILED", fin=T0 + 2),
        run("a", fin=T0 + 3, entreprise="globex", zone=""),
    )
    b = objet_state("b", run("b", fin=T0))
    registry, _ = registry_over(partition(0, a), partition(1, b))
    text, samples = scrape(registry)
    runs = {k[1]: v for k, v in samples.items() if k[0] == "ingestion_runs_total"}
    assert runs == {
        labels("a", etat="SUCCESS", entreprise="akonovia", zone="1-Raw"): 2,
        labels("a", etat="FAILED", entreprise="akonovia", zone="1-Raw"): 1,
        labels("a", etat="SUCCESS", entreprise="globex", zone=""): 1,
        labels("b", etat="SUCCESS", entreprise="akonovia", zone="1-Raw"): 1,
    }
    assert samples[("ingestion_failures_total", labels("a"))] == 1
    assert samples[("ingestion_failures_total", labels("b"))] == 0  # at 0 from the first run
    assert "# TYPE ingestion_runs_total counter" in text
    assert "# TYPE ingestion_failures_total counter" in text
    line = (
        'ingestion_runs_total{entreprise="akonovia",etat="SUCCESS",objet="a",source="PowerBI",zone="1-Raw"}'
    )
    assert f"{line} 2.0\n" in text


def test_histograms_are_cumulative_with_count_and_sum() -> None:
    durations = [0.1, 1.0, 2.5, 700.0]
    state = objet_state("a", *(run("a", fin=T0 + i, duree=d) for i, d in enumerate(durations)))
    registry, _ = registry_over(partition(0, state))
    text, samples = scrape(registry)
    name = catalog.DURATION.name
    buckets = {dict(k[1])["le"]: v for k, v in samples.items() if k[0] == f"{name}_bucket"}
    assert buckets == {
        "0.25": 1,
        "0.5": 1,
        "1.0": 2,
        "2.0": 2,
        "3.0": 3,
        "5.0": 3,
        "10.0": 3,
        "30.0": 3,
        "60.0": 3,
        "120.0": 3,
        "300.0": 3,
        "600.0": 3,
        "+Inf": 4,
    }
    assert samples[(f"{name}_count", labels("a"))] == 4
    assert samples[(f"{name}_sum", labels("a"))] == sum(durations)
    assert f"# TYPE {name} histogram" in text
    memory = catalog.MEMORY.name
    assert samples[(f"{memory}_bucket", labels("a", le="1.048576e+07"))] == 4  # 8 MiB <= 10 MiB
    assert samples[(f"{memory}_bucket", labels("a", le="5.24288e+06"))] == 0
    recovery = catalog.RECOVERY.name
    assert samples[(f"{recovery}_count", labels("a"))] == 0  # never failed: an empty histogram
    assert samples[(f"{recovery}_bucket", labels("a", le="+Inf"))] == 0


def test_last_run_timestamp_and_status() -> None:
    ok = objet_state("ok", run("ok", "FAILED", fin=T0), run("ok", fin=T0 + 60))
    failing = objet_state("failing", run("failing", fin=T0), run("failing", "FAILED", fin=T0 + 30))
    late = objet_state("late", run("late", fin=T0 + 90), run("late", "FAILED", fin=T0))  # late older run
    registry, _ = registry_over(partition(0, ok, failing, late))
    _, samples = scrape(registry)
    assert samples[("ingestion_last_run_timestamp", labels("ok"))] == T0 + 60
    assert samples[("ingestion_last_run_status", labels("ok"))] == 1
    assert samples[("ingestion_last_run_timestamp", labels("failing"))] == T0 + 30
    assert samples[("ingestion_last_run_status", labels("failing"))] == 0
    assert samples[("ingestion_last_run_timestamp", labels("late"))] == T0 + 90
    assert samples[("ingestion_last_run_status", labels("late"))] == 1


def test_last_failure_is_the_newest_failure_by_event_time_with_its_error() -> None:
    error = 'HTTP 504 "Gateway Timeout"\nréessai \\ échoué'
    newest = objet_state(
        "o",
        run("o", "FAILED", fin=T0 + 30, description=error),
        run("o", "FAILED", fin=T0, description="older"),
    )
    recovered = objet_state("r", run("r", "FAILED", fin=T0, description="gone?"), run("r", fin=T0 + 60))
    never = objet_state("n", run("n", fin=T0))
    long = objet_state("l", run("l", "FAILED", description="x" * 1000))
    registry, _ = registry_over(partition(0, newest, recovered, never, long))
    _, samples = scrape(registry)
    failures = {k: v for k, v in samples.items() if k[0] == catalog.LAST_FAILURE.name}
    cut = "x" * (catalog.DESCRIPTION_LABEL_MAX - 1) + "…"
    assert failures == {
        (catalog.LAST_FAILURE.name, labels("o", description=error)): T0
        + 30,  # a late older one does not move it
        (
            catalog.LAST_FAILURE.name,
            labels("r", description="gone?"),
        ): T0,  # kept after a success: the last error
        (catalog.LAST_FAILURE.name, labels("l", description=cut)): T0,  # one bounded label per objet
    }


def test_rows_total_and_the_newest_run_s_rows() -> None:
    counted = objet_state(
        "counted",
        run("counted", fin=T0, rows=100),
        run("counted", fin=T0 + 60, rows=250),
        run("counted", "FAILED", fin=T0 + 30, rows=7),  # a late older run: counted, not the last
        run("counted", fin=T0 + 90),  # newer, reports no rows: neither moves
    )
    zero = objet_state("zero", run("zero", fin=T0, rows=5), run("zero", fin=T0 + 1, rows=0))
    unknown = objet_state("unknown", run("unknown", fin=T0), run("unknown", "FAILED", fin=T0 + 1))
    registry, _ = registry_over(partition(0, counted, zero, unknown))
    _, samples = scrape(registry)
    rows = {
        (name, dict(lbls)["objet"]): value
        for (name, lbls), value in samples.items()
        if name in (catalog.ROWS.sample, catalog.LAST_RUN_ROWS.name)
    }
    assert rows == {
        ("ingestion_rows_total", "counted"): 357,
        ("ingestion_last_run_rows", "counted"): 250,
        ("ingestion_rows_total", "zero"): 5,
        ("ingestion_last_run_rows", "zero"): 0,  # reported 0: a real 0
    }  # "unknown" never reported rows: neither series (unknown is not 0)
    assert samples[("ingestion_rows_total", labels("counted"))] == 357


def test_readiness_gauge_reads_health_at_each_scrape() -> None:
    registry = CollectorRegistry()
    metrics = ConsumerMetrics(registry)
    health = serving()
    metrics.watch(health)
    assert scrape(registry)[1][(catalog.CONSUMER_READY.name, frozenset())] == 1
    health.restoring = True
    assert scrape(registry)[1][(catalog.CONSUMER_READY.name, frozenset())] == 0


def test_a_state_without_a_run_has_no_run_series() -> None:
    registry, _ = registry_over(partition(0, ObjetState.new("PowerBI", "idle")))
    _, samples = scrape(registry)
    idle = [k for k in samples if dict(k[1]).get("objet") == "idle"]
    assert not [k for k in idle if k[0] == "ingestion_runs_total"]
    assert ("ingestion_last_run_timestamp", labels("idle")) not in samples
    assert ("ingestion_last_run_status", labels("idle")) not in samples


def test_nothing_is_exported_without_a_partition() -> None:
    registry, _ = registry_over()
    _, samples = scrape(registry)
    assert samples == {}


def test_only_committed_states_are_exported() -> None:
    p = partition(0, objet_state("a", run("a")))
    p.staged[("PowerBI", "b")] = objet_state("b", run("b"))
    p.staged[("PowerBI", "a")] = objet_state("a", run("a"), run("a", fin=T0 + 1))
    registry, _ = registry_over(p)
    _, samples = scrape(registry)
    assert ("ingestion_failures_total", labels("b")) not in samples
    assert (
        samples[("ingestion_runs_total", labels("a", etat="SUCCESS", entreprise="akonovia", zone="1-Raw"))]
        == 1
    )


def test_states_of_a_revoked_partition_disappear_and_a_commit_shows_at_once() -> None:
    registry, owned = registry_over(
        partition(0, objet_state("a", run("a"))), partition(4, objet_state("b", run("b")))
    )
    _, samples = scrape(registry)
    assert ("ingestion_failures_total", labels("b")) in samples
    del owned[4]  # revoked
    _, samples = scrape(registry)
    assert ("ingestion_failures_total", labels("b")) not in samples
    assert not [k for k in samples if dict(k[1]).get("objet") == "b"]
    assert samples[("ingestion_failures_total", labels("a"))] == 0
    owned[0].commit({("PowerBI", "a"): objet_state("a", run("a"), run("a", "FAILED", fin=T0 + 5))})
    _, samples = scrape(registry)
    assert samples[("ingestion_failures_total", labels("a"))] == 1
    assert samples[("ingestion_last_run_status", labels("a"))] == 0


# --- readiness ---------------------------------------------------------------------------------------


def serving(**changes: object) -> HealthState:
    health = HealthState(kafka_ok_at=time.monotonic(), assigned=2)
    for name, value in changes.items():
        setattr(health, name, value)
    return health


def test_ready_when_partitions_are_served() -> None:
    assert serving().ready() == (True, "2 partition(s) assigned")
    assert serving(waiting_for="Loki").ready() == (True, "2 partition(s) assigned, waiting for Loki")


def test_not_ready_while_restoring() -> None:
    assert serving(restoring=True).ready() == (False, "restoring state from the changelog")


def test_not_ready_when_a_partition_is_refused() -> None:
    health = serving(refused={5: "in.state[5]@9 key b'x': unknown state schema version 2", 1: "bad"})
    ready, reason = health.ready()
    assert not ready
    assert reason == (
        "state refused, partition(s) not served: partition 1: bad; "
        "partition 5: in.state[5]@9 key b'x': unknown state schema version 2"
    )


def test_not_ready_without_partitions_or_kafka() -> None:
    assert serving(assigned=0).ready() == (False, "no partition assigned")
    ready, reason = serving(kafka_ok_at=time.monotonic() - 600).ready()
    assert not ready and reason.startswith("Kafka not reached for ")


def test_text_is_what_prometheus_client_makes_of_the_collector() -> None:
    """The cached scrape path and the Collector give the same bytes, escaping and all."""
    odd = ("plain", 'with "quotes"', "back\\slash", "new\nline")
    owned = partition(
        0,
        *(objet_state(o, run(o), run(o, "FAILED", fin=T0 + 60, rows=i or None)) for i, o in enumerate(odd)),
    )
    collector = StateCollector(lambda: [owned])
    registry = CollectorRegistry()
    registry.register(collector)
    assert collector.text() == generate_latest(registry)
    assert collector.text() == generate_latest(registry)  # cached the second time, still equal
