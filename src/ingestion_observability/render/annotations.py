"""Alert annotations that Prometheus fills in when an alert fires: links, the failure's time, run counts.

They are Go templates evaluated with the alert's labels, so a source or objet name only ever reaches a
query or a URL through `%q` (PromQL, LogQL and JSON read Go-quoted strings back) or `urlquery`, never
as template text. Configured values enter as Go string literals (`_go`), as `printf` arguments.
"""

from __future__ import annotations

import json

from ingestion_observability.render import records as rec
from ingestion_observability.render.config import RenderConfig
from ingestion_observability.render.dashboard import dashboard_uid
from ingestion_observability.render.promql import window_count
from ingestion_observability.render.text import duree

# Explore's URL state: one pane on the Loki datasource, the last hour.
_PANE = (
    '{"a":{"datasource":%q,"queries":[{"refId":"A","expr":%q,'
    '"datasource":{"type":"loki","uid":%q}}],"range":{"from":"now-1h","to":"now"}}}'
)


def _go(text: str) -> str:
    """A Go string literal: JSON's escapes are a subset of Go's."""
    return json.dumps(text)


def literal(text: str) -> str:
    """A Go template that renders `text` unchanged (Prometheus expands alert label values too)."""
    return text.replace("{{", '{{ "{{" }}')


def dashboard_link(config: RenderConfig, *, per_objet: bool) -> str:
    """The source's dashboard (the overview, or its own per-source one) with source and objet selected."""
    url = f"{config.grafana_url.rstrip('/')}/d/{dashboard_uid(config.source)}/?orgId=1"
    if config.source is None:
        url += "&var-source={{ $labels.source | urlquery }}"
    if per_objet:
        url += "&var-objet={{ $labels.objet | urlquery }}"
    return url


def logs_link(config: RenderConfig, *, per_objet: bool) -> str:
    """Grafana Explore on the Loki lines of the source (and objet)."""
    stream = "{job=%q, source=%q}"
    args = f"{_go(config.loki_job)} $labels.source"
    if per_objet:
        stream += " | objet=%q"
        args += " $labels.objet"
    uid = _go(config.datasources.loki)
    return (
        f"{{{{ $expr := printf {_go(stream)} {args} }}}}"
        f"{config.grafana_url.rstrip('/')}/explore?schemaVersion=1&orgId=1&panes="
        f"{{{{ printf {_go(_PANE)} {uid} $expr {uid} | urlquery }}}}"
    )


def failure_time() -> str:
    """When the objet's newest failure ended (event time), from `ingestion_last_failure_info`."""
    series = f"{rec.LAST_FAILURE}{{source=%q, objet=%q}}"
    return (
        f"{{{{ with printf {_go(f'max({series})')} $labels.source $labels.objet | query }}}}"
        "{{ . | first | value | humanizeTimestamp }}{{ end }}"
    )


def runs(window: str, failed: str) -> str:
    """The objet's runs in `window`, and the alert's count of failures among them (`failed`): e.g.
    "12 exécution(s), dont 3 en échec, sur 5 min"."""
    series = f"{rec.RUNS}{{source=%[1]q, objet=%[2]q}}"
    query = f"sum({window_count(series, window)})"
    return (
        f"{{{{ with printf {_go(query)} $labels.source $labels.objet | query }}}}"
        f"{{{{ . | first | value }}}} exécution(s), dont {failed} en échec, sur {duree(window)}{{{{ end }}}}"
    )


# The alert's objet in an annotation's query: printf's arguments are $labels.source, $labels.objet.
OBJET_MATCHERS = ("source=%[1]q", "objet=%[2]q")


def if_value(query: str, then: str, otherwise: str) -> str:
    """`then` when `query` (written with OBJET_MATCHERS) has a result, which `then` reads as
    `{{ . | first | value }}`; `otherwise` when it has none."""
    return (
        f"{{{{ with printf {_go(query)} $labels.source $labels.objet | query }}}}"
        f"{then}{{{{ else }}}}{otherwise}{{{{ end }}}}"
    )


def usual_value(record: str, config: RenderConfig) -> str:
    """The objet's usual value (`records.usual`) as a whole number."""
    return if_value(rec.usual(record, OBJET_MATCHERS, config), '{{ . | first | value | printf "%.0f" }}', "?")
