"""A real Alertmanager (Apache-2.0, `make tools` part "alertmanager") with a config it writes: tests, demo.

Built from its Go module without the web UI (not in the module): the API v2, /-/ready, /-/reload and amtool
are what is used here. One instance, no gossip (`--cluster.listen-address=`): only its HTTP port listens.
"""

from __future__ import annotations

import fnmatch
import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from .process import OneProcessService, ServiceProcess, free_port, http_ok
from .tools import binary

CONFIG_FILE = "alertmanager.yml"


class AlertmanagerError(RuntimeError):
    """Alertmanager or amtool refused something (a config, a reload, posted alerts); the message says why."""


def check_config(path: str | Path) -> None:
    """`amtool check-config PATH`; AlertmanagerError with amtool's output when it refuses the file."""
    argv = [str(binary("amtool")), "check-config", str(path)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        output = "\n".join(part.strip() for part in (result.stdout, result.stderr) if part.strip())
        raise AlertmanagerError(f"amtool check-config {path} failed ({result.returncode}):\n{output}")


def _call(url: str, *, method: str = "GET", body: Any = None) -> bytes:
    data = None if body is None else json.dumps(body).encode()
    headers = {} if data is None else {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return bytes(resp.read())
    except urllib.error.HTTPError as err:
        raise AlertmanagerError(f"{method} {url}: {err.code} {err.read().decode(errors='replace')}") from err


def _template_path(work_dir: Path, name: str) -> Path:
    if not name or name in (".", "..") or "/" in name or "\\" in name or name == CONFIG_FILE:
        raise ValueError(f"template file name {name!r}: a plain file name other than {CONFIG_FILE} expected")
    return work_dir / name


class AlertmanagerServer(OneProcessService):
    """A running Alertmanager; `stop()` (or leaving the `with` block) ends it.

    Its config is `work_dir/alertmanager.yml`, written from `config` (the alertmanager.yml as a dict); the
    `templates` (file name -> text) are written beside it and added to its `templates` list by absolute path
    unless an entry already names them (a relative name or glob is read from `work_dir`).
    Notification log and silences live in `work_dir/data`, the log in `work_dir/alertmanager.log`.
    """

    stop_timeout = 15.0

    def __init__(
        self,
        process: ServiceProcess,
        host: str,
        port: int,
        work_dir: Path,
        config: Mapping[str, Any],
        templates: Mapping[str, str],
    ) -> None:
        self.process = process
        self.host = host
        self.port = port
        self.work_dir = work_dir
        self.config: dict[str, Any] = dict(config)
        self.templates: dict[str, str] = dict(templates)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def target(self) -> str:
        """The `host:port` Prometheus sends its alerts to (PrometheusServer.start(alertmanagers=[...]))."""
        return f"{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.work_dir / CONFIG_FILE

    @classmethod
    def start(
        cls,
        work_dir: Path,
        port: int | None = None,
        *,
        config: Mapping[str, Any],
        templates: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        external_url: str | None = None,
        extra_args: Sequence[str] = (),
        timeout: float = 60.0,
    ) -> AlertmanagerServer:
        """Write the config (and templates) and start Alertmanager; returns once /-/ready answers 200.

        `external_url` (default: its `url`) is the base of the links in its notifications.
        """
        work_dir = Path(work_dir).resolve()
        work_dir.mkdir(parents=True, exist_ok=True)
        port = port or free_port()
        config_path = _write(work_dir, config, templates or {}, {})
        argv: list[str | Path] = [
            binary("alertmanager"),
            f"--config.file={config_path}",
            f"--storage.path={work_dir / 'data'}",
            f"--web.listen-address={host}:{port}",
            f"--web.external-url={external_url or f'http://{host}:{port}'}",
            "--cluster.listen-address=",  # a single instance: no gossip port
            *extra_args,
        ]
        process = ServiceProcess("alertmanager", argv, work_dir / "alertmanager.log", cwd=work_dir)
        server = cls(process, host, port, work_dir, config, templates or {})
        server.wait_or_stop(lambda: http_ok(f"{server.url}/-/ready"), timeout)
        return server

    def write_config(self) -> Path:
        """Rewrite alertmanager.yml and the template files from `config` and `templates` (then `reload()`)."""
        return _write(self.work_dir, self.config, self.templates, self.templates)

    def reload(
        self, config: Mapping[str, Any] | None = None, templates: Mapping[str, str] | None = None
    ) -> None:
        """Re-read config and templates (POST /-/reload); AlertmanagerError when Alertmanager refuses them.

        `config` and `templates` replace the current ones (files rewritten first). A refused reload leaves
        Alertmanager on its previous config.
        """
        if config is not None or templates is not None:
            previous = self.templates
            if config is not None:
                self.config = dict(config)
            if templates is not None:
                self.templates = dict(templates)
            _write(self.work_dir, self.config, self.templates, previous)
        _call(f"{self.url}/-/reload", method="POST")

    def alerts(self, matchers: Sequence[str] = ()) -> list[dict[str, Any]]:
        """GET /api/v2/alerts: the alerts it holds (optionally only those matching `matchers`, `a="b"`)."""
        query = urllib.parse.urlencode([("filter", m) for m in matchers])
        body = _call(f"{self.url}/api/v2/alerts" + (f"?{query}" if query else ""))
        return list(json.loads(body))

    def post_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        """POST /api/v2/alerts (what Prometheus sends): [{"labels": {...}, "annotations": {...}, ...}]."""
        _call(f"{self.url}/api/v2/alerts", method="POST", body=[dict(a) for a in alerts])


def _write(
    work_dir: Path, config: Mapping[str, Any], templates: Mapping[str, str], previous: Mapping[str, str]
) -> Path:
    """alertmanager.yml + template files in `work_dir`; template files of `previous` no longer wanted go."""
    paths = {name: _template_path(work_dir, name) for name in templates}
    for name in previous:
        if name not in templates:
            _template_path(work_dir, name).unlink(missing_ok=True)
    for name, text in templates.items():
        paths[name].write_text(text, encoding="utf-8")
    rendered = dict(config)
    listed = [str(t) for t in rendered.get("templates") or []]
    # Alertmanager reads relative entries (globs too) from the config's directory, this very `work_dir`.
    patterns = [str(work_dir / entry) for entry in listed]
    unlisted = [p for p in paths.values() if not any(fnmatch.fnmatchcase(str(p), g) for g in patterns)]
    rendered["templates"] = listed + [str(p) for p in unlisted]
    if not rendered["templates"]:
        del rendered["templates"]
    config_path = work_dir / CONFIG_FILE
    config_path.write_text(yaml.safe_dump(rendered, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return config_path
