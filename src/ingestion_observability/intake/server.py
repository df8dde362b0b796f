"""The intake's HTTP endpoints on the standard library's ThreadingHTTPServer.

    POST /api/v1/lineage   OpenLineage RunEvents (one, or a JSON array), published raw, key `source/objet`
    POST /api/v1/runs      connector records (one, an array or NDJSON), published as enriched events
    GET  /healthz /readyz /metrics

A request is answered only once Kafka acknowledged (or failed) each of its valid items: 200 when every item
is published, 400 when some are invalid (the others are published), 503 with Retry-After when Kafka could
not take some of them in time. The body always lists every item with its position and status, so a
partial batch never claims an item that was not published.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, get_args

import orjson
from kafka.errors import KafkaError
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from ingestion_observability import openlineage
from ingestion_observability.event import MAX_MESSAGE_BYTES, InvalidRecord, normalise
from ingestion_observability.intake.payload import Item, PayloadError, TooLarge, decode_body, read_items
from ingestion_observability.intake.publish import IntakePublisher, retriable
from ingestion_observability.producer.publisher import event_key
from ingestion_observability.settings import CommonSettings, setting, zone, zone_name

log = logging.getLogger("ingestion_observability.intake")

LINEAGE, RUNS = "/api/v1/lineage", "/api/v1/runs"
# Past its Content-Length limit a body is still read (and dropped) up to this, so that the client reads
# the 413 instead of a connection reset in the middle of its upload; beyond it the connection is closed.
DRAIN_LIMIT = 64 * 1024 * 1024
# RunEvent fields the product reads: what is kept of an event too large for the consumer's message limit.
_RUN_FACETS = ("errorMessage", openlineage.RESOURCES_FACET)
_JOB_FACETS = (openlineage.SOURCE_FACET,)


@dataclass(frozen=True)
class IntakeConfig(CommonSettings):
    """Everything the intake is configured with: each setting's flag and variable in `ingestion-intake -h`."""

    port: int = setting("--port", "INTAKE_PORT", 5000, "HTTP port (5000: Marquez's)", type=int)
    address: str = setting("--address", "INTAKE_ADDRESS", "0.0.0.0", "HTTP address")
    delivery_timeout: float = setting(
        "--delivery-timeout",
        "DELIVERY_TIMEOUT_SECONDS",
        4.0,
        "seconds Kafka has to acknowledge a request's events before the request gets 503 (below the "
        "OpenLineage client's 5 s request timeout)",
        type=float,
    )
    max_body_bytes: int = setting(
        "--max-body-bytes", "INTAKE_MAX_BODY_BYTES", 4 * 1024 * 1024, "413 beyond", type=int
    )
    max_message_bytes: int = setting(
        "--max-message-bytes",
        "MAX_MESSAGE_BYTES",
        MAX_MESSAGE_BYTES,
        "the consumer's message limit: a larger RunEvent is published with only the fields the product reads",
        type=int,
    )
    retry_after: int = setting(
        "--retry-after", "INTAKE_RETRY_AFTER_SECONDS", 5, "Retry-After of a 503", type=int
    )
    max_concurrent: int = setting(
        "--max-concurrent", "INTAKE_MAX_CONCURRENT", 32, "POSTs in progress, 503 beyond", type=int
    )
    source_from: openlineage.SourceFrom = setting(
        "--source-from",
        "INTAKE_SOURCE_FROM",
        "namespace",
        "RunEvent field giving the run's source: job.namespace, or the ingestion_source job facet",
        choices=get_args(openlineage.SourceFrom),
    )
    timezone: str = setting(
        "--timezone",
        "SOURCE_TIMEZONE",
        "UTC",
        "zone of connector timestamps written without one",
        type=zone_name,
    )
    token_file: Path | None = setting(
        "--token-file",
        "INTAKE_TOKEN_FILE",
        None,
        "bearer tokens, one per line (a mounted Secret; re-read when it changes); $INTAKE_TOKEN adds one; "
        "neither: no authentication (a warning says so)",
        type=Path,
    )


class Tokens:
    """Accepted bearer tokens: $INTAKE_TOKEN and the lines of the token file, re-read when the file changes
    (a rotated Secret). None configured: no authentication."""

    def __init__(self, static: Sequence[str], path: Path | None) -> None:
        self._static = [t for t in static if t]
        self._path = path
        self._stamp: float | None = None
        self._from_file: list[str] = []
        self._lock = threading.Lock()
        self._reload()
        if path is not None and not self._from_file:
            raise SystemExit(f"{path}: no token in the token file")

    def _reload(self) -> None:
        if self._path is None:
            return
        stamp = self._path.stat().st_mtime
        if stamp != self._stamp:
            lines = self._path.read_text().splitlines()
            self._from_file = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
            self._stamp = stamp

    @property
    def enabled(self) -> bool:
        return bool(self._static or self._path is not None)

    def accepts(self, authorization: str | None) -> bool:
        if not self.enabled:
            return True
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        with self._lock:
            try:
                self._reload()
            except OSError as exc:  # a Secret volume briefly swapping its files: keep the last tokens
                log.warning("token file unreadable, keeping the previous tokens: %s", exc)
            candidates = [*self._static, *self._from_file]
        given = token.strip().encode()
        # every candidate compared, in constant time: no timing hint of a near match
        return any([hmac.compare_digest(given, candidate.encode()) for candidate in candidates])


class Metrics:
    """The intake's own series. The endpoint is label `handler`, as in Prometheus' own HTTP metrics: a target
    label `endpoint` (prometheus-operator's, the port's name) would rename it `exported_endpoint`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "ingestion_intake_requests", "HTTP requests by endpoint and status", ["handler", "code"],
            registry=registry,
        )  # fmt: skip
        self.items = Counter(
            "ingestion_intake_events",
            "Events received, by result: published (acknowledged by Kafka), invalid, failed (Kafka)",
            ["handler", "result"],
            registry=registry,
        )
        self.trimmed = Counter(
            "ingestion_intake_events_trimmed",
            "RunEvents above the message limit, published with only the fields the product reads",
            registry=registry,
        )
        self.seconds = Histogram(
            "ingestion_intake_request_seconds",
            "Time to answer a POST, Kafka acknowledgements included",
            ["handler"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )


@dataclass
class Response:
    status: int
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class _Prepared:
    """One item on its way: the Kafka record of a valid item, or why it is invalid."""

    position: str
    record: tuple[bytes, bytes] | None = None
    reason: str | None = None


class Intake:
    """What the request threads share: the publisher (once Kafka is reached), the tokens, the metrics."""

    def __init__(self, config: IntakeConfig, tokens: Tokens, registry: CollectorRegistry) -> None:
        self.config = config
        self.tokens = tokens
        self.metrics = Metrics(registry)
        self.registry = registry
        self.publisher: IntakePublisher | None = None
        self.slots = threading.BoundedSemaphore(config.max_concurrent)
        self.zone = zone(config.timezone)  # of connector timestamps written without one
        self._stop = threading.Event()

    def connect(self, retry_seconds: float = 2.0) -> None:
        """Until Kafka answers with the topic's metadata (run in a thread: the intake serves meanwhile)."""
        while not self._stop.is_set():
            try:
                self.publisher = IntakePublisher(
                    self.config.bootstrap_servers, self.config.topic, self.config.delivery_timeout
                )
                log.info("connected to Kafka, publishing to %s", self.config.topic)
                return
            except KafkaError as exc:
                log.warning("Kafka not reachable yet (%r), retrying in %.0fs", exc, retry_seconds)
                self._stop.wait(retry_seconds)

    def close(self) -> None:
        """After the server stopped accepting: let the POSTs in progress get their answer, then flush."""
        self._stop.set()
        deadline = time.monotonic() + self.config.delivery_timeout + 5.0
        for _ in range(self.config.max_concurrent):
            if not self.slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
                log.warning("stopping with POSTs still in progress")
                break
        if self.publisher is not None:
            self.publisher.close(timeout=10)

    def ready(self) -> tuple[bool, str]:
        if self.publisher is None:
            return False, "Kafka not reached yet"
        return True, f"publishing to {self.config.topic}"

    def handle(self, endpoint: str, body: bytes) -> Response:
        try:
            items = read_items(body, ndjson=endpoint == RUNS)
        except PayloadError as exc:
            return Response(400, {"error": str(exc), "position": "body"})
        prepare = self._lineage if endpoint == LINEAGE else self._run
        prepared = [
            _Prepared(item.position, reason=item.error) if item.error else prepare(item) for item in items
        ]
        return self._publish(endpoint, prepared)

    def _lineage(self, item: Item) -> _Prepared:
        try:
            event = openlineage.parse_run_event(item.value, source_from=self.config.source_from)
        except InvalidRecord as exc:
            return _Prepared(item.position, reason=str(exc))
        value = orjson.dumps(item.value)
        if len(value) > self.config.max_message_bytes:
            value = orjson.dumps(_essentials(item.value))
            self.metrics.trimmed.inc()
        return _Prepared(item.position, (openlineage.event_key(event), value))

    def _run(self, item: Item) -> _Prepared:
        try:
            event = normalise(item.value, self.zone)
        except InvalidRecord as exc:
            return _Prepared(item.position, reason=str(exc))
        return _Prepared(item.position, (event_key(event), orjson.dumps(event)))

    def _publish(self, endpoint: str, prepared: list[_Prepared]) -> Response:
        valid = [p for p in prepared if p.record is not None]
        publisher = self.publisher
        outcomes: list[BaseException | None]
        if publisher is None:
            outcomes = [ConnectionError("Kafka not reached yet")] * len(valid)
        else:
            outcomes = publisher.publish([p.record for p in valid if p.record is not None])
        errors = dict(zip((id(p) for p in valid), outcomes, strict=True))
        items, counts = [], {"published": 0, "invalid": 0, "failed": 0}
        for p in prepared:
            error = errors.get(id(p))
            if p.reason is not None:
                status, reason = "invalid", p.reason
            elif error is None:
                status, reason = "published", None
            elif retriable(error):
                status, reason = "failed", f"Kafka did not acknowledge: {error!r}"
            else:
                status, reason = "invalid", f"refused by Kafka: {error!r}"
            counts[status] += 1
            items.append({"position": p.position, "status": status, **({"reason": reason} if reason else {})})
        for result, count in counts.items():
            if count:
                self.metrics.items.labels(endpoint, result).inc(count)
        if counts["failed"]:
            log.warning("%s: %d item(s) not acknowledged by Kafka", endpoint, counts["failed"])
            return Response(503, {**counts, "items": items}, self.retry_after())
        return Response(400 if counts["invalid"] else 200, {**counts, "items": items})

    def retry_after(self) -> tuple[tuple[str, str], ...]:
        return (("Retry-After", str(self.config.retry_after)),)


def _essentials(event: dict[str, Any]) -> dict[str, Any]:
    """A RunEvent reduced to what the product reads (its other facets and datasets dropped; called once
    `parse_run_event` accepted it, so its outputs are objects)."""
    run, job = event["run"], event["job"]

    def facets(section: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
        kept = section.get("facets") or {}
        return {name: kept[name] for name in names if name in kept}

    error = facets(run, _RUN_FACETS)
    if isinstance(error.get("errorMessage"), dict):  # its stack trace can be long; the message is enough
        message = error["errorMessage"]
        error["errorMessage"] = {
            k: v
            for k, v in message.items()
            if k in ("_producer", "_schemaURL", "message", "programmingLanguage")
        }
    # the outputs that report rows keep only their name and outputStatistics (the rows the run wrote)
    outputs = [
        {
            **{k: output[k] for k in ("namespace", "name") if k in output},
            "outputFacets": {
                openlineage.STATISTICS_FACET: output["outputFacets"][openlineage.STATISTICS_FACET]
            },
        }
        for output in event.get("outputs") or ()
        if (output.get("outputFacets") or {}).get(openlineage.STATISTICS_FACET) is not None
    ]
    return {
        **{k: event[k] for k in ("eventType", "eventTime", "producer", "schemaURL") if k in event},
        "run": {"runId": run["runId"], "facets": error},
        "job": {"namespace": job["namespace"], "name": job["name"], "facets": facets(job, _JOB_FACETS)},
        **({"outputs": outputs} if outputs else {}),
    }


def make_handler(intake: Intake) -> type[BaseHTTPRequestHandler]:
    config, metrics = intake.config, intake.metrics

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: a client's next POST reuses the connection
        server_version = "ingestion-intake"
        sys_version = ""
        timeout = 30  # socket timeout: a client that stops sending cannot hold a thread
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(intake.registry), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/readyz"):
                ok, detail = (True, "serving") if path == "/healthz" else intake.ready()
                self._send(
                    200 if ok else 503, f"{'ok' if ok else 'not ok'}: {detail}\n".encode(), "text/plain"
                )
            else:
                self._send(404, b"not found\n", "text/plain")

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0].rstrip("/")
            endpoint = path if path in (LINEAGE, RUNS) else "other"
            started = time.perf_counter()
            response = self._post(path)
            metrics.requests.labels(endpoint, str(response.status)).inc()
            if endpoint != "other":
                metrics.seconds.labels(endpoint).observe(time.perf_counter() - started)
            self._json(response)

        def _post(self, path: str) -> Response:
            if path not in (LINEAGE, RUNS):
                return self._refuse(Response(404, {"error": f"no endpoint {path}"}))
            if not intake.tokens.accepts(self.headers.get("Authorization")):
                return self._refuse(
                    Response(
                        401, {"error": "missing or invalid bearer token"}, (("WWW-Authenticate", "Bearer"),)
                    )
                )
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                return self._refuse(
                    Response(411, {"error": "chunked bodies are not accepted: send Content-Length"})
                )
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                return self._refuse(Response(411, {"error": "Content-Length is required"}))
            if length > config.max_body_bytes:
                return self._refuse(
                    Response(
                        413,
                        {"error": f"body of {length} bytes exceeds the {config.max_body_bytes}-byte limit"},
                    )
                )
            if not intake.slots.acquire(blocking=False):
                return self._refuse(
                    Response(503, {"error": "too many requests in progress"}, intake.retry_after())
                )
            try:
                raw = self.rfile.read(length)
                try:
                    body = decode_body(raw, self.headers.get("Content-Encoding", ""), config.max_body_bytes)
                except TooLarge as exc:
                    return Response(413, {"error": str(exc)})
                except PayloadError as exc:
                    return Response(400, {"error": str(exc), "position": "body"})
                return intake.handle(path, body)
            finally:
                intake.slots.release()

        def _refuse(self, response: Response) -> Response:
            """Answer without reading the body: drop it (bounded) so the client reads the answer, or close."""
            length = self.headers.get("Content-Length", "")
            left = int(length) if length.isdigit() else DRAIN_LIMIT + 1
            if left > DRAIN_LIMIT or "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                self.close_connection = True
                return response
            while left > 0:
                chunk = self.rfile.read(min(left, 1 << 16))
                if not chunk:
                    break
                left -= len(chunk)
            return response

        def _json(self, response: Response) -> None:
            body = orjson.dumps(response.body) + b"\n"
            self._send(response.status, body, "application/json", response.headers)

        def _send(
            self, status: int, body: bytes, content_type: str, headers: Sequence[tuple[str, str]] = ()
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers:
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # one line per request would drown the logs; /metrics counts them

    return Handler


def new_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        collector(registry=registry)
    return registry


def serve(intake: Intake, port: int, address: str = "") -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((address, port), make_handler(intake))
    server.daemon_threads = True
    return server


def static_tokens() -> list[str]:
    """$INTAKE_TOKEN (one token; comma-separated for several): env only, never a flag in the process list."""
    return [t.strip() for t in os.environ.get("INTAKE_TOKEN", "").split(",")]
