"""Every dashboard matches Grafana's own types (@grafana/schema): the v0 dashboard types for the dashboard,
rows and panels, each panel plugin's types (panelcfg Options, FieldConfig) for its options and custom field
config. The JSON schemas are generated from the TypeScript declarations (devstack.grafana)."""

from __future__ import annotations

from typing import Any

import pytest

from devstack.grafana import schema_errors
from tests.unit.dashboards import NAMES, dashboard, panel


@pytest.mark.parametrize("name", NAMES)
def test_dashboard_matches_grafana_types(name: str) -> None:
    assert schema_errors(dashboard(name)) == []


def set_field(target: Any, path: str, value: Any) -> None:
    """Sets the dotted `path` of `target` (numbers index lists) to `value`."""
    *parents, last = path.split(".")
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    target[last] = value


@pytest.mark.parametrize(
    ("title", "path", "value", "expected"),
    [
        # An unknown panel option, in the plugin's closed types.
        ("Succès", "options.reduceOptions.calcz", ["last"], "options.reduceOptions: Additional properties"),
        ("Succès", "options.graphMode", "bars", "options.graphMode: 'bars' is not one of"),
        ("Top sources par durée (p95)", "options.displayMode", 3, "options.displayMode: 3 is not one of"),
        ("Les 5 derniers échecs", "options.showHeader", "yes", "options.showHeader: 'yes' is not of type"),
        # A custom field config key the panel type does not know, or of the wrong type.
        ("Timeline des runs", "fieldConfig.defaults.custom.fillOpacityy", 80, "('fillOpacityy' was"),
        ("Timeline des runs", "fieldConfig.defaults.custom.drawStyle", "bar", "custom.drawStyle: 'bar'"),
        ("Succès", "fieldConfig.defaults.custom", {"align": "auto"}, "'align' was unexpected"),
        ("Exécutions par connecteur", "fieldConfig.defaults.custom.filterable", 1, "custom.filterable: 1"),
        # The dashboard types: panel fields, field config, thresholds.
        ("Échecs", "gridPos.w", "5", "gridPos.w: '5' is not of type 'number'"),
        ("Échecs", "titel", "Échecs", "'titel' was unexpected"),
        ("Échecs", "fieldConfig.defaults.unitt", "none", "fieldConfig.defaults: Additional properties"),
        ("Échecs", "fieldConfig.defaults.thresholds.mode", "absolut", "thresholds.mode: 'absolut' is not"),
        ("Échecs", "type", "gauge", "no panelcfg types for panel type 'gauge'"),
    ],
)
def test_a_wrong_panel_field_fails_naming_panel_and_field(
    title: str, path: str, value: Any, expected: str
) -> None:
    board = dashboard("overview")
    set_field(panel(board, title), path, value)
    errors = schema_errors(board)
    assert errors and all(error.startswith(f"panel {title!r} ") for error in errors), errors
    assert any(expected in error for error in errors), errors


ROW = 'row "Vue d\'ensemble — Ingestion: Health"'


@pytest.mark.parametrize(
    ("path", "value", "where", "expected"),
    [
        ("refreshh", "1m", "dashboard", "(top): Additional properties are not allowed ('refreshh'"),
        ("time.form", "now-1h", "dashboard", "time: Additional properties are not allowed ('form'"),
        ("schemaVersion", "41", "dashboard", "schemaVersion: '41' is not of type 'number'"),
        # Interval variables' settings (Grafana's IntervalVariableSpec): not fields of a query variable.
        ("templating.list.0.auto", False, "dashboard", "templating.list.0: Additional properties"),
        ("templating.list.1.refresh", 3, "dashboard", "templating.list.1.refresh: 3 is not one of [0, 1, 2]"),
        ("panels.0.collapsed", "no", ROW, "collapsed: 'no' is not of type 'boolean'"),
    ],
)
def test_a_wrong_dashboard_field_fails_naming_it(path: str, value: Any, where: str, expected: str) -> None:
    board = dashboard("overview")
    set_field(board, path, value)
    errors = schema_errors(board)
    assert errors and all(error.startswith(f"{where}: ") for error in errors), errors
    assert any(error.startswith(f"{where}: {expected}") for error in errors), errors


def test_a_per_objet_panel_is_checked_too() -> None:
    board = dashboard("efficy")
    row = next(p for p in board["panels"] if p["type"] == "row" and p["collapsed"])
    row["panels"][1]["options"]["legend"]["placemnt"] = "bottom"
    errors = schema_errors(board)
    assert len(errors) == 1 and errors[0].startswith(f"panel {row['panels'][1]['title']!r} (timeseries)")
    assert "options.legend: Additional properties are not allowed ('placemnt'" in errors[0]
