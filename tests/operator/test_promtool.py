"""Hostile source names through the operator path (spec → PrometheusRule): the rules pass
`promtool check rules`, and IngestionEchecDetecte fires for that source and none of its look-alikes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ingestion_observability.render import RenderConfig
from ingestion_operator.children import build
from ingestion_operator.settings import ChildSettings
from ingestion_operator.spec import parse
from tests.unit.test_render_promtool import (
    RUN_LABELS,
    echec_detecte,
    label,
    promtool,
    run_tests,
    series,
)

HOSTILE = ['a"b\\c', ".*", "{{ $labels.objet }}", "x\ny"]


def write_rules(path: Path, source: str) -> None:
    spec = {"source": source, "entreprise": source, "objets": [source], "slo": {"successRatio": 0.99},
            "routing": {"labels": {"team": "data"}}}  # fmt: skip
    rule = build("hostile", "ns", parse(spec, RenderConfig()), ChildSettings()).rule
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, allow_unicode=True), encoding="utf-8")


@pytest.mark.parametrize("source", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_source_rules_check(tmp_path: Path, source: str) -> None:
    write_rules(tmp_path / "rules.yaml", source)
    assert "SUCCESS" in promtool("check", "rules", "rules.yaml", cwd=tmp_path)


@pytest.mark.parametrize("source", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_source_selects_only_itself(tmp_path: Path, source: str) -> None:
    write_rules(tmp_path / "rules.yaml", source)
    others = {source + "_", source.upper(), "x", "."} - {source}
    run_labels = RUN_LABELS.replace('entreprise="akonovia"', label("entreprise", source))
    run_tests(
        tmp_path,
        "rules.yaml",
        {
            "input_series": [
                {
                    "series": series(
                        "ingestion_runs_total", f'{label("source", name)}, etat="FAILED", {run_labels}'
                    ),
                    "values": "_ 1x10",
                }
                for name in sorted(others | {source})
            ],
            "alert_rule_test": [
                {
                    "eval_time": "2m",
                    "alertname": "IngestionEchecDetecte",
                    "exp_alerts": [echec_detecte(source, "o", {"team": "data"})],
                }
            ],
        },
    )
