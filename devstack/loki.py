"""A real Grafana Loki (single binary, -target=all, filesystem storage, TSDB v13) with a config it writes."""

from __future__ import annotations

import copy
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from .process import OneProcessService, ServiceProcess, free_port, http_ok
from .tools import binary

# Loki's defaults, except what a local single node for tests and the demo wants different. The benchmark
# raises ingestion limits through `limits=`.
DEFAULT_LIMITS: dict[str, Any] = {
    "allow_structured_metadata": True,
    "volume_enabled": True,
    "ingestion_rate_mb": 16,
    "ingestion_burst_size_mb": 32,
    "per_stream_rate_limit": "16MB",
    "per_stream_rate_limit_burst": "32MB",
    "reject_old_samples": True,
    "reject_old_samples_max_age": "168h",
    "max_query_lookback": "0s",
    "retention_period": "0s",
    "discover_log_levels": False,
}


class LokiError(RuntimeError):
    """The HTTP API answered with an error (rejected push, bad LogQL, ...)."""


def deep_merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`base` updated by `overrides`, recursing into nested mappings (copies; neither argument changes)."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def render_config(
    work_dir: Path,
    host: str,
    http_port: int,
    grpc_port: int,
    *,
    limits: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    log_level: str = "info",
) -> dict[str, Any]:
    """The Loki config as a dict: no auth, in-memory ring, filesystem chunks, TSDB schema v13."""
    data = work_dir / "data"
    config: dict[str, Any] = {
        "auth_enabled": False,
        "server": {
            "http_listen_address": host,
            "http_listen_port": http_port,
            "grpc_listen_address": host,
            "grpc_listen_port": grpc_port,
            "log_level": log_level,
            "grpc_server_max_recv_msg_size": 64 << 20,
            "grpc_server_max_send_msg_size": 64 << 20,
            "http_server_read_timeout": "60s",
            "http_server_write_timeout": "60s",
        },
        "common": {
            "instance_addr": host,
            "path_prefix": str(data),
            "replication_factor": 1,
            "ring": {"instance_addr": host, "kvstore": {"store": "inmemory"}},
            "storage": {
                "filesystem": {
                    "chunks_directory": str(data / "chunks"),
                    "rules_directory": str(data / "rules"),
                }
            },
        },
        "schema_config": {
            "configs": [
                {
                    "from": "2020-10-24",
                    "store": "tsdb",
                    "object_store": "filesystem",
                    "schema": "v13",
                    "index": {"prefix": "index_", "period": "24h"},
                }
            ]
        },
        "ingester": {
            # Ready at once, nothing to hand over on shutdown: one node, no ring peers.
            "lifecycler": {"min_ready_duration": "0s", "final_sleep": "0s"},
            "wal": {"dir": str(data / "wal")},
        },
        # The frontend and queriers find the scheduler through its ring: poll it every second, not every
        # 10s/3s, so /ready (which waits for the frontend to reach a scheduler) comes quickly.
        "frontend": {"scheduler_dns_lookup_period": "1s"},
        "frontend_worker": {"dns_lookup_duration": "1s"},
        "limits_config": deep_merge(DEFAULT_LIMITS, limits or {}),
        "query_range": {"results_cache": {"cache": {"embedded_cache": {"enabled": True, "max_size_mb": 64}}}},
        "compactor": {"working_directory": str(data / "compactor")},
        "ruler": {"storage": {"type": "local", "local": {"directory": str(data / "rules")}}},
        "pattern_ingester": {"enabled": False},
        "analytics": {"reporting_enabled": False},
        "tracing": {"enabled": False},
    }
    return deep_merge(config, overrides or {})


def instant_query(base_url: str, logql: str) -> list[dict[str, Any]]:
    """/loki/api/v1/query of any Loki at now (a metric query's vector); LokiError on an error answer."""
    url = f"{base_url}/loki/api/v1/query?" + urllib.parse.urlencode({"query": logql})
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            body = json.load(resp)
    except urllib.error.HTTPError as err:
        raise LokiError(f"query {logql!r}: {err.code} {err.read().decode(errors='replace')}") from err
    if body.get("status") != "success":
        raise LokiError(f"query {logql!r}: {body}")
    return list(body["data"]["result"])


class LokiServer(OneProcessService):
    """A running Loki; `stop()` (or leaving the `with` block) ends it. Its data lives in `work_dir/data`."""

    def __init__(self, process: ServiceProcess, host: str, port: int, grpc_port: int, work_dir: Path) -> None:
        self.process = process
        self.host = host
        self.port = port
        self.grpc_port = grpc_port
        self.work_dir = work_dir
        self.config_path = work_dir / "loki.yaml"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @classmethod
    def start(
        cls,
        work_dir: Path,
        port: int | None = None,
        *,
        grpc_port: int | None = None,
        host: str = "127.0.0.1",
        limits: Mapping[str, Any] | None = None,
        config_overrides: Mapping[str, Any] | None = None,
        log_level: str = "info",
        extra_args: Sequence[str] = (),
        timeout: float = 90.0,
    ) -> LokiServer:
        """Write `work_dir/loki.yaml` and start Loki; returns once /ready is 200 and queries answer.

        `limits` is merged into limits_config (e.g. {"ingestion_rate_mb": 64}); `config_overrides` is
        merged into the whole config (nested mappings merge, other values replace).
        """
        work_dir = Path(work_dir).resolve()
        work_dir.mkdir(parents=True, exist_ok=True)
        port = port or free_port()
        grpc_port = grpc_port or free_port()
        if grpc_port == port:
            grpc_port = free_port()
        config = render_config(
            work_dir, host, port, grpc_port, limits=limits, overrides=config_overrides, log_level=log_level
        )
        config_path = work_dir / "loki.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        argv: list[str | Path] = [binary("loki"), f"-config.file={config_path}", "-target=all", *extra_args]
        process = ServiceProcess("loki", argv, work_dir / "loki.log", cwd=work_dir)
        server = cls(process, host, port, grpc_port, work_dir)
        # /ready is 200 once the frontend reaches the scheduler, which takes queries ~2s later: wait
        # for a query to answer too, so the first query of a test does not hang.
        server.wait_or_stop(
            lambda: http_ok(f"{server.url}/ready") and http_ok(f"{server.url}/loki/api/v1/labels"), timeout
        )
        return server

    def _request(self, method: str, path: str, body: bytes | None = None) -> Any:
        request = urllib.request.Request(f"{self.url}{path}", data=body, method=method)
        if body is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as err:
            raise LokiError(f"{method} {path}: {err.code} {err.read().decode(errors='replace')}") from err
        return json.loads(raw) if raw else None

    def push(
        self,
        labels: Mapping[str, str],
        lines: Sequence[str | tuple[str, Mapping[str, str]]],
        at_ns: int | None = None,
    ) -> None:
        """Push lines to one stream (JSON push API); a line may carry structured metadata: (line, {k: v})."""
        start = at_ns if at_ns is not None else time.time_ns()
        values: list[list[Any]] = []
        for i, entry in enumerate(lines):
            text, metadata = (entry, None) if isinstance(entry, str) else entry
            value: list[Any] = [str(start + i), text]
            if metadata:
                value.append(dict(metadata))
            values.append(value)
        payload = {"streams": [{"stream": dict(labels), "values": values}]}
        self._request("POST", "/loki/api/v1/push", json.dumps(payload).encode())

    def query(self, logql: str) -> list[dict[str, Any]]:
        """Instant query at now (see `instant_query`)."""
        return instant_query(self.url, logql)

    def query_range(
        self, logql: str, *, since: float = 3600.0, limit: int = 1000, direction: str = "forward"
    ) -> list[dict[str, Any]]:
        """The result of /loki/api/v1/query_range over the last `since` seconds (streams or matrix)."""
        now = time.time_ns()
        params = {
            "query": logql,
            "start": str(now - int(since * 1e9)),
            "end": str(now + 1_000_000_000),
            "limit": str(limit),
            "direction": direction,
        }
        body = self._request("GET", "/loki/api/v1/query_range?" + urllib.parse.urlencode(params))
        if body.get("status") != "success":
            raise LokiError(f"query_range {logql!r}: {body}")
        return list(body["data"]["result"])

    def labels(self) -> list[str]:
        body = self._request("GET", "/loki/api/v1/labels")
        return list(body.get("data") or [])
