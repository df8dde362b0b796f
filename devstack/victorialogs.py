"""A real VictoriaLogs (Apache-2.0): the local log store behind Loki's push API for tests, demo and bench.

The consumer pushes to it exactly as to Loki (`push_url` is what its LOKI_URL gets). It is read back with
LogsQL, not LogQL: VictoriaLogs does not speak LogQL, so the dashboards' LogQL is checked by Grafana's own
grammar (devstack.grafana) and the fields it extracts are checked here, on the stored lines.

Unlike Loki, VictoriaLogs stores an identical entry pushed twice twice: tests that rely on Loki's dedupe of
re-pushed entries count distinct (_time, _msg) pairs instead (`count_distinct`).
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .process import OneProcessService, ServiceProcess, free_port, http_ok
from .tools import binary

# Loki's own defaults for what it accepts by age (reject_old_samples_max_age 168h, creation grace): keep the
# same window, so that "no line dropped for its age" means the same here as on a Loki.
RETENTION = "7d"
FUTURE_RETENTION = "2d"


class LogStoreError(RuntimeError):
    """The HTTP API answered with an error (rejected push, bad LogsQL, ...)."""


def _call(url: str, data: bytes | None = None, headers: Mapping[str, str] | None = None) -> bytes:
    request = urllib.request.Request(url, data=data, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return bytes(resp.read())
    except urllib.error.HTTPError as err:
        raise LogStoreError(f"{url}: {err.code} {err.read().decode(errors='replace')}") from err


def logsql(base_url: str, query: str, *, limit: int | None = None) -> list[dict[str, Any]]:
    """/select/logsql/query of any VictoriaLogs: one dict per row (entries, or `| stats` results)."""
    params = {"query": query, **({"limit": str(limit)} if limit else {})}
    body = _call(f"{base_url}/select/logsql/query", urllib.parse.urlencode(params).encode())
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def metric(base_url: str, name: str) -> float:
    """Sum of a metric's samples on VictoriaLogs' own /metrics (e.g. vl_rows_dropped_total)."""
    text = _call(f"{base_url}/metrics").decode()
    pattern = re.compile(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", re.MULTILINE)
    return sum(float(value) for value in pattern.findall(text))


class VictoriaLogsServer(OneProcessService):
    """A running VictoriaLogs; `stop()` (or leaving the `with` block) ends it. Data in `work_dir/data`."""

    def __init__(self, process: ServiceProcess, host: str, port: int) -> None:
        self.process = process
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def push_url(self) -> str:
        """The base URL of its Loki push API, as the consumer's LOKI_URL (it appends /loki/api/v1/push)."""
        return f"{self.url}/insert"

    @classmethod
    def start(
        cls,
        work_dir: Path,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        retention: str = RETENTION,
        log_level: str = "INFO",
        extra_args: Sequence[str] = (),
        timeout: float = 60.0,
    ) -> VictoriaLogsServer:
        """Start it on `port` (a free one by default); returns once /health answers."""
        work_dir = Path(work_dir).resolve()
        work_dir.mkdir(parents=True, exist_ok=True)
        port = port or free_port()
        argv: list[str | Path] = [
            binary("victoria-logs"),
            f"-storageDataPath={work_dir / 'data'}",
            f"-httpListenAddr={host}:{port}",
            # Keep each pushed line whole in _msg: without it a JSON line is exploded into fields.
            "-loki.disableMessageParsing",
            f"-retentionPeriod={retention}",
            f"-futureRetention={FUTURE_RETENTION}",
            f"-loggerLevel={log_level}",
            *extra_args,
        ]
        server = cls(ServiceProcess("victoria-logs", argv, work_dir / "victoria-logs.log"), host, port)
        server.wait_or_stop(lambda: http_ok(f"{server.url}/health"), timeout)
        return server

    def push(self, labels: Mapping[str, str], lines: Sequence[str], at_ns: int | None = None) -> None:
        """Push lines to one stream through the Loki push API (JSON), one nanosecond apart."""
        start = at_ns if at_ns is not None else time.time_ns()
        values = [[str(start + i), line] for i, line in enumerate(lines)]
        payload = json.dumps({"streams": [{"stream": dict(labels), "values": values}]}).encode()
        _call(f"{self.push_url}/loki/api/v1/push", payload, {"Content-Type": "application/json"})

    def flush(self) -> None:
        """Make every accepted entry searchable now (not after the in-memory flush interval)."""
        _call(f"{self.url}/internal/force_flush")

    def query(self, query: str, *, limit: int | None = None) -> list[dict[str, Any]]:
        """Rows of a LogsQL query over all time, after a flush."""
        self.flush()
        return logsql(self.url, query, limit=limit)

    def count(self, query: str) -> int:
        """Entries matching a LogsQL filter (every entry, duplicates included)."""
        rows = self.query(f"{query} | stats count() as n")
        return int(rows[0]["n"]) if rows else 0

    def count_distinct(self, query: str) -> int:
        """Distinct (_time, _msg) entries matching a LogsQL filter: what a Loki would hold after re-pushes.

        Loki drops an entry whose stream, timestamp and line equal a stored one; VictoriaLogs keeps both.
        """
        rows = self.query(f"{query} | stats count_uniq(_time, _msg) as n")
        return int(rows[0]["n"]) if rows else 0

    def lines(self, query: str, *, limit: int = 10_000) -> list[str]:
        """The _msg of the entries matching a LogsQL filter, oldest first."""
        rows = self.query(f"{query} | sort by (_time)", limit=limit)
        return [row["_msg"] for row in rows]

    def rows_dropped(self) -> float:
        """vl_rows_dropped_total over every reason (too old, too far ahead, too many fields...)."""
        return metric(self.url, "vl_rows_dropped_total")
