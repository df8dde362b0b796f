"""Alertmanager routes, inhibitions and templates as rendered: checked by the real amtool (config, routes,
templates) and, for the AlertmanagerConfig resources, by prometheus-operator's CRD schema."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.tools import binary, tools_dir
from ingestion_observability.render import RenderConfig, config_from_mapping, render_rules, rules
from ingestion_observability.render import notifications as routes
from ingestion_observability.render.config import ConfigError, Notifications, ObjetSchedule, SecretRef, Slack
from tests.chart.support import crd_errors, crd_schemas
from tests.unit.test_render_promtool import HOSTILE

AMTOOL = str(binary("amtool"))  # from `make tools`; missing is an error, not a skip
CRD = tools_dir() / "crds" / "prometheus-operator" / "monitoring.coreos.com_alertmanagerconfigs.yaml"
WEBHOOK = {"webhook_configs": [{"url": "http://127.0.0.1:9/hook"}]}


def amtool(*args: str, cwd: Path) -> str:
    result = subprocess.run([AMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def write_config(tmp_path: Path, config: dict[str, Any]) -> Path:
    (tmp_path / routes.TEMPLATE_FILE).write_text(routes.templates(), encoding="utf-8")
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def receiver_of(tmp_path: Path, config: Path, labels: dict[str, str]) -> str:
    """The receivers `amtool config routes test` picks for an alert with these labels."""
    matchers = [routes.Matcher(name, value).text() for name, value in labels.items()]
    return amtool("config", "routes", "test", f"--config.file={config}", *matchers, cwd=tmp_path).strip()


@pytest.mark.parametrize("source", HOSTILE, ids=range(len(HOSTILE)))
def test_a_hostile_source_routes_exactly_itself(tmp_path: Path, source: str) -> None:
    receivers = {routes.DEFAULT_RECEIVER: WEBHOOK, "owner": WEBHOOK}
    config = write_config(
        tmp_path,
        routes.alertmanager_config(
            RenderConfig(), receivers, template_dir=str(tmp_path), source_routes={source: "owner"}
        ),
    )
    assert "SUCCESS" in amtool("check-config", str(config), cwd=tmp_path)
    alert = {"alertname": "IngestionEchecDetecte", "severity": "critical"}
    both = f"owner,{routes.DEFAULT_RECEIVER}"
    assert receiver_of(tmp_path, config, {**alert, "source": source}) == both
    for neighbour in {source + "_", source.upper(), ".", "x"} - {source}:
        assert receiver_of(tmp_path, config, {**alert, "source": neighbour}) == routes.DEFAULT_RECEIVER


def test_lowest_severity_and_foreign_alerts(tmp_path: Path) -> None:
    config = RenderConfig(notifications=Notifications(min_severity="critical"))
    path = write_config(
        tmp_path,
        routes.alertmanager_config(config, {routes.DEFAULT_RECEIVER: WEBHOOK}, template_dir=str(tmp_path)),
    )
    source = {"source": "s"}
    assert receiver_of(
        tmp_path, path, {"alertname": "IngestionEchecDetecte", "severity": "critical", **source}
    ) == (routes.DEFAULT_RECEIVER)
    assert receiver_of(
        tmp_path, path, {"alertname": "IngestionSourceMuette", "severity": "warning", **source}
    ) == (routes.NULL_RECEIVER)
    # the info alert that only inhibits, and an alert that is not ours, are never notified
    assert receiver_of(tmp_path, path, {"alertname": "IngestionConsumerNonPret", "severity": "info"}) == (
        routes.NULL_RECEIVER
    )
    assert receiver_of(tmp_path, path, {"alertname": "KubePodCrashLooping", "severity": "critical"}) == (
        routes.NULL_RECEIVER
    )


def test_every_alert_name_is_routed_and_the_inhibited_exist() -> None:
    # the chart's rules, and a source's own with an objet a CronJob runs
    configs = (RenderConfig(), RenderConfig(source="s", schedules=(ObjetSchedule("o", period_seconds=60),)))
    rendered = {
        rule["alert"]
        for config in configs
        for group in render_rules(config)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    names = set(rules.alert_names())
    assert rendered <= names
    assert set(rules.CONSUMER_OUTAGE_ALERTS) <= rendered
    assert set(rules.CAUSED_BY_CONSUMER_OUTAGE) <= rendered


def _group(status: str, objets: list[str], error: str) -> dict[str, Any]:
    """Alertmanager's template data for one group of IngestionEchecDetecte alerts of sharepoint_graph."""
    alerts = [
        {
            "status": status,
            "labels": {
                "alertname": "IngestionEchecDetecte",
                "severity": "critical",
                "source": "sharepoint_graph",
                "objet": objet,
                "description": error,
                "team": "finance",
            },
            "annotations": {
                "summary": f"Échec d'ingestion : sharepoint_graph / {objet}",
                "titre": "Échec d'ingestion",
                "sujet": f"sharepoint_graph / {objet}",
                "description": "1 exécution(s) en échec (FAILED)",
                "heure_echec": "2026-12-06 01:02:03 +0000 UTC",
                "tableau_de_bord": "http://grafana/d/x",
            },
            "startsAt": "2026-12-06T01:02:04Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus/graph",
            "fingerprint": f"{i:016x}",
        }
        for i, objet in enumerate(objets)
    ]
    common = {"alertname": "IngestionEchecDetecte", "severity": "critical", "source": "sharepoint_graph"}
    return {
        "receiver": routes.DEFAULT_RECEIVER,
        "status": status,
        "alerts": alerts,
        "groupLabels": {"alertname": "IngestionEchecDetecte", "source": "sharepoint_graph"},
        "commonLabels": {**common, "team": "finance"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager",
    }


def render(tmp_path: Path, template: str, data: dict[str, Any]) -> str:
    (tmp_path / routes.TEMPLATE_FILE).write_text(routes.templates(), encoding="utf-8")
    (tmp_path / "data.json").write_text(json.dumps(data), encoding="utf-8")
    return amtool(
        "template",
        "render",
        f"--template.glob={tmp_path / routes.TEMPLATE_FILE}",
        f"--template.text={template}",
        f"--template.data={tmp_path / 'data.json'}",
        cwd=tmp_path,
    ).strip()


def test_the_title_names_the_objet_or_counts_the_group(tmp_path: Path) -> None:
    error = 'HTTP 504 "Gateway Timeout"\nréessai échoué'
    one = _group("firing", ["EventFactureApplication"], error)
    assert render(tmp_path, routes.TITLE, one) == (
        "[CRITIQUE] Échec d'ingestion : sharepoint_graph / EventFactureApplication"
    )
    thirty = _group("firing", [f"objet-{i:02d}" for i in range(30)], error)
    assert (
        render(tmp_path, routes.TITLE, thirty)
        == "[CRITIQUE] Échec d'ingestion : sharepoint_graph (30 alertes)"
    )
    resolved = _group("resolved", ["EventFactureApplication"], error)
    assert render(tmp_path, routes.TITLE, resolved).startswith("[RÉSOLU] Échec d'ingestion : ")


def test_the_text_lists_every_alert_with_its_error(tmp_path: Path) -> None:
    error = 'HTTP 504 "Gateway Timeout"\nréessai échoué'
    text = render(tmp_path, routes.TEXT, _group("firing", ["a", "b"], error))
    assert text.startswith("Équipe : finance\n2 alerte(s) en cours\n")
    for objet in ("a", "b"):
        assert f"En cours : Échec d'ingestion : sharepoint_graph / {objet}\nErreur : {error}\n" in text
    assert "Survenue le : 2026-12-06 01:02:03 +0000 UTC" in text
    assert "Tableau de bord : http://grafana/d/x" in text


def test_unknown_integration_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported integration"):
        routes.with_texts({"pagerduty_configs": [{}]})
    with pytest.raises(ValueError, match="ingestion-defaut"):
        routes.alertmanager_config(RenderConfig(), {"other": WEBHOOK}, template_dir="/t")


def _crd_errors(spec: dict[str, Any]) -> list[str]:
    """What prometheus-operator's AlertmanagerConfig CRD schema says of a resource with this spec."""
    manifest = {"apiVersion": "monitoring.coreos.com/v1alpha1", "kind": "AlertmanagerConfig", "spec": spec}
    return crd_errors(manifest, crd_schemas([CRD]))


OWNER = Notifications(
    team="finance",
    slack=Slack("#ingestion-finance", SecretRef("slack", "url")),
    teams=SecretRef("teams", "webhook"),
    email=("finance@example.org", "oncall@example.org"),
    webhook=SecretRef("hooks", "url"),
    min_severity="critical",
    group_wait="10s",
)


@pytest.mark.parametrize("source", HOSTILE, ids=range(len(HOSTILE)))
def test_a_source_resource_matches_exactly_its_source(source: str) -> None:
    spec = routes.source_config_spec(RenderConfig(source=source, notifications=OWNER))
    assert spec is not None
    assert _crd_errors(spec) == []
    route = spec["route"]
    assert route["matchers"] == [
        {"name": "source", "value": source, "matchType": "="},
        {"name": "severity", "value": "critical", "matchType": "=~"},
    ]
    assert (route["groupWait"], route["groupBy"]) == ("10s", ["alertname", "source"])
    [receiver] = spec["receivers"]
    assert receiver["slackConfigs"][0]["apiURL"] == {"name": "slack", "key": "url"}
    assert receiver["msteamsv2Configs"][0]["webhookURL"] == {"name": "teams", "key": "webhook"}
    assert receiver["emailConfigs"][0]["to"] == "finance@example.org, oncall@example.org"
    assert receiver["webhookConfigs"][0]["urlSecret"] == {"name": "hooks", "key": "url"}
    assert all(
        c["sendResolved"] for configs in receiver.values() if isinstance(configs, list) for c in configs
    )


def test_a_source_without_receivers_has_no_resource() -> None:
    assert routes.source_config_spec(RenderConfig(source="s", notifications=Notifications(team="t"))) is None


def test_the_global_resource_fits_the_crd() -> None:
    assert _crd_errors(routes.global_config_spec(RenderConfig())) == []
    assert _crd_errors({"route": {"groupWait": 30}})  # the check can fail


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_severity": "page"}, "min_severity: expected one of info, warning, critical"),
        ({"email": ("not an address",)}, "email: invalid address"),
        ({"group_wait": "soon"}, "group_wait: invalid duration"),
        ({"webhook": {"name": "Bad_Name", "key": "url"}}, "invalid Secret name"),
    ],
)
def test_bad_notifications_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_mapping({"notifications": kwargs})
