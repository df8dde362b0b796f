"""The sample run records shipped with the package (72 runs, 5 sources, 1 FAILED)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def sample_logs_path() -> Path:
    return Path(str(resources.files("ingestion_observability") / "data" / "logs.json"))
