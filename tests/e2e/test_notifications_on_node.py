"""A failed run reaches its owner, on the real local node: an IngestionSource in its team's namespace names a
webhook Secret; the operator in the cluster (exactly the chart's RBAC) writes the AlertmanagerConfig
`ingestion-<name>` there; the real prometheus-operator merges it into the Alertmanager that
kube-prometheus-stack would run from the chart's values (devstack/incluster.py: in the release namespace,
beside the chart's top-level AlertmanagerConfig and templates ConfigMap); a FAILED run published to Kafka
fires in Prometheus and Alertmanager posts it to the owner's webhook. Another source's failure reaches only
the chart's default receiver. Deleting the source drops its route.

The webhooks are one InboxServer on the host, on the node's address (where pods reach the host's Kafka too),
by path: /proprietaire for the owner, /defaut for the chart's `notifications.receivers.webhook`.

The release is conftest's shared one (the e2e tests run in order, test_chart_on_node first): this module
upgrades it for its needs (the operator also watches the team's namespace; the default webhook) and
upgrades it back to values-node.yaml afterwards; the Alertmanager, the team's namespace and the Secrets go.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devstack import incluster
from devstack.cluster import TOPIC
from devstack.inbox import InboxServer
from devstack.node import KubeNode
from tests.integration.support import send_events, wait_until

from .conftest import NAMESPACE, RELEASE, Helm

pytestmark = pytest.mark.e2e

TEAM_NAMESPACE = "team-finance"
OWNER_HOOK = "owner-hook"  # the source's Secret, in TEAM_NAMESPACE
DEFAULT_HOOK = "ingestion-default-hook"  # the chart's notifications.receivers.webhook Secret, in NAMESPACE
OWNER_PATH, DEFAULT_PATH = "/proprietaire", "/defaut"
NOTIFIED = "factures-finance"  # the IngestionSource whose owner is notified
NOTIFIED_SOURCE = "e2e_factures"
OTHER = "grand-livre"  # same namespace, no notifications
OTHER_SOURCE = "e2e_grand_livre"
OBJET = "Factures"
DESCRIPTION = "Timeout: la requête /factures a dépassé 30 s (ReadTimeout)"
ROUTING = f"ingestion-{NOTIFIED}"  # the operator's AlertmanagerConfig
RECEIVER = f"{TEAM_NAMESPACE}/{ROUTING}/proprietaire"  # as prometheus-operator names it
TIMEOUT = 180.0


def _source(name: str, source: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "observability.ingestion.dev/v1alpha1",
        "kind": "IngestionSource",
        "metadata": {"name": name, "namespace": TEAM_NAMESPACE},
        "spec": {"source": source, "entreprise": "akonovia", "zone": "1-Raw", "objets": [OBJET], **spec},
    }


NOTIFICATIONS = {
    "team": "finance",
    "webhook": {"urlSecret": {"name": OWNER_HOOK, "key": "url"}},
    "groupWait": "1s",
}


def _secret(name: str, namespace: str, url: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": {"url": url},
    }


def _failed_run(source: str, run_id: int) -> dict[str, Any]:
    """One FAILED run that ended just now."""
    end = datetime.now(UTC)
    stamp = "%Y-%m-%d %H:%M:%S.%f"
    return {
        "ID": run_id,
        "Entreprise": "akonovia",
        "Zone": "1-Raw",
        "Source": source,
        "Objet": OBJET,
        "Transformation": "e2e_notifications",
        "Etat": "FAILED",
        "Debut": (end - timedelta(seconds=30)).strftime(stamp)[:-3],
        "Fin": end.strftime(stamp)[:-3],
        "Duree secondes": 30.0,
        "cpu_time": 0.2,
        "memory_used": 20_000_000,
        "Description": DESCRIPTION,
    }


@dataclass(frozen=True)
class Setup:
    node: KubeNode
    release: Helm
    alertmanager: incluster.Alertmanager
    inbox: InboxServer

    def posted(self, path: str) -> list[dict[str, Any]]:
        """The labels of every alert posted to `path`, with the receiver named in the payload."""
        return [
            {**alert["labels"], "@receiver": item["receiver"], "@status": alert["status"]}
            for item in self.inbox.notifications()
            if item["path"] == path
            for alert in item.get("alerts", [])
        ]

    def source_routes(self) -> list[dict[str, Any]]:
        """The routes of the Alertmanager's loaded configuration that lead to the owner's receiver."""
        routes: list[dict[str, Any]] = self.alertmanager.config()["route"].get("routes", [])
        return [route for route in routes if route.get("receiver") == RECEIVER]


@pytest.fixture(scope="module")
def setup(release: Helm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    node = release.node
    assert NAMESPACE == incluster.RELEASE_NAMESPACE  # where the Prometheus sends its alerts
    with contextlib.ExitStack() as undo:
        undo.callback(_nothing_left, node)  # last
        # test_chart_on_node ends by uninstalling the session's release: install it again, and leave as found
        if not release.installed():
            release.install()
            undo.callback(release.run, "uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout=5m")
        inbox = InboxServer.start(tmp_path_factory.mktemp("inbox"), host=node.ip)  # pods reach node.ip
        undo.callback(inbox.stop)
        node.kubectl("create", "namespace", TEAM_NAMESPACE)
        undo.callback(node.kubectl, "delete", "namespace", TEAM_NAMESPACE, "--timeout=120s", timeout=150)
        node.kubectl_apply(
            [
                _secret(OWNER_HOOK, TEAM_NAMESPACE, inbox.url + OWNER_PATH),
                _secret(DEFAULT_HOOK, NAMESPACE, inbox.url + DEFAULT_PATH),
            ]
        )
        undo.callback(node.kubectl, "-n", NAMESPACE, "delete", "secret", DEFAULT_HOOK, "--ignore-not-found")
        release.upgrade(
            f"operator.watchNamespaces={{{NAMESPACE},{TEAM_NAMESPACE}}}",
            f"notifications.receivers.webhook.urlSecret.name={DEFAULT_HOOK}",
        )
        undo.callback(lambda: release.installed() and release.upgrade())  # values-node.yaml's again
        alertmanager = incluster.install_alertmanager(node, NAMESPACE)
        undo.callback(alertmanager.uninstall)
        # First undone: the sources, while the operator still watches their namespace (kopf's finalizer).
        undo.callback(
            node.kubectl,
            "-n",
            TEAM_NAMESPACE,
            "delete",
            "ingestionsources",
            "--all",
            "--timeout=120s",
            timeout=150,
        )
        yield Setup(node, release, alertmanager, inbox)


def _nothing_left(node: KubeNode) -> None:
    """The Alertmanager, the team's namespace and the default webhook's Secret are gone."""
    selector = "app.kubernetes.io/name=alertmanager"
    left = node.kubectl(
        "-n", NAMESPACE, "get", "alertmanagers,statefulsets,pods,services,secrets", "-o", "name"
    ).split()
    assert not [n for n in left if "alertmanager" in n or DEFAULT_HOOK in n], left
    assert not node.kubectl("-n", NAMESPACE, "get", "pods", "-l", selector, "-o", "name")
    assert not node.kubectl("get", "namespace", TEAM_NAMESPACE, "--ignore-not-found")


def _ready(node: KubeNode, name: str) -> bool:
    status = node.kubectl_json("-n", TEAM_NAMESPACE, "get", "ingestionsource", name).get("status", {})
    return any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))


def _rule_files(monitoring: incluster.Monitoring) -> set[str]:
    return {group["file"] for group in monitoring.api("rules")["groups"]}


# --- the operator writes the owner's AlertmanagerConfig --------------------------------------------------


def test_the_operator_writes_the_owners_alertmanagerconfig(
    setup: Setup, monitoring: incluster.Monitoring
) -> None:
    node = setup.node
    node.kubectl_apply(
        [_source(NOTIFIED, NOTIFIED_SOURCE, notifications=NOTIFICATIONS), _source(OTHER, OTHER_SOURCE)]
    )
    for name in (NOTIFIED, OTHER):
        wait_until(
            functools.partial(_ready, node, name), timeout=TIMEOUT, what=f"IngestionSource {name} Ready"
        )

    owner = node.kubectl_json("-n", TEAM_NAMESPACE, "get", "ingestionsource", NOTIFIED)
    routing = node.kubectl_json("-n", TEAM_NAMESPACE, "get", "alertmanagerconfig", ROUTING)
    assert routing["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "observability.ingestion.dev/v1alpha1",
            "kind": "IngestionSource",
            "name": NOTIFIED,
            "uid": owner["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    # What the chart's alertmanagerConfigSelector selects.
    assert routing["metadata"]["labels"]["app.kubernetes.io/part-of"] == "ingestion-observability"
    assert routing["spec"]["route"]["groupWait"] == "1s"
    assert routing["spec"]["receivers"][0]["webhookConfigs"][0]["urlSecret"] == {
        "name": OWNER_HOOK,
        "key": "url",
    }
    # The source without notifications has no AlertmanagerConfig.
    configs = node.kubectl("-n", TEAM_NAMESPACE, "get", "alertmanagerconfigs", "-o", "name").split()
    assert configs == [f"alertmanagerconfig.monitoring.coreos.com/{ROUTING}"]

    wait_until(
        lambda: all(
            any(f"{TEAM_NAMESPACE}-ingestion-{name}-" in file for file in _rule_files(monitoring))
            for name in (NOTIFIED, OTHER)
        ),
        timeout=TIMEOUT,
        what="Prometheus loaded both sources' rules",
        seen=lambda: _rule_files(monitoring),
    )


# --- prometheus-operator loads it into the Alertmanager --------------------------------------------------


def test_the_alertmanager_runs_the_owners_route_confined_to_its_namespace(
    setup: Setup, monitoring: incluster.Monitoring
) -> None:
    wait_until(
        setup.source_routes,
        timeout=TIMEOUT,
        what=f"the route to {RECEIVER} in the Alertmanager's configuration",
        seen=lambda: [r.get("receiver") for r in setup.alertmanager.config()["route"].get("routes", [])],
    )
    (route,) = setup.source_routes()
    assert route["continue"] is True  # the chart's default route still sees the alert
    assert route["group_wait"] == "1s"
    matchers = route["matchers"]
    assert f'namespace="{TEAM_NAMESPACE}"' in matchers  # prometheus-operator's OnNamespace strategy
    assert f'source="{NOTIFIED_SOURCE}"' in matchers
    config = setup.alertmanager.config()
    (receiver,) = [r for r in config["receivers"] if r["name"] == RECEIVER]
    assert len(receiver["webhook_configs"]) == 1
    # The chart's top-level configuration, its templates and default webhook, is the rest of it.
    assert any(t.endswith("ingestion.tmpl") for t in config.get("templates", [])), config.get("templates")
    defaults = [r for r in config["receivers"] if r["name"].endswith("ingestion-defaut")]
    assert defaults and defaults[0].get("webhook_configs"), config["receivers"]

    # Prometheus found it through the Service prometheus-operator made.
    ip = setup.alertmanager.url.removeprefix("http://")
    wait_until(
        lambda: any(ip in a["url"] for a in monitoring.api("alertmanagers")["activeAlertmanagers"]),
        timeout=TIMEOUT,
        what="the Alertmanager among Prometheus' active ones",
        seen=lambda: monitoring.api("alertmanagers"),
    )


# --- a failed run reaches its owner, and only its own ----------------------------------------------------


def test_a_failed_run_reaches_its_owner_and_another_sources_only_the_default(setup: Setup) -> None:
    run_id = int(datetime.now(UTC).timestamp())
    send_events(
        setup.release.kafka.bootstrap_servers,
        TOPIC,
        [_failed_run(NOTIFIED_SOURCE, run_id), _failed_run(OTHER_SOURCE, run_id + 1)],
    )
    expected = {
        "alertname": "IngestionEchecDetecte",
        "severity": "critical",
        "source": NOTIFIED_SOURCE,
        "objet": OBJET,
        "description": DESCRIPTION,
        "team": "finance",
        "namespace": TEAM_NAMESPACE,
        "@receiver": RECEIVER,
        "@status": "firing",
    }

    def owners() -> list[dict[str, Any]]:
        return [a for a in setup.posted(OWNER_PATH) if expected.items() <= a.items()]

    wait_until(
        owners,
        timeout=TIMEOUT,
        what="the failure posted to the owner's webhook",
        seen=setup.inbox.notifications,
    )

    def defaults(source: str) -> list[dict[str, Any]]:
        return [
            a
            for a in setup.posted(DEFAULT_PATH)
            if a["alertname"] == "IngestionEchecDetecte" and a["source"] == source
        ]

    # The default route waits 30 s (group_wait): by then the owner's (1 s) would have had the other's.
    for source in (OTHER_SOURCE, NOTIFIED_SOURCE):
        wait_until(
            functools.partial(defaults, source),
            timeout=TIMEOUT,
            what=f"{source}'s failure posted to the default webhook",
            seen=setup.inbox.notifications,
        )
    assert {a["source"] for a in setup.posted(OWNER_PATH)} == {NOTIFIED_SOURCE}
    # Each source is alerted by its own rule (labelled with its namespace) and by the chart's: the default
    # receiver hears of each failure once, from the source's own rule (the chart's twin is inhibited). The
    # other source's alert carries the same namespace: the source matcher kept it from the owner.
    for source in (OTHER_SOURCE, NOTIFIED_SOURCE):
        assert [a.get("namespace") for a in defaults(source)] == [TEAM_NAMESPACE]


# --- deleting the source drops its route -----------------------------------------------------------------


def test_deleting_the_source_removes_its_alertmanagerconfig_and_route(setup: Setup) -> None:
    node = setup.node
    node.kubectl("-n", TEAM_NAMESPACE, "delete", "ingestionsource", NOTIFIED, "--timeout=60s")
    # No delete handler in the operator: kube-controller-manager's garbage collector, by ownerReference.
    wait_until(
        lambda: (
            not node.kubectl("-n", TEAM_NAMESPACE, "get", "alertmanagerconfig", ROUTING, "--ignore-not-found")
        ),
        timeout=TIMEOUT,
        what=f"AlertmanagerConfig {ROUTING} deleted with its IngestionSource",
    )
    wait_until(
        lambda: (
            not setup.source_routes()
            and not [r for r in setup.alertmanager.config()["receivers"] if r["name"] == RECEIVER]
        ),
        timeout=TIMEOUT,
        what=f"the route to {RECEIVER} gone from the Alertmanager's configuration",
        seen=lambda: [r.get("receiver") for r in setup.alertmanager.config()["route"].get("routes", [])],
    )
