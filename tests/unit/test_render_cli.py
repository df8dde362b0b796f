from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ingestion_observability import catalog
from ingestion_observability.render import (
    Datasources,
    RenderConfig,
    notifications,
    render_dashboard,
    render_rules,
)
from ingestion_observability.render.cli import (
    DASHBOARD_FILE,
    RELABELINGS_FILE,
    ROUTE_FILE,
    RULES_FILE,
    TEMPLATES_FILE,
    main,
)

CHART_FILES = Path(__file__).parents[2] / "charts" / "ingestion-observability" / "files"


def test_rules_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == render_rules(RenderConfig())


def test_source_option_and_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "render.yaml"
    config.write_text("datasources: {prometheus: prom-a}\n", encoding="utf-8")
    assert main(["dashboard", "--source", 'a"b', "--config", str(config)]) == 0
    dashboard = json.loads(capsys.readouterr().out)
    assert dashboard == render_dashboard(
        RenderConfig(source='a"b', datasources=Datasources(prometheus="prom-a"))
    )


def test_bad_config_exits_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "render.yaml"
    config.write_text("thresholds: {failure_ratio: 5}\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        main(["rules", "--config", str(config)])
    assert exit_info.value.code == 2
    assert "thresholds.failure_ratio: must be in ]0, 1[" in capsys.readouterr().err


def test_generate_writes_the_chart_files(tmp_path: Path) -> None:
    assert main(["generate", "--out", str(tmp_path)]) == 0
    assert yaml.safe_load((tmp_path / RULES_FILE).read_text(encoding="utf-8")) == render_rules(RenderConfig())
    assert json.loads((tmp_path / DASHBOARD_FILE).read_text(encoding="utf-8")) == render_dashboard(
        RenderConfig()
    )
    relabelings = yaml.safe_load((tmp_path / RELABELINGS_FILE).read_text(encoding="utf-8"))
    assert relabelings == list(catalog.BUSINESS_RELABELINGS)
    assert (tmp_path / TEMPLATES_FILE).read_text(encoding="utf-8") == notifications.templates()
    route = yaml.safe_load((tmp_path / ROUTE_FILE).read_text(encoding="utf-8"))
    assert route == notifications.global_config_spec(RenderConfig())


def test_committed_chart_files_are_up_to_date(tmp_path: Path) -> None:
    main(["generate", "--out", str(tmp_path)])
    for path in (RULES_FILE, DASHBOARD_FILE, RELABELINGS_FILE, TEMPLATES_FILE, ROUTE_FILE):
        fresh = (tmp_path / path).read_text(encoding="utf-8")
        assert (CHART_FILES / path).read_text(encoding="utf-8") == fresh, f"run `make generate` ({path})"
