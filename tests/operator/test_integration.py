"""The operator against a real kube-apiserver: children, ownership, updates, drift repair, idempotency,
validation by the API server (schema + CEL), invalid specs, notifications (AlertmanagerConfig, Secrets),
and 200 sources."""

from __future__ import annotations

import copy
import json
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from devstack.kube import KubeApiError, KubeControlPlane
from ingestion_observability.render import RenderConfig, render_dashboard, render_rules
from ingestion_operator.children import API_VERSION, GROUP, PLURAL, VERSION, Children, build
from ingestion_operator.cli import render
from ingestion_operator.settings import ChildSettings
from ingestion_operator.spec import parse
from tests.operator.conftest import BENCH_NAMESPACE, NAMESPACE, RESYNC_SECONDS, running_operator
from tests.operator.support import EXAMPLES, source

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("operator")]

T = TypeVar("T")
MERGE_PATCH = "application/merge-patch+json"


def sources_path(namespace: str = NAMESPACE) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"


SOURCES = sources_path()
RULES = f"/apis/monitoring.coreos.com/v1/namespaces/{NAMESPACE}/prometheusrules"
CONFIG_MAPS = f"/api/v1/namespaces/{NAMESPACE}/configmaps"
ROUTES = f"/apis/monitoring.coreos.com/v1alpha1/namespaces/{NAMESPACE}/alertmanagerconfigs"
SECRETS = f"/api/v1/namespaces/{NAMESPACE}/secrets"


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {timeout:.0f}s for {what}")
        time.sleep(0.1)


def get(kube: KubeControlPlane, path: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = kube.get(path)
        return found
    except KubeApiError as exc:
        if exc.status == 404:
            return None
        raise


def ready(obj: dict[str, Any]) -> dict[str, Any]:
    """The Ready condition, {} before there is one."""
    conditions = obj.get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == "Ready"), {})


def reconciled(kube: KubeControlPlane, name: str, path: str = SOURCES) -> dict[str, Any]:
    """The source once its status reports its current generation."""

    def check() -> dict[str, Any] | None:
        obj = get(kube, f"{path}/{name}")
        if obj and obj.get("status", {}).get("observedGeneration") == obj["metadata"]["generation"]:
            return obj
        return None

    return wait_for(check, f"{name} reconciled")


def apply_source(kube: KubeControlPlane, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    kube.create(SOURCES, source(name, spec))
    return reconciled(kube, name)


def patch_spec(kube: KubeControlPlane, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    kube.request("PATCH", f"{SOURCES}/{name}", {"spec": spec}, content_type=MERGE_PATCH)
    return reconciled(kube, name)


def expected(live: dict[str, Any]) -> Children:
    """What the operator must have made of the source as the API server stored it (defaults applied)."""
    source = parse(live["spec"], RenderConfig(), NAMESPACE)
    return build(live["metadata"]["name"], NAMESPACE, source, ChildSettings())


def owner_reference(live: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "IngestionSource",
        "name": live["metadata"]["name"],
        "uid": live["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def events(kube: KubeControlPlane, name: str) -> list[tuple[str, str, str]]:
    query = urllib.parse.urlencode({"fieldSelector": f"involvedObject.name={name}"})
    items = kube.get(f"/api/v1/namespaces/{NAMESPACE}/events?{query}")["items"]
    return [(e["type"], e["reason"], e["message"]) for e in items]


def version(obj: dict[str, Any] | None) -> str:
    assert obj is not None
    return str(obj["metadata"]["resourceVersion"])


def test_example_becomes_children(kube: KubeControlPlane) -> None:
    doc = yaml.safe_load((EXAMPLES / "efficy.yaml").read_text(encoding="utf-8"))
    kube.create(SOURCES, doc)
    live = reconciled(kube, "efficy")
    assert ready(live) == {
        "type": "Ready",
        "status": "True",
        "reason": "Reconciled",
        "message": "14 alerts in PrometheusRule ingestion-efficy, "
        "dashboard in ConfigMap ingestion-dashboard-efficy",
        "lastTransitionTime": ready(live)["lastTransitionTime"],
        "observedGeneration": 1,
    }
    assert {k: live["status"][k] for k in ("prometheusRule", "dashboard", "alerts")} == {
        "prometheusRule": "ingestion-efficy",
        "dashboard": "ingestion-dashboard-efficy",
        "alerts": 14,
    }
    rule, config_map = (
        get(kube, f"{RULES}/ingestion-efficy"),
        get(kube, f"{CONFIG_MAPS}/ingestion-dashboard-efficy"),
    )
    assert rule is not None and config_map is not None
    owner = owner_reference(live)
    config = parse(live["spec"], RenderConfig(), NAMESPACE).config
    assert rule["metadata"]["ownerReferences"] == [owner]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["spec"]["groups"] == render_rules(config)["groups"]
    assert config_map["metadata"]["ownerReferences"] == [owner]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"]["grafana_folder"] == "Ingestion"
    assert json.loads(config_map["data"]["efficy.json"]) == render_dashboard(config)
    # The API server's defaults change nothing: `ingestion-operator render` makes the same objects offline
    # (given the namespace, which the alerts carry).
    offline = list(yaml.safe_load_all(render([doc], ChildSettings(), NAMESPACE)))
    generated = list(yaml.safe_load_all((EXAMPLES / "generated/efficy.yaml").read_text(encoding="utf-8")))
    assert [rule["spec"], config_map["data"]] == [offline[0]["spec"], generated[1]["data"]]
    assert (
        "Normal",
        "Applied",
        "PrometheusRule ingestion-efficy created; ConfigMap ingestion-dashboard-efficy created",
    ) in events(kube, "efficy")


def test_kube_prometheus_stack_and_grafana_select_the_children(kube: KubeControlPlane) -> None:
    """kube-prometheus-stack's Prometheus selects rules by `release: <its release>`
    (ruleSelector.matchLabels with ruleSelectorNilUsesHelmValues); the sidecar, by `grafana_dashboard=1`."""
    apply_source(kube, "selected", {"source": "Selected"})

    def names(path: str, selector: str) -> set[str]:
        query = urllib.parse.urlencode({"labelSelector": selector})
        return {item["metadata"]["name"] for item in kube.get(f"{path}?{query}")["items"]}

    assert "ingestion-selected" in names(RULES, "release=kube-prometheus-stack")
    assert "ingestion-selected" not in names(RULES, "release=other")
    assert "ingestion-dashboard-selected" in names(CONFIG_MAPS, "grafana_dashboard=1")
    assert "ingestion-dashboard-selected" not in names(CONFIG_MAPS, "grafana_dashboard=0")


def test_spec_change_updates_children(kube: KubeControlPlane) -> None:
    apply_source(kube, "change", {"source": "Change", "objets": ["a"]})
    rule_version = version(get(kube, f"{RULES}/ingestion-change"))
    live = patch_spec(
        kube,
        "change",
        {"alerts": {"failureRatePercent": 10}, "dashboard": {"folder": "Ventes"}, "objets": ["a", "b"]},
    )
    assert live["metadata"]["generation"] == 2 and ready(live)["observedGeneration"] == 2
    want = expected(live)
    rule = get(kube, f"{RULES}/ingestion-change")
    assert rule is not None and version(rule) != rule_version
    assert rule["spec"] == want.rule["spec"]
    assert any("> 0.1 and" in r["expr"] for g in rule["spec"]["groups"] for r in g["rules"])
    config_map = get(kube, f"{CONFIG_MAPS}/ingestion-dashboard-change")
    assert config_map is not None and want.dashboard is not None
    assert config_map["data"] == want.dashboard["data"]
    assert config_map["metadata"]["annotations"]["grafana_folder"] == "Ventes"


def test_dashboard_disabled_then_enabled(kube: KubeControlPlane) -> None:
    apply_source(kube, "toggle", {"source": "Toggle"})
    live = patch_spec(kube, "toggle", {"dashboard": {"enabled": False}})
    assert get(kube, f"{CONFIG_MAPS}/ingestion-dashboard-toggle") is None
    assert live["status"]["dashboard"] == "" and ready(live)["status"] == "True"
    patch_spec(kube, "toggle", {"dashboard": {"enabled": True}})
    assert get(kube, f"{CONFIG_MAPS}/ingestion-dashboard-toggle") is not None


@pytest.mark.parametrize("path", [f"{RULES}/ingestion-deleted", f"{CONFIG_MAPS}/ingestion-dashboard-deleted"])
def test_deleted_child_is_recreated(kube: KubeControlPlane, path: str) -> None:
    if get(kube, f"{SOURCES}/deleted") is None:
        apply_source(kube, "deleted", {"source": "Deleted"})
    child = get(kube, path)
    assert child is not None
    kube.delete(path)
    recreated = wait_for(
        lambda: (c := get(kube, path)) and c["metadata"]["uid"] != child["metadata"]["uid"] and c, "recreated"
    )
    assert recreated["metadata"]["labels"] == child["metadata"]["labels"]
    assert recreated.get("spec", recreated.get("data")) == child.get("spec", child.get("data"))
    wait_for(
        lambda: any(reason == "Restored" for _, reason, _ in events(kube, "deleted")), "a Restored event"
    )


def test_edited_child_is_restored(kube: KubeControlPlane) -> None:
    live = apply_source(kube, "edited", {"source": "Edited"})
    rule = get(kube, f"{RULES}/ingestion-edited")
    assert rule is not None
    original = copy.deepcopy(rule["spec"])
    rule["spec"]["groups"][1]["rules"][0]["expr"] = "vector(0)"
    rule["metadata"]["labels"]["release"] = "elsewhere"
    rule["metadata"]["labels"]["team"] = "data"  # someone else's label: kept
    edited = kube.request("PUT", f"{RULES}/ingestion-edited", rule)

    def restored() -> dict[str, Any] | None:
        now = get(kube, f"{RULES}/ingestion-edited")
        return now if now and version(now) != version(edited) else None

    now = wait_for(restored, "the rule restored")
    assert now["spec"] == original == expected(live).rule["spec"]
    assert now["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert now["metadata"]["labels"]["team"] == "data"


def test_no_op_reconciles_write_nothing(kube: KubeControlPlane) -> None:
    """Neither a reconcile caused by an unrelated change of the source, nor the resync timer's, writes."""
    apply_source(kube, "steady", {"source": "Steady"})
    paths = [f"{SOURCES}/steady", f"{RULES}/ingestion-steady", f"{CONFIG_MAPS}/ingestion-dashboard-steady"]
    before = [version(get(kube, p)) for p in paths[1:]]
    kube.request("PATCH", paths[0], {"metadata": {"annotations": {"note": "x"}}}, content_type=MERGE_PATCH)
    wait_for(
        lambda: (
            '"note"'
            in kube.get(paths[0])["metadata"]["annotations"].get(f"{GROUP}/last-handled-configuration", "")
        ),
        "the update handled",
    )
    source_version = version(get(kube, paths[0]))
    time.sleep(2.5 * RESYNC_SECONDS)  # the timer runs at least twice
    assert [version(get(kube, p)) for p in paths] == [source_version, *before]


@pytest.mark.parametrize(
    ("name", "spec", "message"),
    [
        ("no-source", {"zone": "z"}, "spec.source: Required value"),
        ("long-source", {"source": "s" * 129}, "spec.source: Too long"),
        (
            "bad-window",
            {"source": "s", "alerts": {"failureRateWindow": "5 minutes"}},
            "spec.alerts.failureRateWindow",
        ),
        ("zero-rate", {"source": "s", "alerts": {"failureRatePercent": 0}}, "should be greater than 0"),
        (
            "huge-memory",
            {"source": "s", "alerts": {"memoryMaxMB": 1e7}},
            "spec.alerts.memoryMaxMB in body should be less than or equal to",
        ),
        ("dup-objets", {"source": "s", "objets": ["a", "a"]}, "spec.objets[1]: Duplicate value"),
        (
            "short-silence",
            {"source": "s", "schedule": {"expectedEveryMinutes": 60, "silenceAfterMinutes": 30}},
            "spec.schedule.silenceAfterMinutes: Invalid value: silenceAfterMinutes must be greater than",
        ),
        (
            "default-silence",  # 75, the default, is shorter than a daily schedule
            {"source": "s", "schedule": {"expectedEveryMinutes": 1440}},
            "silenceAfterMinutes must be greater than expectedEveryMinutes",
        ),
        ("full-slo", {"source": "s", "slo": {"successRatio": 1}}, "successRatio must be below 1"),
        ("bad-label", {"source": "s", "routing": {"labels": {"bad-name": "x"}}}, "label names must match"),
        (
            "bad-severity",
            {"source": "s", "notifications": {"minSeverity": "page"}},
            'spec.notifications.minSeverity: Unsupported value: "page"',
        ),
        (
            "no-webhook",
            {"source": "s", "notifications": {"slack": {"channel": "#c"}}},
            "spec.notifications.slack.webhookSecret: Required value",
        ),
        (
            "bad-secret",
            {"source": "s", "notifications": {"teams": {"webhookSecret": {"name": "A_B", "key": "k"}}}},
            "spec.notifications.teams.webhookSecret.name in body should match",
        ),
        (
            "bad-email",
            {"source": "s", "notifications": {"email": {"to": ["a, b@c.d"]}}},
            "spec.notifications.email.to[0] in body should match",
        ),
        ("n" * 64, {"source": "s"}, "metadata.name must be at most 63 characters"),
    ],
    ids=lambda v: v[:20] if isinstance(v, str) else "",
)
def test_api_server_rejects_invalid_objects(
    kube: KubeControlPlane, name: str, spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(KubeApiError) as info:
        kube.create(SOURCES, source(name, spec))
    assert info.value.status == 422
    assert message in str(info.value), str(info.value)


def test_invalid_spec_past_the_schema_is_not_ready_then_recovers(
    kube: KubeControlPlane, operator: Any
) -> None:
    live = apply_source(kube, "invalid", {"source": "Invalid", "alerts": {"failureRateWindow": "0m"}})
    condition = ready(live)
    assert condition is not None
    assert (condition["status"], condition["reason"]) == ("False", "InvalidSpec")
    assert condition["message"] == "spec.alerts.failureRateWindow: duration '0m' must be positive"
    assert get(kube, f"{RULES}/ingestion-invalid") is None
    assert ("Warning", "InvalidSpec", condition["message"]) in wait_for(
        lambda: events(kube, "invalid"), "an event"
    )
    assert operator.alive()
    live = patch_spec(
        kube, "invalid", {"alerts": {"failureRateWindow": "30m"}, "routing": {"labels": {"severity": "x"}}}
    )
    assert ready(live)["message"] == "spec.routing.labels: 'severity' is reserved"
    live = patch_spec(kube, "invalid", {"routing": None})
    assert ready(live)["status"] == "True"
    assert get(kube, f"{RULES}/ingestion-invalid") is not None


def test_someone_elses_object_is_not_overwritten(kube: KubeControlPlane) -> None:
    theirs = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "ingestion-dashboard-taken"},
        "data": {"mine": "1"},
    }
    kube.create(CONFIG_MAPS, theirs)
    live = apply_source(kube, "taken", {"source": "Taken"})
    condition = ready(live)
    assert condition is not None and (condition["status"], condition["reason"]) == ("False", "NotOwned")
    assert (
        "ConfigMap ingestion-dashboard-taken exists and is not managed by ingestion-operator"
        in condition["message"]
    )
    assert kube.get(f"{CONFIG_MAPS}/ingestion-dashboard-taken")["data"] == {"mine": "1"}


def notifications(secret: str) -> dict[str, Any]:
    return {
        "team": "finance",
        "slack": {"channel": "#finance", "webhookSecret": {"name": secret, "key": "url"}},
        "email": {"to": ["finance@example.org"]},
    }


def test_notifications_become_an_alertmanager_config_then_go(kube: KubeControlPlane) -> None:
    kube.create(
        SECRETS, {"metadata": {"name": "slack-routed"}, "stringData": {"url": "http://hooks.invalid"}}
    )
    name = 'Routé "a\\b" .*'  # the route must match this source exactly, not as a pattern
    live = apply_source(kube, "routed", {"source": name, "notifications": notifications("slack-routed")})
    assert ready(live)["status"] == "True", ready(live)
    assert ready(live)["message"].endswith(", notifications by AlertmanagerConfig ingestion-routed")
    path = f"{ROUTES}/ingestion-routed"
    routing = get(kube, path)
    assert routing is not None
    assert routing["metadata"]["ownerReferences"] == [owner_reference(live)]
    assert routing["metadata"]["labels"]["app.kubernetes.io/component"] == "alert-routing"
    want = expected(live).routing
    assert want is not None and routing["spec"] == want["spec"]  # stored as written: no drift to repair
    assert routing["spec"]["route"]["matchers"][0] == {"name": "source", "value": name, "matchType": "="}
    rule = get(kube, f"{RULES}/ingestion-routed")
    assert rule is not None
    alerts = [r for group in rule["spec"]["groups"] for r in group["rules"] if "alert" in r]
    labels = {(r["labels"]["namespace"], r["labels"]["team"]) for r in alerts}
    assert alerts and labels == {(NAMESPACE, "finance")}
    applied = [message for _, reason, message in events(kube, "routed") if reason == "Applied"]
    assert any(message.endswith("AlertmanagerConfig ingestion-routed created") for message in applied)
    # Deleted by hand: restored, like the other children.
    kube.delete(path)
    wait_for(
        lambda: (c := get(kube, path)) and c["metadata"]["uid"] != routing["metadata"]["uid"], "restored"
    )
    live = patch_spec(kube, "routed", {"notifications": None})
    assert get(kube, path) is None and ready(live)["status"] == "True"
    assert "AlertmanagerConfig" not in ready(live)["message"]


def test_missing_secret_holds_the_alertmanager_config_back_until_it_exists(kube: KubeControlPlane) -> None:
    spec = {"source": "Unrouted", "notifications": notifications("slack-unrouted")}
    live = apply_source(kube, "unrouted", spec)
    condition = ready(live)
    assert (condition["status"], condition["reason"]) == ("False", "MissingSecret")
    assert condition["message"] == (
        "AlertmanagerConfig ingestion-unrouted not written: spec.notifications.slack.webhookSecret: "
        f"Secret {NAMESPACE}/slack-unrouted not found"
    )
    assert live["status"]["prometheusRule"] == "ingestion-unrouted"  # the rest is applied
    assert get(kube, f"{RULES}/ingestion-unrouted") is not None
    path = f"{ROUTES}/ingestion-unrouted"
    assert get(kube, path) is None
    assert ("Warning", "MissingSecret", condition["message"]) in wait_for(
        lambda: events(kube, "unrouted"), "an event"
    )
    secret = {"metadata": {"name": "slack-unrouted"}, "stringData": {"webhook": "http://hooks.invalid"}}
    kube.create(SECRETS, secret)
    wait_for(
        lambda: "has no key 'url'" in ready(kube.get(f"{SOURCES}/unrouted")).get("message", ""),
        "the missing key reported (resync timer)",
    )
    assert get(kube, path) is None
    patch = {"stringData": {"url": "http://hooks.invalid"}}
    kube.request("PATCH", f"{SECRETS}/slack-unrouted", patch, content_type=MERGE_PATCH)
    routing = wait_for(lambda: get(kube, path), "the AlertmanagerConfig written (resync timer)")
    assert routing["metadata"]["ownerReferences"] == [owner_reference(live)]
    wait_for(lambda: ready(kube.get(f"{SOURCES}/unrouted")).get("status") == "True", "Ready")
    assert ("Normal", "Applied", "AlertmanagerConfig ingestion-unrouted created") in events(kube, "unrouted")


def test_200_sources_become_ready(kube: KubeControlPlane, tmp_path: Path) -> None:
    """Benchmark, with a second operator of production settings on its own namespace: prints the time from
    the first create to the last Ready; asserts only that all get there."""
    path, count = sources_path(BENCH_NAMESPACE), 200
    specs = [
        (f"bench-{i:03d}", {"source": f"bench_{i:03d}", "objets": ["a", "b", "c"]}) for i in range(count)
    ]
    with running_operator(kube, tmp_path, f"--namespace={BENCH_NAMESPACE}"):
        start = time.monotonic()
        with ThreadPoolExecutor(8) as pool:  # a client creating them in parallel, as a GitOps sync does
            list(pool.map(lambda spec: kube.create(path, source(*spec)), specs))
        created = time.monotonic() - start

        def all_ready() -> bool:
            items: list[dict[str, Any]] = kube.get(path)["items"]
            return len([item for item in items if ready(item).get("status") == "True"]) == count

        wait_for(all_ready, f"{count} sources Ready", timeout=600)
        elapsed = time.monotonic() - start
    print(
        f"\n{count} IngestionSources: created in {created:.1f} s, all Ready {elapsed:.1f} s after the first"
    )
    rules = kube.get(f"/apis/monitoring.coreos.com/v1/namespaces/{BENCH_NAMESPACE}/prometheusrules")["items"]
    assert len(rules) == count
