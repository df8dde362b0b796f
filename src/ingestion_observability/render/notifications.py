"""Alertmanager routes, inhibitions and French notification templates for the ingestion alerts.

One route tree, three renderings:
- `alertmanager_config`: a whole alertmanager.yml (the local stack; `amtool check-config` reads it);
- `global_config_spec`: the chart's default route and inhibitions as an AlertmanagerConfig spec
  (`ingestion-render generate` writes it; the chart adds the receivers from its values);
- `source_config_spec`: one IngestionSource's own route and receivers (the operator), its Secrets by
  reference.

Grouping is by (alertname, source): 30 objets of one source failing together make one notification.
Alerts the consumer causes when it is down or not ready (silent sources and objets, lag, stuck runs) are
inhibited while `IngestionConsumerNonPret` fires; that alert is `info`, below every route's lowest severity,
so it is never sent itself. A source's own alert (the operator's rules) inhibits its twin from the chart's
rules.

The notification texts are Go templates (`templates()`, file `TEMPLATE_FILE`) shared by every integration;
the facts they print (the error, its time, the runs, the links) are the alerts' labels and annotations,
rendered by `rules`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from ingestion_observability.render import rules
from ingestion_observability.render.config import Notifications, RenderConfig, SecretRef

TEMPLATE_FILE = "ingestion.tmpl"
GROUP_BY = ("alertname", "source")
NULL_RECEIVER = "aucun"  # no integration: what no route notifies (the info alerts)
DEFAULT_RECEIVER = "ingestion-defaut"
SOURCE_RECEIVER = "proprietaire"
TITLE = '{{ template "ingestion.titre" . }}'
TEXT = '{{ template "ingestion.texte" . }}'
HTML = '{{ template "ingestion.html" . }}'


def templates() -> str:
    """The Go templates of the notification texts (data/ingestion.tmpl)."""
    return (resources.files("ingestion_observability") / "data" / TEMPLATE_FILE).read_text(encoding="utf-8")


@dataclass(frozen=True)
class Matcher:
    name: str
    value: str
    regex: bool = False

    def text(self) -> str:
        """Alertmanager's matcher syntax, the value double-quoted (both of its parsers read it back)."""
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{"=~" if self.regex else "="}"{escaped}"'

    def resource(self) -> dict[str, str]:
        """An AlertmanagerConfig matcher (structured: prometheus-operator quotes it)."""
        return {"name": self.name, "value": self.value, "matchType": "=~" if self.regex else "="}


def _any_of(name: str, values: Sequence[str]) -> Matcher:
    return Matcher(name, "|".join(values), regex=True)


def notified(notifications: Notifications) -> Matcher:
    """Our alerts at or above the lowest severity to notify."""
    return _any_of("severity", rules.SEVERITIES[rules.SEVERITIES.index(notifications.min_severity) :])


@dataclass(frozen=True)
class Inhibition:
    source: Matcher
    target: Matcher
    equal: tuple[str, ...] = ()

    def text(self) -> dict[str, Any]:
        rule: dict[str, Any] = {
            "source_matchers": [self.source.text()],
            "target_matchers": [self.target.text()],
        }
        return rule | ({"equal": list(self.equal)} if self.equal else {})

    def resource(self) -> dict[str, Any]:
        rule: dict[str, Any] = {
            "sourceMatch": [self.source.resource()],
            "targetMatch": [self.target.resource()],
        }
        return rule | ({"equal": list(self.equal)} if self.equal else {})


def inhibit_rules() -> list[Inhibition]:
    return [
        # While the consumer is down or not ready, what it causes is held back.
        Inhibition(
            _any_of("alertname", rules.CONSUMER_OUTAGE_ALERTS),
            _any_of("alertname", rules.CAUSED_BY_CONSUMER_OUTAGE),
        ),
        # A source with its own rules (the operator's: labelled with its namespace) is also alerted by the
        # chart's rules for every source: the same alert, without namespace. Its own holds the twin back.
        Inhibition(
            Matcher("namespace", ".+", regex=True), Matcher("namespace", ""), ("alertname", "source", "objet")
        ),
    ]


def _timings(notifications: Notifications) -> dict[str, str]:
    return {
        "group_wait": notifications.group_wait,
        "group_interval": notifications.group_interval,
        "repeat_interval": notifications.repeat_interval,
    }


def _ours() -> Matcher:
    return _any_of("alertname", rules.alert_names())


def alertmanager_config(
    config: RenderConfig,
    receivers: Mapping[str, Mapping[str, list[dict[str, Any]]]],
    *,
    template_dir: str,
    source_routes: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """alertmanager.yml: every ingestion alert to `DEFAULT_RECEIVER`, and a source of `source_routes`
    (source name -> receiver name) also to its own receiver.

    `receivers` holds integration lists in Alertmanager's syntax (e.g. {"webhook_configs": [...]}) per
    receiver name; `with_texts` adds the French texts to them.
    """
    if DEFAULT_RECEIVER not in receivers:
        raise ValueError(f"receivers: {DEFAULT_RECEIVER!r} is required (every ingestion alert goes there)")
    n = config.notifications
    severity = notified(n)
    routes = [
        {
            "receiver": receiver,
            "matchers": [Matcher("source", source).text(), severity.text()],
            "continue": True,
        }
        for source, receiver in (source_routes or {}).items()
    ]
    routes.append({"receiver": DEFAULT_RECEIVER, "matchers": [_ours().text(), severity.text()]})
    return {
        "route": {"receiver": NULL_RECEIVER, "group_by": list(GROUP_BY), **_timings(n), "routes": routes},
        "inhibit_rules": [rule.text() for rule in inhibit_rules()],
        "receivers": [
            {"name": NULL_RECEIVER},
            *({"name": name, **with_texts(integrations)} for name, integrations in receivers.items()),
        ],
        "templates": [f"{template_dir.rstrip('/')}/{TEMPLATE_FILE}"],
    }


# Integration kind (Alertmanager's key) -> the template fields it takes, in Alertmanager's syntax.
_TEXTS: dict[str, dict[str, Any]] = {
    "email_configs": {"headers": {"Subject": TITLE}, "text": TEXT, "html": HTML},
    "slack_configs": {"title": TITLE, "text": TEXT},
    "msteamsv2_configs": {"title": TITLE, "text": TEXT},
    "webhook_configs": {},  # the payload is Alertmanager's JSON: labels and annotations carry the texts
}


def with_texts(integrations: Mapping[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Integrations with the French texts and resolved notifications (their own values win)."""
    unknown = set(integrations) - set(_TEXTS)
    if unknown:
        raise ValueError(f"unsupported integration(s) {sorted(unknown)}; expected one of {sorted(_TEXTS)}")
    return {
        kind: [{"send_resolved": True, **_TEXTS[kind], **item} for item in items]
        for kind, items in integrations.items()
    }


def _resource_timings(notifications: Notifications) -> dict[str, str]:
    return {
        "groupWait": notifications.group_wait,
        "groupInterval": notifications.group_interval,
        "repeatInterval": notifications.repeat_interval,
    }


def global_config_spec(config: RenderConfig) -> dict[str, Any]:
    """The chart's default route (to `DEFAULT_RECEIVER`, which the chart defines from its values) and the
    inhibitions, as an AlertmanagerConfig spec that the Alertmanager resource uses as its global config."""
    n = config.notifications
    return {
        "route": {
            "receiver": NULL_RECEIVER,
            "groupBy": list(GROUP_BY),
            **_resource_timings(n),
            "routes": [
                {
                    "receiver": DEFAULT_RECEIVER,
                    "matchers": [_ours().resource(), notified(n).resource()],
                }
            ],
        },
        "inhibitRules": [rule.resource() for rule in inhibit_rules()],
    }


def _secret(ref: SecretRef) -> dict[str, str]:
    return {"name": ref.name, "key": ref.key}


def source_config_spec(config: RenderConfig) -> dict[str, Any] | None:
    """One source's AlertmanagerConfig spec, or None when it names no receiver.

    prometheus-operator adds `namespace="<the resource's namespace>"` to its route: the operator renders
    the source's alerts with that label (`routing_labels`), so they match wherever the release runs.
    """
    n = config.notifications
    assert config.source is not None, "a source's route needs its source"
    integrations: dict[str, list[dict[str, Any]]] = {}
    if n.slack is not None:
        integrations["slackConfigs"] = [
            {"channel": n.slack.channel, "apiURL": _secret(n.slack.webhook), "title": TITLE, "text": TEXT}
        ]
    if n.teams is not None:
        integrations["msteamsv2Configs"] = [{"webhookURL": _secret(n.teams), "title": TITLE, "text": TEXT}]
    if n.email:
        integrations["emailConfigs"] = [
            {
                "to": ", ".join(n.email),
                "headers": [{"key": "Subject", "value": TITLE}],
                "text": TEXT,
                "html": HTML,
            }
        ]
    if n.webhook is not None:
        integrations["webhookConfigs"] = [{"urlSecret": _secret(n.webhook)}]
    if not integrations:
        return None
    for items in integrations.values():
        for item in items:
            item["sendResolved"] = True
    return {
        "route": {
            "receiver": SOURCE_RECEIVER,
            "groupBy": list(GROUP_BY),
            **_resource_timings(n),
            "matchers": [Matcher("source", config.source).resource(), notified(n).resource()],
        },
        "receivers": [{"name": SOURCE_RECEIVER, **integrations}],
    }
