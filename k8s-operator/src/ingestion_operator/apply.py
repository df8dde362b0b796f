"""Make a child object as desired, touching the API only when it differs (idempotent).

"Differs" is judged on what the operator owns: its labels and annotations (others' are kept), the
owner reference, and the whole content (a PrometheusRule's `spec`, a ConfigMap's `data`: a hand edit
anywhere in it is drift). A drifted object is replaced with its resourceVersion, so a concurrent write
makes the replace fail (409 Conflict) instead of being overwritten unseen; the object is then judged again.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Protocol

from ingestion_operator.children import KINDS, MANAGED_BY, MANAGED_BY_LABEL, Kind

_SERVER_KEYS = frozenset({"apiVersion", "kind", "metadata", "status"})
RACE_ATTEMPTS = 3  # reads and judgements of one object before a lost race is an error


class Outcome(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    DELETED = "deleted"
    ABSENT = "absent"


class ApplyError(RuntimeError):
    """The API refused a call. `reason` is the Kubernetes Status reason (AlreadyExists, Conflict,
    Invalid...); `retryable` for conflicts, throttling, server and connection errors."""

    def __init__(self, message: str, *, reason: str, retryable: bool) -> None:
        super().__init__(message)
        self.reason = reason
        self.retryable = retryable


class NotOwnedError(ApplyError):
    """An object with the child's name exists and belongs to someone else: left alone."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="NotOwned", retryable=False)


class ChildApi(Protocol):
    """The four calls `ensure` needs (bodies as plain JSON data); errors raise ApplyError."""

    def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None: ...

    def create(self, kind: Kind, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]: ...

    def replace(self, kind: Kind, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]: ...

    def delete(self, kind: Kind, namespace: str, name: str, uid: str, resource_version: str) -> None: ...


def ensure(api: ChildApi, desired: Mapping[str, Any]) -> Outcome:
    """Create `desired` (adopted: namespace and owner reference set) or bring the live object to it.

    The child watch and a reconcile of the same source may write at once: an object created or changed
    meanwhile (AlreadyExists, Conflict) is read and judged again rather than reported as a failure.
    """
    for _ in range(RACE_ATTEMPTS - 1):
        try:
            return _ensure_once(api, desired)
        except ApplyError as exc:
            if exc.reason not in ("AlreadyExists", "Conflict"):
                raise
    return _ensure_once(api, desired)


def _ensure_once(api: ChildApi, desired: Mapping[str, Any]) -> Outcome:
    kind, meta = KINDS[desired["kind"]], desired["metadata"]
    live = api.get(kind, meta["namespace"], meta["name"])
    if live is None:
        api.create(kind, meta["namespace"], desired)
        return Outcome.CREATED
    _check_owned(live, desired)
    body = merged(live, desired)
    if body == live:
        return Outcome.UNCHANGED
    api.replace(kind, meta["namespace"], body)
    return Outcome.UPDATED


def ensure_absent(api: ChildApi, kind: Kind, namespace: str, name: str, owner_uid: str) -> Outcome:
    """Delete the child if it exists and this owner controls it (never a stranger's object)."""
    live = api.get(kind, namespace, name)
    if live is None:
        return Outcome.ABSENT
    if not any(ref.get("uid") == owner_uid for ref in live["metadata"].get("ownerReferences", [])):
        return Outcome.ABSENT
    meta = live["metadata"]
    api.delete(kind, namespace, name, meta["uid"], meta["resourceVersion"])
    return Outcome.DELETED


def merged(live: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """`live` brought to `desired`: equal to `live` exactly when nothing the operator owns drifted."""
    live_meta, want_meta = live["metadata"], desired["metadata"]
    meta = dict(live_meta)
    for key in ("labels", "annotations"):
        if want_meta.get(key) or live_meta.get(key):
            meta[key] = {**live_meta.get(key, {}), **want_meta.get(key, {})}
    meta["ownerReferences"] = _owner_references(
        live_meta.get("ownerReferences", []), want_meta.get("ownerReferences", [])
    )
    if not meta["ownerReferences"]:
        del meta["ownerReferences"]
    body = {key: value for key, value in live.items() if key in _SERVER_KEYS}
    body |= {key: value for key, value in desired.items() if key not in _SERVER_KEYS}
    body["metadata"] = meta
    return body


def _owner_references(live: list[dict[str, Any]], desired: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ours replace theirs in place; another controller is dropped (one controller per object: the
    previous owner of that name, deleted and recreated); other owners stay."""
    wanted = {ref["uid"]: ref for ref in desired}
    controller = any(ref.get("controller") for ref in desired)
    kept = [
        wanted.get(ref.get("uid"), ref)
        for ref in live
        if ref.get("uid") in wanted or not (controller and ref.get("controller"))
    ]
    present = {ref.get("uid") for ref in kept}
    return kept + [ref for uid, ref in wanted.items() if uid not in present]


def _check_owned(live: Mapping[str, Any], desired: Mapping[str, Any]) -> None:
    meta = live["metadata"]
    ours = {ref["uid"] for ref in desired["metadata"].get("ownerReferences", [])}
    if meta.get("labels", {}).get(MANAGED_BY_LABEL) == MANAGED_BY:
        return
    if any(ref.get("uid") in ours for ref in meta.get("ownerReferences", [])):
        return
    raise NotOwnedError(
        f"{live['kind']} {meta['name']} exists and is not managed by {MANAGED_BY}: "
        "delete or rename it, the operator will not overwrite it"
    )
