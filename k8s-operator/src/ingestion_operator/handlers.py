"""kopf handlers: thin adapters from kopf's causes to `reconcile`, the status and Kubernetes Events.

- create/update/resume: reconcile; an invalid spec ends in Ready=False and a PermanentError (no retry
  until the spec changes), an API failure in a TemporaryError (retried with a delay).
- a Secret of the notifications missing: Ready=False, and the AlertmanagerConfig is written once it exists.
  Secrets are not watched (RBAC `get` only), so the timer checks again; without the timer, kopf's retries
  do (a TemporaryError every `SECRET_RETRY_DELAY`, which kopf logs each time: the timer is quieter).
  Retries and ticks warn only when the Ready condition changes.
- the children are watched (by the managed-by label): one edited or deleted by hand is restored at once.
- a timer (`--resync-seconds`) reconciles every source periodically, catching what a watch gap missed.
  kopf puts a finalizer on objects with timers, so `--resync-seconds 0` disables it when sources must
  stay deletable while the operator is down.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import kopf

from ingestion_operator.apply import ApplyError
from ingestion_operator.children import (
    GROUP,
    KIND,
    KINDS,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    PLURAL,
    VERSION,
)
from ingestion_operator.client import KubeClient
from ingestion_operator.reconcile import MissingSecretError, Result, reconcile
from ingestion_operator.settings import OperatorConfig
from ingestion_operator.status import now, status_patch

RETRY_DELAY = 10.0  # seconds before kopf retries a reconcile that failed on the API
SECRET_RETRY_DELAY = 60.0  # seconds between checks of a missing Secret without the timer (a person's fix)


@dataclass
class Context:
    """kopf's `memo` for every handler (kopf gives each object a shallow copy)."""

    config: OperatorConfig
    api: KubeClient


def kopf_settings(config: OperatorConfig) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    # kopf's bookkeeping in our own annotations; the status holds only what the CRD schema declares.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    settings.persistence.finalizer = f"{GROUP}/operator"
    settings.execution.max_workers = config.workers
    return settings


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    # kopf's own API client logs in like ours (in-cluster, else kubeconfig); only kopf's default registry
    # comes with login handlers.
    kopf.on.login(registry=registry)(kopf.login_via_client)
    for on in (kopf.on.resume, kopf.on.create, kopf.on.update):
        on(GROUP, VERSION, PLURAL, registry=registry)(reconcile_source)
    if config.resync_seconds > 0:
        kopf.timer(
            GROUP,
            VERSION,
            PLURAL,
            interval=config.resync_seconds,
            initial_delay=config.resync_seconds,
            registry=registry,
        )(resync_source)
    for kind in KINDS.values():
        kopf.on.event(
            group=kind.group,
            version=kind.version,
            plural=kind.plural,
            labels={MANAGED_BY_LABEL: MANAGED_BY},
            registry=registry,
        )(restore_child)


def reconcile_source(
    body: kopf.Body,
    status: kopf.Status,
    patch: kopf.Patch,
    memo: Context,
    logger: kopf.Logger,
    retry: int = 0,
    **_: Any,
) -> None:
    result = reconcile(memo.api, memo.config.children, body)
    _report(body, status, patch, result, logger, resync=False, repeated=retry > 0)
    if isinstance(result.error, MissingSecretError):
        if memo.config.resync_seconds > 0:
            return  # the timer checks again
        raise kopf.TemporaryError(str(result.error), delay=SECRET_RETRY_DELAY)
    if result.error is not None:
        if result.retryable:
            raise kopf.TemporaryError(str(result.error), delay=RETRY_DELAY)
        raise kopf.PermanentError(str(result.error))


def resync_source(
    body: kopf.Body, status: kopf.Status, patch: kopf.Patch, memo: Context, logger: kopf.Logger, **_: Any
) -> None:
    result = reconcile(memo.api, memo.config.children, body)
    _report(body, status, patch, result, logger, resync=True, repeated=True)


def restore_child(
    event: kopf.RawEvent, body: kopf.Body, memo: Context, logger: kopf.Logger, **_: Any
) -> None:
    """A child was edited or deleted: reconcile its owner (a no-op when the change was the operator's)."""
    if event["type"] not in ("MODIFIED", "DELETED"):  # ADDED: created by a reconcile; None: initial listing
        return
    ref = next(
        (r for r in body.meta.get("ownerReferences", []) if r.get("kind") == KIND and r.get("controller")),
        None,
    )
    if ref is None:
        return
    namespace = body.meta["namespace"]
    try:
        raw = memo.api.get_source(namespace, ref["name"])
    except ApplyError as exc:  # the timer will retry; a watch handler has no retries
        logger.warning(f"cannot read the owner of {body['kind']} {body.meta['name']}: {exc}")
        return
    if raw is None or raw["metadata"]["uid"] != ref["uid"] or raw["metadata"].get("deletionTimestamp"):
        return  # owner gone or going: the garbage collector deletes the children
    owner = kopf.Body(cast(kopf.RawBody, raw))
    result = reconcile(memo.api, memo.config.children, owner)
    if result.changes:
        message = f"restored after a change by hand: {'; '.join(result.changes)}"
        logger.info(f"{namespace}/{ref['name']}: {message}")
        kopf.info(owner, reason="Restored", message=message)
    if result.error is not None:
        logger.warning(f"{namespace}/{ref['name']}: {result.observed.message}")
        kopf.warn(owner, reason=result.observed.reason, message=result.observed.message)


def _report(
    body: kopf.Body,
    status: kopf.Status,
    patch: kopf.Patch,
    result: Result,
    logger: kopf.Logger,
    *,
    resync: bool,
    repeated: bool,
) -> None:
    """Status fields that changed, a Normal Event listing what was written, a Warning Event on failure
    (the timer and kopf's retries warn only when the failure is new, not at every tick)."""
    changed = status_patch(status, result.observed, now())
    patch.status.update(changed)
    if result.changes:
        message = "; ".join(result.changes)
        logger.info(message)
        # A tick that writes with a new outcome applies a fix (e.g. a Secret created), not a repair.
        repair = resync and "conditions" not in changed
        kopf.info(body, reason="Restored" if repair else "Applied", message=message)
    if result.error is not None and (not repeated or "conditions" in changed):
        logger.warning(result.observed.message)
        kopf.warn(body, reason=result.observed.reason, message=result.observed.message)
