"""`make demo` and `make test-stack` on free ports: services up, sample ingested, French summary, the seed's
step-by-step checks (passing, then failing on a wrong expectation and on a stack that is not there), down."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack import demo, stackcheck
from devstack.process import free_port
from devstack.prometheus import instant_query

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Demo:
    work: Path
    stack: stackcheck.Stack
    output: str  # what `up` printed

    @property
    def ports(self) -> list[str]:
        return _ports(self.stack)


def _ports(stack: stackcheck.Stack) -> list[str]:
    return [
        f"--kafka-port={stack.kafka_port}",
        f"--prometheus-port={stack.prometheus_port}",
        f"--logs-port={stack.logs_port}",
        f"--metrics-port={stack.metrics_port}",
        f"--alertmanager-port={stack.alertmanager_port}",
        f"--inbox-port={stack.inbox_port}",
    ]


def _free_stack() -> stackcheck.Stack:
    return stackcheck.Stack(
        kafka_port=free_port(),
        prometheus_port=free_port(),
        logs_port=free_port(),
        metrics_port=free_port(),
        alertmanager_port=free_port(),
        inbox_port=free_port(),
    )


def _run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = demo.main(list(argv))
    return code, out.getvalue()


def _gone(pid: int) -> bool:
    """Gone, or a zombie waiting for this test process to reap it."""
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """One demo for the module; leaving it runs `down` and checks that every process is gone."""
    work, stack = tmp_path_factory.mktemp("demo") / "demo", _free_stack()
    try:
        code, output = _run("up", f"--dir={work}", *_ports(stack))
        assert code == 0, output
        pids = json.loads((work / "pids.json").read_text())
        yield Demo(work, stack, output)
    finally:
        assert _run("down", f"--dir={work}")[0] == 0
    assert set(pids) == set(demo.SERVICES)
    assert all(_gone(pid) for pid in pids.values())
    assert _run("health", *_ports(stack))[0] == 1


def test_up_prints_the_summary(running: Demo) -> None:
    out = running.output
    assert "72 sent, 0 invalid, 0 failed" in out
    for line in (
        "Succès          71",
        "Échecs          1",
        "Taux d'échec    1.39%",
        # the sample's largest memory_used (20781479 bytes), found by LogsQL in the log store
        "Max mémoire     19.8 MB (VictoriaLogs, LogsQL)",
        "sharepoint_graph      12   dont échecs : 1",
        "IngestionEchecDetecte (critical) sharepoint_graph / EventFactureApplication",
        # delivered by Alertmanager to the local inbox, with the run's error
        "  [en cours] alertname=IngestionEchecDetecte, source=sharepoint_graph : 1 alerte(s)",
        "    Échec d'ingestion : sharepoint_graph / EventFactureApplication — "
        + stackcheck.Expected().firing_error,
    ):
        assert line in out


def test_health(running: Demo) -> None:
    code, out = _run("health", *running.ports)
    assert code == 0, out
    assert "OK  VictoriaLogs" in out


def test_check_passes_then_counts_a_second_ingestion(running: Demo) -> None:
    code, out = _run("check", f"--dir={running.work}", *running.ports)
    assert code == 0, out
    for verdict in (
        "✅ Étape 1 : processus en marche : kafka, victorialogs, inbox, alertmanager, prometheus, consumer",
        "✅ Étape 3 : 72 messages dans ingestion-logs, 72 traités par le consumer, 0 invalide, retard 0",
        "✅ Étape 4 : 72 séries ingestion_runs_total, 71 SUCCESS / 1 FAILED (attendu 72, 71/1)",
        "✅ Étape 5 : tableau de bord : 71 succès / 1 échec, taux d'échec 1.39% (attendu 71/1, 1.39%)",
        "✅ Étape 6 : 13 règles d'alerte chargées (attendu 13)",
        "✅ Étape 6 : IngestionEchecDetecte déclenchée sur sharepoint_graph / EventFactureApplication",
        "✅ Étape 6 : notification IngestionEchecDetecte sur sharepoint_graph / EventFactureApplication :"
        " reçue",
        "✅ Étape 7 : 72 lignes job=ingestion-logs dans VictoriaLogs, dont 1 FAILED (attendu 72, dont 1)",
        "✅ Étape 9 : /metrics du consumer",
        "Bilan : 10/10 vérifications réussies ✅",
    ):
        assert verdict in out

    code, out = _run("up", f"--dir={running.work}", *running.ports)  # what `make ingest` also does
    assert code == 0, out
    assert "La démo tourne déjà : nouvelle ingestion de l'échantillon." in out
    code, out = _run("check", f"--dir={running.work}", *running.ports)
    assert code == 0, out
    assert "✅ Étape 3 : 144 messages dans ingestion-logs, 144 traités" in out
    assert "✅ Étape 5 : tableau de bord : 71 succès / 1 échec" in out  # objets by their newest run
    assert "dont 2 FAILED (attendu 144 = 72 × 2 ingestions, dont 2 = 1 × 2 ingestions)" in out


def test_check_fails_on_a_wrong_expectation(running: Demo) -> None:
    seed = stackcheck.Expected()
    wrong = stackcheck.Expected(success=70, failed=2, alert_rules=(*seed.alert_rules, "IngestionInconnue"))
    verdicts = stackcheck.run(running.stack, dict.fromkeys(demo.SERVICES, True), wrong)
    failed = [str(v) for v in verdicts if not v.ok]
    assert (
        failed[0] == "❌ Étape 4 : 72 séries ingestion_runs_total, 71 SUCCESS / 1 FAILED (attendu 72, 70/2)"
    )
    assert failed[1].startswith("❌ Étape 5 : tableau de bord : 71 succès / 1 échec")
    assert (
        failed[2] == "❌ Étape 6 : 13 règles d'alerte chargées (attendu 14) ; manquantes : IngestionInconnue"
    )
    assert failed[3].startswith("❌ Étape 7 :")
    assert len(failed) == 4
    assert stackcheck.report(verdicts).endswith("Bilan : 6/10 vérifications réussies, 4 en échec ❌")


def test_check_fails_when_the_stack_is_not_there(tmp_path: Path) -> None:
    code, out = _run("check", f"--dir={tmp_path}", *_ports(_free_stack()))
    assert code == 1
    for verdict in (
        "❌ Étape 1 : processus en marche : aucun ; arrêtés : kafka, victorialogs, inbox, alertmanager,"
        " prometheus, consumer",
        "❌ Étape 2 : sans réponse : Prometheus, Alertmanager, Boîte de réception, VictoriaLogs, Consumer"
        " (vivant), Consumer (prêt), Kafka",
        "❌ Étape 3 : non vérifiable, sans réponse de Kafka, Prometheus",
        "❌ Étape 7 : non vérifiable, sans réponse de VictoriaLogs",
        "❌ Étape 6 : non vérifiable, sans réponse de Boîte de réception",
        "Bilan : 0/10 vérifications réussies, 10 en échec ❌",
    ):
        assert verdict in out


def test_open_grafana_without_a_cluster() -> None:
    code, out = _run("open-grafana", "--kube-context=no-such-context")
    assert code == 0
    assert "Pas de Grafana en local" in out
    assert "port-forward svc/ingestion-observability-grafana 3000:80" in out


def test_a_second_demo_carries_the_totals_over(tmp_path: Path) -> None:
    """`make demo`, `make demo-down`, `make demo`: Prometheus keeps its TSDB and the consumer its state."""
    work, stack = tmp_path / "demo", _free_stack()
    try:
        for first in (True, False):
            code, output = _run("up", f"--dir={work}", *_ports(stack))
            assert code == 0, output
            if first:
                assert _run("down", f"--dir={work}")[0] == 0
        prometheus = f"http://127.0.0.1:{stack.prometheus_port}"
        by_etat = {
            r["metric"]["etat"]: r["value"][1]
            for r in instant_query(prometheus, "sum by (etat) (ingestion_runs_total)")
        }
        assert by_etat == {"SUCCESS": "142", "FAILED": "2"}
        assert "Succès          71" in output and "Échecs          1" in output  # the last run of each objet
    finally:
        assert _run("down", f"--dir={work}")[0] == 0
