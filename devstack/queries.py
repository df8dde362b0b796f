"""Every query of a rendered rule file or dashboard, for tests that run them against real services.

Dashboard queries hold Grafana variables; `substitute` replaces them, by default with values that
select everything (`$source` -> `.*`) and short fixed windows (`$__interval` -> `1m`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

DEFAULT_VARIABLES = {
    "source": ".*",
    "objet": ".*",
    "entreprise": ".*",
    "__interval": "1m",
    "__rate_interval": "1m",
    "__range": "1h",
}
# A literal `$` in a label value is escaped as \x24 (see promql.quote), so every `$name` is a variable.
_VARIABLE = re.compile(r"\$(\w+)")


@dataclass(frozen=True)
class Query:
    panel: str
    datasource: Literal["prometheus", "loki"]
    expr: str
    instant: bool  # an instant query (stats, bar gauges) rather than a range query


def rule_queries(rules: Mapping[str, Any]) -> list[str]:
    """Every PromQL expression of a rendered rule file, in order."""
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def dashboard_queries(dashboard: Mapping[str, Any]) -> list[Query]:
    """Every PromQL and LogQL target of a rendered dashboard (rows included), in panel order."""
    return [
        Query(
            panel=panel["title"],
            datasource=target["datasource"]["type"],
            expr=target["expr"],
            instant=bool(target.get("instant")) or target.get("queryType") == "instant",
        )
        for panel in _panels(dashboard["panels"])
        for target in panel.get("targets", [])
    ]


def substitute(expr: str, values: Mapping[str, str] | None = None) -> str:
    """`expr` with its Grafana variables replaced; an unknown variable is an error, not a silent no-op."""
    known = {**DEFAULT_VARIABLES, **(values or {})}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in known:
            raise KeyError(f"no value for ${name} in {expr!r}")
        return known[name]

    return _VARIABLE.sub(replace, expr)


def _panels(panels: list[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))
