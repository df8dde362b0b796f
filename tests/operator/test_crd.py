"""The IngestionSource CRD against the operator: same defaults, same fields, the duration syntax."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from ingestion_observability.render import ConfigError, RenderConfig
from ingestion_observability.render.config import SEVERITIES, duration_seconds
from ingestion_operator import spec
from ingestion_operator.children import GROUP, KIND, PLURAL, VERSION
from tests.operator.support import crd, spec_schema, with_schema_defaults


def leaves(schema: dict[str, Any], prefix: str = "") -> Iterator[str]:
    """Dotted paths of the scalar, list and free-form map fields of an object schema."""
    for name, prop in schema["properties"].items():
        if prop.get("type") == "object" and "properties" in prop:
            yield from leaves(prop, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


DURATION_NAME = re.compile(r"(?i)(window|wait|interval)$")


def durations(schema: dict[str, Any]) -> Iterator[str]:
    """The patterns of the duration fields (other strings, e.g. Secret names, have theirs)."""
    for name, prop in schema.get("properties", {}).items():
        if DURATION_NAME.search(name):
            yield prop["pattern"]
        yield from durations(prop)


def node(schema: dict[str, Any], path: str) -> dict[str, Any]:
    for name in path.split("."):
        schema = schema["properties"][name]
    return schema


def test_names_and_columns() -> None:
    definition = crd()
    assert definition["metadata"]["name"] == f"{PLURAL}.{GROUP}"
    names = definition["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == (KIND, PLURAL, ["isrc"])
    assert definition["spec"]["scope"] == "Namespaced"
    (version,) = definition["spec"]["versions"]
    assert version["name"] == VERSION and version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Source", "Ready", "Alerts", "Jobs", "Age"]


def test_every_spec_field_is_mapped_and_every_mapping_exists() -> None:
    assert set(leaves(spec_schema())) == {f.spec for f in spec.FIELDS} | set(spec.OTHER_FIELDS)


@pytest.mark.parametrize(
    "bare",
    [
        {"source": "PowerBI"},
        {"source": "PowerBI", "notifications": {"team": "bi", "email": {"to": ["bi@example.org"]}}},
    ],
    ids=["bare", "notifications"],
)
def test_schema_defaults_are_the_operator_defaults(bare: dict[str, Any]) -> None:
    """An object the API server defaulted renders exactly like the bare spec rendered offline."""
    defaulted = with_schema_defaults(bare, spec_schema())
    assert defaulted != bare  # the schema does default something
    assert spec.parse(defaulted, RenderConfig(), "ns") == spec.parse(bare, RenderConfig(), "ns")


def test_required_fields_are_the_operators() -> None:
    """What the operator requires of a spec rendered offline is what the API server requires."""
    for path, names in spec.REQUIRED.items():
        assert node(spec_schema(), path)["required"] == list(names), path


def test_notifications_severity_is_the_librarys() -> None:
    assert node(spec_schema(), "notifications.minSeverity")["enum"] == list(SEVERITIES)


@pytest.mark.parametrize(
    "text",
    ["5m", "1h30m", "28d", "1w", "90s", "2w3d4h5m6s", "0m", "5", "m", "1.5h", "5M", "1y", "30ms", "1m1h", ""],
)
def test_duration_pattern_accepts_what_the_library_parses(text: str) -> None:
    (pattern,) = set(durations(spec_schema()))
    schema_ok = re.fullmatch(pattern.strip("^$"), text) is not None and len(text) >= 2
    try:
        duration_seconds(text)
        library_ok = True
    except ConfigError as exc:
        library_ok = "must be positive" in str(exc)  # zero: the schema lets it through, the library says why
    assert schema_ok == library_ok
