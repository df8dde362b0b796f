"""Dashboard lint rules over every dashboard (grafana/dashboard-linter is out: AGPL dependencies), each with
a test proving it catches what it is for.

- every panel has a datasource by uid (its targets too), a title and a unit. A table of Loki lines takes
  `none` as its default unit (its columns are text) and a unit override on every column it converts to a
  number; a `logs` panel shows lines only and needs no unit.
- counters (`_total`, `_count`, `_sum`, `_bucket`) are read through rate(), irate(), increase() or resets(),
  except in a panel whose description says it shows totals since the consumer started (SINCE_START).
  `promql.window_increase` counts as the increase() it extends.
- the windows of those functions are at least 4 scrape intervals of the consumer's ServiceMonitor;
  `$__rate_interval` always is, `$__interval` is when the panel's min interval is, `$__range` (a total over
  the displayed period) is taken as the reader's choice.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from ingestion_observability.render.config import duration_seconds
from ingestion_observability.render.dashboard import SINCE_START
from ingestion_observability.render.promql import window_increase
from tests.unit.dashboards import NAMES, dashboard, panel, panels

VALUES = Path(__file__).parents[2] / "charts/ingestion-observability/values.yaml"
SCRAPE_INTERVAL = duration_seconds(
    yaml.safe_load(VALUES.read_text(encoding="utf-8"))["consumer"]["serviceMonitor"]["interval"]
)
MIN_WINDOW = 4 * SCRAPE_INTERVAL  # rate() needs two samples in the window, with room for a missed scrape
COUNTER = re.compile(r"_(total|count|sum|bucket)$")
COUNTER_FUNCTIONS = frozenset({"rate", "irate", "increase", "resets"})
UNITLESS = frozenset({"logs"})

# Enough of PromQL's lexer to find selectors: strings and ranges are single tokens (a `{` or `[` inside
# a label value is no bracket), `$name` and numbers are never metric names.
_TOKEN = re.compile(
    r"""(?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)"""
    r"|(?P<range>\[[^\]]*\])|(?P<variable>\$\w+)|(?P<number>\d[\w.]*)|(?P<name>[a-zA-Z_:][\w:]*)|(?P<punct>\S)"
)
_LABEL_LISTS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_AGGREGATIONS = frozenset(
    {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk"}
    | {"quantile", "limitk", "limit_ratio"}
)
_NOT_METRICS = _LABEL_LISTS | _AGGREGATIONS | {"offset", "bool", "and", "or", "unless"}


@dataclass(frozen=True)
class Selector:
    metric: str
    text: str  # the metric and its matchers, as written
    window: str | None  # what is inside the following [...], None for an instant vector
    function: str | None  # the function it is an argument of (None: an operator's or aggregation's operand)


def selectors(expr: str) -> list[Selector]:
    tokens = list(_TOKEN.finditer(expr))
    # Per open bracket: the function before a `(` (None if none), `{` for matchers.
    stack: list[str | None] = []
    found = []
    for index, token in enumerate(tokens):
        kind, text = token.lastgroup, token.group()
        after = tokens[index + 1 :]
        if text in "({" and kind == "punct":
            before = tokens[index - 1] if index else None
            name = before.group() if before is not None and before.lastgroup == "name" else None
            stack.append("{" if text == "{" else name)
        elif text in ")}" and kind == "punct":
            stack.pop()
        elif (
            kind == "name"
            and text not in _NOT_METRICS
            and not (after and after[0].group() == "(")
            and not (stack and (stack[-1] == "{" or stack[-1] in _LABEL_LISTS))
        ):
            end = token.end()
            if after and after[0].group() == "{":
                end = next(t.end() for t in after if t.group() == "}" and t.lastgroup == "punct")
            following = next((t for t in after if t.start() >= end), None)
            ranged = following is not None and following.lastgroup == "range"
            found.append(
                Selector(
                    metric=text,
                    text=expr[token.start() : end],
                    window=following.group()[1:-1] if following is not None and ranged else None,
                    function=stack[-1] if stack else None,
                )
            )
    return found


def windowed(expr: str) -> str:
    """`expr` with each `window_increase(X, W)` written as the `increase(X[W])` it extends."""
    for found in selectors(expr):
        if found.function == "increase" and found.window is not None:
            plain = f"increase({found.text}[{found.window}])"
            expr = expr.replace(window_increase(found.text, found.window), f"({plain})")
    return expr


def prometheus_targets(board: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str]]:
    for shown in panels(board):
        for target in shown.get("targets", []):
            if target["datasource"]["type"] == "prometheus":
                yield shown, windowed(target["expr"])


def missing_basics(board: dict[str, Any]) -> list[str]:
    problems = []
    for shown in panels(board):
        name = f"panel {shown.get('title') or shown.get('id')!r}"
        if not shown.get("title"):
            problems.append(f"{name}: no title")
        if not (shown.get("datasource") or {}).get("uid"):
            problems.append(f"{name}: no datasource uid")
        problems += [
            f"{name}: target {target.get('refId')} has no datasource uid"
            for target in shown.get("targets", [])
            if not (target.get("datasource") or {}).get("uid")
        ]
        if shown["type"] in UNITLESS:
            continue
        if not shown.get("fieldConfig", {}).get("defaults", {}).get("unit"):
            problems.append(f"{name}: no unit (fieldConfig.defaults.unit)")
        with_unit = {
            override["matcher"].get("options")
            for override in shown.get("fieldConfig", {}).get("overrides", [])
            if override["matcher"]["id"] == "byName"
            and any(p["id"] == "unit" for p in override["properties"])
        }
        problems += [
            f"{name}: numeric column {column!r} has no unit override"
            for column in numeric_columns(shown)
            if column not in with_unit
        ]
    return problems


def numeric_columns(table: dict[str, Any]) -> list[str]:
    """The fields a panel's convertFieldType transformations make numbers."""
    return [
        conversion["targetField"]
        for transformation in table.get("transformations", [])
        if transformation["id"] == "convertFieldType"
        for conversion in transformation["options"]["conversions"]
        if conversion["destinationType"] == "number"
    ]


def raw_counters(board: dict[str, Any]) -> list[str]:
    return [
        f"panel {shown['title']!r}: counter {found.metric} read raw, not through "
        f"{'/'.join(sorted(COUNTER_FUNCTIONS))} (a total since start says {SINCE_START!r} in its description)"
        for shown, expr in prometheus_targets(board)
        if SINCE_START not in shown.get("description", "")
        for found in selectors(expr)
        if COUNTER.search(found.metric) and not (found.window and found.function in COUNTER_FUNCTIONS)
    ]


def short_windows(board: dict[str, Any]) -> list[str]:
    problems = []
    for shown, expr in prometheus_targets(board):
        for found in selectors(expr):
            if found.window is None or found.function not in COUNTER_FUNCTIONS:
                continue
            window = found.window.split(":")[0]  # a subquery's range, not its step
            # $__rate_interval is at least 4 scrape intervals by Grafana's definition; $__range is the range
            # the reader chose for a total over the period (the shortest quick range is 5 min).
            if window in ("$__rate_interval", "$__range"):
                continue
            # Grafana's $__interval is never below the panel's min interval.
            length = shown.get("interval") if window == "$__interval" else window
            if length is None or duration_seconds(length) < MIN_WINDOW:
                problems.append(
                    f"panel {shown['title']!r}: {found.function}(…[{found.window}]) is shorter than "
                    f"4 × the {SCRAPE_INTERVAL}s scrape interval"
                    + (" (no panel min interval)" if length is None else "")
                )
    return problems


RULES: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "basics": missing_basics,
    "raw counters": raw_counters,
    "short windows": short_windows,
}


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("name", NAMES)
def test_dashboard_passes_lint_rule(name: str, rule: str) -> None:
    assert RULES[rule](dashboard(name)) == []


def test_the_rules_see_every_query() -> None:
    board = dashboard("overview")
    found = {shown["title"]: selectors(expr) for shown, expr in prometheus_targets(board)}
    assert [title for title, seen in found.items() if not seen] == []
    assert {selector.metric for seen in found.values() for selector in seen} >= {
        "ingestion_runs_total",
        "ingestion_duration_seconds_bucket",
        "ingestion_last_run_timestamp",
    }


def test_selectors_know_functions_windows_and_labels() -> None:
    expr = (
        'histogram_quantile(0.9, sum by (le) (rate(a_bucket{x="}[1m]"}[5m]))) / ignoring (le) '
        "b_total offset 1h + max_over_time(c[$__range]) - resets(d_count[$__rate_interval:1m])"
    )
    assert selectors(expr) == [
        Selector("a_bucket", 'a_bucket{x="}[1m]"}', "5m", "rate"),
        Selector("b_total", "b_total", None, None),
        Selector("c", "c", "$__range", "max_over_time"),
        Selector("d_count", "d_count", "$__rate_interval:1m", "resets"),
    ]


def test_window_increase_reads_as_increase() -> None:
    series = 'ingestion_runs_total{source="a"}'
    assert windowed(f"sum({window_increase(series, '5m')})") == f"sum((increase({series}[5m])))"
    # Another window on one side is not the idiom: the raw counter stays visible.
    odd = f"(({series} unless {series} offset 1m) or increase({series}[5m]))"
    assert windowed(odd) == odd


def set_expr(board: dict[str, Any], title: str, expr: str) -> dict[str, Any]:
    shown = panel(board, title)
    shown["targets"][0]["expr"] = expr
    return shown


@pytest.mark.parametrize(
    ("title", "mutate", "expected"),
    [
        ("Échecs", lambda p: p.update(title=""), "panel {id}: no title"),  # named by its id
        ("Échecs", lambda p: p["datasource"].pop("uid"), "panel 'Échecs': no datasource uid"),
        ("Échecs", lambda p: p["targets"][0]["datasource"].pop("uid"), "target A has no datasource uid"),
        ("Timeline des runs", lambda p: p["fieldConfig"]["defaults"].pop("unit"), "no unit"),
        ("Exécutions par connecteur", lambda p: p["fieldConfig"]["defaults"].pop("unit"), "no unit"),
        (
            "Exécutions par connecteur",
            lambda p: p["fieldConfig"]["overrides"].pop(0),
            "numeric column 'Duree secondes' has no unit override",
        ),
    ],
)
def test_basics_rule_catches(title: str, mutate: Callable[[dict[str, Any]], object], expected: str) -> None:
    board = dashboard("overview")
    shown = panel(board, title)
    mutate(shown)
    problems = missing_basics(board)
    assert len(problems) == 1 and expected.format(id=shown["id"]) in problems[0], problems


def test_a_logs_panel_needs_no_unit() -> None:
    board = dashboard("overview")
    shown = panel(board, "Les 5 derniers échecs")
    shown["type"] = "logs"
    shown["fieldConfig"]["defaults"].pop("unit")
    assert missing_basics(board) == []


@pytest.mark.parametrize(
    ("expr", "raw"),
    [
        ("sum(ingestion_runs_total)", "ingestion_runs_total"),
        (
            "histogram_quantile(0.95, sum by (le) (ingestion_duration_seconds_bucket))",
            "ingestion_duration_seconds_bucket",
        ),
        # A range function, but not one for counters.
        ("max_over_time(ingestion_recovery_seconds_sum[5m])", "ingestion_recovery_seconds_sum"),
        ("ingestion_runs_total offset 5m", "ingestion_runs_total"),
        ("sum(increase(ingestion_runs_total[5m]))", None),
        ("histogram_quantile(0.95, sum by (le) (rate(ingestion_duration_seconds_bucket[5m])))", None),
        ("resets(ingestion_recovery_seconds_count[1h])", None),
        (f"sum({window_increase('ingestion_runs_total', '5m')})", None),
        ("max(ingestion_last_run_timestamp)", None),  # a gauge
    ],
)
def test_raw_counter_rule_catches(expr: str, raw: str | None) -> None:
    board = dashboard("overview")
    set_expr(board, "Exécutions / 5 min par source", expr)
    start = f"panel 'Exécutions / 5 min par source': counter {raw} read raw"
    assert [problem.startswith(start) for problem in raw_counters(board)] == ([] if raw is None else [True])


def test_a_total_since_start_must_say_so() -> None:
    board = dashboard("overview")
    shown = panel(board, "Succès")
    shown["description"] = shown["description"].replace(SINCE_START, "sur la période")
    problems = raw_counters(board)
    assert problems and all(problem.startswith("panel 'Succès': counter ") for problem in problems)
    assert problems[0].endswith(
        f"read raw, not through increase/irate/rate/resets (a total since start says {SINCE_START!r} in "
        "its description)"
    )


@pytest.mark.parametrize(
    ("expr", "interval", "problem"),
    [
        ("rate(ingestion_runs_total[30s])", None, "rate(…[30s]) is shorter than 4 × the 15s scrape interval"),
        ("increase(ingestion_runs_total[59s])", None, "increase(…[59s]) is shorter"),
        ("rate(ingestion_runs_total[$__interval])", None, "(no panel min interval)"),
        ("rate(ingestion_runs_total[$__interval])", "30s", "rate(…[$__interval]) is shorter"),
        ("rate(ingestion_runs_total[$__interval])", "1m", None),
        ("rate(ingestion_runs_total[1m])", None, None),
        ("rate(ingestion_runs_total[$__rate_interval])", None, None),
        ("increase(ingestion_runs_total[$__range])", None, None),
        ("max_over_time(ingestion_last_run_timestamp[10s])", None, None),  # a gauge's window: no rate
    ],
)
def test_short_window_rule_catches(expr: str, interval: str | None, problem: str | None) -> None:
    board = dashboard("overview")
    shown = set_expr(board, "Exécutions / 5 min par source", expr)
    if interval is not None:
        shown["interval"] = interval
    problems = short_windows(board)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problems[0].startswith("panel 'Exécutions / 5 min par source': ")
        assert problem in problems[0]


def test_the_timeline_needs_its_min_interval() -> None:
    board = dashboard("overview")
    panel(board, "Timeline des runs").pop("interval")
    assert short_windows(board) == [
        "panel 'Timeline des runs': increase(…[$__interval]) is shorter than 4 × the 15s scrape interval"
        " (no panel min interval)"
    ]
