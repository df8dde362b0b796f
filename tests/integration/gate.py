"""A gate in front of the log store: the tests open it, hold its answers or make it fail.

- open: each push is forwarded and answered with the store's answer;
- hold: each push is forwarded, but its answer is held: the status line goes out, then one byte of a header
  every half second, so the client's read timeout never fires (not even across a SIGSTOP) until `release()`;
- fail: each push is answered 503 and not forwarded.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


class LogStoreGate:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.mode = "open"
        self.held = 0  # pushes whose answer is being held now
        self.holding = threading.Condition()
        self.failed = 0  # pushes answered 503
        gate = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if gate.mode == "fail":
                    gate.failed += 1
                    self._answer(503, b"gate closed")
                    return
                status, answer = gate._forward(self.path, body, dict(self.headers))
                if gate.mode == "hold":
                    gate._hold(self, status)
                    self.wfile.write(b"\r\nContent-Length: %d\r\n\r\n" % len(answer) + answer)
                else:
                    self._answer(status, answer)

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="gate", daemon=True).start()

    @property
    def url(self) -> str:
        """The base URL the consumer gets as its LOKI_URL (the store's path prefix kept)."""
        return f"http://127.0.0.1:{self.port}/insert"

    def _forward(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        keep = {k: v for k, v in headers.items() if k.lower() in ("content-type", "content-encoding")}
        request = urllib.request.Request(self.upstream + path, data=body, headers=keep, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def _hold(self, handler: BaseHTTPRequestHandler, status: int) -> None:
        handler.wfile.write(f"HTTP/1.1 {status} Held\r\nX-Held: ".encode())
        with self.holding:
            self.held += 1
            self.holding.notify_all()
            try:
                while self.mode == "hold":
                    self.holding.wait(0.5)
                    if self.mode == "hold":
                        handler.wfile.write(b"a")
                        handler.wfile.flush()
            finally:
                self.held -= 1

    def hold(self) -> None:
        self.mode = "hold"

    def fail(self) -> None:
        self.mode = "fail"

    def release(self) -> None:
        with self.holding:
            self.mode = "open"
            self.holding.notify_all()

    def wait_held(self, timeout: float = 60.0) -> None:
        """Until a push's answer is being held."""
        with self.holding:
            if not self.holding.wait_for(lambda: self.held > 0, timeout):
                raise TimeoutError(f"no push held by the gate within {timeout:.0f}s")

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LogStoreGate:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
