"""`ingestion-demo` (behind `make demo`, `make demo-down`, `make health`): the whole pipeline on a laptop.

Real Kafka, Loki, Prometheus (with the generated alert rules) and the consumer run in the background on
the seed's ports; the sample is published (rebased to now) and a French summary is computed from
Prometheus queries.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from devstack.consumer import ConsumerProcess
from devstack.kafka import KafkaBroker
from devstack.loki import LokiServer
from devstack.loki import instant_query as loki_query
from devstack.process import http_ok, port_open
from devstack.prometheus import PrometheusServer
from devstack.prometheus import instant_query as prometheus_query
from devstack.queries import dashboard_queries, substitute
from ingestion_observability.producer import cli as producer_cli
from ingestion_observability.render import RenderConfig, render_dashboard, render_rules

TOPIC = "ingestion-logs"
STOP_ORDER = ("consumer", "prometheus", "loki", "kafka")  # drain first, storage last


def _pids_file(work: Path) -> Path:
    return work / "pids.json"


def _read_pids(work: Path) -> dict[str, int]:
    try:
        return {k: int(v) for k, v in json.loads(_pids_file(work).read_text()).items()}
    except (OSError, ValueError):
        return {}


def _alive(pid: int) -> bool:
    """Running, and not a zombie (a stopped child of a still-running parent is not reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no procfs: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _scalar(prometheus_url: str, promql: str) -> float | None:
    result = prometheus_query(prometheus_url, promql)
    return float(result[0]["value"][1]) if result else None


def _wait(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, KeyError):
            if check():
                return True
        time.sleep(0.5)
    return False


def up(args: argparse.Namespace) -> int:
    work = Path(args.dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    pids = {name: pid for name, pid in _read_pids(work).items() if _alive(pid)}
    urls = {
        "Prometheus": f"http://127.0.0.1:{args.prometheus_port}",
        "Loki": f"http://127.0.0.1:{args.loki_port}",
        "Consumer": f"http://127.0.0.1:{args.metrics_port}",
    }
    bootstrap = f"127.0.0.1:{args.kafka_port}"
    if set(pids) == set(STOP_ORDER):
        print("La démo tourne déjà : nouvelle ingestion de l'échantillon.")
    else:
        for pid in pids.values():
            os.killpg(pid, signal.SIGTERM)
        busy = [
            p
            for p in (args.kafka_port, args.prometheus_port, args.loki_port, args.metrics_port)
            if port_open("127.0.0.1", p)
        ]
        if busy:
            print(f"Ports déjà utilisés : {busy}. Arrêtez ce qui les occupe ou changez-les (KAFKA_PORT=...).")
            return 1
        rules = work / "rules" / "ingestion-rules.yaml"
        rules.parent.mkdir(exist_ok=True)
        rules.write_text(yaml.safe_dump(render_rules(RenderConfig()), sort_keys=False, allow_unicode=True))
        print("Démarrage de Kafka, Loki, Prometheus et du consumer…")
        kafka = KafkaBroker.start(work / "kafka", args.kafka_port)
        kafka.create_topics([TOPIC, f"{TOPIC}.dlq"], partitions=3)
        loki = LokiServer.start(work / "loki", args.loki_port)
        consumer = ConsumerProcess.start(
            work / "consumer.log", bootstrap, loki.url, port=args.metrics_port, topic=TOPIC
        )
        prometheus = PrometheusServer.start(
            work / "prometheus",
            args.prometheus_port,
            targets=[consumer.target],
            scrape_interval="2s",
            evaluation_interval="2s",
            rule_files=[rules],
        )
        pids = {
            "kafka": kafka.pid,
            "loki": loki.pid,
            "consumer": consumer.process.pid,
            "prometheus": prometheus.pid,
        }
        _pids_file(work).write_text(json.dumps(pids))
        consumer.wait_ready()
    before = _scalar(urls["Prometheus"], "sum(ingestion_runs_total)") or 0.0
    code = producer_cli.main([f"--bootstrap-servers={bootstrap}", f"--topic={TOPIC}", "--rebase-time"])
    if code != 0:
        print("Le producer a échoué : voir ses messages ci-dessus.")
        return code
    if not _wait(lambda: (_scalar(urls["Prometheus"], "sum(ingestion_runs_total)") or 0) >= before + 72, 60):
        print(f"Prometheus n'a pas vu les 72 exécutions : voir {work}/consumer.log")
        return 1
    _wait(lambda: bool(prometheus_query(urls["Prometheus"], 'ALERTS{alertstate="firing"}')), 30)
    print(summary(urls))
    print("\nAccès :")
    for name, url in urls.items():
        print(f"  {name:<11} {url}")
    print(f"  Kafka       {bootstrap} (topics {TOPIC}, {TOPIC}.dlq)")
    print(f"  Journaux    {work}/*.log — `make demo-down` arrête tout.")
    return 0


# The summary shows what the dashboard's overview stats show: the same queries, from the same library.
OVERVIEW = {q.panel: q for q in dashboard_queries(render_dashboard(RenderConfig()))}


def _stat(urls: dict[str, str], panel: str) -> float | None:
    query = OVERVIEW[panel]
    expr = substitute(query.expr)
    if query.datasource == "prometheus":
        return _scalar(urls["Prometheus"], expr)
    result = loki_query(urls["Loki"], expr)
    return float(result[0]["value"][1]) if result else None


def _fmt(value: float | None, pattern: str) -> str:
    return "n/a" if value is None else pattern.format(value)


def summary(urls: dict[str, str]) -> str:
    q = urls["Prometheus"]
    success, failed, ratio, p95, memory = (
        _stat(urls, panel)
        for panel in ("Succès", "Échecs", "Taux d'échec (%)", "p95 durée (s)", "Max mémoire (MB)")
    )
    lines = [
        "",
        "Résumé de l'ingestion",
        f"  Succès          {_fmt(success, '{:.0f}')}",
        f"  Échecs          {_fmt(failed, '{:.0f}')}",
        f"  Taux d'échec    {_fmt(ratio, '{:.2%}')}",
        f"  p95 durée       {_fmt(p95, '{:.2f} s')}",
        f"  Max mémoire     {_fmt(None if memory is None else memory / 2**20, '{:.1f} MB')}",
        "",
        "Exécutions par source",
    ]
    by_source = {
        r["metric"]["source"]: float(r["value"][1])
        for r in prometheus_query(q, "sum by (source) (ingestion_runs_total)")
    }
    failed_by_source = {
        r["metric"]["source"]: float(r["value"][1])
        for r in prometheus_query(q, 'sum by (source) (ingestion_runs_total{etat="FAILED"})')
    }
    for source, count in sorted(by_source.items()):
        lines.append(f"  {source:<18} {count:>5.0f}   dont échecs : {failed_by_source.get(source, 0):.0f}")
    alerts = prometheus_query(q, 'ALERTS{alertstate="firing"}')
    lines += ["", "Alertes déclenchées" if alerts else "Alertes déclenchées : aucune"]
    for alert in alerts:
        labels = alert["metric"]
        where = " / ".join(labels[k] for k in ("source", "objet") if k in labels)
        lines.append(f"  {labels['alertname']} ({labels.get('severity', '?')}) {where}")
    return "\n".join(lines)


def down(args: argparse.Namespace) -> int:
    work = Path(args.dir).resolve()
    pids = _read_pids(work)
    for name in STOP_ORDER:
        pid = pids.get(name)
        if pid is None or not _alive(pid):
            continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        if not _wait(lambda: not _alive(pid), 20):  # noqa: B023 - called before the loop moves on
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        print(f"{name} arrêté")
    _pids_file(work).unlink(missing_ok=True)
    return 0


def health(args: argparse.Namespace) -> int:
    checks: dict[str, bool] = {
        "Prometheus": http_ok(f"http://127.0.0.1:{args.prometheus_port}/-/healthy"),
        "Loki": http_ok(f"http://127.0.0.1:{args.loki_port}/ready"),
        "Consumer (vivant)": http_ok(f"http://127.0.0.1:{args.metrics_port}/healthz"),
        "Consumer (prêt)": http_ok(f"http://127.0.0.1:{args.metrics_port}/readyz"),
        "Kafka": port_open("127.0.0.1", args.kafka_port),
    }
    failed = 0
    for name, ok in checks.items():
        failed += not ok
        print(f"  {'OK ' if ok else 'KO '} {name}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ingestion-demo", description=__doc__)
    parser.add_argument("command", choices=("up", "down", "health"))
    parser.add_argument("--dir", default=".demo", help="state and logs of the demo")
    parser.add_argument("--kafka-port", type=int, default=9092)
    parser.add_argument("--prometheus-port", type=int, default=9090)
    parser.add_argument("--loki-port", type=int, default=3100)
    parser.add_argument("--metrics-port", type=int, default=8000)
    args = parser.parse_args(argv)
    return {"up": up, "down": down, "health": health}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
