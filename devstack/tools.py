"""Where `make tools` put the service binaries and jars."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


class ToolMissingError(RuntimeError):
    """A service binary is not installed; the message says how to get it."""


def tools_dir() -> Path:
    default = Path.home() / ".cache" / "ingestion-observability"
    return Path(os.environ.get("INGESTION_TOOLS_DIR", default))


def binary(name: str) -> Path:
    """Path of a tool: the tools cache first, then PATH (Debian's prometheus/promtool live in /usr/bin)."""
    cached = tools_dir() / "bin" / name
    if cached.is_file() and os.access(cached, os.X_OK):
        return cached
    found = shutil.which(name)
    if found:
        return Path(found)
    raise ToolMissingError(f"{name} not found in {cached.parent} nor on PATH: run `make tools`")
