"""One reconcile of one IngestionSource: spec → children → API; the outcome for the status and events."""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass
from typing import Any, Protocol

import kopf

from ingestion_observability.render import ConfigError
from ingestion_operator import apply, children, cronjobs, references, spec
from ingestion_operator.apply import ApplyError, ChildApi, NotOwnedError, Outcome
from ingestion_operator.children import Children, Kind
from ingestion_operator.references import SecretApi
from ingestion_operator.settings import ChildSettings
from ingestion_operator.status import Observed


class Api(ChildApi, SecretApi, Protocol):
    """What a reconcile calls."""

    def list_cronjobs(self, namespace: str) -> list[dict[str, Any]]: ...


class DeferredError(Exception):
    """Something outside the spec is missing: what needs it is held back, the rest applied; checked again
    at the next resync (not watched)."""

    reason = "Deferred"


class MissingSecretError(DeferredError):
    """A Secret (or key) the notifications name is missing: the AlertmanagerConfig is held back."""

    reason = "MissingSecret"


class CronJobsUnreadableError(DeferredError):
    """The CronJobs cannot be listed: no per-objet silence alert (IngestionObjetMuet)."""

    reason = "CronJobsUnreadable"


@dataclass(frozen=True)
class Result:
    observed: Observed
    changes: tuple[str, ...]  # e.g. "PrometheusRule ingestion-x created", in order
    error: ConfigError | ApplyError | DeferredError | None = None

    @property
    def retryable(self) -> bool:
        # Secrets and CronJobs are not watched: a later attempt sees one created, or a permission granted.
        if isinstance(self.error, DeferredError):
            return True
        return isinstance(self.error, ApplyError) and self.error.retryable


def reconcile(api: Api, settings: ChildSettings, owner: kopf.Body) -> Result:
    """Bring the children of `owner` to its spec. An invalid spec touches nothing (the last good
    children keep alerting); a missing Secret holds back the AlertmanagerConfig only (the last good one,
    if any, stays)."""
    name, namespace = owner.meta["name"], owner.meta["namespace"]
    generation = int(owner.meta.get("generation", 0))
    try:
        source = spec.parse(owner.spec, settings.defaults, namespace)
    except ConfigError as exc:
        return Result(Observed(generation, False, "InvalidSpec", str(exc)), (), exc)
    found: cronjobs.Schedules | None = None
    unreadable: CronJobsUnreadableError | None = None
    if source.jobs is not None:
        try:
            found = cronjobs.schedules(
                api.list_cronjobs(namespace), source.jobs, datetime.datetime.now(datetime.UTC)
            )
        except ApplyError as exc:
            unreadable = CronJobsUnreadableError(f"{exc}: no per-objet silence alert (IngestionObjetMuet)")
        else:
            config = dataclasses.replace(source.config, schedules=found.schedules)
            source = dataclasses.replace(source, config=config)
    wanted = children.build(name, namespace, source, settings)
    kopf.adopt(wanted.objects, owner=owner)
    changes: list[str] = []
    try:
        held = references.problems(api, namespace, source.config.notifications) if wanted.routing else ()
        for body in wanted.objects:
            if body is wanted.routing and held:
                continue
            # CronJobs unreadable for a moment: the last rule keeps its silence alerts (else they resolve and
            # fire again); a first rule is written without them
            if (
                body is wanted.rule
                and unreadable
                and api.get(children.PROMETHEUS_RULE, namespace, _name(body) or "")
            ):
                continue
            outcome = apply.ensure(api, body)
            if outcome is not Outcome.UNCHANGED:
                changes.append(f"{body['kind']} {body['metadata']['name']} {outcome}")
        for kind, child in _unwanted(wanted, name):
            if apply.ensure_absent(api, kind, namespace, child, owner.meta["uid"]) is Outcome.DELETED:
                changes.append(f"{kind.kind} {child} {Outcome.DELETED}")
    except ApplyError as exc:
        reason = exc.reason if isinstance(exc, NotOwnedError) else "ApplyFailed"
        return Result(Observed(generation, False, reason, str(exc)), tuple(changes), exc)
    result = _outcome(generation, wanted, held, tuple(changes), found)
    if unreadable is None or result.error is not None:
        return result
    observed = dataclasses.replace(
        result.observed, ready=False, reason=unreadable.reason, message=str(unreadable)
    )
    return Result(observed, result.changes, unreadable)


def _unwanted(wanted: Children, name: str) -> list[tuple[Kind, str]]:
    """Children the spec no longer asks for (dashboard disabled, no receiver): deleted if they exist."""
    gone = [(children.CONFIG_MAP, children.dashboard_name(name))] if wanted.dashboard is None else []
    if wanted.routing is None:
        gone.append((children.ALERTMANAGER_CONFIG, children.routing_name(name)))
    return gone


def _outcome(
    generation: int,
    wanted: Children,
    held: tuple[str, ...],
    changes: tuple[str, ...],
    found: cronjobs.Schedules | None,
) -> Result:
    rule, dashboard, routing = (_name(body) for body in (wanted.rule, wanted.dashboard, wanted.routing))
    message = f"{wanted.alerts} alerts in PrometheusRule {rule}" + (
        f", dashboard in ConfigMap {dashboard}" if dashboard else ", no dashboard"
    )
    if routing is not None:
        message += f", notifications by AlertmanagerConfig {routing}"
    if found is not None:
        message += f", {found.cronjobs} CronJobs"
        if found.suspended:
            message += f" (suspended: {', '.join(found.suspended)})"
        if found.problems:
            message += f"; no silence alert for {'; '.join(found.problems)}"
    observed = Observed(
        generation,
        True,
        "Reconciled",
        message,
        rule=rule,
        dashboard=dashboard,
        alerts=wanted.alerts,
        cronjobs=None if found is None else found.cronjobs,
        suspended=() if found is None else found.suspended,
    )
    if not held:
        return Result(observed, changes)
    error = MissingSecretError(f"AlertmanagerConfig {routing} not written: {'; '.join(held)}")
    return Result(
        dataclasses.replace(observed, ready=False, reason=error.reason, message=str(error)), changes, error
    )


def _name(body: dict[str, Any] | None) -> str | None:
    return None if body is None else str(body["metadata"]["name"])
