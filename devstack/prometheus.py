"""A real Prometheus (the Debian binary, or one on PATH) scraping given targets, with a config it writes."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ingestion_observability import catalog

from .process import OneProcessService, ServiceProcess, free_port, http_ok
from .tools import binary

CONSUMER_JOB = "ingestion-consumer"


class PrometheusError(RuntimeError):
    """The HTTP API answered with an error (bad PromQL, failed reload, ...)."""


def _as_list(targets: Sequence[str]) -> list[str]:
    return [targets] if isinstance(targets, str) else list(targets)


def render_config(
    jobs: Mapping[str, Sequence[str]],
    *,
    scrape_interval: str,
    evaluation_interval: str,
    rule_files: Sequence[str | Path],
    alertmanagers: Sequence[str] = (),
) -> dict[str, Any]:
    """prometheus.yml as a dict: one static scrape job per entry of `jobs` (name -> ["host:port", ...]).

    `alertmanagers` ("host:port") are where the firing alerts go (none: alerts are only evaluated).
    """
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,  # must not exceed the interval; 1s intervals are common here
            "evaluation_interval": evaluation_interval,
        },
        "rule_files": [str(f) for f in rule_files],
        # The chart's ServiceMonitor relabelings: business series keep no instance, so one that moves to
        # another consumer (restart, rebalance, scale-out) continues as the same series.
        "scrape_configs": [
            {
                "job_name": name,
                "static_configs": [{"targets": _as_list(targets)}],
                "metric_relabel_configs": catalog.prometheus_relabel_configs(),
            }
            for name, targets in jobs.items()
        ],
    }
    if alertmanagers:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": _as_list(alertmanagers)}]}]}
    return config


def write_config(
    path: Path,
    jobs: Mapping[str, Sequence[str]],
    scrape_interval: str,
    evaluation_interval: str,
    rule_files: Sequence[str | Path],
    alertmanagers: Sequence[str] = (),
) -> None:
    config = render_config(
        jobs,
        scrape_interval=scrape_interval,
        evaluation_interval=evaluation_interval,
        rule_files=rule_files,
        alertmanagers=alertmanagers,
    )
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def api(base_url: str, path: str, params: Mapping[str, str] | None = None) -> Any:
    """GET <base_url>/api/v1/<path> of any Prometheus; returns `data`, raises PrometheusError on an error."""
    url = f"{base_url}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            body = json.load(resp)
    except urllib.error.HTTPError as err:
        try:
            body = json.loads(err.read())
        except ValueError:
            raise PrometheusError(f"GET {url}: HTTP {err.code}") from err
    if body.get("status") != "success":
        raise PrometheusError(f"GET {url}: {body.get('errorType')}: {body.get('error')}")
    return body["data"]


def instant_query(base_url: str, promql: str, at: float | None = None) -> list[dict[str, Any]]:
    """Instant query: the result list ({"metric": {...}, "value": [ts, "v"]} per series for a vector).

    A scalar or string result comes back as one entry with an empty "metric".
    """
    params = {"query": promql}
    if at is not None:
        params["time"] = f"{at:.3f}"
    data = api(base_url, "query", params)
    if data["resultType"] in ("vector", "matrix"):
        return list(data["result"])
    return [{"metric": {}, "value": data["result"]}]


class PrometheusServer(OneProcessService):
    stop_timeout = 15.0

    """A running Prometheus; `stop()` (or leaving the `with` block) ends it. TSDB lives in `work_dir/data`."""

    def __init__(
        self,
        process: ServiceProcess,
        host: str,
        port: int,
        work_dir: Path,
        *,
        jobs: Mapping[str, Sequence[str]],
        rule_files: Sequence[str | Path],
        scrape_interval: str,
        evaluation_interval: str,
        alertmanagers: Sequence[str] = (),
    ) -> None:
        self.process = process
        self.host = host
        self.port = port
        self.work_dir = work_dir
        self.config_path = work_dir / "prometheus.yml"
        self.jobs = {name: _as_list(t) for name, t in jobs.items()}
        self.rule_files = [str(f) for f in rule_files]
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.alertmanagers = _as_list(alertmanagers)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @classmethod
    def start(
        cls,
        work_dir: Path,
        port: int | None = None,
        *,
        targets: Sequence[str] = (),
        jobs: Mapping[str, Sequence[str]] | None = None,
        scrape_interval: str = "5s",
        evaluation_interval: str = "5s",
        rule_files: Sequence[str | Path] = (),
        alertmanagers: Sequence[str] = (),
        host: str = "127.0.0.1",
        extra_args: Sequence[str] = (),
        timeout: float = 60.0,
    ) -> PrometheusServer:
        """Write the config and start Prometheus; returns once /-/ready answers 200.

        `targets` ("host:port") are scraped as job `ingestion-consumer`; `jobs` adds other jobs (name ->
        targets). `rule_files` may hold globs (e.g. "rules/*.yml"), which `reload()` re-reads. Firing alerts
        go to the `alertmanagers` ("host:port"), if any.
        """
        work_dir = Path(work_dir).resolve()
        work_dir.mkdir(parents=True, exist_ok=True)
        port = port or free_port()
        all_jobs: dict[str, Sequence[str]] = {CONSUMER_JOB: _as_list(targets)} if targets else {}
        all_jobs.update(jobs or {})
        config_path = work_dir / "prometheus.yml"
        write_config(config_path, all_jobs, scrape_interval, evaluation_interval, rule_files, alertmanagers)
        argv: list[str | Path] = [
            binary("prometheus"),
            f"--config.file={config_path}",
            f"--storage.tsdb.path={work_dir / 'data'}",
            f"--web.listen-address={host}:{port}",
            "--web.enable-lifecycle",
            *extra_args,
        ]
        process = ServiceProcess("prometheus", argv, work_dir / "prometheus.log", cwd=work_dir)
        server = cls(
            process,
            host,
            port,
            work_dir,
            jobs=all_jobs,
            rule_files=rule_files,
            scrape_interval=scrape_interval,
            evaluation_interval=evaluation_interval,
            alertmanagers=alertmanagers,
        )
        server.wait_or_stop(lambda: http_ok(f"{server.url}/-/ready"), timeout)
        return server

    def write_config(self) -> Path:
        """Rewrite prometheus.yml from `jobs`, `rule_files`, intervals, `alertmanagers` (then `reload()`)."""
        write_config(
            self.config_path,
            self.jobs,
            self.scrape_interval,
            self.evaluation_interval,
            self.rule_files,
            self.alertmanagers,
        )
        return self.config_path

    def reload(
        self,
        *,
        rule_files: Sequence[str | Path] | None = None,
        jobs: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """Re-read config and rule files (POST /-/reload); PrometheusError when Prometheus rejects them.

        `rule_files` replaces the rule file list and `jobs` replaces the scrape jobs (config rewritten first).
        """
        if rule_files is not None:
            self.rule_files = [str(f) for f in rule_files]
        if jobs is not None:
            self.jobs = {name: _as_list(t) for name, t in jobs.items()}
        if rule_files is not None or jobs is not None:
            self.write_config()
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30):
                pass
        except urllib.error.HTTPError as err:
            raise PrometheusError(f"reload failed: {err.code} {err.read().decode(errors='replace')}") from err

    def api(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """GET /api/v1/<path>; returns `data`, raises PrometheusError on an error answer."""
        return api(self.url, path, params)

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query (see `instant_query`)."""
        return instant_query(self.url, promql, at)

    def wait_for(self, promql: str, timeout: float = 30.0, interval: float = 0.5) -> list[dict[str, Any]]:
        """Poll `query(promql)` until it returns something; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if result:
                return result
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no result for {promql!r} after {timeout:.0f}s")
            time.sleep(interval)

    def rules(self) -> list[dict[str, Any]]:
        """The loaded rule groups (GET /api/v1/rules)."""
        return list(self.api("rules")["groups"])
