"""Grafana's own checkers, for what the tests can no longer run live: LogQL parsed by @grafana/lezer-logql
(the grammar of Grafana's query editor) and dashboards validated against the types of @grafana/schema.

Both run on node from the tools cache (scripts/tools/35-grafana.sh, `make tools`), one process per batch:
devstack/grafana/*.mjs. The schemas are generated from the TypeScript declarations at run time, never
copied into the repository.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from devstack.tools import ToolMissingError, binary, tools_dir

SCRIPTS = Path(__file__).with_name("grafana")
# The panel types the renderer makes: their panelcfg types are generated, any other type is an error.
PANEL_TYPES = ("stat", "timeseries", "table", "bargauge")
# Schema keywords whose value maps names (not keywords) to schemas.
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "definitions"})
# A panel type without a FieldConfig of its own (stat, bargauge) takes no custom field config at all.
_NO_CUSTOM: dict[str, Any] = {"type": "object", "additionalProperties": False}

# jsonschema ships no type hints.
_jsonschema: Any = importlib.import_module("jsonschema")


def install_dir() -> Path:
    """Where 35-grafana.sh installed the packages pinned in devstack/grafana/package.json."""
    stamp = hashlib.sha256((SCRIPTS / "package.json").read_bytes()).hexdigest()[:12]
    path = tools_dir() / "node" / f"grafana-{stamp}"
    version = path / ".version"
    if not version.is_file() or version.read_text(encoding="utf-8").strip() != stamp:
        raise ToolMissingError(f"Grafana's npm packages are not installed in {path}: run `make tools`")
    return path


def _node(script: str, *args: str, stdin: str = "") -> Any:
    command = [str(binary("node")), str(SCRIPTS / script), str(install_dir()), *args]
    result = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{script} exited with {result.returncode}: {result.stderr.strip()}")
    return json.loads(result.stdout)


def logql_syntax_errors(queries: Sequence[str]) -> list[list[str]]:
    """Per query, one message for each error node of its lezer-logql syntax tree ([]: the query parses)."""
    found = _node("logql-parse.mjs", stdin=json.dumps(list(queries)))
    return [
        [_syntax_error(query, start, end) for start, end in errors]
        for query, errors in zip(queries, found, strict=True)
    ]


def _syntax_error(query: str, start: int, end: int) -> str:
    before, bad, after = query[:start][-30:], query[start:end], query[end:][:30]
    return f"syntax error at offset {start}: …{before}⟨{bad}⟩{after}…"


@functools.cache
def schemas() -> dict[str, Any]:
    """{"dashboard": schema, "panels": {type: {"Options": schema, "FieldConfig": schema or None}}}."""
    data: dict[str, Any] = _node("schemas.mjs", *PANEL_TYPES)
    return data


def schema_errors(dashboard: Mapping[str, Any]) -> list[str]:
    """Every departure of `dashboard` from Grafana's types, each message naming the panel and the field.

    The v0 dashboard types check the dashboard, its rows and panels; the panel plugin's own types (panelcfg)
    check each panel's `options` and `fieldConfig.defaults.custom`, which the dashboard types leave open.
    Panels are checked one by one: against `Panel | RowPanel` at once, an error would not say which field.
    """
    top = {**dashboard, "panels": []}
    errors = _errors(_validator(schemas()["dashboard"]), top, "dashboard", "")
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            row = {**panel, "panels": []}
            errors += _errors(_definition("RowPanel"), row, f"row {panel.get('title')!r}", "")
            for child in panel.get("panels", []):
                errors += _panel_errors(child)
        else:
            errors += _panel_errors(panel)
    return errors


def _panel_errors(panel: Mapping[str, Any]) -> list[str]:
    kind = panel.get("type")
    where = f"panel {panel.get('title')!r} ({kind})"
    errors = _errors(_definition("Panel"), panel, where, "")
    config = schemas()["panels"].get(kind)
    if config is None:
        return [*errors, f"{where}: no panelcfg types for panel type {kind!r} (devstack.grafana.PANEL_TYPES)"]
    errors += _errors(_partial_validator(kind, "Options"), panel.get("options", {}), where, "options")
    custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom")
    if custom is not None:
        field_config = _partial_validator(kind, "FieldConfig")
        errors += _errors(field_config, custom, where, "fieldConfig.defaults.custom")
    return errors


def _errors(validator: Any, value: Any, where: str, prefix: str) -> list[str]:
    found = sorted(validator.iter_errors(value), key=lambda error: [str(p) for p in error.absolute_path])
    return [f"{where}: {_path(prefix, error.absolute_path) or '(top)'}: {error.message}" for error in found]


def _path(prefix: str, path: Iterable[object]) -> str:
    return ".".join([prefix, *map(str, path)] if prefix else map(str, path))


def _validator(schema: Mapping[str, Any]) -> Any:
    return _jsonschema.Draft7Validator(schema)


@functools.cache
def _definition(name: str) -> Any:
    """A validator of one type of the dashboard schema (Panel, RowPanel)."""
    definitions = schemas()["dashboard"]["definitions"]
    return _validator({"$ref": f"#/definitions/{name}", "definitions": definitions})


@functools.cache
def _partial_validator(kind: str, type_name: str) -> Any:
    schema = schemas()["panels"][kind][type_name]
    return _validator(_NO_CUSTOM if schema is None else _partial(schema))


def _partial(schema: Any) -> Any:
    """`schema` with nothing required at any depth (closed objects stay closed): Grafana merges a panel's
    saved options and field config into its plugin's defaults, so a dashboard holds only what differs."""
    if isinstance(schema, list):
        return [_partial(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    return {
        key: {name: _partial(sub) for name, sub in value.items()} if key in _SCHEMA_MAPS else _partial(value)
        for key, value in schema.items()
        if key != "required"
    }
