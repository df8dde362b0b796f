"""Operator configuration: each setting a field with its flag and the environment variable the chart sets
(ingestion_observability.settings), read by `ingestion-operator run` and `render`.

Thresholds and the other render defaults (datasource uids, runbook URL, consumer and Loki jobs) come from
one render config file, `--defaults` (the `ingestion-render --config` format); a spec field overrides them.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, replace
from pathlib import Path

from ingestion_observability.render import ConfigError, RenderConfig, load_config
from ingestion_observability.settings import add_flag, add_settings, from_args, setting


@dataclass(frozen=True)
class ChildSettings:
    """What the generated objects carry for kube-prometheus-stack and the Grafana sidecar to load them."""

    # its Prometheus selects PrometheusRules by `release: <release>`
    release: str = setting(
        "--release",
        "INGESTION_OPERATOR_RELEASE",
        "kube-prometheus-stack",
        "`release` label of the PrometheusRules",
    )
    # the sidecar's `label` and `labelValue`: one flag, --dashboard-label NAME=VALUE (add_child_flags)
    dashboard_label: str = "grafana_dashboard"
    dashboard_label_value: str = "1"
    folder_annotation: str = setting(
        "--folder-annotation",
        "INGESTION_OPERATOR_FOLDER_ANNOTATION",
        "grafana_folder",
        "annotation holding the Grafana folder (sidecar's folderAnnotation)",
    )
    default_folder: str = setting(
        "--default-folder",
        "INGESTION_OPERATOR_DEFAULT_FOLDER",
        "Ingestion",
        "Grafana folder when spec.dashboard.folder is unset",
    )
    # read from the file of --defaults (add_child_flags)
    defaults: RenderConfig = field(default_factory=RenderConfig)


@dataclass(frozen=True)
class OperatorConfig:
    children: ChildSettings = field(default_factory=ChildSettings)
    namespaces: tuple[str, ...] = setting(  # empty: every namespace
        "--namespace",
        "INGESTION_OPERATOR_NAMESPACES",
        (),
        "namespace to watch, repeatable; none: every namespace",
        repeated=True,
        metavar="NAMESPACE",
    )
    resync_seconds: float = setting(
        "--resync-seconds",
        "INGESTION_OPERATOR_RESYNC_SECONDS",
        60.0,
        "period of the drift-repair timer; 0: no timer (and no finalizer on the sources)",
        type=float,
    )
    workers: int = setting("--workers", "INGESTION_OPERATOR_WORKERS", 16, "handler threads", type=int)
    intake_url: str | None = setting(
        "--intake-url",
        "INGESTION_OPERATOR_INTAKE_URL",
        None,
        "the intake's base URL, where the runs of the Jobs sources select are published; none: those Jobs "
        "are neither held nor recorded (JobsObserved False, NoIntake)",
    )
    intake_token_file: Path | None = setting(
        "--intake-token-file",
        "INGESTION_OPERATOR_INTAKE_TOKEN_FILE",
        None,
        "file whose first line is the intake's bearer token (re-read at each request)",
        type=Path,
    )
    publish_timeout: float = setting(
        "--publish-timeout",
        "INGESTION_OPERATOR_PUBLISH_TIMEOUT",
        10.0,
        "seconds the intake has to answer (it answers once Kafka acknowledged)",
        type=float,
    )
    liveness: str | None = setting(
        "--liveness",
        "INGESTION_OPERATOR_LIVENESS",
        None,
        "liveness endpoint served by kopf, e.g. http://0.0.0.0:8080/healthz",
    )
    standalone: bool = setting(
        "--standalone",
        "INGESTION_OPERATOR_STANDALONE",
        False,
        "one instance, no peering; without it, kopf peering (--peering, --priority; kopf's peering CRDs) "
        "pauses the instances of lower priority",
        boolean=True,
    )
    peering: str | None = setting(
        "--peering", "INGESTION_OPERATOR_PEERING", None, "kopf peering object name (without --standalone)"
    )
    priority: int = setting(
        "--priority", "INGESTION_OPERATOR_PRIORITY", 0, "this instance's kopf peering priority", type=int
    )
    log_level: str = setting("--log-level", "LOG_LEVEL", "INFO", "DEBUG, INFO or WARNING")


def add_child_flags(parser: argparse.ArgumentParser) -> None:
    """Flags shared by `run` and `render`: the generated objects must be the same either way."""
    add_settings(parser, ChildSettings)
    defaults = ChildSettings()
    add_flag(
        parser,
        "--dashboard-label",
        "INGESTION_OPERATOR_DASHBOARD_LABEL",
        f"{defaults.dashboard_label}={defaults.dashboard_label_value}",
        "NAME=VALUE label of the dashboard ConfigMaps (Grafana sidecar's label/labelValue)",
    )
    add_flag(
        parser,
        "--defaults",
        "INGESTION_OPERATOR_DEFAULTS",
        None,
        "an `ingestion-render --config` file (YAML): default thresholds, datasources, runbook URL, jobs",
        type=Path,
    )


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    add_child_flags(parser)
    add_settings(parser, OperatorConfig)


def child_settings(args: argparse.Namespace) -> ChildSettings:
    """Raises ConfigError for a bad label flag or defaults file."""
    name, sep, value = args.dashboard_label.partition("=")
    if not sep or not name:
        raise ConfigError(f"--dashboard-label: expected NAME=VALUE, got {args.dashboard_label!r}")
    return from_args(
        ChildSettings,
        args,
        dashboard_label=name,
        dashboard_label_value=value,
        defaults=load_config(args.defaults) if args.defaults else RenderConfig(),
    )


def operator_config(args: argparse.Namespace) -> OperatorConfig:
    config = from_args(OperatorConfig, args, children=child_settings(args))
    if config.intake_url == "":  # an empty variable: not recorded
        config = replace(config, intake_url=None)
    if config.resync_seconds < 0:
        raise ConfigError("--resync-seconds: must not be negative (0 disables the timer)")
    if config.workers < 1:
        raise ConfigError("--workers: must be >= 1")
    if config.publish_timeout <= 0:
        raise ConfigError("--publish-timeout: must be positive")
    if config.intake_url and not config.intake_url.startswith(("http://", "https://")):
        raise ConfigError(f"--intake-url: expected an http(s) URL, got {config.intake_url!r}")
    return config
