"""HTTP endpoints of the consumer: /metrics, /healthz (liveness), /readyz (readiness)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

# The main loop beats at least every poll; calls that can block (commit, end offsets) time out well
# before this, so only a wedged process is reported dead (no restart loop during a Kafka outage).
LIVENESS_TIMEOUT = 120.0
KAFKA_TIMEOUT = 60.0


@dataclass
class HealthState:
    """Written by the consumer loop, read by the HTTP threads (plain attribute writes are atomic)."""

    heartbeat: float = 0.0
    kafka_ok_at: float = 0.0
    assigned: int = 0
    waiting_for: str = ""  # what a paused consumer is retrying (Loki, the transaction), for humans
    restoring: bool = False
    refused: dict[int, str] = field(default_factory=dict)  # partitions not served: why

    def beat(self) -> None:
        self.heartbeat = time.monotonic()

    def alive(self) -> tuple[bool, str]:
        age = time.monotonic() - self.heartbeat
        return age < LIVENESS_TIMEOUT, f"main loop last seen {age:.1f}s ago"

    def ready(self) -> tuple[bool, str]:
        kafka_age = time.monotonic() - self.kafka_ok_at
        if self.restoring:
            return False, "restoring state from the changelog"
        if self.refused:
            why = "; ".join(f"partition {p}: {reason}" for p, reason in sorted(self.refused.items()))
            return False, f"state refused, partition(s) not served: {why}"
        suffix = f", waiting for {self.waiting_for}" if self.waiting_for else ""
        if self.assigned == 0:
            return False, f"no partition assigned{suffix}"
        if kafka_age > KAFKA_TIMEOUT:
            return False, f"Kafka not reached for {kafka_age:.0f}s"
        return True, f"{self.assigned} partition(s) assigned{suffix}"


def serve(
    registry: CollectorRegistry,
    health: HealthState,
    port: int,
    address: str = "",
    business: Callable[[], bytes] = bytes,
) -> ThreadingHTTPServer:
    """/metrics is the registry's self-metrics followed by `business()` (the owned state's series)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry) + business(), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/health"):
                self._check(*health.alive())
            elif path == "/readyz":
                self._check(*health.ready())
            else:
                self._send(404, b"not found\n", "text/plain")

        def _check(self, ok: bool, detail: str) -> None:
            self._send(200 if ok else 503, f"{'ok' if ok else 'not ok'}: {detail}\n".encode(), "text/plain")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((address, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
