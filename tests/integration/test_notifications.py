"""A failed run reaches its owner: Kafka → consumer → Prometheus (rendered rules) → Alertmanager (rendered
routes, inhibitions and French templates) → a webhook inbox and a real SMTP server.

Short windows and 1 s intervals (the render config below) keep each test within a minute; the routes,
templates and rules are the product's, rendered by `ingestion_observability.render`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from devstack.alertmanager import AlertmanagerServer, check_config
from devstack.consumer import ConsumerProcess
from devstack.inbox import InboxServer
from devstack.kafka import KafkaBroker
from devstack.prometheus import PrometheusServer
from devstack.victorialogs import VictoriaLogsServer
from ingestion_observability.render import RenderConfig, Thresholds, render_rules
from ingestion_observability.render import notifications as routes
from ingestion_observability.render.cli import rules_yaml
from ingestion_observability.render.config import Notifications
from tests.integration.mailbox import Mailbox, smtp_server
from tests.integration.support import send_events, wait_until

GRAFANA = "http://grafana.test:3000"
CONFIG = RenderConfig(
    thresholds=Thresholds(failure_window="20s", consumer_down_for="5s"),
    grafana_url=GRAFANA,
    # group_wait leaves room for a batch split over two scrapes: 30 failures still make one notification
    notifications=Notifications(group_wait="5s", group_interval="1s", repeat_interval="1h"),
)
SOURCE = "Zoho — été"
OBJET = 'Factures "clients"'
ERROR = 'HTTP 504 "Gateway Timeout"\nréessai : échec définitif'


def run(
    source: str, objet: str, etat: str, end: float, description: str = "", key: int = 0
) -> dict[str, Any]:
    """A raw run record (the connectors' format) ending at `end`, 2 s long."""
    return {
        "ID": key,
        "Source": source,
        "Objet": objet,
        "Etat": etat,
        "Debut": datetime.fromtimestamp(end - 2, UTC).isoformat(),
        "Fin": datetime.fromtimestamp(end, UTC).isoformat(),
        "Duree secondes": 2.0,
        "cpu_time": 0.2,
        "memory_used": 1048576.0,
        "Description": description,
    }


@dataclass
class Stack:
    consumer: ConsumerProcess
    prometheus: PrometheusServer
    alertmanager: AlertmanagerServer
    inbox: InboxServer
    topic: str
    bootstrap: str

    def notified(self, alertname: str, status: str = "firing") -> list[dict[str, Any]]:
        """The webhook notifications of `alertname` with that status."""
        return [
            n
            for n in self.inbox.notifications()
            if n["groupLabels"].get("alertname") == alertname and n["status"] == status
        ]


@contextlib.contextmanager
def notifying(
    kafka: KafkaBroker,
    logstore: VictoriaLogsServer,
    topic: str,
    work: Path,
    integrations: Mapping[str, list[dict[str, Any]]] | None = None,
    *,
    alerting: bool = True,
    sources: tuple[RenderConfig, ...] = (),
) -> Iterator[Stack]:
    """The whole path, every ingestion alert routed to the inbox's webhook (and `integrations`); the
    chart's rules, and the per-source rules of `sources` as the operator renders them."""
    rules = work / "rules.yaml"
    groups = [g for config in (CONFIG, *sources) for g in render_rules(config)["groups"]]
    rules.write_text(rules_yaml({"groups": groups}), encoding="utf-8")
    with (
        InboxServer.start(work / "inbox") as inbox,
        ConsumerProcess.start(
            work / "consumer.log",
            kafka.bootstrap_servers,
            logstore.push_url,
            topic=topic,
            group_id=topic,  # its own group: no rebalance of the other tests' consumers
            extra_args=[f"--loki-job={topic}"],  # the session's log store: its own job, as every test
        ) as consumer,
    ):
        receivers = {
            routes.DEFAULT_RECEIVER: {"webhook_configs": [{"url": inbox.url}], **(integrations or {})}
        }
        config = routes.alertmanager_config(CONFIG, receivers, template_dir=str(work / "alertmanager"))
        with AlertmanagerServer.start(
            work / "alertmanager", config=config, templates={routes.TEMPLATE_FILE: routes.templates()}
        ) as alertmanager:
            check_config(alertmanager.config_path)
            with PrometheusServer.start(
                work / "prometheus",
                targets=[consumer.target],
                scrape_interval="1s",
                evaluation_interval="1s",
                rule_files=[rules],
                alertmanagers=[alertmanager.target] if alerting else (),
                extra_args=["--rules.alert.resend-delay=1s"],
            ) as prometheus:
                consumer.wait_ready()
                yield Stack(consumer, prometheus, alertmanager, inbox, topic, kafka.bootstrap_servers)


def test_a_failed_run_reaches_the_webhook_and_the_mailbox_then_resolves(
    kafka: KafkaBroker, logstore: VictoriaLogsServer, topic: str, tmp_path: Path
) -> None:
    with smtp_server() as mailbox:
        email = {
            "email_configs": [
                {
                    "to": "equipe-finance@example.org",
                    "from": "alertmanager@example.org",
                    "smarthost": mailbox.smarthost,
                    "require_tls": False,
                }
            ]
        }
        with notifying(kafka, logstore, topic, tmp_path, email) as stack:
            failed_at = time.time() - 3
            send_events(
                stack.bootstrap,
                topic,
                [
                    run(SOURCE, OBJET, "SUCCESS", failed_at - 10, key=1),
                    run(SOURCE, OBJET, "FAILED", failed_at, ERROR, key=2),
                ],
            )
            wait_until(
                lambda: stack.notified("IngestionEchecDetecte"), timeout=60, what="the failure notified"
            )
            wait_until(lambda: _mail(mailbox, "[CRITIQUE]"), timeout=30, what="the failure mailed")
            # the failure leaves its 20 s window: the alert resolves, and both receivers are told
            wait_until(
                lambda: stack.notified("IngestionEchecDetecte", "resolved"),
                timeout=90,
                what="resolved notified",
            )
            wait_until(lambda: _mail(mailbox, "[RÉSOLU]"), timeout=30, what="resolved mailed")

    [firing] = stack.notified("IngestionEchecDetecte")
    [alert] = firing["alerts"]
    labels, notes = alert["labels"], alert["annotations"]
    assert (labels["source"], labels["objet"], labels["severity"]) == (SOURCE, OBJET, "critical")
    assert labels["description"] == ERROR
    assert notes["summary"] == f"Échec d'ingestion : {SOURCE} / {OBJET}"
    assert notes["executions"] == "2 exécution(s), dont 1 en échec, sur 20 s"
    when = datetime.fromtimestamp(failed_at, UTC)
    assert notes["heure_echec"].startswith(when.strftime("%Y-%m-%d %H:%M:%S"))
    assert notes["tableau_de_bord"] == (
        f"{GRAFANA}/d/ingestion-overview/?orgId=1&var-source={quote_plus(SOURCE)}&var-objet={quote_plus(OBJET)}"
    )
    assert notes["journaux"].startswith(f"{GRAFANA}/explore?schemaVersion=1&orgId=1&panes=")
    assert quote_plus(f'source=\\"{SOURCE}\\"') in notes["journaux"]

    subject, body = _mail(mailbox, "[CRITIQUE]")[0]
    assert subject == f"[CRITIQUE] Échec d'ingestion : {SOURCE} / {OBJET}"
    assert f"Erreur : {ERROR}" in body
    assert "Exécutions : 2 exécution(s), dont 1 en échec, sur 20 s" in body
    assert f"Tableau de bord : {notes['tableau_de_bord']}" in body
    assert _mail(mailbox, "[RÉSOLU]")[0][0] == f"[RÉSOLU] Échec d'ingestion : {SOURCE} / {OBJET}"
    # the HTML part is Alertmanager's html/template rendering: names and errors escaped
    html = next(m.get_body(("html",)) for _, m in mailbox.messages)
    assert html is not None
    assert "Factures &#34;clients&#34;" in html.get_content()


def _mail(mailbox: Mailbox, prefix: str) -> list[tuple[str, str]]:
    """(subject, plain-text body) of the mails whose subject starts with `prefix`."""
    mails = []
    for _, message in mailbox.messages:
        subject = str(make_header(decode_header(str(message["Subject"]))))
        if subject.startswith(prefix):
            part = message.get_body(("plain",))
            body = "" if part is None else part.get_content()
            mails.append((subject, body.replace("\r\n", "\n")))  # SMTP lines end in CRLF
    return mails


def test_thirty_objets_failing_together_make_one_notification(
    kafka: KafkaBroker, logstore: VictoriaLogsServer, topic: str, tmp_path: Path
) -> None:
    objets = [f"objet-{i:02d}" for i in range(30)]
    with notifying(kafka, logstore, topic, tmp_path) as stack:
        now = time.time() - 2
        send_events(
            stack.bootstrap, topic, [run("sharepoint_graph", o, "FAILED", now, f"erreur {o}") for o in objets]
        )
        wait_until(
            lambda: sum(len(n["alerts"]) for n in stack.notified("IngestionEchecDetecte")) >= 30,
            timeout=60,
            what="30 failures notified",
            seen=lambda: [len(n["alerts"]) for n in stack.notified("IngestionEchecDetecte")],
        )
    notifications = stack.notified("IngestionEchecDetecte")
    # all 30 in one notification: the consumer commits them in one batch and Prometheus sees them together
    assert [len(n["alerts"]) for n in notifications] == [30]
    [notification] = notifications
    assert notification["groupLabels"] == {"alertname": "IngestionEchecDetecte", "source": "sharepoint_graph"}
    assert sorted(a["labels"]["objet"] for a in notification["alerts"]) == objets
    assert {a["labels"]["objet"]: a["labels"]["description"] for a in notification["alerts"]} == {
        o: f"erreur {o}" for o in objets
    }


def test_a_stopped_consumer_is_notified_and_the_silences_it_causes_are_not(
    kafka: KafkaBroker, logstore: VictoriaLogsServer, topic: str, tmp_path: Path
) -> None:
    """A source silent for 2 h (its last run's end): IngestionSourceMuette fires. The consumer stops:
    IngestionConsumerDown fires and is notified; the silence, firing all along, is held back."""
    with notifying(kafka, logstore, topic, tmp_path, alerting=False) as stack:
        send_events(stack.bootstrap, topic, [run("efficy", "Contact", "SUCCESS", time.time() - 7200)])
        stack.prometheus.wait_for(
            'ALERTS{alertname="IngestionSourceMuette", alertstate="firing"}', timeout=60
        )
        stack.consumer.stop()
        stack.prometheus.wait_for(
            'ALERTS{alertname="IngestionConsumerNonPret", alertstate="firing"}', timeout=60
        )
        # Alertmanager hears of every firing alert from now on
        stack.prometheus.alertmanagers = [stack.alertmanager.target]
        stack.prometheus.reload(jobs=stack.prometheus.jobs)
        wait_until(
            lambda: stack.notified("IngestionConsumerDown"), timeout=60, what="the consumer down notified"
        )
        wait_until(
            lambda: _suppressed(stack.alertmanager, "IngestionSourceMuette"),
            timeout=30,
            what="the silence inhibited",
            seen=lambda: stack.alertmanager.alerts(),
        )
        # a notification of the silence would have been sent within group_wait of its arrival
        time.sleep(7)
        notified = {n["groupLabels"].get("alertname") for n in stack.inbox.notifications()}
    assert "IngestionConsumerDown" in notified
    assert "IngestionSourceMuette" not in notified
    assert "IngestionConsumerNonPret" not in notified  # info: inhibits, never notified


def test_a_sources_own_alert_holds_back_the_charts_twin(
    kafka: KafkaBroker, logstore: VictoriaLogsServer, topic: str, tmp_path: Path
) -> None:
    """A source with an IngestionSource is alerted by its own rules (labelled with its namespace) and by
    the chart's: the default receiver hears of its failure once, from its own rule."""
    own = dataclasses.replace(CONFIG, source="finance", routing_labels={"namespace": "team-finance"})
    with notifying(kafka, logstore, topic, tmp_path, sources=(own,)) as stack:
        failed_at = time.time() - 2
        send_events(
            stack.bootstrap,
            topic,
            [
                run("finance", "grand-livre", "FAILED", failed_at, "e1"),
                run("autre", "x", "FAILED", failed_at, "e2"),
            ],
        )
        stack.prometheus.wait_for('count(ALERTS{alertname="IngestionEchecDetecte", source="finance"}) == 2')
        wait_until(
            lambda: (
                {a["labels"]["source"] for n in stack.notified("IngestionEchecDetecte") for a in n["alerts"]}
                == {"finance", "autre"}
            ),
            timeout=60,
            what="both failures notified",
        )
        time.sleep(3)  # a later notification of the twin would come within group_interval (1 s)
        alerts = [a["labels"] for n in stack.notified("IngestionEchecDetecte") for a in n["alerts"]]
    assert [a.get("namespace") for a in alerts if a["source"] == "finance"] == ["team-finance"]
    assert [a.get("namespace") for a in alerts if a["source"] == "autre"] == [None]


def _suppressed(alertmanager: AlertmanagerServer, alertname: str) -> bool:
    return any(
        a["labels"]["alertname"] == alertname
        and a["status"]["state"] == "suppressed"
        and a["status"]["inhibitedBy"]
        for a in alertmanager.alerts()
    )
