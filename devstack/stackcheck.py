"""`make test-stack`: the seed's step-by-step test guide, run against the local stack `make up` started.

The seed (a docker-compose stack) had each step checked by hand with curl and jq; here each step prints a
French verdict with what it found and what the guide expects. The dashboard's numbers come from the
dashboard's own queries, as in `make demo`'s summary. Steps 8 (ingest again) and 10 (stop a service)
change the stack: they are left to `make ingest` and to tests/integration/test_resilience.py.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from devstack.process import http_ok, port_open
from devstack.prometheus import PrometheusError, api, instant_query
from devstack.queries import DEFAULT_VARIABLES, dashboard_queries, substitute
from devstack.victorialogs import LogStoreError, logsql
from ingestion_observability.render import RenderConfig, render_dashboard

HOST = "127.0.0.1"
TOPIC = "ingestion-logs"
LOG_JOB = RenderConfig().loki_job  # the `job` label of the consumer's streams, as the dashboard selects it
LOG_STORE = "VictoriaLogs"


@dataclass(frozen=True)
class Stack:
    """Where the local stack listens: the seed's ports, VictoriaLogs' own for the log store."""

    kafka_port: int = 9092
    prometheus_port: int = 9090
    logs_port: int = 9428
    metrics_port: int = 8000
    alertmanager_port: int = 9093
    inbox_port: int = 9097  # the demo's webhook receiver (devstack.inbox)

    @property
    def ports(self) -> tuple[int, ...]:
        return (
            self.kafka_port,
            self.prometheus_port,
            self.logs_port,
            self.metrics_port,
            self.alertmanager_port,
            self.inbox_port,
        )

    @property
    def alertmanager(self) -> str:
        return f"http://{HOST}:{self.alertmanager_port}"

    @property
    def inbox(self) -> str:
        return f"http://{HOST}:{self.inbox_port}"

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.kafka_port}"

    @property
    def prometheus(self) -> str:
        return f"http://{HOST}:{self.prometheus_port}"

    @property
    def logs(self) -> str:
        return f"http://{HOST}:{self.logs_port}"

    @property
    def consumer(self) -> str:
        return f"http://{HOST}:{self.metrics_port}"


def health(stack: Stack) -> dict[str, bool]:
    """Each service's own health endpoint (Kafka: its port), as in the seed's step 2."""
    return {
        "Prometheus": http_ok(f"{stack.prometheus}/-/healthy"),
        "Alertmanager": http_ok(f"{stack.alertmanager}/-/healthy"),
        "Boîte de réception": http_ok(f"{stack.inbox}/-/ready"),
        LOG_STORE: http_ok(f"{stack.logs}/health"),
        "Consumer (vivant)": http_ok(f"{stack.consumer}/healthz"),
        "Consumer (prêt)": http_ok(f"{stack.consumer}/readyz"),
        "Kafka": port_open(HOST, stack.kafka_port),
    }


def scalar(prometheus_url: str, promql: str) -> float | None:
    result = instant_query(prometheus_url, promql)
    return float(result[0]["value"][1]) if result else None


# Every dashboard query by panel title; the summary and step 5 read its overview stats.
OVERVIEW = {q.panel: q for q in dashboard_queries(render_dashboard(RenderConfig()))}
# Its LogQL stats cannot run on VictoriaLogs (no LogQL there): each one's LogsQL equivalent, same window.
# "Max mémoire (MB)": max(max_over_time({job=…} | json memory="performance.memory_used_bytes" | unwrap …)).
OVERVIEW_LOGSQL = {
    "Max mémoire (MB)": f'_time:{DEFAULT_VARIABLES["__range"]} {{job="{LOG_JOB}"}}'
    " | unpack_json fields (performance.memory_used_bytes)"
    " | stats max(performance.memory_used_bytes) as value",
}


def stat(stack: Stack, panel: str) -> float | None:
    """An overview stat: its PromQL on Prometheus, or the LogsQL equivalent of its LogQL on VictoriaLogs."""
    query = OVERVIEW[panel]
    if query.datasource == "prometheus":
        return scalar(stack.prometheus, substitute(query.expr))
    rows = logsql(stack.logs, OVERVIEW_LOGSQL[panel])
    return float(rows[0]["value"]) if rows and rows[0].get("value") else None


def log_lines(logs_url: str, **labels: str) -> int:
    """Entries of the consumer's streams in the log store (all of them: a fresh `make up` starts empty)."""
    stream = ", ".join(f'{name}="{value}"' for name, value in {"job": LOG_JOB, **labels}.items())
    rows = logsql(logs_url, f"{{{stream}}} | stats count() as n")
    return int(rows[0]["n"]) if rows else 0


def published(bootstrap: str, topic: str = TOPIC) -> int:
    """Messages in `topic` (its partitions' end offsets): what was published since the stack started."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return int(sum(consumer.end_offsets(partitions).values())) if partitions else 0
    finally:
        consumer.close()


@dataclass(frozen=True)
class Expected:
    """The seed's expected results for one ingestion of the sample logs.json ("Résultats attendus"); the
    seed's alerts and those added since."""

    series: int = 72  # ingestion_runs_total series: the sample's 72 (source, objet) pairs
    success: int = 71
    failed: int = 1
    alert_rules: tuple[str, ...] = (
        "IngestionEchecDetecte",
        "IngestionTauxEchecEleve",
        "IngestionSourceMuette",
        "IngestionLatenceDegradee",
        "IngestionSurconsommationMemoire",
        "IngestionSurconsommationCPU",
        "IngestionBurstErreurs",
        "IngestionExecutionBloquee",  # a run reported over OpenLineage left open (issue of the HTTP intake)
        "IngestionExecutionVide",  # rows per run against the objet's usual (silent on the sample: no history)
        "IngestionVolumeAnormal",
        "IngestionConsumerDown",
        "IngestionConsumerNonPret",  # info: never notified, it inhibits what a consumer outage causes
        "IngestionKafkaLag",
    )
    firing: str = "IngestionEchecDetecte"
    firing_on: tuple[str, str] = ("sharepoint_graph", "EventFactureApplication")
    # its run's Description in logs.json, which the notification must carry
    firing_error: str = (
        "Timeout: la requête Microsoft Graph /sites/akonovia/lists/EventFactureApplication/items"
        " a dépassé 30 s (ReadTimeout)"
    )

    @property
    def runs(self) -> int:
        return self.success + self.failed


@dataclass(frozen=True)
class Verdict:
    step: int
    ok: bool
    text: str

    def __str__(self) -> str:
        return f"{'✅' if self.ok else '❌'} Étape {self.step} : {self.text}"


@dataclass(frozen=True)
class Context:
    stack: Stack
    expected: Expected
    messages: int  # in the topic, per Kafka: how many times the sample was published
    kafka_error: str = ""

    @property
    def ingestions(self) -> int:
        return max(1, self.messages // self.expected.runs)

    def times(self, n: int) -> str:
        """`n` per ingestion, as expected for the ingestions Kafka holds."""
        k = self.ingestions
        return f"{n * k}" + (f" = {n} × {k} ingestions" if k > 1 else "")


def consumer_lag(prometheus_url: str) -> float:
    """The consumer's lag on the topic as Prometheus last scraped it. The gauge is sampled periodically:
    right after a burst it may still show the burst, although every message is processed."""
    return scalar(prometheus_url, f'sum(kafka_consumer_lag{{topic="{TOPIC}"}})') or 0


def _ingestion(ctx: Context) -> tuple[bool, str]:
    if ctx.kafka_error:
        return False, f"Kafka : {ctx.kafka_error}"
    p, runs = ctx.stack.prometheus, ctx.expected.runs
    processed, invalid = (
        scalar(p, f'sum(ingestion_consumer_messages_total{{result="{result}"}})') or 0
        for result in ("processed", "invalid")
    )
    lag = consumer_lag(p)
    ok = (
        ctx.messages > 0
        and ctx.messages % runs == 0
        and processed == ctx.messages
        and not invalid
        and not lag
    )
    return ok, (
        f"{ctx.messages} messages dans {TOPIC}, {processed:.0f} traités par le consumer,"
        f" {invalid:.0f} invalide, retard {lag:.0f} (attendu {runs} par ingestion, tous traités, 0 invalide,"
        " retard 0)"
    )


def _metrics(ctx: Context) -> tuple[bool, str]:
    p, e = ctx.stack.prometheus, ctx.expected
    series, success, failed = (
        scalar(p, f"count(ingestion_runs_total{selector})") or 0
        for selector in ("", '{etat="SUCCESS"}', '{etat="FAILED"}')
    )
    return (series, success, failed) == (e.series, e.success, e.failed), (
        f"{series:.0f} séries ingestion_runs_total, {success:.0f} SUCCESS / {failed:.0f} FAILED"
        f" (attendu {e.series}, {e.success}/{e.failed})"
    )


def _dashboard(ctx: Context) -> tuple[bool, str]:
    e = ctx.expected
    success, failed, ratio = (
        stat(ctx.stack, panel) or 0.0 for panel in ("Succès", "Échecs", "Taux d'échec (%)")
    )
    expected_ratio = e.failed / e.runs
    ok = (success, failed) == (e.success, e.failed) and abs(ratio - expected_ratio) < 1e-9
    plural = "s" if failed > 1 else ""
    return ok, (
        f"tableau de bord : {success:.0f} succès / {failed:.0f} échec{plural}, taux d'échec {ratio:.2%}"
        f" (attendu {e.success}/{e.failed}, {expected_ratio:.2%})"
    )


def _alert_rules(ctx: Context) -> tuple[bool, str]:
    groups = api(ctx.stack.prometheus, "rules", {"type": "alert"})["groups"]
    loaded = [rule["name"] for group in groups for rule in group["rules"]]
    expected = ctx.expected.alert_rules
    missing = [name for name in expected if name not in loaded]
    extra = [name for name in loaded if name not in expected]
    details = "".join(
        f" ; {what} : {', '.join(names)}"
        for what, names in (("manquantes", missing), ("en trop", extra))
        if names
    )
    return sorted(loaded) == sorted(expected), (
        f"{len(loaded)} règles d'alerte chargées (attendu {len(expected)}){details}"
    )


def _firing(ctx: Context) -> tuple[bool, str]:
    e = ctx.expected
    alerts = instant_query(ctx.stack.prometheus, f'ALERTS{{alertstate="firing", alertname="{e.firing}"}}')
    on = [(a["metric"].get("source", "?"), a["metric"].get("objet", "?")) for a in alerts]
    found = ", ".join(" / ".join(where) for where in on) or "nulle part"
    return on == [e.firing_on], f"{e.firing} déclenchée sur {found} (attendu : {' / '.join(e.firing_on)})"


def notifications(stack: Stack) -> list[dict[str, Any]]:
    """What the demo's webhook receiver got from Alertmanager."""
    with urllib.request.urlopen(f"{stack.inbox}/notifications", timeout=10) as resp:
        received: list[dict[str, Any]] = json.load(resp)
    return received


def _notified(ctx: Context) -> tuple[bool, str]:
    e = ctx.expected
    alerts = [
        a
        for n in notifications(ctx.stack)
        if n["status"] == "firing"
        for a in n["alerts"]
        if a["labels"].get("alertname") == e.firing
    ]
    on = {
        (a["labels"].get("source"), a["labels"].get("objet")): a["labels"].get("description") for a in alerts
    }
    error = on.get(e.firing_on)
    return error == e.firing_error, (
        f"notification {e.firing} sur {' / '.join(e.firing_on)} : "
        + (f"reçue, erreur « {error} »" if e.firing_on in on else "non reçue")
        + f" (attendu : reçue, erreur « {e.firing_error} »)"
    )


def _logs(ctx: Context) -> tuple[bool, str]:
    e, url = ctx.expected, ctx.stack.logs
    lines, failed = log_lines(url), log_lines(url, etat="FAILED")
    ok = (lines, failed) == (e.runs * ctx.ingestions, e.failed * ctx.ingestions)
    return ok, (
        f"{lines} lignes job={LOG_JOB} dans {LOG_STORE}, dont {failed} FAILED"
        f" (attendu {ctx.times(e.runs)}, dont {ctx.times(e.failed)})"
    )


def _consumer_metrics(ctx: Context) -> tuple[bool, str]:
    with urllib.request.urlopen(f"{ctx.stack.consumer}/metrics", timeout=10) as resp:
        samples = [line for line in resp.read().decode().splitlines() if line.startswith("ingestion_")]
    return bool(samples), f"/metrics du consumer : {len(samples)} échantillons ingestion_* (attendu > 0)"


# (seed step, the services it queries, the check)
STEPS: tuple[tuple[int, tuple[str, ...], Callable[[Context], tuple[bool, str]]], ...] = (
    (3, ("Kafka", "Prometheus"), _ingestion),
    (4, ("Prometheus",), _metrics),
    (5, ("Prometheus",), _dashboard),
    (6, ("Prometheus",), _alert_rules),
    (6, ("Prometheus",), _firing),
    (6, ("Boîte de réception",), _notified),
    (7, (LOG_STORE,), _logs),
    (9, ("Consumer (vivant)",), _consumer_metrics),
)


def run(stack: Stack, processes: Mapping[str, bool], expected: Expected | None = None) -> list[Verdict]:
    """Every step's verdict; `processes` is whether each of the stack's processes runs (step 1)."""
    expected = expected or Expected()
    stopped = [name for name, alive in processes.items() if not alive]
    verdicts = [
        Verdict(
            1,
            bool(processes) and not stopped,
            f"processus en marche : {', '.join(n for n, alive in processes.items() if alive) or 'aucun'}"
            + (f" ; arrêtés : {', '.join(stopped)} (`make up` les démarre)" if stopped else ""),
        )
    ]
    answering = health(stack)
    silent = [name for name, ok in answering.items() if not ok]
    verdicts.append(
        Verdict(
            2,
            not silent,
            f"sans réponse : {', '.join(silent)}" if silent else f"{', '.join(answering)} répondent",
        )
    )
    ctx = Context(stack, expected, 0)
    if answering["Kafka"]:
        try:
            ctx = Context(stack, expected, published(stack.bootstrap))
        except KafkaError as err:
            ctx = Context(stack, expected, 0, str(err) or type(err).__name__)
    for step, needs, check in STEPS:
        silent = [name for name in needs if not answering[name]]
        if silent:
            verdicts.append(Verdict(step, False, f"non vérifiable, sans réponse de {', '.join(silent)}"))
            continue
        try:
            ok, text = check(ctx)
        except (OSError, KafkaError, PrometheusError, LogStoreError) as err:
            ok, text = False, f"erreur : {err}"
        verdicts.append(Verdict(step, ok, text))
    return verdicts


def report(verdicts: list[Verdict]) -> str:
    failed = sum(not v.ok for v in verdicts)
    lines = [str(v) for v in verdicts]
    lines += [
        "ℹ️  Étapes 8 (nouvelle ingestion : `make ingest`) et 10 (résilience :"
        " tests/integration/test_resilience.py) non jouées : elles modifient la pile."
        " Grafana et Kafka UI ne tournent pas en local : `make open-grafana`, `make open-kafka-ui`.",
        f"Bilan : {len(verdicts) - failed}/{len(verdicts)} vérifications réussies"
        + (f", {failed} en échec ❌" if failed else " ✅"),
    ]
    return "\n".join(lines)
