"""`python -m devstack.demo`: the whole pipeline on a laptop, behind `make demo` (or `make up`),
`make demo-down`, `make health`, `make test-stack`, `make open-grafana` and `make open-kafka-ui`.

Real Kafka, VictoriaLogs (the local log store: it serves Loki's push API), Prometheus (with the generated
alert rules) and the consumer run in the background; the sample is published (rebased to now) and a French
summary is computed with the dashboard's queries. Grafana and Kafka UI only exist in the Kubernetes
deployment: `open-grafana` and `open-kafka-ui` port-forward them from the kind cluster.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from devstack import localstack, stackcheck
from devstack.inbox import read_notifications
from devstack.kafka import kafka_libs
from devstack.process import port_open
from devstack.prometheus import instant_query
from devstack.stackcheck import HOST, LOG_STORE, TOPIC, Stack, log_lines, scalar, stat
from devstack.tools import ToolMissingError, binary, tools_dir
from ingestion_observability.producer import cli as producer_cli
from ingestion_observability.render import RenderConfig
from ingestion_observability.render.config import Notifications

# stop order: drain first, storage last
SERVICES = ("consumer", "prometheus", "alertmanager", "inbox", "victorialogs", "kafka")
# The demo's notifications: every ingestion alert to the local inbox (.demo/inbox), grouped for 2 s.
DEMO_CONFIG = RenderConfig(notifications=Notifications(group_wait="2s", group_interval="10s"))
SAMPLE_RUNS = stackcheck.Expected().runs
TOOLS_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "tools.sh"
# The scripts/tools.sh parts the demo needs (not kube: that is for the chart and operator tests), how the
# launchers find each, and where each comes from (said while it installs).
TOOL_PARTS: dict[str, tuple[Callable[[], object], str]] = {
    "prometheus": (lambda: binary("prometheus"), "paquet Debian, par apt-get"),
    "kafka": (kafka_libs, "jars de Maven Central"),
    "victorialogs": (lambda: binary("victoria-logs"), "compilé depuis son module Go"),
    "alertmanager": (lambda: binary("alertmanager"), "compilé depuis son module Go"),
}
PACKAGES = ("packages", "jq, unzip, Maven et un JDK 17 par apt-get, s'ils manquent")


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
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no procfs: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat_line.rsplit(")", 1)[1].split()[0] != "Z"


def _wait(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, KeyError):
            if check():
                return True
        time.sleep(0.5)
    return False


def _stack(args: argparse.Namespace) -> Stack:
    return Stack(
        kafka_port=args.kafka_port,
        prometheus_port=args.prometheus_port,
        logs_port=args.logs_port,
        metrics_port=args.metrics_port,
        alertmanager_port=args.alertmanager_port,
        inbox_port=args.inbox_port,
    )


def _installed(lookup: Callable[[], object]) -> bool:
    try:
        lookup()
    except ToolMissingError:
        return False
    return True


def install_tools() -> bool:
    """Run scripts/tools.sh for each missing part, one at a time and timed; False when one fails."""
    missing = [part for part, (lookup, _) in TOOL_PARTS.items() if not _installed(lookup)]
    if not missing:
        print(f"Outils déjà installés ({', '.join(TOOL_PARTS)}) : `make tools` les met à jour.")
        return True
    print(
        f"Installation des outils manquants ({', '.join(missing)}) dans {tools_dir()} : la première fois,"
        " comptez environ 1 min (caches Go et Maven vides), plus Maven et un JDK par apt-get s'ils manquent ;"
        " ensuite moins d'une seconde."
    )
    # packages first: what the other parts fetch and build with
    for part, origin in (PACKAGES, *((part, TOOL_PARTS[part][1]) for part in missing)):
        print(f"→ {part} ({origin})", flush=True)
        start = time.monotonic()
        if subprocess.run(["bash", str(TOOLS_SCRIPT), part], check=False).returncode != 0:
            print(f"L'installation de {part} a échoué : voir ses messages ci-dessus.")
            return False
        print(f"✓ {part} en {time.monotonic() - start:.0f} s", flush=True)
    return True


def _start(work: Path, stack: Stack) -> None:
    """Start the services in the background (pids.json); a failed start stops those it started."""
    # The stores keep their data across `make demo-down` / `make demo`: Kafka's changelog carries the
    # consumer's totals over, as Prometheus' TSDB does its series (`make clean` starts from nothing).
    with localstack.running(
        work,
        ports=stack,
        topic=TOPIC,
        consumer=localstack.ConsumerOptions(),
        prometheus=localstack.PrometheusOptions(
            scrape_interval="2s",
            evaluation_interval="2s",
            # an alert firing before Prometheus has found Alertmanager is sent again 2 s later, not 1 min
            extra_args=("--rules.alert.resend-delay=2s",),
        ),
        alerting=DEMO_CONFIG,
    ) as started:
        _pids_file(work).write_text(json.dumps(started.pids()))
        started.detach()  # up: they run on in the background until `make demo-down`


def up(args: argparse.Namespace) -> int:
    work = Path(args.dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    stack = _stack(args)
    pids = {name: pid for name, pid in _read_pids(work).items() if _alive(pid)}
    if set(pids) == set(SERVICES):
        print("La démo tourne déjà : nouvelle ingestion de l'échantillon.")
    else:
        if not install_tools():
            return 1
        down(args)  # what is left of a previous demo
        ports = stack.ports
        busy = [p for p in ports if port_open(HOST, p)]
        if busy:
            print(f"Ports déjà utilisés : {busy}. Arrêtez ce qui les occupe ou changez-les (KAFKA_PORT=...).")
            return 1
        print(
            "Démarrage de Kafka, VictoriaLogs, Prometheus, Alertmanager, de la boîte de réception"
            " et du consumer…"
        )
        try:
            _start(work, stack)
        except (RuntimeError, TimeoutError) as err:  # what had started is stopped
            print(f"Le démarrage a échoué, tout est arrêté ; journaux dans {work}/ :\n{err}")
            return 1
    runs_before = scalar(stack.prometheus, "sum(ingestion_runs_total)") or 0.0
    lines_before = log_lines(stack.logs)
    code = producer_cli.main([f"--bootstrap-servers={stack.bootstrap}", f"--topic={TOPIC}", "--rebase-time"])
    if code != 0:
        print("Le producer a échoué : voir ses messages ci-dessus.")
        return code
    runs = runs_before + SAMPLE_RUNS
    if not _wait(lambda: (scalar(stack.prometheus, "sum(ingestion_runs_total)") or 0) >= runs, 60):
        print(f"Prometheus n'a pas vu les {SAMPLE_RUNS} exécutions : voir {work}/consumer.log")
        return 1
    # every run counted: wait for a lag sampled since (`make test-stack` checks a lag of 0)
    if not _wait(lambda: not stackcheck.consumer_lag(stack.prometheus), 30):
        print(f"Le retard du consumer sur {TOPIC} ne revient pas à 0 : voir {work}/consumer.log")
        return 1
    if not _wait(lambda: log_lines(stack.logs) >= lines_before + SAMPLE_RUNS, 30):
        print(f"{LOG_STORE} n'a pas reçu les {SAMPLE_RUNS} lignes : voir {work}/consumer.log")
        return 1
    _wait(lambda: bool(instant_query(stack.prometheus, 'ALERTS{alertstate="firing"}')), 30)
    _wait(lambda: bool(stackcheck.notifications(stack)), 30)
    print(summary(stack))
    print(notified(stack, work))
    print("\nAccès :")
    print(f"  Prometheus   {stack.prometheus}")
    print(f"  Alertmanager {stack.alertmanager}")
    print(f"  Notifications {work}/inbox/ (webhook {stack.inbox})")
    print(f"  {LOG_STORE} {stack.logs}/select/vmui (requêtes LogsQL)")
    print(f"  Consumer     {stack.consumer}/metrics")
    print(f"  Kafka        {stack.bootstrap} (topics {TOPIC}, {TOPIC}.dlq)")
    print("  Grafana, Kafka UI : pas en local, `make open-grafana`, `make open-kafka-ui`")
    print(f"  Journaux     {work}/ — `make test-stack` vérifie la pile, `make demo-down` arrête tout.")
    return 0


def _fmt(value: float | None, pattern: str) -> str:
    return "n/a" if value is None else pattern.format(value)


def summary(stack: Stack) -> str:
    """The dashboard's overview stats (its own queries), the runs by source and the firing alerts."""
    success, failed, ratio, p95, memory = (
        stat(stack, panel)
        for panel in ("Succès", "Échecs", "Taux d'échec (%)", "p95 durée (s)", "Max mémoire (MB)")
    )
    mb = None if memory is None else memory / 2**20
    lines = [
        "",
        "Résumé de l'ingestion",
        f"  Succès          {_fmt(success, '{:.0f}')}",
        f"  Échecs          {_fmt(failed, '{:.0f}')}",
        f"  Taux d'échec    {_fmt(ratio, '{:.2%}')}",
        f"  p95 durée       {_fmt(p95, '{:.2f} s')}",
        # Not the dashboard's LogQL (Loki's): its LogsQL equivalent, answered by the local log store.
        f"  Max mémoire     {_fmt(mb, '{:.1f} MB')} ({LOG_STORE}, LogsQL)",
        "",
        "Exécutions par source",
    ]
    by_source, failed_by_source = (
        {r["metric"]["source"]: float(r["value"][1]) for r in instant_query(stack.prometheus, promql)}
        for promql in (
            "sum by (source) (ingestion_runs_total)",
            'sum by (source) (ingestion_runs_total{etat="FAILED"})',
        )
    )
    for source, count in sorted(by_source.items()):
        lines.append(f"  {source:<18} {count:>5.0f}   dont échecs : {failed_by_source.get(source, 0):.0f}")
    alerts = instant_query(stack.prometheus, 'ALERTS{alertstate="firing"}')
    lines += ["", "Alertes déclenchées" if alerts else "Alertes déclenchées : aucune"]
    for alert in alerts:
        labels = alert["metric"]
        where = " / ".join(labels[k] for k in ("source", "objet") if k in labels)
        lines.append(f"  {labels['alertname']} ({labels.get('severity', '?')}) {where}")
    return "\n".join(lines)


def notified(stack: Stack, work: Path) -> str:
    """The notifications the local inbox received: one line per notification, one per alert in it."""
    received = read_notifications(work / "inbox")
    lines = ["", f"Notifications reçues ({work}/inbox/)" if received else "Notifications reçues : aucune"]
    for notification in received:
        statut = "résolue" if notification["status"] == "resolved" else "en cours"
        group = ", ".join(f"{k}={v}" for k, v in sorted(notification["groupLabels"].items()))
        lines.append(f"  [{statut}] {group} : {len(notification['alerts'])} alerte(s)")
        for alert in notification["alerts"]:
            error = alert["labels"].get("description")
            lines.append(f"    {alert['annotations'].get('summary', '?')}" + (f" — {error}" if error else ""))
    return "\n".join(lines)


def down(args: argparse.Namespace) -> int:
    work = Path(args.dir).resolve()
    pids = _read_pids(work)
    for name in SERVICES:
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
    checks = stackcheck.health(_stack(args))
    for name, ok in checks.items():
        print(f"  {'OK ' if ok else 'KO '} {name}")
    return 0 if all(checks.values()) else 1


def check(args: argparse.Namespace) -> int:
    """`make test-stack`: the seed's step-by-step checks against the running demo; 1 when one fails."""
    pids = _read_pids(Path(args.dir).resolve())
    processes = {name: name in pids and _alive(pids[name]) for name in reversed(SERVICES)}
    verdicts = stackcheck.run(_stack(args), processes)
    print(stackcheck.report(verdicts))
    return 0 if all(v.ok for v in verdicts) else 1


class UI(NamedTuple):
    title: str
    service: str  # the chart's Service is <release>-<service>
    port: int
    local_port: int


# The seed's two UIs, as the chart deploys them (and `make port-forward`, skaffold forward them).
UIS = {
    "open-grafana": UI("Grafana", "grafana", 80, 3000),
    "open-kafka-ui": UI("Kafka UI", "kafka-ui", 80, 8080),
}


def _kube_contexts() -> list[str]:
    if shutil.which("kubectl") is None:
        return []
    done = subprocess.run(
        ["kubectl", "config", "get-contexts", "-o", "name"], capture_output=True, text=True, check=False
    )
    return done.stdout.split()


def open_ui(args: argparse.Namespace) -> int:
    """Grafana or Kafka UI: not local; port-forwarded from the kind cluster when its context exists."""
    ui, stack = UIS[args.command], _stack(args)
    kube = ["kubectl", "--context", args.kube_context, "-n", args.namespace]
    forward = [*kube, "port-forward", f"svc/{args.release}-{ui.service}", f"{ui.local_port}:{ui.port}"]
    if ui.service == "grafana":
        local = f"Prometheus ({stack.prometheus}) pour les métriques, {LOG_STORE} ({stack.logs}/select/vmui)"
        local += " pour les journaux"
        secret = f"{args.release}-grafana-admin"
        note = f"utilisateur admin, mot de passe : {' '.join(kube)} get secret {secret}"
        note += " -o jsonpath='{.data.admin-password}' | base64 -d"
    else:
        local = f"Kafka écoute sur {stack.bootstrap} (topics {TOPIC}, {TOPIC}.dlq)"
        note = (
            "le chart ne l'installe que sur demande : `skaffold dev -p kafka-ui`, --set kafka-ui.enabled=true"
        )
    print(f"Pas de {ui.title} en local : il fait partie du déploiement Kubernetes. En local : {local}.")
    url = f"http://localhost:{ui.local_port}"
    if args.kube_context not in _kube_contexts():
        print(
            f"Pas de contexte kubectl {args.kube_context} : `make kind-up` et `make deploy`"
            " (ou `make dev-kind`),"
        )
        print(f"puis `{' '.join(forward)}` et {url}")
        print(f"({note})")
        return 0
    print(f"Contexte {args.kube_context} : `{' '.join(forward)}`, {ui.title} sur {url} (Ctrl-C arrête)")
    print(f"({note})", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        return subprocess.run(forward, check=False).returncode
    return 0


class _DeprecatedAlias(argparse.Action):
    """A former name of a flag: sets the same value, says once on stderr which name to use instead."""

    def __init__(self, option_strings: list[str], dest: str, *, replacement: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.replacement = replacement

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        print(
            f"{parser.prog}: {option_string} is deprecated and will be removed: use {self.replacement}",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devstack.demo", description=__doc__)
    parser.add_argument("command", choices=("up", "down", "health", "check", *UIS))
    parser.add_argument("--dir", default=".demo", help="state and logs of the demo")
    parser.add_argument("--kafka-port", type=int, default=Stack.kafka_port)
    parser.add_argument("--prometheus-port", type=int, default=Stack.prometheus_port)
    parser.add_argument(
        "--logs-port",
        type=int,
        default=Stack.logs_port,
        help="the log store's (VictoriaLogs: Loki's push API)",
    )
    parser.add_argument(
        "--loki-port",
        dest="logs_port",
        type=int,
        action=_DeprecatedAlias,
        replacement="--logs-port",
        help="deprecated: --logs-port",
    )
    parser.add_argument("--metrics-port", type=int, default=Stack.metrics_port)
    parser.add_argument("--alertmanager-port", type=int, default=Stack.alertmanager_port)
    parser.add_argument(
        "--inbox-port", type=int, default=Stack.inbox_port, help="the local webhook receiver's"
    )
    parser.add_argument("--kube-context", default="kind-ingestion-observability", help="open-* commands")
    parser.add_argument("--namespace", default="ingestion", help="open-* commands")
    parser.add_argument("--release", default="ingestion-observability", help="open-* commands")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "up": up,
        "down": down,
        "health": health,
        "check": check,
        **dict.fromkeys(UIS, open_ui),
    }
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
