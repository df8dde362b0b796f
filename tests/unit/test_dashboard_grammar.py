"""Every LogQL query of every dashboard parses with Grafana's own LogQL grammar (@grafana/lezer-logql, what
Grafana's Loki query editor uses): the check of what no local Loki can run any more."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from devstack.grafana import logql_syntax_errors
from devstack.queries import dashboard_queries, substitute
from tests.unit.dashboards import NAMES, dashboard, panel


def logql_failures(board: dict[str, Any]) -> list[str]:
    """One message per syntax error, naming the panel; all the dashboard's queries in one parser run."""
    queries = [query for query in dashboard_queries(board) if query.datasource == "loki"]
    assert queries, "no LogQL query found: the check would prove nothing"
    exprs = [substitute(query.expr) for query in queries]  # offsets are into the substituted query
    return [
        f"panel {query.panel!r}: {error} in {expr}"
        for query, expr, found in zip(queries, exprs, logql_syntax_errors(exprs), strict=True)
        for error in found
    ]


@pytest.mark.parametrize("name", NAMES)
def test_logql_queries_parse(name: str) -> None:
    assert logql_failures(dashboard(name)) == []


@pytest.mark.parametrize(
    ("title", "break_query"),
    [
        ("Exécutions par connecteur", lambda expr: expr.replace("}", "", 1)),  # unclosed stream selector
        ("Les 5 derniers échecs", lambda expr: expr.replace("| json", "| jsn")),  # no such stage
        ("Max mémoire (MB)", lambda expr: expr.replace(" [$__range]", "")),  # unwrap without a range
    ],
)
def test_a_broken_query_fails_naming_its_panel(title: str, break_query: Callable[[str], str]) -> None:
    board = dashboard("overview")
    target = panel(board, title)["targets"][0]
    target["expr"] = break_query(target["expr"])
    failures = logql_failures(board)
    assert failures and all(failure.startswith(f"panel {title!r}: syntax error at") for failure in failures)
