"""Operator configuration: command-line flags that default to environment variables (the chart sets those).

Thresholds and the other render defaults (datasource uids, runbook URL, consumer and Loki jobs) come from
one render config file, `--defaults` (the `ingestion-render --config` format); a spec field overrides them.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

from ingestion_observability.render import ConfigError, RenderConfig, load_config
from ingestion_observability.settings import add_flag, env_flag

NAMESPACES_ENV = "INGESTION_OPERATOR_NAMESPACES"


@dataclass(frozen=True)
class ChildSettings:
    """What the generated objects carry for kube-prometheus-stack and the Grafana sidecar to load them."""

    release: str = "kube-prometheus-stack"  # its Prometheus selects PrometheusRules by `release: <release>`
    dashboard_label: str = "grafana_dashboard"  # the sidecar's `label`
    dashboard_label_value: str = "1"  # the sidecar's `labelValue`
    folder_annotation: str = "grafana_folder"  # the sidecar's `folderAnnotation`
    default_folder: str = "Ingestion"
    defaults: RenderConfig = field(default_factory=RenderConfig)


@dataclass(frozen=True)
class OperatorConfig:
    children: ChildSettings = field(default_factory=ChildSettings)
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    resync_seconds: float = 60.0  # drift repair period, besides watching the children; 0: none
    workers: int = 16  # threads for the (blocking) handlers
    intake_url: str | None = None  # where Jobs' runs are published; None: Jobs are not recorded
    intake_token_file: Path | None = None
    publish_timeout: float = 10.0


def add_child_flags(parser: argparse.ArgumentParser) -> None:
    """Flags shared by `run` and `render`: the generated objects must be the same either way."""
    defaults = ChildSettings()
    add_flag(
        parser,
        "--release",
        "INGESTION_OPERATOR_RELEASE",
        defaults.release,
        "`release` label of the PrometheusRules",
    )
    add_flag(
        parser,
        "--dashboard-label",
        "INGESTION_OPERATOR_DASHBOARD_LABEL",
        f"{defaults.dashboard_label}={defaults.dashboard_label_value}",
        "NAME=VALUE label of the dashboard ConfigMaps (Grafana sidecar's label/labelValue)",
    )
    add_flag(
        parser,
        "--folder-annotation",
        "INGESTION_OPERATOR_FOLDER_ANNOTATION",
        defaults.folder_annotation,
        "annotation holding the Grafana folder (sidecar's folderAnnotation)",
    )
    add_flag(
        parser,
        "--default-folder",
        "INGESTION_OPERATOR_DEFAULT_FOLDER",
        defaults.default_folder,
        "Grafana folder when spec.dashboard.folder is unset",
    )
    add_flag(
        parser,
        "--defaults",
        "INGESTION_OPERATOR_DEFAULTS",
        None,
        "render config file (YAML) with the default thresholds, datasources, runbook URL, jobs",
        type=Path,
    )


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    add_child_flags(parser)
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        help=f"namespace to watch, repeatable or comma-separated (env {NAMESPACES_ENV}); none: all",
    )
    add_flag(
        parser,
        "--resync-seconds",
        "INGESTION_OPERATOR_RESYNC_SECONDS",
        "60",
        "period of the drift-repair timer; 0: no timer (and no finalizer on the sources)",
        type=float,
    )
    add_flag(parser, "--workers", "INGESTION_OPERATOR_WORKERS", "16", "handler threads", type=int)
    add_flag(
        parser,
        "--intake-url",
        "INGESTION_OPERATOR_INTAKE_URL",
        None,
        "the intake's base URL, where the runs of the Jobs sources select are published; none: not recorded",
    )
    add_flag(
        parser,
        "--intake-token-file",
        "INGESTION_OPERATOR_INTAKE_TOKEN_FILE",
        None,
        "file whose first line is the intake's bearer token (re-read at each request)",
        type=Path,
    )
    add_flag(
        parser,
        "--publish-timeout",
        "INGESTION_OPERATOR_PUBLISH_TIMEOUT",
        "10",
        "seconds the intake has to answer (it answers once Kafka acknowledged)",
        type=float,
    )
    add_flag(
        parser,
        "--liveness",
        "INGESTION_OPERATOR_LIVENESS",
        None,
        "liveness endpoint served by kopf, e.g. http://0.0.0.0:8080/healthz",
    )
    parser.add_argument(
        "--standalone",
        action="store_true",
        default=env_flag("INGESTION_OPERATOR_STANDALONE"),
        help="no peering with other instances (env INGESTION_OPERATOR_STANDALONE); without it, kopf "
        "peering pauses the instances of lower priority, given kopf's peering CRDs",
    )
    add_flag(parser, "--peering", "INGESTION_OPERATOR_PEERING", None, "kopf peering object name")
    add_flag(parser, "--priority", "INGESTION_OPERATOR_PRIORITY", "0", "kopf peering priority", type=int)


def child_settings(args: argparse.Namespace) -> ChildSettings:
    """Raises ConfigError for a bad label flag or defaults file."""
    name, sep, value = args.dashboard_label.partition("=")
    if not sep or not name:
        raise ConfigError(f"--dashboard-label: expected NAME=VALUE, got {args.dashboard_label!r}")
    return ChildSettings(
        release=args.release,
        dashboard_label=name,
        dashboard_label_value=value,
        folder_annotation=args.folder_annotation,
        default_folder=args.default_folder,
        defaults=load_config(args.defaults) if args.defaults else RenderConfig(),
    )


def operator_config(args: argparse.Namespace) -> OperatorConfig:
    items = args.namespace or [os.environ.get(NAMESPACES_ENV, "")]
    namespaces = tuple(ns.strip() for item in items for ns in item.split(",") if ns.strip())
    if args.resync_seconds < 0:
        raise ConfigError("--resync-seconds: must not be negative (0 disables the timer)")
    if args.workers < 1:
        raise ConfigError("--workers: must be >= 1")
    if args.publish_timeout <= 0:
        raise ConfigError("--publish-timeout: must be positive")
    if args.intake_url and not args.intake_url.startswith(("http://", "https://")):
        raise ConfigError(f"--intake-url: expected an http(s) URL, got {args.intake_url!r}")
    return OperatorConfig(
        children=child_settings(args),
        namespaces=namespaces,
        resync_seconds=args.resync_seconds,
        workers=args.workers,
        intake_url=args.intake_url or None,
        intake_token_file=args.intake_token_file,
        publish_timeout=args.publish_timeout,
    )
