"""Every dashboard the product ships, for the checks that read them all: the overview and, as the operator
makes them, the per-source dashboards of the examples in k8s-operator/examples."""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from ingestion_observability.render import RenderConfig, render_dashboard
from ingestion_operator.children import build
from ingestion_operator.settings import ChildSettings
from ingestion_operator.spec import parse

EXAMPLES = sorted((Path(__file__).parents[2] / "k8s-operator/examples").glob("*.yaml"))
OVERVIEW = "overview"


@functools.cache
def _rendered() -> dict[str, dict[str, Any]]:
    boards = {OVERVIEW: render_dashboard(RenderConfig())}
    settings = ChildSettings()
    for path in EXAMPLES:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        name = doc["metadata"]["name"]
        config_map = build(name, None, parse(doc["spec"], settings.defaults), settings).dashboard
        assert config_map is not None, f"{path}: the example has no dashboard"
        boards[path.stem] = json.loads(config_map["data"][f"{name}.json"])
    return boards


NAMES = [OVERVIEW, *(path.stem for path in EXAMPLES)]


def dashboard(name: str) -> dict[str, Any]:
    """A copy of the dashboard `name` (`overview` or an example's file name), free to break."""
    return copy.deepcopy(_rendered()[name])


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that shows data: rows excluded, the panels of collapsed rows included."""
    for top in board["panels"]:
        if top["type"] == "row":
            yield from top["panels"]
        else:
            yield top


def panel(board: dict[str, Any], title: str) -> dict[str, Any]:
    """The panel titled `title`."""
    return next(p for p in panels(board) if p["title"] == title)
