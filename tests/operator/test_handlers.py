"""The create/update handler's answer to a missing Secret: who checks again, and how often it warns."""

from __future__ import annotations

import logging
from typing import Any, cast

import kopf
import pytest

from ingestion_operator.client import KubeClient
from ingestion_operator.handlers import SECRET_RETRY_DELAY, Context, reconcile_source
from ingestion_operator.settings import OperatorConfig
from tests.operator.support import FakeApi, source

SPEC = {
    "source": "S",
    "notifications": {"webhook": {"urlSecret": {"name": "hook", "key": "url"}}},
}
LOGGER = logging.getLogger(__name__)


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """kopf's Events (posted by kopf's loop, absent here): (type, reason)."""
    posted: list[tuple[str, str]] = []
    monkeypatch.setattr(kopf, "info", lambda body, *, reason, message: posted.append(("Normal", reason)))
    monkeypatch.setattr(kopf, "warn", lambda body, *, reason, message: posted.append(("Warning", reason)))
    return posted


def call(
    api: FakeApi, status: dict[str, Any], resync_seconds: float, retry: int = 0
) -> tuple[dict[str, Any], kopf.TemporaryError | None]:
    """The status after the handler's patch, and the TemporaryError it raised, if any."""
    raw = source("s", SPEC, "ns")
    raw["metadata"] |= {"uid": "uid-1", "generation": 1}
    raw["status"] = status
    body = kopf.Body(cast(kopf.RawBody, raw))
    memo = Context(
        config=OperatorConfig(resync_seconds=resync_seconds), api=cast(KubeClient, api), publisher=None
    )
    patch = kopf.Patch()
    error = None
    try:
        reconcile_source(body=body, status=body.status, patch=patch, memo=memo, logger=LOGGER, retry=retry)
    except kopf.TemporaryError as exc:
        error = exc
    return {**status, **patch.get("status", {})}, error


def test_with_the_timer_the_handler_succeeds_and_the_timer_checks_again(
    events: list[tuple[str, str]],
) -> None:
    status, error = call(FakeApi(), {}, resync_seconds=60)
    assert error is None
    condition = status["conditions"][0]
    assert (condition["status"], condition["reason"]) == ("False", "MissingSecret")
    assert events == [("Normal", "Applied"), ("Warning", "MissingSecret")]


def test_without_the_timer_kopf_retries_and_warns_once(events: list[tuple[str, str]]) -> None:
    api = FakeApi()
    status, error = call(api, {}, resync_seconds=0)
    assert error is not None and error.delay == SECRET_RETRY_DELAY
    assert "spec.notifications.webhook.urlSecret: Secret ns/hook not found" in str(error)
    assert events == [("Normal", "Applied"), ("Warning", "MissingSecret")]
    status, error = call(api, status, resync_seconds=0, retry=1)
    assert error is not None and events[2:] == []  # same condition: no new Warning at each retry
    api.secrets[("ns", "hook")] = {"url": "aHR0cDovL3g="}
    status, error = call(api, status, resync_seconds=0, retry=2)
    assert error is None and status["conditions"][0]["status"] == "True"
    assert events[2:] == [("Normal", "Applied")]
