"""A real Alertmanager (`make tools`, part "alertmanager") delivers to a real webhook inbox and SMTP server.

What the local stack relies on to make a failed run reach its owner: an alert posted through the API v2
comes out of the webhook byte for byte (unicode, quotes, newlines), a mail carries its French subject, and
amtool and /-/reload refuse a broken config with Alertmanager's own message.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.alertmanager import AlertmanagerError, AlertmanagerServer, check_config
from devstack.inbox import InboxServer
from devstack.prometheus import PrometheusServer
from tests.integration.mailbox import smtp_server
from tests.integration.support import wait_until

pytestmark = pytest.mark.integration

# Unicode (accents, guillemets, an emoji), both quotes, a backslash, a tab and newlines.
ANNOTATION = 'Le run « ventes-quotidiennes » a échoué : "timeout" à l\'étape 3\n\tC:\\tmp\\x — 🚨\nFin.'
JOB = "ventes-quotidiennes"
FAST_ROUTE = {"group_by": ["alertname", "job_name"], "group_wait": "0s", "group_interval": "1s"}


def route_to(receiver: str) -> dict[str, Any]:
    return {"receiver": receiver, **FAST_ROUTE, "repeat_interval": "1h"}


def failed_run(job_name: str, **annotations: str) -> dict[str, Any]:
    return {
        "labels": {"alertname": "IngestionRunFailed", "job_name": job_name, "severity": "critical"},
        "annotations": annotations,
        "generatorURL": "http://127.0.0.1:9090/graph",
    }


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[InboxServer]:
    with InboxServer.start(tmp_path / "inbox") as server:
        yield server


def test_an_alert_reaches_the_webhook_intact(inbox: InboxServer, tmp_path: Path) -> None:
    config = {
        "route": route_to("inbox"),
        "receivers": [{"name": "inbox", "webhook_configs": [{"url": f"{inbox.url}/alertmanager"}]}],
    }
    with AlertmanagerServer.start(tmp_path / "alertmanager", config=config) as alertmanager:
        check_config(alertmanager.config_path)  # what the server runs is what amtool accepts
        alertmanager.post_alerts([failed_run(JOB, summary=ANNOTATION)])

        held = alertmanager.alerts([f'job_name="{JOB}"'])
        assert [a["annotations"]["summary"] for a in held] == [ANNOTATION]
        notification = inbox.wait_for(
            lambda n: any(a["labels"].get("job_name") == JOB for a in n.get("alerts", [])),
            timeout=30,
        )

    assert notification["path"] == "/alertmanager"
    assert notification["version"] == "4"
    assert notification["receiver"] == "inbox"
    assert notification["status"] == "firing"
    assert notification["groupLabels"] == {"alertname": "IngestionRunFailed", "job_name": JOB}
    [alert] = notification["alerts"]
    assert alert["annotations"] == {"summary": ANNOTATION}
    assert alert["labels"]["severity"] == "critical"
    assert alert["status"] == "firing"


def test_prometheus_sends_its_firing_alerts_to_the_alertmanager(inbox: InboxServer, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rule = {"alert": "IngestionRunFailed", "expr": "vector(1)", "labels": {"job_name": "par-prometheus"}}
    rule["annotations"] = {"summary": ANNOTATION}
    rules.write_text(yaml.safe_dump({"groups": [{"name": "owner", "rules": [rule]}]}, allow_unicode=True))
    config = {
        "route": route_to("inbox"),
        "receivers": [{"name": "inbox", "webhook_configs": [{"url": f"{inbox.url}/prometheus"}]}],
    }
    with (
        AlertmanagerServer.start(tmp_path / "alertmanager", config=config) as alertmanager,
        PrometheusServer.start(
            tmp_path / "prometheus",
            evaluation_interval="1s",
            rule_files=[rules],
            alertmanagers=[alertmanager.target],
            # Prometheus finds its alertmanagers some 5s after its start: the alert that fired before that
            # is resent after this delay (default 1m).
            extra_args=["--rules.alert.resend-delay=1s"],
        ) as prometheus,
    ):
        prometheus.write_config()  # what reload() rewrites keeps the alertmanager
        prometheus.reload()
        notification = inbox.wait_for(lambda n: n["path"] == "/prometheus", timeout=30)
        assert prometheus.api("alertmanagers")["activeAlertmanagers"] == [
            {"url": f"{alertmanager.url}/api/v2/alerts"}
        ]

    [alert] = notification["alerts"]
    assert alert["labels"]["job_name"] == "par-prometheus"
    assert alert["annotations"] == {"summary": ANNOTATION}
    # Prometheus' own link (host: this machine's name, as no --web.external-url is given).
    assert alert["generatorURL"].endswith(f":{prometheus.port}/graph?g0.expr=vector%281%29&g0.tab=1")


def test_a_mail_carries_the_french_subject(tmp_path: Path) -> None:
    with smtp_server() as mailbox:
        # The subject comes from a template file: `templates` are written beside the config and listed in it.
        templates = {
            "fr.tmpl": '{{ define "fr.subject" }}[ÉCHEC] Exécution « {{ .CommonLabels.job_name }} » '
            "en échec — propriétaire prévenu{{ end }}\n"
        }
        config = {
            "route": route_to("owner"),
            "receivers": [
                {
                    "name": "owner",
                    "email_configs": [
                        {
                            "to": "equipe-ventes@example.org",
                            "from": "alertmanager@example.org",
                            "smarthost": mailbox.smarthost,
                            "require_tls": False,
                            "headers": {"Subject": '{{ template "fr.subject" . }}'},
                        }
                    ],
                }
            ],
        }
        with AlertmanagerServer.start(
            tmp_path / "alertmanager", config=config, templates=templates
        ) as alertmanager:
            written = yaml.safe_load(alertmanager.config_path.read_text(encoding="utf-8"))
            assert written["templates"] == [str(alertmanager.work_dir / "fr.tmpl")]
            alertmanager.post_alerts([failed_run(JOB, summary=ANNOTATION)])
            wait_until(
                lambda: mailbox.messages,
                timeout=30,
                what="a mail on the SMTP server",
                seen=lambda: alertmanager.process.tail(5),
            )

    [(envelope, message)] = mailbox.messages
    assert envelope.rcpt_tos == ["equipe-ventes@example.org"]
    assert str(message["Subject"]) == f"[ÉCHEC] Exécution « {JOB} » en échec — propriétaire prévenu"
    assert str(message["To"]) == "equipe-ventes@example.org"


BROKEN = {
    "route": {"receiver": "nobody"},
    "receivers": [{"name": "inbox", "webhook_configs": [{"url": "http://127.0.0.1:9/"}]}],
}


def test_amtool_and_reload_refuse_a_broken_config(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump(BROKEN))
    with pytest.raises(AlertmanagerError, match='undefined receiver "nobody" used in route'):
        check_config(broken)

    good = {**BROKEN, "route": {"receiver": "inbox"}}
    with AlertmanagerServer.start(tmp_path / "alertmanager", config=good) as alertmanager:
        with pytest.raises(AlertmanagerError, match='undefined receiver "nobody" used in route'):
            alertmanager.reload(config=BROKEN)
        alertmanager.reload(config=good)  # back to a config it accepts
        alertmanager.post_alerts([failed_run("encore-vivant")])
        assert [a["labels"]["job_name"] for a in alertmanager.alerts()] == ["encore-vivant"]
