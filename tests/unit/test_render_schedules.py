"""IngestionObjetMuet: the per-objet silence alert of the objets a CronJob runs (a source's own rules)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from ingestion_observability.render import (
    ConfigError,
    Latency,
    ObjetSchedule,
    RenderConfig,
    config_from_mapping,
    render_rules,
    rules,
)
from ingestion_observability.render.notifications import inhibit_rules

SCHEDULE = ObjetSchedule(
    "datasets", 3600, cronjob="powerbi-datasets", schedule="0 * * * *", time_zone="Europe/Paris"
)
P95 = "source_objet:ingestion_duration_seconds:p95_1h"


def silences(config: RenderConfig) -> list[dict[str, Any]]:
    return [
        rule
        for group in render_rules(config)["groups"]
        for rule in group["rules"]
        if rule.get("alert") == "IngestionObjetMuet"
    ]


def test_expression() -> None:
    """The time since the objet's last run against periods x period + its usual p95, else the fixed
    reference; an objet that never ran has no last run: no series, no alert."""
    (alert,) = silences(RenderConfig(source="PowerBI", schedules=(SCHEDULE,)))
    matchers = '{source="PowerBI", objet="datasets"}'
    last = f"max by (source, objet) (max_over_time(ingestion_last_run_timestamp{matchers}[1d]))"
    usual = (
        f"last_over_time({P95}_median_7d{matchers}[10m])"
        f" and on (source, objet) last_over_time({P95}_age_7d{matchers}[10m]) >= 86400"
    )
    assert (
        alert["expr"]
        == f"time() - {last} > on (source, objet) 7200 + (({usual}) or on (source, objet) 0 * {last} + 30)"
    )
    assert "for" not in alert
    # the objet as a static label too: a source's objets make distinct rules
    assert alert["labels"] == {"severity": "warning", "objet": "datasets"}


def test_lookback_is_at_least_twice_the_threshold() -> None:
    """The silence lookback (1 d), or twice periods x period plus a period (or the fixed reference, when
    longer) for the usual duration."""

    def lookback(schedule: ObjetSchedule, latency: Latency | None = None) -> str:
        config = RenderConfig(source="s", latency=latency or Latency(), schedules=(schedule,))
        (alert,) = silences(config)
        (window,) = set(re.findall(r"\[(\w+)\]\)\)", alert["expr"]))
        return str(window)

    assert lookback(ObjetSchedule("o", 60)) == "1d"
    assert lookback(ObjetSchedule("o", 25 * 3600)) == "150h"  # 2 x (2 x 25 h + 25 h)
    assert lookback(ObjetSchedule("o", 72 * 3600, periods=3)) == "24d"  # 2 x 4 x 72 h
    # 2 x (2 x 10 h + the fixed reference of 1 d)
    assert lookback(ObjetSchedule("o", 10 * 3600), Latency(baseline_seconds=86400)) == "88h"


def test_hostile_names_are_escaped() -> None:
    source, objet = 'a"b\\c', "{{ $labels.objet }}\n$x[y]"
    (alert,) = silences(RenderConfig(source=source, schedules=(ObjetSchedule(objet, 60),)))
    quoted = r'{source="a\"b\\c", objet="{{ \x24labels.objet }}\n\x24x\x5by]"}'
    assert alert["expr"].count(quoted) == 4
    assert "$x" not in alert["annotations"]["description"]  # the objet reaches the texts through $labels
    # Prometheus expands label values: the static label renders the objet back (promtool proves it)
    assert alert["labels"]["objet"] == '{{ "{{" }} $labels.objet }}\n$x[y]'


def test_annotations() -> None:
    config = RenderConfig(source="PowerBI", schedules=(SCHEDULE,), routing_labels={"team": "data"})
    (alert,) = silences(config)
    notes = alert["annotations"]
    assert alert["labels"] == {"severity": "warning", "team": "data", "objet": "datasets"}
    assert notes["summary"] == "Objet muet (planification) : {{ $labels.source }} / {{ $labels.objet }}"
    assert (notes["titre"], notes["sujet"]) == ("Objet muet (planification)", rules.OBJET_SUBJECT)
    assert notes["runbook_url"] == "https://runbooks.example.com/ingestion/ingestionobjetmuet"
    assert set(notes) == {
        "summary",
        "titre",
        "sujet",
        "description",
        "runbook_url",
        "tableau_de_bord",
        "journaux",
    }
    assert "&var-objet={{ $labels.objet | urlquery }}" in notes["tableau_de_bord"]
    description = notes["description"]
    assert description.startswith(
        "Aucune exécution de l'objet {{ $labels.objet }} (source {{ $labels.source }}) terminée depuis "
        "{{ $value | humanizeDuration }} : au-delà de 2 périodes de 1 h (CronJob powerbi-datasets, "
        "planification « 0 * * * * », fuseau Europe/Paris) plus la durée habituelle de l'objet "
        "({{ with printf "
    )
    assert description.endswith(
        "durée p95 habituelle de {{ . | first | value | humanizeDuration }}, médiane sur 7 j{{ else }}"
        "référence de 30 s, moins de 1 j d'historique{{ end }})."
    )
    assert "suspendu" not in description


def test_suspended_utc_and_one_period() -> None:
    schedule = ObjetSchedule("o", 90, periods=1, cronjob="nightly", schedule="@every 90s", suspended=True)
    (alert,) = silences(RenderConfig(source="s", schedules=(schedule,)))
    description = alert["annotations"]["description"]
    assert (
        "au-delà de 1 période de 90 s (CronJob nightly, planification « @every 90s », fuseau UTC)"
        in description
    )
    assert description.endswith(
        " Le CronJob nightly est suspendu (spec.suspend) : aucune exécution n'est planifiée tant qu'il l'est."
    )
    assert alert["expr"].startswith("time() - ") and " > on (source, objet) 90 + (" in alert["expr"]


def test_one_alert_per_schedule_in_the_source_alerts_group() -> None:
    config = RenderConfig(source="PowerBI", schedules=(SCHEDULE, ObjetSchedule("workspaces", 86400)))
    group = next(g for g in render_rules(config)["groups"] if g["name"].startswith("ingestion-alerts-"))
    assert [r["alert"] for r in group["rules"]][-2:] == ["IngestionObjetMuet", "IngestionObjetMuet"]
    assert [len(silences(c)) for c in (RenderConfig(source="PowerBI"), config)] == [0, 2]


def test_alert_lists() -> None:
    """Listed among the product's alerts (only a source's own rules have it) and held back while the
    consumer is down, like the source silence."""
    assert rules.alert_names()[-1] == "IngestionObjetMuet"
    assert "IngestionObjetMuet" in rules.CAUSED_BY_CONSUMER_OUTAGE
    assert "IngestionObjetMuet" in inhibit_rules()[0].target.value.split("|")
    assert not silences(RenderConfig())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"objet": ""}, "objet: must not be empty"),
        ({"period_seconds": 0}, "period_seconds: must be > 0, got 0"),
        ({"periods": 0}, "periods: must be >= 1, got 0"),
        ({"cronjob": " "}, "cronjob: must not be empty"),
        ({"cronjob": "{{ $value }}"}, "cronjob: must not contain '{{'"),
        ({"schedule": "{{ . }} * * * *"}, "schedule: must not contain '{{'"),
        ({"time_zone": "{{x}}"}, "time_zone: must not contain '{{'"),
    ],
)
def test_invalid_schedule(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        ObjetSchedule(**{"objet": "o", "period_seconds": 60, **kwargs})


def test_schedules_need_a_source_and_distinct_objets() -> None:
    with pytest.raises(ConfigError, match="schedules: only with a source"):
        RenderConfig(schedules=(SCHEDULE,))
    with pytest.raises(ConfigError, match="schedules: duplicate objets"):
        RenderConfig(source="s", schedules=(SCHEDULE, ObjetSchedule("datasets", 60)))


def test_from_mapping() -> None:
    config = config_from_mapping(
        {
            "source": "PowerBI",
            "schedules": [
                {
                    "objet": "datasets",
                    "period_seconds": 3600,
                    "cronjob": "powerbi-datasets",
                    "schedule": "0 * * * *",
                    "time_zone": "Europe/Paris",
                },
                {"objet": "workspaces", "period_seconds": 60, "periods": 3, "suspended": True},
            ],
        }
    )
    assert config.schedules == (SCHEDULE, ObjetSchedule("workspaces", 60, periods=3, suspended=True))
