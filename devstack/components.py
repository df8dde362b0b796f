"""The components, one image each: the stages of images/Dockerfile that no other stage builds on, in the
file's order. This is the one list: the Makefile (`python -m devstack.components`), skaffold.yaml (generated
by devstack/skaffold.py), devstack/images.py, devstack/cluster.py and the tests read it from here.

Also what each image is made of, for skaffold's watcher: the modules its entry point imports (read with
`ast`, nothing imported), a subpackage as a whole. Standard library only: the Makefile runs this module with
any Python 3.11, before the virtualenv exists.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "images" / "Dockerfile"
# The projects whose console scripts the images run, and where their import packages live.
PROJECTS = (REPO, REPO / "k8s-operator")
PACKAGE_DIRS = {"ingestion_observability": REPO / "src", "ingestion_operator": REPO / "k8s-operator" / "src"}
# Package data shipped in the wheel (pyproject's package-data), part of every image of that package.
PACKAGE_DATA = {"ingestion_observability": ("src/ingestion_observability/data/**",)}
# What every image is built from besides its modules.
BUILD_FILES = ("images/Dockerfile", ".dockerignore", "pyproject.toml")


@dataclass(frozen=True)
class Stage:
    """One FROM ... AS name section: its base (an image or an earlier stage) and its instructions."""

    name: str
    base: str
    instructions: tuple[tuple[str, str], ...]

    def uses(self) -> set[str]:
        """Names this stage builds on: its base, and the stages its RUN --mount / COPY --from read."""
        used = {self.base}
        for _, arguments in self.instructions:
            used.update(re.findall(r"(?:--from=|[\s,]from=)([\w.-]+)", f" {arguments}"))
        return used


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile's text, continuation lines joined, comments left out."""
    out: list[tuple[str, str]] = []
    for line in re.sub(r"\\\n", " ", text).splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, arguments = line.partition(" ")
            out.append((instruction.upper(), " ".join(arguments.split())))
    return out


def global_args(dockerfile: Path = DOCKERFILE) -> dict[str, str]:
    """The ARGs before the first FROM, with their defaults."""
    defaults: dict[str, str] = {}
    for name, arguments in instructions(dockerfile.read_text()):
        if name == "FROM":
            break
        if name == "ARG":
            key, _, value = arguments.partition("=")
            defaults[key] = value
    return defaults


def stages(dockerfile: Path = DOCKERFILE) -> list[Stage]:
    found: list[Stage] = []
    current: tuple[str, str, list[tuple[str, str]]] | None = None
    for name, arguments in instructions(dockerfile.read_text()):
        if name == "FROM":
            if current:
                found.append(Stage(current[0], current[1], tuple(current[2])))
            words = arguments.split()
            if len(words) != 3 or words[1].upper() != "AS":
                raise ValueError(f"{dockerfile}: every stage is named (FROM image AS name): {arguments}")
            current = (words[2], words[0], [])
        elif current:
            current[2].append((name, arguments))
    if current:
        found.append(Stage(current[0], current[1], tuple(current[2])))
    return found


def names(dockerfile: Path = DOCKERFILE) -> tuple[str, ...]:
    """The components: the stages no other stage uses."""
    all_stages = stages(dockerfile)
    used = set().union(*(stage.uses() for stage in all_stages))
    return tuple(stage.name for stage in all_stages if stage.name not in used)


def chain(target: str, dockerfile: Path = DOCKERFILE) -> list[Stage]:
    """The stages an image is made of, from the one on an external base to `target`."""
    by_name = {stage.name: stage for stage in stages(dockerfile)}
    out = [by_name[target]]
    while out[0].base in by_name:
        out.insert(0, by_name[out[0].base])
    return out


def image_instructions(target: str, dockerfile: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """The instructions that make the image `target`: those of its chain of stages, each after its FROM."""
    return [
        item
        for stage in chain(target, dockerfile)
        for item in (("FROM", f"{stage.base} AS {stage.name}"), *stage.instructions)
    ]


def entrypoint(target: str, dockerfile: Path = DOCKERFILE) -> list[str]:
    """The image's ENTRYPOINT (exec form), the last one of its chain."""
    (*_, last) = [a for name, a in image_instructions(target, dockerfile) if name == "ENTRYPOINT"]
    command: list[str] = json.loads(last)
    return command


def console_script(script: str) -> tuple[Path, str]:
    """(project directory, "module:function") of a console script one of PROJECTS declares."""
    for project in PROJECTS:
        scripts = tomllib.loads((project / "pyproject.toml").read_text())["project"].get("scripts", {})
        if script in scripts:
            return project, scripts[script]
    raise KeyError(f"no project declares the console script {script}")


def _module_file(module: str) -> Path | None:
    top = module.partition(".")[0]
    if top not in PACKAGE_DIRS:
        return None
    base = PACKAGE_DIRS[top].joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported(path: Path, module: str) -> set[str]:
    """Modules of our packages `path` (the module `module`) imports, anywhere in the file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                origin = f"{base}.{node.module}" if node.module else base
            else:
                origin = node.module or ""
            found.add(origin)
            found.update(f"{origin}.{alias.name}" for alias in node.names)
    # a.b.c imports a and a.b too
    return {".".join(m.split(".")[:i]) for m in found for i in range(1, m.count(".") + 2)}


def entry_module(component: str) -> str:
    """The module of the console script the image's ENTRYPOINT runs."""
    (script, *_) = entrypoint(component)
    _, target = console_script(script)
    return target.partition(":")[0]


def modules(component: str) -> set[Path]:
    """The source files of the modules the component's entry point imports, transitively."""
    pending = [entry_module(component)]
    seen: dict[str, Path] = {}
    while pending:
        module = pending.pop()
        path = _module_file(module)
        if module in seen or path is None:
            continue
        seen[module] = path
        pending.extend(_imported(path, module) - set(seen))
    return set(seen.values())


def _relative(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def dependencies(component: str) -> list[str]:
    """What the image of `component` is made of, as repository-relative paths and globs: the build files, its
    modules, its packages' data and projects. The entry point's package and any subpackage count as a whole
    (`dir/**`: a module added there is watched too); other modules one by one."""
    entry = _module_file(entry_module(component))
    assert entry is not None, component
    paths = set(BUILD_FILES)
    for path in modules(component):
        package = next(name for name, root in PACKAGE_DIRS.items() if path.is_relative_to(root / name))
        root = PACKAGE_DIRS[package] / package
        if path.is_relative_to(entry.parent):
            paths.add(f"{_relative(entry.parent)}/**")
        elif path.parent != root:  # in a subpackage
            paths.add(f"{_relative(root / path.relative_to(root).parts[0])}/**")
        else:
            paths.add(_relative(path))
        paths.update(PACKAGE_DATA.get(package, ()))
        paths.add(_relative(PACKAGE_DIRS[package].parent / "pyproject.toml"))
    return sorted(paths)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.components", description=__doc__)
    parser.add_argument("--dependencies", metavar="COMPONENT", help="print what COMPONENT's image is made of")
    args = parser.parse_args(argv)
    if args.dependencies:
        print("\n".join(dependencies(args.dependencies)))
    else:
        print(" ".join(names()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
