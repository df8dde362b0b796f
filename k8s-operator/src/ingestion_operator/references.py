"""The Secrets a source's notifications name, checked before its AlertmanagerConfig is written.

prometheus-operator skips an AlertmanagerConfig whose Secret or key is missing, and says so only in its own
logs and the Alertmanager's status: the source's owner would hear nothing and see nothing. So a bad
reference holds the AlertmanagerConfig back and is reported on the IngestionSource instead.
"""

from __future__ import annotations

from typing import Protocol

from ingestion_observability.render.config import Notifications, SecretRef


class SecretApi(Protocol):
    def secret_keys(self, namespace: str, name: str) -> frozenset[str] | None:
        """The keys of the Secret `namespace/name` that hold a value, None when it does not exist."""
        ...


def secret_refs(notifications: Notifications) -> list[tuple[str, SecretRef]]:
    """Each Secret reference with its CRD path."""
    slack = notifications.slack
    refs = [
        ("spec.notifications.slack.webhookSecret", slack.webhook if slack is not None else None),
        ("spec.notifications.teams.webhookSecret", notifications.teams),
        ("spec.notifications.webhook.urlSecret", notifications.webhook),
    ]
    return [(path, ref) for path, ref in refs if ref is not None]


def problems(api: SecretApi, namespace: str, notifications: Notifications) -> tuple[str, ...]:
    """What is wrong with the references, e.g. `spec.notifications.teams.webhookSecret: Secret ns/x has no
    key 'url'`; empty when all resolve. A Secret named twice is read once."""
    found: dict[str, frozenset[str] | None] = {}
    messages = []
    for path, ref in secret_refs(notifications):
        if ref.name not in found:
            found[ref.name] = api.secret_keys(namespace, ref.name)
        keys = found[ref.name]
        if keys is None:
            messages.append(f"{path}: Secret {namespace}/{ref.name} not found")
        elif ref.key not in keys:
            messages.append(f"{path}: Secret {namespace}/{ref.name} has no key {ref.key!r} (or it is empty)")
    return tuple(messages)
