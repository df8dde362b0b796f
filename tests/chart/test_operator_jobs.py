"""The operator's side of spec.jobs: where it publishes the Jobs' runs (the intake's URL), with which token (a
Secret key mounted as a file, never a value), how long it waits, and the values the chart refuses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from ingestion_operator.cli import subcommand

from .conftest import FULL_OVERRIDES, Render, RenderError
from .support import NAMESPACE, RELEASE, Manifest, containers, env_of, one

URL = "INGESTION_OPERATOR_INTAKE_URL"
TOKEN_FILE = "INGESTION_OPERATOR_INTAKE_TOKEN_FILE"
TIMEOUT = "INGESTION_OPERATOR_PUBLISH_TIMEOUT"
TOKEN_DIR = "/var/run/secrets/ingestion-operator/intake"

INTAKE: dict[str, Any] = {"intake": FULL_OVERRIDES["intake"]}  # on, auth with the Secret "intake-tokens"
INTAKE_NO_AUTH: dict[str, Any] = {"intake": {"enabled": True, "auth": {"enabled": False}}}
EXTERNAL: dict[str, Any] = {
    "operator": {
        "jobs": {
            "intakeUrl": "https://intake.example.com/",
            "tokenSecret": {"name": "operator-intake", "key": "token"},
        }
    }
}


def _operator(manifests: list[Manifest]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod spec, container) of the operator's Deployment."""
    pod = one(manifests, "Deployment", "-operator")["spec"]["template"]["spec"]
    (container,) = containers(pod)
    return pod, container


def _token_volume(pod: Mapping[str, Any]) -> dict[str, Any] | None:
    return next((v for v in pod.get("volumes", []) if v["name"] == "intake-token"), None)


def test_without_an_intake_the_operator_has_no_url_nor_token(render: Render) -> None:
    """values.yaml: the intake is off and no URL is given; the operator reports the Jobs as not observed."""
    pod, container = _operator(render())
    env = env_of(container)
    assert URL not in env and TOKEN_FILE not in env
    assert env[TIMEOUT] == "10"
    assert _token_volume(pod) is None
    assert all(m["name"] != "intake-token" for m in container["volumeMounts"])


def test_the_releases_intake_and_its_tokens_by_default(render: Render) -> None:
    manifests = render((), (INTAKE,))
    pod, container = _operator(manifests)
    env = env_of(container)
    service = one(manifests, "Service", "-intake")
    (port,) = service["spec"]["ports"]
    assert env[URL] == f"http://{service['metadata']['name']}.{NAMESPACE}.svc:{port['port']}"
    assert env[URL] == f"http://{RELEASE}-intake.{NAMESPACE}.svc:5000"
    assert env[TOKEN_FILE] == f"{TOKEN_DIR}/token"
    assert _token_volume(pod) == {
        "name": "intake-token",
        "secret": {
            "secretName": "intake-tokens",  # the intake's own intake.auth.tokenSecret
            "optional": True,  # a missing Secret: JobsObserved False (NoToken), the sources still reconciled
            "defaultMode": 0o440,
            "items": [{"key": "tokens", "path": "token"}],
        },
    }
    mount = next(m for m in container["volumeMounts"] if m["name"] == "intake-token")
    assert mount == {"name": "intake-token", "mountPath": TOKEN_DIR, "readOnly": True}
    # Not nested in another volume (the defaults ConfigMap is mounted read-only at /etc/ingestion-operator).
    others = [m["mountPath"] for m in container["volumeMounts"] if m["name"] != "intake-token"]
    assert not any(TOKEN_DIR.startswith(f"{path}/") for path in others)
    assert "INGESTION_OPERATOR_INTAKE_TOKEN" not in env  # a literal token never lands in the manifest


def test_url_follows_the_intake_service(render: Render) -> None:
    overrides = {"fullnameOverride": "obs", "intake": {**FULL_OVERRIDES["intake"], "port": 8080}}
    manifests = render((), (overrides,), namespace="data")
    service = one(manifests, "Service", "-intake")
    assert service["metadata"]["name"] == "obs-intake"
    assert env_of(_operator(manifests)[1])[URL] == "http://obs-intake.data.svc:8080"


def test_an_intake_without_auth_gets_no_token(render: Render) -> None:
    pod, container = _operator(render((), (INTAKE_NO_AUTH,)))
    env = env_of(container)
    assert env[URL] == f"http://{RELEASE}-intake.{NAMESPACE}.svc:5000"
    assert TOKEN_FILE not in env and _token_volume(pod) is None


@pytest.mark.parametrize("intake", [{}, INTAKE], ids=["intake-off", "intake-on"])
def test_an_explicit_url_and_token_secret_win(intake: dict[str, Any], render: Render) -> None:
    pod, container = _operator(render((), (intake, EXTERNAL)))
    env = env_of(container)
    assert env[URL] == "https://intake.example.com"  # no trailing slash: the operator appends its path
    assert env[TOKEN_FILE] == f"{TOKEN_DIR}/token"
    volume = _token_volume(pod)
    assert volume is not None
    assert volume["secret"]["secretName"] == "operator-intake"
    assert volume["secret"]["items"] == [{"key": "token", "path": "token"}]


def test_an_explicit_url_keeps_the_intakes_tokens(render: Render) -> None:
    """Only the URL given (e.g. the intake's Ingress): the token is still the release's intake's."""
    overrides = {"operator": {"jobs": {"intakeUrl": "http://intake.ingestion:5000"}}}
    pod, container = _operator(render((), (INTAKE, overrides)))
    assert env_of(container)[URL] == "http://intake.ingestion:5000"
    volume = _token_volume(pod)
    assert volume is not None and volume["secret"]["secretName"] == "intake-tokens"


def test_every_env_var_is_one_the_operator_reads(render: Render) -> None:
    """The Deployment (everything on) sets only variables `ingestion-operator run` defaults its flags from."""
    _, container = _operator(render((), (FULL_OVERRIDES,)))
    helps = " ".join(action.help or "" for action in subcommand("run")._actions)
    env = env_of(container)
    assert {URL, TOKEN_FILE, TIMEOUT} <= set(env)
    for name in env:
        assert f"env {name}" in helps, name


def test_publish_timeout_comes_from_the_values(render: Render) -> None:
    overrides = {"operator": {"jobs": {"publishTimeoutSeconds": 7.5}}}
    assert env_of(_operator(render((), (INTAKE, overrides)))[1])[TIMEOUT] == "7.5"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param(
            ({"operator": {"jobs": {"intakeUrl": "http://i:5000", "tokenSecret": {"name": "t"}}}},),
            "operator.jobs.tokenSecret.name is set without operator.jobs.tokenSecret.key",
            id="name-without-key",
        ),
        pytest.param(
            (INTAKE, {"operator": {"jobs": {"tokenSecret": {"key": "token"}}}}),
            "operator.jobs.tokenSecret.key is set without operator.jobs.tokenSecret.name",
            id="key-without-name",
        ),
        pytest.param(
            ({"operator": {"jobs": {"tokenSecret": {"name": "t", "key": "token"}}}},),
            "the operator has no intake to send the token to: set operator.jobs.intakeUrl, or intake.enabled",
            id="token-without-url",
        ),
        pytest.param(
            (INTAKE, {"operator": {"jobs": {"publishTimeoutSeconds": 4}}}),
            "operator.jobs.publishTimeoutSeconds (4) must exceed intake.deliveryTimeoutSeconds (4)",
            id="timeout-within-the-intakes",
        ),
    ],
)
def test_refused_values_say_why(
    overrides: tuple[dict[str, Any], ...], message: str, render_error: RenderError
) -> None:
    assert message in render_error((), overrides)


def test_the_operator_disabled_needs_no_consistent_jobs_values(render: Render) -> None:
    overrides = {"operator": {"enabled": False, "jobs": {"tokenSecret": {"name": "t"}}}}
    deployments = [m for m in render((), (overrides,)) if m["kind"] == "Deployment"]
    assert f"{RELEASE}-operator" not in {d["metadata"]["name"] for d in deployments}
