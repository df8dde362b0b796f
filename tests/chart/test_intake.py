"""The optional intake: off by default; on: tokens from a mounted Secret, its own scrape job, its flags."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest

from devstack import components
from ingestion_observability.intake.cli import build_parser

from .conftest import FULL_OVERRIDES, Render, RenderError
from .support import RELEASE, REPO, by_kind, containers, env_of, one

DOCKERFILE = components.DOCKERFILE

ON: dict[str, Any] = {"intake": FULL_OVERRIDES["intake"]}


def test_off_by_default(render: Render) -> None:
    names = {m["metadata"]["name"] for m in render()}
    assert not {name for name in names if name.endswith("-intake")}


def test_tokens_come_from_a_mounted_secret(render: Render) -> None:
    manifests = render((), (ON,))
    pod = one(manifests, "Deployment", "-intake")["spec"]["template"]["spec"]
    (container,) = containers(pod)
    env = env_of(container)
    assert env["INTAKE_TOKEN_FILE"] == "/var/run/secrets/ingestion-intake/tokens"
    assert "INTAKE_TOKEN" not in env  # a literal token never lands in the manifest
    volume = next(v for v in pod["volumes"] if v["name"] == "tokens")
    assert volume["secret"]["secretName"] == "intake-tokens"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "tokens")
    assert mount == {"name": "tokens", "mountPath": "/var/run/secrets/ingestion-intake", "readOnly": True}
    assert container["ports"] == [{"name": "http", "containerPort": 5000, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}


def test_every_env_var_is_one_the_intake_reads(render: Render) -> None:
    """The Deployment sets only variables `ingestion-intake` defaults its flags from."""
    (container,) = containers(one(render((), (ON,)), "Deployment", "-intake")["spec"]["template"]["spec"])
    helps = " ".join(action.help or "" for action in build_parser()._actions)
    for name in env_of(container):
        assert f"env {name}," in helps, name


def test_the_intake_parses_every_value_the_chart_gives(
    render: Render, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the Deployment sets is what the intake's flags accept: Helm prints a big number from values as a
    float (4.194304e+06), which `int` refuses and the pod would crash-loop on."""
    (container,) = containers(one(render((), (ON,)), "Deployment", "-intake")["spec"]["template"]["spec"])
    for name, value in env_of(container).items():
        monkeypatch.setenv(name, value)
    args = build_parser().parse_args([])
    assert args.max_body_bytes == 4 * 1024 * 1024 and args.port == 5000


def test_without_auth_no_secret_is_needed(render: Render) -> None:
    manifests = render((), ({"intake": {"enabled": True, "auth": {"enabled": False}}},))
    (container,) = containers(one(manifests, "Deployment", "-intake")["spec"]["template"]["spec"])
    assert "INTAKE_TOKEN_FILE" not in env_of(container)


def test_auth_without_a_secret_is_refused(render_error: RenderError) -> None:
    error = render_error((), ({"intake": {"enabled": True}},))
    assert "/intake/auth/tokenSecret/name" in error


def test_scraped_as_its_own_job_without_business_relabelings(render: Render) -> None:
    manifests = render((), (ON,))
    service = one(manifests, "Service", "-intake")
    assert service["metadata"]["labels"]["observability.ingestion.dev/job"] == "ingestion-intake"
    monitor = next(
        m for m in by_kind(manifests, "ServiceMonitor") if m["metadata"]["name"] == f"{RELEASE}-intake"
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "http" and "metricRelabelings" not in endpoint


def test_image_is_hadolint_clean_non_root_and_runs_the_console_script() -> None:
    hadolint = shutil.which("hadolint", path=str(REPO / ".venv" / "bin"))
    assert hadolint, "hadolint is a dev dependency: `make install`"
    proc = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "intake" in components.names()  # a target of images/Dockerfile: built, linted, deployed
    final = [f"{name} {args}" for name, args in components.image_instructions("intake")]
    assert components.global_args()["PYTHON_IMAGE"] == "python:3.11.15-slim-bookworm"  # the official base
    users = [line for line in final if line.startswith("USER ")]
    assert users[-1] == "USER 10001:10001" and "WORKDIR /tmp" in final  # read-only root: only /tmp is written
    assert final[-1] == 'ENTRYPOINT ["ingestion-intake"]' and "EXPOSE 5000" in final
    assert "ingestion-intake" in (REPO / "pyproject.toml").read_text()
