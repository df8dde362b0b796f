"""One reconcile of one IngestionSource: spec → children → API; the outcome for the status and events."""

from __future__ import annotations

from dataclasses import dataclass

import kopf

from ingestion_observability.render import ConfigError
from ingestion_operator import apply, children, spec
from ingestion_operator.apply import ApplyError, ChildApi, NotOwnedError, Outcome
from ingestion_operator.settings import ChildSettings
from ingestion_operator.status import Observed


@dataclass(frozen=True)
class Result:
    observed: Observed
    changes: tuple[str, ...]  # e.g. "PrometheusRule ingestion-x created", in order
    error: ConfigError | ApplyError | None = None

    @property
    def retryable(self) -> bool:
        return isinstance(self.error, ApplyError) and self.error.retryable


def reconcile(api: ChildApi, settings: ChildSettings, owner: kopf.Body) -> Result:
    """Bring the children of `owner` to its spec. An invalid spec touches nothing (the last good
    children keep alerting)."""
    name, namespace = owner.meta["name"], owner.meta["namespace"]
    generation = int(owner.meta.get("generation", 0))
    try:
        source = spec.parse(owner.spec, settings.defaults)
    except ConfigError as exc:
        return Result(Observed(generation, False, "InvalidSpec", str(exc)), (), exc)
    wanted = children.build(name, namespace, source, settings)
    kopf.adopt(wanted.objects, owner=owner)
    changes: list[str] = []
    try:
        for body in wanted.objects:
            outcome = apply.ensure(api, body)
            if outcome is not Outcome.UNCHANGED:
                changes.append(f"{body['kind']} {body['metadata']['name']} {outcome}")
        if wanted.dashboard is None:
            config_map = children.dashboard_name(name)
            kind = children.CONFIG_MAP
            if apply.ensure_absent(api, kind, namespace, config_map, owner.meta["uid"]) is Outcome.DELETED:
                changes.append(f"ConfigMap {config_map} {Outcome.DELETED}")
    except ApplyError as exc:
        reason = exc.reason if isinstance(exc, NotOwnedError) else "ApplyFailed"
        return Result(Observed(generation, False, reason, str(exc)), tuple(changes), exc)
    rule = wanted.rule["metadata"]["name"]
    dashboard = None if wanted.dashboard is None else wanted.dashboard["metadata"]["name"]
    message = f"{wanted.alerts} alerts in PrometheusRule {rule}" + (
        f", dashboard in ConfigMap {dashboard}" if dashboard else ", no dashboard"
    )
    observed = Observed(
        generation, True, "Reconciled", message, rule=rule, dashboard=dashboard, alerts=wanted.alerts
    )
    return Result(observed, tuple(changes))
