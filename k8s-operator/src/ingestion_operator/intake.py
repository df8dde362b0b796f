"""Publish a Job's RunEvents through the intake (`POST /api/v1/lineage`): its 200 means Kafka acknowledged
every event, so the operator may then let the Job go.

Why the intake rather than a Kafka producer in the operator: the intake already validates RunEvents, keys
them `source/objet` (a run's START and end meet in one partition, where the consumer pairs them) and
answers only once Kafka acknowledged; the operator then needs neither Kafka's address nor its
credentials, only the intake's URL and a bearer token.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import urllib3

LINEAGE_PATH = "/api/v1/lineage"


class PublishError(RuntimeError):
    """The intake did not publish every event; `reason` is short (IntakeUnavailable, IntakeRefused...)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def read_token(path: Path) -> str:
    """The first token of a token file (the intake's format: one per line, `#` comments)."""
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            return line.strip()
    raise PublishError(f"{path}: no token in the token file", reason="NoToken")


class IntakePublisher:
    """`recorder.RunPublisher` over HTTP. The token file is re-read at each request (a rotated Secret)."""

    def __init__(self, url: str, token_file: Path | None, timeout: float) -> None:
        self.url = url.rstrip("/") + LINEAGE_PATH
        self._token_file = token_file
        # The intake answers after Kafka's acknowledgement (its delivery timeout): read that long, and more.
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=min(5.0, timeout), read=timeout), retries=False
        )

    def publish(self, events: Sequence[dict[str, Any]]) -> None:
        headers = {"Content-Type": "application/json"}
        if self._token_file is not None:
            try:
                headers["Authorization"] = f"Bearer {read_token(self._token_file)}"
            except OSError as exc:
                raise PublishError(f"token file: {exc}", reason="NoToken") from exc
        try:
            response = self._http.request("POST", self.url, body=json.dumps(list(events)), headers=headers)
        except urllib3.exceptions.HTTPError as exc:
            raise PublishError(f"POST {self.url}: {exc}", reason="IntakeUnavailable") from exc
        if response.status == 200:
            return
        raise PublishError(
            f"POST {self.url}: HTTP {response.status}: {_detail(response.data)}",
            reason="IntakeUnavailable" if response.status in (429, 502, 503, 504) else "IntakeRefused",
        )


def _detail(body: bytes) -> str:
    """What the intake said: the reasons of the items it did not publish, else the body's start."""
    try:
        data = json.loads(body)
    except ValueError:
        return body[:300].decode(errors="replace")
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        # positions as the intake writes them ("index 1", "line 3", "body")
        items = [i for i in data["items"] if isinstance(i, dict) and i.get("reason")]
        reasons = [f"{i.get('position')}: {i['reason']}" for i in items]
        if reasons:
            return "; ".join(reasons)
    return json.dumps(data)[:300]
