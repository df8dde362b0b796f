"""kopf handlers: thin adapters from kopf's causes to `reconcile`, the status and Kubernetes Events.

- create/update/resume: reconcile; an invalid spec ends in Ready=False and a PermanentError (no retry
  until the spec changes), an API failure in a TemporaryError (retried with a delay).
- a Secret of the notifications missing: Ready=False, and the AlertmanagerConfig is written once it exists.
  Secrets are not watched (RBAC `get` only), so the timer checks again; without the timer, kopf's retries
  do (a TemporaryError every `SECRET_RETRY_DELAY`, which kopf logs each time: the timer is quieter).
  Retries and ticks warn only when the Ready condition changes.
- the children are watched (by the managed-by label): one edited or deleted by hand is restored at once.
- a timer (`--resync-seconds`) reconciles every source periodically, catching what a watch gap missed
  and a CronJob changed (CronJobs are listed, not watched). kopf puts a finalizer on objects with timers,
  so `--resync-seconds 0` disables it when sources must stay deletable while the operator is down.
- a source with `spec.jobs` gets a daemon recording its Jobs' runs (`observe`; kopf's finalizer on the
  source then stays, since the Jobs' finalizers must be removed when it goes): when it is deleted, or its
  `spec.jobs` removed, the Jobs it holds are let go.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from dataclasses import dataclass
from typing import Any, cast

import kopf

from ingestion_observability.render import ConfigError
from ingestion_operator import observe, spec
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
from ingestion_operator.intake import IntakePublisher
from ingestion_operator.jobrun import Selection
from ingestion_operator.reconcile import DeferredError, Result, reconcile
from ingestion_operator.recorder import Recorder, Snapshot
from ingestion_operator.settings import OperatorConfig
from ingestion_operator.status import jobs_status_patch, now, status_patch

RETRY_DELAY = 10.0  # seconds before kopf retries a reconcile that failed on the API
SECRET_RETRY_DELAY = 60.0  # seconds between checks of a missing Secret without the timer (a person's fix)


@dataclass
class Context:
    """kopf's `memo` for every handler (kopf gives each object a shallow copy)."""

    config: OperatorConfig
    api: KubeClient
    publisher: IntakePublisher | None  # None: no intake URL, Jobs are not recorded


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
    kopf.daemon(GROUP, VERSION, PLURAL, when=_observes_jobs, registry=registry)(observe_jobs)
    kopf.on.delete(GROUP, VERSION, PLURAL, when=_observes_jobs, registry=registry)(let_go_jobs)
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
    if isinstance(result.error, DeferredError):
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


def _observes_jobs(spec: kopf.Spec, **_: Any) -> bool:
    return spec.get("jobs") is not None


async def observe_jobs(
    body: kopf.Body, stopped: kopf.DaemonStopped, memo: Context, logger: kopf.Logger, **_: Any
) -> None:
    """Record the runs of the Jobs the source selects, until stopped; on `spec.jobs` removed, let them go.

    The loop blocks (the Kubernetes client), in a thread of its own: kopf would run a sync daemon in its
    handler pool for as long as the source lives, and enough sources with Jobs would starve the reconciles.
    """
    loop = asyncio.get_running_loop()
    halt, done = threading.Event(), loop.create_future()
    context = contextvars.copy_context()  # kopf's event posting reads its context variables

    def run() -> None:
        try:
            context.run(_observe_jobs, body, halt, memo, logger)
        finally:
            loop.call_soon_threadsafe(done.set_result, None)

    threading.Thread(
        target=run, name=f"jobs {body.meta['namespace']}/{body.meta['name']}", daemon=True
    ).start()
    await asyncio.wait([done, asyncio.ensure_future(stopped.wait())], return_when=asyncio.FIRST_COMPLETED)
    halt.set()
    await done
    if stopped.reason is not None and stopped.reason & kopf.DaemonStoppingReason.FILTERS_MISMATCH:
        recorder = Recorder(memo.api, memo.publisher, body.meta["namespace"], body.meta["name"])
        count = await asyncio.to_thread(observe.let_go_all, recorder)
        logger.info(f"spec.jobs removed: {count} Jobs let go")


def _observe_jobs(body: kopf.Body, halt: threading.Event, memo: Context, logger: kopf.Logger) -> None:
    """`body` is live: the selection follows the spec."""
    name, namespace = body.meta["name"], body.meta["namespace"]
    recorder = Recorder(memo.api, memo.publisher, namespace, name)

    def selection() -> Selection | None:
        try:
            return spec.parse_jobs(body.spec, str(body.spec.get("source", "")))
        except ConfigError:
            return None  # the reconcile reports the invalid spec; nothing is held meanwhile

    warned: list[tuple[str, str]] = []  # the last Warning Event: once per problem, not at each write

    def report(snapshot: Snapshot, error: ApplyError | None) -> None:
        patch = jobs_status_patch(body.status, snapshot, error, now())
        if not patch:
            return
        condition = patch.get("conditions", [{}])[-1]
        if condition.get("status") == "False" and warned[-1:] != [
            (condition["reason"], condition["message"])
        ]:
            warned[:] = [(condition["reason"], condition["message"])]
            kopf.warn(body, reason=condition["reason"], message=condition["message"])
        try:
            memo.api.patch_source_status(namespace, name, patch)
        except ApplyError as exc:
            logger.warning(f"status not written: {exc}")

    observe.observe(recorder, selection, report, halt)


def let_go_jobs(body: kopf.Body, memo: Context, logger: kopf.Logger, **_: Any) -> None:
    """The source is deleted: its finalizer stays until every Job it holds is let go (kopf retries)."""
    name, namespace = body.meta["name"], body.meta["namespace"]
    try:
        count = observe.let_go_all(Recorder(memo.api, memo.publisher, namespace, name))
    except ApplyError as exc:
        raise kopf.TemporaryError(str(exc), delay=RETRY_DELAY) from exc
    logger.info(f"{count} Jobs let go")


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
