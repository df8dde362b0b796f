"""A tiny webhook receiver that keeps what it receives (Alertmanager's webhook payload v4) in an NDJSON file.

Each POST (any path, a JSON object as body) becomes one line of `DIR/notifications.ndjson`: the payload plus
"received_at" (epoch seconds) and "path"; it answers 200 once the line is written. GET /-/ready answers 200.

    python -m devstack.inbox --dir DIR --port N [--host 127.0.0.1]    (`make demo`: a background process)
    InboxServer.start(DIR)                                              (tests: a process on a free port)

`read_notifications(DIR)` and `wait_for_notification(DIR, predicate, timeout)` read the file from anywhere.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

from .process import OneProcessService, ServiceProcess, free_port, http_ok

NOTIFICATIONS_FILE = "notifications.ndjson"
MAX_BODY = 16 * 1024 * 1024
REPO = Path(__file__).resolve().parents[1]


def notifications_path(directory: str | Path) -> Path:
    return Path(directory) / NOTIFICATIONS_FILE


def read_notifications(directory: str | Path) -> list[dict[str, Any]]:
    """Every notification received so far, oldest first (none when the file does not exist yet)."""
    try:
        text = notifications_path(directory).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    # Only whole lines: a line being appended right now is read next time.
    return [json.loads(line) for line in text.split("\n")[:-1] if line.strip()]


def _summary(notifications: Sequence[dict[str, Any]], limit: int = 20, width: int = 600) -> str:
    if not notifications:
        return "nothing"
    lines = [f"{len(notifications)} notification(s):"]
    skipped = len(notifications) - limit
    if skipped > 0:
        lines.append(f"  ... {skipped} older ones left out")
    for item in notifications[-limit:]:
        text = json.dumps(item, ensure_ascii=False, sort_keys=True)
        lines.append("  " + (text if len(text) <= width else text[:width] + "..."))
    return "\n".join(lines)


def wait_for_notification(
    directory: str | Path,
    predicate: Callable[[dict[str, Any]], object],
    timeout: float = 30.0,
    interval: float = 0.2,
) -> dict[str, Any]:
    """The first notification for which `predicate` is true, polling the file until `timeout`.

    TimeoutError lists what was received instead.
    """
    deadline = time.monotonic() + timeout
    while True:
        notifications = read_notifications(directory)
        for item in notifications:
            if predicate(item):
                return item
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"no matching notification in {notifications_path(directory)} after {timeout:.0f}s; "
                f"received {_summary(notifications)}"
            )
        time.sleep(interval)


class _InboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], directory: Path) -> None:
        super().__init__(address, _Handler)
        self.path = notifications_path(directory)
        self.lock = threading.Lock()

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self.lock, self.path.open("a", encoding="utf-8") as out:
            out.write(line)
            out.flush()


class _Handler(BaseHTTPRequestHandler):
    server: _InboxHTTPServer
    protocol_version = "HTTP/1.1"

    def _answer(self, code: int, text: str, content_type: str = "text/plain") -> None:
        body = (text + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/-/ready":
            self._answer(200, "ready")
        elif path == "/notifications":  # what `make test-stack` reads
            with self.server.lock:
                received = read_notifications(self.server.path.parent)
            self._answer(200, json.dumps(received, ensure_ascii=False), "application/json")
        else:
            self._answer(404, "POST a JSON object to any path; GET /-/ready, /notifications")

    def do_POST(self) -> None:
        received_at = time.time()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            self.close_connection = True
            self._answer(400 if length <= 0 else 413, f"a JSON object body of at most {MAX_BODY} bytes")
            return
        raw = self.rfile.read(length)
        try:
            payload = json.loads(raw)
        except ValueError as exc:
            self._answer(400, f"invalid JSON: {exc}")
            return
        if not isinstance(payload, dict):
            self._answer(400, "a JSON object expected")
            return
        self.server.append({**payload, "received_at": received_at, "path": self.path})
        self._answer(200, "ok")


def serve(directory: Path, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    directory.mkdir(parents=True, exist_ok=True)
    server = _InboxHTTPServer((host, port), directory)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    bound_host, bound_port = server.server_address[:2]
    print(f"inbox on http://{bound_host!s}:{bound_port}, writing {server.path}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


class InboxServer(OneProcessService):
    """`python -m devstack.inbox` as a child process; `stop()` (or leaving the `with` block) ends it."""

    stop_timeout = 10.0

    def __init__(self, process: ServiceProcess, host: str, port: int, directory: Path) -> None:
        self.process = process
        self.host = host
        self.port = port
        self.directory = directory

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def notifications_path(self) -> Path:
        return notifications_path(self.directory)

    @classmethod
    def start(
        cls, directory: Path, port: int | None = None, *, host: str = "127.0.0.1", timeout: float = 30.0
    ) -> InboxServer:
        """Start it on `port` (a free one by default); returns once /-/ready answers. Log: DIR/inbox.log."""
        directory = Path(directory).resolve()
        directory.mkdir(parents=True, exist_ok=True)
        port = port or free_port()
        argv = [sys.executable, "-m", "devstack.inbox", f"--dir={directory}", f"--port={port}"]
        argv.append(f"--host={host}")
        process = ServiceProcess("inbox", argv, directory / "inbox.log", cwd=REPO)
        server = cls(process, host, port, directory)
        server.wait_or_stop(lambda: http_ok(f"{server.url}/-/ready"), timeout)
        return server

    def notifications(self) -> list[dict[str, Any]]:
        return read_notifications(self.directory)

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], object], timeout: float = 30.0
    ) -> dict[str, Any]:
        return wait_for_notification(self.directory, predicate, timeout)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.inbox",
        description=f"Append every POSTed JSON object to DIR/{NOTIFICATIONS_FILE}, one line each.",
    )
    parser.add_argument("--dir", type=Path, required=True, help=f"where {NOTIFICATIONS_FILE} is appended to")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    serve(args.dir, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
