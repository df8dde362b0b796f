"""The project's images (the targets of images/Dockerfile) built with buildah, without Docker nor a registry:
on the local python base `make tools` made (scripts/tools/55-images.sh, ARG PYTHON_IMAGE), with runc, in
buildah's storage in the tools cache; exported as OCI archives for devstack/node.py to import into
containerd."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from . import components
from .tools import ToolMissingError, tools_dir

REPO = components.REPO
# One image per component: a target of images/Dockerfile (devstack/components.py).
COMPONENTS = components.names()
IMAGE_PREFIX = "localhost/ingestion-observability"
RUNC = "/usr/sbin/runc"
# buildah (containers/image) keeps a blob cache here whatever its configuration: not left behind.
BLOB_CACHE = Path("/var/lib/containers")


def buildah_env() -> dict[str, str]:
    """The environment of every buildah call: the storage and engine files of scripts/tools/55-images.sh."""
    images = tools_dir() / "images"
    storage, engine = images / "storage.conf", images / "containers.conf"
    if not storage.is_file() or not (images / "python-base.ref").is_file():
        raise ToolMissingError(f"no buildah storage or python base in {images}: run `make tools`")
    return {
        **os.environ,
        "CONTAINERS_STORAGE_CONF": str(storage),
        "CONTAINERS_CONF": str(engine),
        "BUILDAH_RUNTIME": RUNC,
        "BUILDAH_ISOLATION": "oci",
    }


def python_base() -> str:
    return (tools_dir() / "images" / "python-base.ref").read_text().strip()


def buildah(*args: str, timeout: float = 900.0, log: Path | None = None) -> str:
    """Run buildah; its output goes to `log` when given (a build's), else is returned."""
    had_blob_cache = BLOB_CACHE.exists()
    try:
        with open(log, "ab") if log else open(os.devnull, "wb") as sink:
            proc = subprocess.run(
                ["buildah", *args],
                stdout=subprocess.PIPE if log is None else sink,
                stderr=subprocess.PIPE if log is None else subprocess.STDOUT,
                env=buildah_env(),
                timeout=timeout,
                check=False,
            )
    finally:
        if not had_blob_cache:
            shutil.rmtree(BLOB_CACHE, ignore_errors=True)
    if proc.returncode != 0:
        detail = log.read_text()[-3000:] if log else proc.stderr.decode(errors="replace")
        raise RuntimeError(f"buildah {' '.join(args[:2])} failed ({proc.returncode}):\n{detail}")
    return proc.stdout.decode() if log is None else ""


def build(component: str, tag: str, log: Path, context: Path = REPO) -> str:
    """Build the target `component` of images/Dockerfile in `context` (the repository root, or a copy of it);
    returns the image's name.

    Without --layers: buildah 1.28 does not mount a stage it took from its cache, so the stages'
    `RUN --mount=type=bind,from=wheels` would find no /wheels."""
    ref = f"{IMAGE_PREFIX}/{component}:{tag}"
    buildah(
        "bud",
        "--pull=never",
        "--no-cache",
        "--force-rm",  # a failed build leaves no container holding its images
        "--network=host",  # pip in the wheels stage reaches the package index
        f"--build-arg=PYTHON_IMAGE={python_base()}",
        f"--file={context / components.DOCKERFILE.relative_to(REPO)}",
        f"--target={component}",
        f"--tag={ref}",
        str(context),
        log=log,
    )
    buildah("rmi", "--prune")  # the previous build of this tag, now untagged
    return ref


def export(ref: str, archive: Path, name: str | None = None) -> Path:
    """The image as an OCI archive named `name` (default: `ref`), what `ctr images import` reads."""
    archive.unlink(missing_ok=True)
    buildah("push", "--quiet", ref, f"oci-archive:{archive}:{name or ref}")
    return archive


def image_id(ref: str) -> str:
    """The image's ID (the digest of its config, without "sha256:"), as Docker's API shows it."""
    return buildah("inspect", "--type", "image", "--format", "{{.FromImageID}}", ref).strip()


def config(ref: str) -> dict[str, Any]:
    """The image's OCI config (User, Entrypoint, Cmd ...)."""
    data: dict[str, Any] = json.loads(buildah("inspect", "--type", "image", ref))
    result: dict[str, Any] = data["OCIv1"]["config"]
    return result


def build_archive(component: str, tag: str, work: Path) -> Path:
    """build() then export() into `work` (the build's log beside the archive)."""
    work.mkdir(parents=True, exist_ok=True)
    return export(build(component, tag, work / f"{component}.log"), work / f"{component}.tar")
