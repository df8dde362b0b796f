"""The chart as devstack and the tests install it: a copy whose dependencies are local stand-ins.

No chart repository is reachable here, so the chart is copied to a directory where each dependency is a
minimal local stand-in chart (name and version of Chart.lock, nothing else): our own templates are rendered
for real, the subcharts render nothing. Two stand-ins render one ConfigMap each, labelled
`standin: "true"`, with the values we hand to the real chart passed through `tpl` as the real chart does:
kube-prometheus-stack (Grafana's additionalDataSources and admin.existingSecret) and kafka-ui
(yamlApplicationConfig). The chart tests read those to check the names our tpl strings produce.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "ingestion-observability"

_KPS_STANDIN = """\
{{- /* Test stand-in: the values kube-prometheus-stack passes through tpl (datasources, admin secret). */ -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: standin-kube-prometheus-stack
  labels:
    standin: "true"
data:
  additionalDataSources: |
    {{- tpl (toYaml .Values.grafana.additionalDataSources) . | nindent 4 }}
  adminExistingSecret: {{ tpl .Values.grafana.admin.existingSecret . | quote }}
  defaultDatasourceUid: {{ .Values.grafana.sidecar.datasources.uid | quote }}
"""

_KAFKA_UI_STANDIN = """\
{{- /* Test stand-in: kafka-ui's configmap_fromValues.yaml passes yamlApplicationConfig through tpl. */ -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: standin-kafka-ui
  labels:
    standin: "true"
data:
  config.yml: |
    {{- tpl (toYaml .Values.yamlApplicationConfig) . | nindent 4 }}
"""

_STANDIN_TEMPLATES = {"kube-prometheus-stack": _KPS_STANDIN, "kafka-ui": _KAFKA_UI_STANDIN}


def _yaml(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CHART / name).read_text())
    return data


def chart_yaml() -> dict[str, Any]:
    return _yaml("Chart.yaml")


def chart_lock() -> dict[str, Any]:
    return _yaml("Chart.lock")


def default_values() -> dict[str, Any]:
    return _yaml("values.yaml")


def make_chart_copy(dest: Path, *, standins: bool = True) -> Path:
    """Copy the chart to `dest` (which must not exist) with stand-in dependency charts in charts/."""
    shutil.copytree(CHART, dest, ignore=shutil.ignore_patterns("charts", "*.tgz"))
    if standins:
        for dep in chart_lock()["dependencies"]:
            sub = dest / "charts" / dep["name"]
            sub.mkdir(parents=True)
            metadata = {"apiVersion": "v2", "name": dep["name"], "version": dep["version"]}
            (sub / "Chart.yaml").write_text(yaml.safe_dump(metadata, sort_keys=False))
            template = _STANDIN_TEMPLATES.get(dep["name"])
            if template:
                (sub / "templates").mkdir()
                (sub / "templates" / "standin.yaml").write_text(template)
    return dest
