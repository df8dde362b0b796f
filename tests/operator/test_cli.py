"""`ingestion-operator render` (and the checked-in examples it generated), and the operator's flags."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml

from ingestion_operator.cli import build_parser, main
from ingestion_operator.settings import OperatorConfig, operator_config
from tests.operator.support import EXAMPLES, source

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))


def render(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["render", *args]) == 0
    return capsys.readouterr().out


def test_the_five_sample_sources_have_examples() -> None:
    sources = {yaml.safe_load(path.read_text(encoding="utf-8"))["spec"]["source"] for path in EXAMPLE_FILES}
    assert sources == {"PowerBI", "Efficy", "sharepoint_graph", "EasyProjects", "zohobooks"}


@pytest.mark.parametrize("example", EXAMPLE_FILES, ids=lambda p: p.name)
def test_generated_examples_are_up_to_date(capsys: pytest.CaptureFixture[str], example: Path) -> None:
    generated = EXAMPLES / "generated" / example.name
    assert render(capsys, "-f", str(example)) == generated.read_text(encoding="utf-8"), (
        f"{generated} is stale: ingestion-operator render -f {example} > {generated}"
    )


def test_render_several_documents_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = [source("a", {"source": "A"}, "ns"), source("b", {"source": "B", "dashboard": {"enabled": False}})]
    monkeypatch.setattr("sys.stdin", io.StringIO(yaml.safe_dump_all(docs)))
    out = render(capsys, "-f", "-", "--release", "monitoring", "--dashboard-label", "dash=yes")
    objects = list(yaml.safe_load_all(out))
    assert [(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")) for o in objects] == [
        ("PrometheusRule", "ingestion-a", "ns"),
        ("ConfigMap", "ingestion-dashboard-a", "ns"),
        ("PrometheusRule", "ingestion-b", None),
    ]
    assert objects[0]["metadata"]["labels"]["release"] == "monitoring"
    assert objects[1]["metadata"]["labels"]["dash"] == "yes"
    assert all("ownerReferences" not in o["metadata"] for o in objects)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}},
            "expected IngestionSource objects",
        ),
        (source("", {"source": "A"}), "IngestionSource without metadata.name"),
        (
            source("x", {"source": "A", "alerts": {"failureRateWindow": "0m"}}),
            "IngestionSource x: spec.alerts.failureRateWindow",
        ),
    ],
)
def test_render_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], doc: dict[str, object], message: str
) -> None:
    path = tmp_path / "source.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        main(["render", "-f", str(path)])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_run_flags_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = tmp_path / "defaults.yaml"
    defaults.write_text(
        "thresholds:\n  min_runs: 9\nrunbook_base_url: https://wiki.example.org/rb\n", encoding="utf-8"
    )
    monkeypatch.setenv("INGESTION_OPERATOR_NAMESPACES", "a, b")
    monkeypatch.setenv("INGESTION_OPERATOR_RELEASE", "prom")
    monkeypatch.setenv("INGESTION_OPERATOR_DEFAULTS", str(defaults))
    monkeypatch.setenv("INGESTION_OPERATOR_STANDALONE", "true")
    args = build_parser().parse_args(["run", "--resync-seconds", "5"])
    config = operator_config(args)
    assert args.standalone is True
    assert config.namespaces == ("a", "b") and config.resync_seconds == 5
    assert config.children.release == "prom" and config.children.defaults.thresholds.min_runs == 9
    flags = build_parser().parse_args(
        ["run", "--namespace", "c", "--namespace", "d,e", "--dashboard-label", "x=y"]
    )
    config = operator_config(flags)
    assert config.namespaces == ("c", "d", "e")
    assert (config.children.dashboard_label, config.children.dashboard_label_value) == ("x", "y")


def test_run_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NAMESPACES", "RELEASE", "DEFAULTS", "STANDALONE", "RESYNC_SECONDS", "WORKERS"):
        monkeypatch.delenv(f"INGESTION_OPERATOR_{name}", raising=False)
    args = build_parser().parse_args(["run"])
    assert operator_config(args) == OperatorConfig()
    assert args.standalone is False and args.liveness is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--dashboard-label", "novalue"], "--dashboard-label: expected NAME=VALUE"),
        (["run", "--resync-seconds", "-1"], "--resync-seconds: must not be negative"),
        (["run", "--defaults", "/nonexistent/defaults.yaml"], "/nonexistent/defaults.yaml"),
    ],
)
def test_run_rejects_bad_settings(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


NOTIFIED = {
    "source": "A",
    "notifications": {"email": {"to": ["a@example.org"]}},
}


def test_render_prints_the_alertmanager_config_in_the_namespace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sources.yaml"
    docs = [source("a", NOTIFIED), source("b", {"source": "B"}, "elsewhere")]
    path.write_text(yaml.safe_dump_all(docs), encoding="utf-8")
    assert main(["render", "-f", str(path), "--namespace", "team-a"]) == 0
    captured = capsys.readouterr()
    objects = list(yaml.safe_load_all(captured.out))
    assert [(o["kind"], o["metadata"]["name"], o["metadata"]["namespace"]) for o in objects] == [
        ("PrometheusRule", "ingestion-a", "team-a"),
        ("ConfigMap", "ingestion-dashboard-a", "team-a"),
        ("AlertmanagerConfig", "ingestion-a", "team-a"),
        ("PrometheusRule", "ingestion-b", "elsewhere"),  # its own namespace wins, as with kubectl
        ("ConfigMap", "ingestion-dashboard-b", "elsewhere"),
    ]
    namespaces = [
        {r["labels"]["namespace"] for g in o["spec"]["groups"] for r in g["rules"] if "alert" in r}
        for o in objects
        if o["kind"] == "PrometheusRule"
    ]
    assert namespaces == [{"team-a"}, {"elsewhere"}]
    assert objects[2]["spec"]["receivers"][0]["emailConfigs"][0]["to"] == "a@example.org"
    assert captured.err == ""


def test_render_without_a_namespace_warns_about_notifications(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(
        yaml.safe_dump_all([source("a", NOTIFIED), source("b", {"source": "B"})]), encoding="utf-8"
    )
    assert main(["render", "-f", str(path)]) == 0
    captured = capsys.readouterr()
    objects = list(yaml.safe_load_all(captured.out))
    assert [o["kind"] for o in objects][:3] == ["PrometheusRule", "ConfigMap", "AlertmanagerConfig"]
    assert "namespace:" not in captured.out
    assert captured.err == (
        "ingestion-operator: warning: IngestionSource a has no namespace (metadata.namespace or "
        "--namespace): its alerts lack the `namespace` label its AlertmanagerConfig's route matches, "
        "no notification would be sent\n"
    )
