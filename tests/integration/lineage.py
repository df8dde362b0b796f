"""The real OpenLineage client (openlineage-python) as a job configures it, and the RunEvents it emits: shared
by the intake's tests on the real services (the intake as a process) and on the real node (through its
Kubernetes Service)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
from openlineage.client.facet_v2 import error_message_run
from openlineage.client.transport.http import ApiKeyTokenProvider, HttpConfig, HttpTransport, TokenProvider
from openlineage.client.transport.http_common import DEFAULT_RETRY_CONFIG

PRODUCER = "https://example.com/ingestion-observability/tests"


def lineage_client(url: str, token: str | None = None, **retry: Any) -> OpenLineageClient:
    """HttpTransport to the intake at `url`, with `api_key` auth when given a token; `retry` overrides the
    client's default retry settings."""
    config = HttpConfig(
        url=url,
        endpoint="api/v1/lineage",
        timeout=10.0,
        auth=ApiKeyTokenProvider({"apiKey": token}) if token is not None else TokenProvider({}),
        retry={**DEFAULT_RETRY_CONFIG, **retry},
    )
    return OpenLineageClient(transport=HttpTransport(config))


def run_event(
    state: RunState, namespace: str, name: str, run_id: str, at: datetime, error: str | None = None
) -> RunEvent:
    """A RunEvent of job `namespace`/`name` (the intake's source and objet), with an errorMessage facet when
    given an error."""
    facets: dict[str, Any] = {}
    if error is not None:
        facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=error, programmingLanguage="python"
        )
    return RunEvent(
        eventType=state,
        eventTime=at.isoformat(),
        run=Run(runId=run_id, facets=facets),
        job=Job(namespace=namespace, name=name),
        producer=PRODUCER,
    )
