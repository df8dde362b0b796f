"""`ingestion-render`: print rules or a dashboard, or write the chart's static files (rules, dashboard, the
ServiceMonitor's metricRelabelings from `catalog.BUSINESS_RELABELINGS`, the notification templates and
Alertmanager's default route and inhibitions)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ingestion_observability import catalog
from ingestion_observability.render import notifications
from ingestion_observability.render.config import ConfigError, RenderConfig, load_config
from ingestion_observability.render.dashboard import render_dashboard
from ingestion_observability.render.rules import render_rules

RULES_FILE = Path("rules/ingestion-rules.yaml")
DASHBOARD_FILE = Path("dashboards/ingestion-overview.json")
RELABELINGS_FILE = Path("relabelings/business.yaml")
TEMPLATES_FILE = Path("notifications") / notifications.TEMPLATE_FILE
ROUTE_FILE = Path("notifications/global-route.yaml")


def rules_yaml(rules: dict[str, Any]) -> str:
    return yaml.safe_dump(rules, allow_unicode=True, sort_keys=False, width=1000)


def dashboard_json(dashboard: dict[str, Any]) -> str:
    return json.dumps(dashboard, ensure_ascii=False, indent=2) + "\n"


def relabelings_yaml() -> str:
    return yaml.safe_dump(list(catalog.BUSINESS_RELABELINGS), sort_keys=False, width=1000)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ingestion-render", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("rules", "print the rule groups (YAML)"),
        ("dashboard", "print the dashboard (JSON)"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("--source", help="render for this source only (exact name)")
        command.add_argument("--config", type=Path, help="YAML or JSON render configuration")
    generate = commands.add_parser("generate", help="write the chart's static rules, dashboard, relabelings")
    generate.add_argument("--out", type=Path, required=True, help="e.g. charts/ingestion-observability/files")
    generate.add_argument("--config", type=Path, help="YAML or JSON render configuration")
    args = parser.parse_args(argv)

    try:
        config = load_config(args.config) if args.config else RenderConfig()
        if getattr(args, "source", None) is not None:
            config = dataclasses.replace(config, source=args.source)
    except ConfigError as exc:
        parser.exit(2, f"ingestion-render: {exc}\n")

    if args.command == "rules":
        sys.stdout.write(rules_yaml(render_rules(config)))
    elif args.command == "dashboard":
        sys.stdout.write(dashboard_json(render_dashboard(config)))
    else:
        for path, text in (
            (RULES_FILE, rules_yaml(render_rules(config))),
            (DASHBOARD_FILE, dashboard_json(render_dashboard(config))),
            (RELABELINGS_FILE, relabelings_yaml()),
            (TEMPLATES_FILE, notifications.templates()),
            (ROUTE_FILE, rules_yaml(notifications.global_config_spec(config))),
        ):
            target = args.out / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
