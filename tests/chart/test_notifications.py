"""Notifications: the chart's AlertmanagerConfig (the generated route and inhibitions, the receivers from
values, Secrets by reference), the templates ConfigMap, kube-prometheus-stack's Alertmanager pointed at both,
and notifications.grafanaUrl reaching the rules' links and the operator's render defaults.

kube-prometheus-stack's Alertmanager is checked on a stand-in that renders the four fields of its
`alertmanagerSpec` used here the way that chart does (alertmanagerConfiguration with toYaml, the two selectors
through tpl), from the values our chart hands it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import pytest
import yaml

from devstack.chart import make_chart_copy
from ingestion_observability.render import load_config, notifications
from ingestion_observability.render.config import Notifications, RenderConfig, SecretRef, Slack
from ingestion_observability.render.rules import render_rules
from ingestion_operator import children

from .conftest import FULL_OVERRIDES, KIND_VALUES, RenderError
from .support import (
    CHART,
    NAMESPACE,
    RELEASE,
    Manifest,
    by_kind,
    containers,
    crd_errors,
    crd_schemas,
    env_of,
    one,
    parse_manifests,
    run_helm,
    values_args,
)

CONFIG_NAME = "ingestion-observability-notifications"
TEMPLATES_NAME = "ingestion-observability-notification-templates"

# Test stand-in: the Alertmanager kube-prometheus-stack renders, reduced to the fields the notifications set.
_ALERTMANAGER_STANDIN = """\
{{- $spec := .Values.alertmanager.alertmanagerSpec }}
{{- if .Values.alertmanager.enabled }}
apiVersion: monitoring.coreos.com/v1
kind: Alertmanager
metadata:
  name: standin-alertmanager
  namespace: {{ .Release.Namespace }}
  labels:
    standin: "true"
spec:
  alertmanagerConfigSelector: {{ tpl (toJson ($spec.alertmanagerConfigSelector | default dict)) . }}
  alertmanagerConfigNamespaceSelector: {{ tpl (toJson $spec.alertmanagerConfigNamespaceSelector) . }}
  {{- with $spec.alertmanagerConfiguration }}
  alertmanagerConfiguration: {{ toJson . }}
  {{- end }}
  {{- with $spec.alertmanagerConfigMatcherStrategy }}
  alertmanagerConfigMatcherStrategy: {{ toJson . }}
  {{- end }}
{{- end }}
"""

# kube-prometheus-stack's own defaults of those fields.
_ALERTMANAGER_DEFAULTS = {
    "alertmanager": {
        "enabled": True,
        "alertmanagerSpec": {
            "alertmanagerConfigSelector": {},
            "alertmanagerConfigNamespaceSelector": {},
            "alertmanagerConfiguration": {},
            "alertmanagerConfigMatcherStrategy": {},
        },
    }
}

SMTP = {
    "kube-prometheus-stack": {
        "alertmanager": {
            "alertmanagerSpec": {
                "alertmanagerConfiguration": {
                    "global": {
                        "smtp": {
                            "smartHost": {"host": "smtp.example.com", "port": "587"},
                            "from": "alertes@example.com",
                            "authUsername": "alertes",
                            "authPassword": {"name": "smtp-auth", "key": "password"},
                        }
                    }
                }
            }
        }
    }
}

RECEIVERS = {
    "notifications": {
        "receivers": {
            "slack": {"channel": "#ingestion", "webhookSecret": {"name": "slack-hook"}},
            "teams": {"webhookSecret": {"name": "teams-hook", "key": "webhook"}},
            "email": {"to": ["ingestion@example.com", "data@example.com"]},
            "webhook": {"urlSecret": {"name": "alert-hook", "key": "endpoint"}},
        }
    }
}

GRAFANA_URL = "https://grafana.example.com/ingestion"


class Render(Protocol):
    def __call__(
        self, *overrides: Mapping[str, Any], release: str = RELEASE, namespace: str = NAMESPACE
    ) -> list[Manifest]: ...


@pytest.fixture(scope="module")
def render(tmp_path_factory: pytest.TempPathFactory, helm_home: Path) -> Render:
    """helm template of a chart copy whose kube-prometheus-stack stand-in also renders its Alertmanager."""
    chart = make_chart_copy(tmp_path_factory.mktemp("notifications") / "ingestion-observability")
    kps = chart / "charts" / "kube-prometheus-stack"
    (kps / "templates" / "alertmanager.yaml").write_text(_ALERTMANAGER_STANDIN)
    (kps / "values.yaml").write_text(yaml.safe_dump(_ALERTMANAGER_DEFAULTS))
    tmp = tmp_path_factory.mktemp("notifications-values")
    cache: dict[str, list[Manifest]] = {}

    def _render(
        *overrides: Mapping[str, Any], release: str = RELEASE, namespace: str = NAMESPACE
    ) -> list[Manifest]:
        key = repr((overrides, release, namespace))
        if key not in cache:
            args: list[str | Path] = ["template", release, chart, "--namespace", namespace]
            args += values_args((), overrides, tmp=tmp)
            cache[key] = parse_manifests(run_helm(args, home=helm_home).stdout)
        return cache[key]

    return _render


def _config(manifests: list[Manifest]) -> Manifest:
    return one(manifests, "AlertmanagerConfig", CONFIG_NAME)


def _receivers(manifests: list[Manifest]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in _config(manifests)["spec"]["receivers"]}


def _alertmanager(manifests: list[Manifest]) -> Manifest:
    return one(manifests, "Alertmanager", "standin-alertmanager")


def test_route_and_inhibitions_are_the_generated_ones(render: Render) -> None:
    config = _config(render())
    assert config["metadata"]["namespace"] == NAMESPACE
    spec = dict(config["spec"])
    spec.pop("receivers")
    assert spec == notifications.global_config_spec(RenderConfig())
    route = spec["route"]
    assert route["groupBy"] == ["alertname", "source"]
    assert (route["groupWait"], route["groupInterval"], route["repeatInterval"]) == ("30s", "5m", "4h")
    assert route["receiver"] == notifications.NULL_RECEIVER
    assert {r["receiver"] for r in route["routes"]} == {notifications.DEFAULT_RECEIVER}


def test_without_receivers_the_default_receiver_has_no_integration(render: Render) -> None:
    assert _receivers(render()) == {
        notifications.NULL_RECEIVER: {"name": notifications.NULL_RECEIVER},
        notifications.DEFAULT_RECEIVER: {"name": notifications.DEFAULT_RECEIVER},
    }


def test_receivers_reference_their_secrets_with_the_operators_texts(render: Render) -> None:
    receivers = _receivers(render(RECEIVERS, SMTP))
    assert receivers[notifications.NULL_RECEIVER] == {"name": notifications.NULL_RECEIVER}
    default = receivers[notifications.DEFAULT_RECEIVER]
    title, text, html = notifications.TITLE, notifications.TEXT, notifications.HTML
    assert default == {
        "name": notifications.DEFAULT_RECEIVER,
        "slackConfigs": [
            {
                "channel": "#ingestion",
                "apiURL": {"name": "slack-hook", "key": "url"},
                "title": title,
                "text": text,
                "sendResolved": True,
            }
        ],
        "msteamsv2Configs": [
            {
                "webhookURL": {"name": "teams-hook", "key": "webhook"},
                "title": title,
                "text": text,
                "sendResolved": True,
            }
        ],
        "emailConfigs": [
            {
                "to": "ingestion@example.com, data@example.com",
                "headers": [{"key": "Subject", "value": title}],
                "text": text,
                "html": html,
                "sendResolved": True,
            }
        ],
        "webhookConfigs": [{"urlSecret": {"name": "alert-hook", "key": "endpoint"}, "sendResolved": True}],
    }
    # What the operator gives a source's receiver for the same Secrets: the same keys and texts.
    same = RenderConfig(
        source="x",
        notifications=Notifications(
            slack=Slack("#ingestion", SecretRef("slack-hook", "url")),
            teams=SecretRef("teams-hook", "webhook"),
            email=("ingestion@example.com", "data@example.com"),
            webhook=SecretRef("alert-hook", "endpoint"),
        ),
    )
    source_spec = notifications.source_config_spec(same)
    assert source_spec is not None
    (source_receiver,) = source_spec["receivers"]
    assert {k: v for k, v in source_receiver.items() if k != "name"} == {
        k: v for k, v in default.items() if k != "name"
    }


def test_one_integration_alone(render: Render) -> None:
    receivers = _receivers(
        render({"notifications": {"receivers": {"webhook": {"urlSecret": {"name": "hook"}}}}})
    )
    assert receivers[notifications.DEFAULT_RECEIVER] == {
        "name": notifications.DEFAULT_RECEIVER,
        "webhookConfigs": [{"urlSecret": {"name": "hook", "key": "url"}, "sendResolved": True}],
    }


def test_credentials_stay_in_the_secrets(render: Render) -> None:
    manifests = render(RECEIVERS, SMTP)
    assert [s["metadata"]["name"] for s in by_kind(manifests, "Secret")] == [f"{RELEASE}-grafana-admin"]
    text = yaml.safe_dump(_config(manifests))
    assert "https://" not in text and "http://" not in text


def test_templates_configmap_holds_the_generated_templates(render: Render) -> None:
    configmap = one(render(), "ConfigMap", TEMPLATES_NAME)
    assert configmap["metadata"]["namespace"] == NAMESPACE
    assert configmap["data"] == {notifications.TEMPLATE_FILE: notifications.templates()}
    generated = (CHART / "files" / "notifications" / notifications.TEMPLATE_FILE).read_text(encoding="utf-8")
    assert configmap["data"][notifications.TEMPLATE_FILE] == generated
    for name in ("ingestion.titre", "ingestion.texte", "ingestion.html"):
        assert f'define "{name}"' in generated


@pytest.mark.parametrize(
    "overrides",
    [pytest.param((), id="no-receivers"), pytest.param((RECEIVERS, SMTP), id="every-receiver")],
)
def test_alertmanager_config_matches_its_crd(
    overrides: tuple[Mapping[str, Any], ...], render: Render
) -> None:
    manifests = render(*overrides)
    schemas = crd_schemas()
    assert crd_errors(_config(manifests), schemas) == []
    assert crd_errors(_alertmanager(manifests), schemas) == []


def test_kube_prometheus_stack_alertmanager_uses_them(render: Render) -> None:
    manifests = render(RECEIVERS, SMTP)
    config, templates = _config(manifests), one(manifests, "ConfigMap", TEMPLATES_NAME)
    spec = _alertmanager(manifests)["spec"]
    alertmanager_namespace = _alertmanager(manifests)["metadata"]["namespace"]
    # The top-level configuration: read by name in the Alertmanager's namespace.
    assert spec["alertmanagerConfiguration"]["name"] == config["metadata"]["name"]
    assert config["metadata"]["namespace"] == alertmanager_namespace
    assert spec["alertmanagerConfiguration"]["templates"] == [
        {"configMap": {"name": templates["metadata"]["name"], "key": notifications.TEMPLATE_FILE}}
    ]
    assert templates["metadata"]["namespace"] == alertmanager_namespace
    assert notifications.TEMPLATE_FILE in templates["data"]
    assert spec["alertmanagerConfiguration"]["global"]["smtp"]["authPassword"] == {
        "name": "smtp-auth",
        "key": "password",
    }
    # The operator's per-source AlertmanagerConfigs, from any namespace, confined to their namespace's alerts.
    selector = spec["alertmanagerConfigSelector"]
    assert selector == {"matchLabels": {"app.kubernetes.io/part-of": "ingestion-observability"}}
    operator_labels = children._labels("powerbi", "alert-routing")
    assert selector["matchLabels"].items() <= operator_labels.items()
    assert selector["matchLabels"].items() <= config["metadata"]["labels"].items()
    assert spec["alertmanagerConfigNamespaceSelector"] == {}
    assert spec["alertmanagerConfigMatcherStrategy"] == {"type": "OnNamespace"}


def test_names_do_not_follow_the_release(render: Render) -> None:
    """kube-prometheus-stack does not pass alertmanagerConfiguration through tpl: the names are fixed, and
    the objects are in the release namespace, the Alertmanager's."""
    manifests = render(release="other", namespace="elsewhere")
    config, templates = _config(manifests), one(manifests, "ConfigMap", TEMPLATES_NAME)
    assert (config["metadata"]["name"], templates["metadata"]["name"]) == (CONFIG_NAME, TEMPLATES_NAME)
    assert config["metadata"]["namespace"] == templates["metadata"]["namespace"] == "elsewhere"
    assert _alertmanager(manifests)["metadata"]["namespace"] == "elsewhere"
    assert _alertmanager(manifests)["spec"]["alertmanagerConfiguration"]["name"] == CONFIG_NAME


def test_notifications_can_be_turned_off_with_the_alertmanager_reference(render: Render) -> None:
    off = {"notifications": {"enabled": False}}
    no_reference = {
        "kube-prometheus-stack": {"alertmanager": {"alertmanagerSpec": {"alertmanagerConfiguration": None}}}
    }
    manifests = render(off, no_reference)
    assert not by_kind(manifests, "AlertmanagerConfig")
    assert not [m for m in by_kind(manifests, "ConfigMap") if m["metadata"]["name"] == TEMPLATES_NAME]
    assert "alertmanagerConfiguration" not in _alertmanager(manifests)["spec"]


def test_turning_off_without_the_alertmanager_reference_is_refused(render_error: RenderError) -> None:
    error = render_error((), ({"notifications": {"enabled": False}},))
    assert "alertmanagerConfiguration to null" in error


def test_no_alertmanager_no_check(render: Render) -> None:
    """kind: no Alertmanager, the objects are harmless and e-mail needs no SMTP server there."""
    kind = yaml.safe_load(KIND_VALUES.read_text())
    manifests = render(kind, {"notifications": {"receivers": {"email": {"to": ["a@example.com"]}}}})
    assert "emailConfigs" in _receivers(manifests)[notifications.DEFAULT_RECEIVER]
    assert not by_kind(manifests, "Alertmanager")


def test_email_needs_the_global_smtp_server(render_error: RenderError) -> None:
    error = render_error((), ({"notifications": {"receivers": {"email": {"to": ["a@example.com"]}}}},))
    assert "alertmanagerConfiguration.global.smtp" in error


# --- notifications.grafanaUrl -----------------------------------------------------------------------------


def test_default_grafana_url_leaves_the_rules_and_the_operator_untouched(render: Render) -> None:
    manifests = render()
    rule = one(manifests, "PrometheusRule")
    assert rule["spec"] == yaml.safe_load((CHART / "files" / "rules" / "ingestion-rules.yaml").read_text())
    assert not [
        m for m in by_kind(manifests, "ConfigMap") if m["metadata"]["name"].endswith("-operator-defaults")
    ]


@pytest.mark.parametrize("url", [GRAFANA_URL, GRAFANA_URL + "/"])
def test_grafana_url_reaches_the_rules(url: str, render: Render) -> None:
    rule = one(render({"notifications": {"grafanaUrl": url}}), "PrometheusRule")
    # What `make generate` would have written with that grafana_url.
    assert rule["spec"] == render_rules(RenderConfig(grafana_url=url))
    assert "localhost:3000" not in yaml.safe_dump(rule["spec"])


def test_grafana_url_reaches_the_operators_render_defaults(render: Render, tmp_path: Path) -> None:
    manifests = render(FULL_OVERRIDES, {"notifications": {"grafanaUrl": GRAFANA_URL}})
    defaults = one(manifests, "ConfigMap", "-operator-defaults")
    path = tmp_path / "defaults.yaml"
    path.write_text(defaults["data"]["defaults.yaml"])
    config = load_config(path)
    assert config.grafana_url == GRAFANA_URL
    assert config.runbook_base_url == "https://runbooks.example.com/ingestion"  # operator.renderDefaults kept
    operator = containers(one(manifests, "Deployment", "-operator")["spec"]["template"]["spec"])[0]
    assert env_of(operator)["INGESTION_OPERATOR_DEFAULTS"] == "/etc/ingestion-operator/defaults.yaml"
    # Without other render defaults, the file is created for grafana_url alone.
    alone = render({"notifications": {"grafanaUrl": GRAFANA_URL}})
    assert yaml.safe_load(one(alone, "ConfigMap", "-operator-defaults")["data"]["defaults.yaml"]) == {
        "grafana_url": GRAFANA_URL
    }


def test_a_different_grafana_url_in_the_render_defaults_is_refused(render_error: RenderError) -> None:
    error = render_error(
        (), ({"operator": {"renderDefaults": {"grafana_url": "https://other.example.com"}}},)
    )
    assert "differs from notifications.grafanaUrl" in error


# --- values.schema.json -----------------------------------------------------------------------------------

SCHEMA_CASES = [
    pytest.param({"grafanaUrl": "grafana.example.com"}, "/notifications/grafanaUrl", id="url-without-scheme"),
    pytest.param(
        {"grafanaUrl": "https://g.example.com/a'b"}, "/notifications/grafanaUrl", id="url-with-quote"
    ),
    pytest.param(
        {"receivers": {"slack": {"webhookSecret": "https://hooks.example.com/T0/B0/x"}}},
        "/notifications/receivers/slack/webhookSecret",
        id="slack-url-as-value",
    ),
    pytest.param(
        {"receivers": {"slack": {"channel": "", "webhookSecret": {"name": "slack-hook"}}}},
        "/notifications/receivers/slack/channel",
        id="slack-without-channel",
    ),
    pytest.param(
        {"receivers": {"slack": {"channel": "{{ .x }}"}}},
        "/notifications/receivers/slack/channel",
        id="slack-channel-template",
    ),
    pytest.param(
        {"receivers": {"teams": {"webhookSecret": {"name": "Teams_Hook"}}}},
        "/notifications/receivers/teams/webhookSecret/name",
        id="bad-secret-name",
    ),
    pytest.param(
        {"receivers": {"webhook": {"urlSecret": {"name": "hook", "key": ""}}}},
        "/notifications/receivers/webhook/urlSecret/key",
        id="empty-secret-key",
    ),
    pytest.param(
        {"receivers": {"webhook": {"url": "https://hooks.example.com"}}},
        "/notifications/receivers/webhook",
        id="webhook-url-as-value",
    ),
    pytest.param(
        {"receivers": {"email": {"to": ["not-an-address"]}}},
        "/notifications/receivers/email/to/0",
        id="bad-email",
    ),
    pytest.param({"receivers": {"pagerduty": {}}}, "/notifications/receivers", id="unknown-integration"),
    pytest.param({"enabled": "yes"}, "/notifications/enabled", id="enabled-not-boolean"),
]


@pytest.mark.parametrize(("notifications_values", "pointer"), SCHEMA_CASES)
def test_schema_rejects(
    notifications_values: dict[str, Any], pointer: str, render_error: RenderError
) -> None:
    error = render_error((), ({"notifications": notifications_values},))
    assert "values don't meet the specifications of the schema" in error, error
    assert f"at '{pointer}'" in error, error
