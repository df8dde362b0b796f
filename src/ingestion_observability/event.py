"""The run record: raw format written by connectors, the enriched event published to Kafka (schema v1),
and the compact `Run` the consumer works on.

Raw record (one per job run)::

    {"ID": 1224, "Entreprise": "akonovia", "Zone": "1-Raw", "Source": "PowerBI", "Objet": "workspaces",
     "Transformation": "PowerBI_API_get_data", "Etat": "SUCCESS", "Debut": "2025-09-15 10:30:00.000",
     "Fin": "2025-09-15 10:30:01.154", "Duree secondes": 1.154133, "cpu_time": 0.11,
     "memory_used": 5849088, "Description": "...", "Lignes": 3864}

The enriched event keeps the seed's layout and adds `debut`, `fin`, `description` and `performance.lignes`
(rows written; null when the run does not report them) so a consumer (and the Loki line) has everything;
`@version` is bumped on any incompatible change: an optional field is not one (an event without it reads as
unknown).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, NamedTuple, cast

from ingestion_observability.timeparse import TimestampError, format_timestamp, parse_timestamp

EVENT_VERSION = "1"
DATASET = "ingestion-logs"
ETATS = ("SUCCESS", "FAILED")
# Same thresholds as the default alerts: a run above them is flagged in the event itself.
HIGH_MEMORY_BYTES = 150 * 1024 * 1024
HIGH_CPU_SECONDS = 60.0
MAX_TEXT = 256  # source/objet/entreprise/zone become label values: keep them short
MAX_DESCRIPTION = 8192
# Rows of one run: an integer up to 2**53, exact in the float64 Prometheus keeps a counter in.
MAX_ROWS = 2**53
# The consumer's default limit on a message (larger ones are dead-lettered); the intake publishes within it.
MAX_MESSAGE_BYTES = 64 * 1024


class InvalidRecord(ValueError):
    """A record that cannot be turned into a run; the message says which field and why."""


def _text(record: dict[str, Any], key: str, *, required: bool = True, limit: int = MAX_TEXT) -> str:
    value = record.get(key)
    if value is None or value == "":
        if required:
            raise InvalidRecord(f"{key!r} is missing")
        return ""
    if not isinstance(value, str):
        raise InvalidRecord(f"{key!r} must be a string, got {type(value).__name__}")
    value = value.strip()
    if required and not value:
        raise InvalidRecord(f"{key!r} is blank")
    if len(value) > limit:
        raise InvalidRecord(f"{key!r} is longer than {limit} characters")
    return value


def _number(record: dict[str, Any], key: str, *, required: bool = True) -> float | None:
    value = record.get(key)
    if value is None or value == "":
        if required:
            raise InvalidRecord(f"{key!r} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRecord(f"{key!r} must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise InvalidRecord(f"{key!r} must be a finite number >= 0, got {value!r}")
    return number


def row_count(value: object, name: str) -> int | None:
    """Rows written, as a connector (`Lignes`) or OpenLineage (`rowCount`) reports them: an integer >= 0.

    None (absent) is unknown, never 0. A float is accepted when it is a whole number (JSON writers and
    dataframes turn 3864 into 3864.0); 1.5, a negative, a bool, a string or anything else is refused.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRecord(f"{name!r} must be an integer (rows written), got {type(value).__name__}")
    if isinstance(value, float) and not value.is_integer():
        raise InvalidRecord(f"{name!r} must be a whole number of rows, got {value!r}")
    if value < 0:
        raise InvalidRecord(f"{name!r} must be >= 0, got {value!r}")
    if value > MAX_ROWS:
        raise InvalidRecord(f"{name!r} must be at most 2**53, got {value!r}")
    return int(value)


def _time(record: dict[str, Any], key: str, naive_tz: tzinfo) -> datetime:
    if record.get(key) in (None, ""):
        raise InvalidRecord(f"{key!r} is missing")
    try:
        return parse_timestamp(record[key], naive_tz)
    except TimestampError as exc:
        raise InvalidRecord(f"{key!r}: {exc}") from None


def normalise(record: object, naive_tz: tzinfo = UTC, shift: timedelta = timedelta(0)) -> dict[str, Any]:
    """Validate a raw record and return the enriched event. `shift` moves every timestamp (replays)."""
    if not isinstance(record, dict):
        raise InvalidRecord(f"a record must be a JSON object, got {type(record).__name__}")
    source = _text(record, "Source")
    objet = _text(record, "Objet")
    etat = _text(record, "Etat").upper()
    if etat not in ETATS:
        raise InvalidRecord(f"'Etat' must be SUCCESS or FAILED, got {record['Etat']!r}")
    debut = _time(record, "Debut", naive_tz) + shift
    fin = _time(record, "Fin", naive_tz) + shift
    if fin < debut:
        raise InvalidRecord(f"'Fin' ({record['Fin']}) is before 'Debut' ({record['Debut']})")
    duree = _number(record, "Duree secondes", required=False)
    if duree is None:
        duree = (fin - debut).total_seconds()
    cpu = _number(record, "cpu_time") or 0.0
    memory = _number(record, "memory_used") or 0.0
    run_id = record.get("ID")
    if run_id is not None and (isinstance(run_id, bool) or not isinstance(run_id, int | str)):
        raise InvalidRecord(f"'ID' must be an integer or a string, got {type(run_id).__name__}")
    entreprise = _text(record, "Entreprise", required=False)
    zone = _text(record, "Zone", required=False)
    rows = row_count(record.get("Lignes"), "Lignes")
    failed = etat == "FAILED"
    return {
        "@timestamp": format_timestamp(fin),
        "@version": EVENT_VERSION,
        "event": {"dataset": DATASET, "kind": "event", "outcome": "failure" if failed else "success"},
        "source": {"name": source, "type": "api"},
        "objet": {
            "id": run_id,
            "name": objet,
            "transformation": _text(record, "Transformation", required=False),
        },
        "etat": etat,
        "debut": format_timestamp(debut),
        "fin": format_timestamp(fin),
        "performance": {
            "duree_secondes": duree,
            "cpu_time_sec": cpu,
            "memory_used_bytes": int(memory),
            "memory_used_mb": round(memory / (1024 * 1024), 2),
            "lignes": rows,  # None: not reported (unknown, not 0)
        },
        "labels": {"etat": etat, "source": source, "zone": zone, "entreprise": entreprise},
        "metrics": {
            "is_failed": int(failed),
            "is_success": int(not failed),
            "high_memory_usage": int(memory > HIGH_MEMORY_BYTES),
            "high_cpu_usage": int(cpu > HIGH_CPU_SECONDS),
        },
        "description": _text(record, "Description", required=False, limit=MAX_DESCRIPTION),
    }


class Run(NamedTuple):
    """What the consumer needs of one event (a named tuple: immutable, and built fast on the hot path)."""

    source: str
    objet: str
    etat: str
    entreprise: str
    zone: str
    debut: str  # kept as published: part of the run key
    fin: float  # epoch seconds
    duree: float
    cpu: float | None  # None: not reported (an OpenLineage run without the resources facet)
    memory: float | None
    description: str = ""  # what the run said, the error of a FAILED one
    rows: int | None = None  # rows written; None: not reported (unknown, never 0)

    @property
    def failed(self) -> bool:
        return self.etat == "FAILED"

    @property
    def key(self) -> tuple[str, str, str]:
        """Identifies a run across redeliveries and replays of the same record."""
        return (self.source, self.objet, self.debut)


def _field(obj: dict[str, Any], parent: str, key: str) -> Any:
    section = obj.get(parent)
    if not isinstance(section, dict):
        raise InvalidRecord(f"{parent!r} must be an object")
    return section.get(key)


def parse_event(obj: object) -> Run:
    """Validate an enriched event (what the producer publishes) into a Run.

    The consumer's hot path: a well-formed event is read straight through; anything unusual (a missing
    field, a wrong type, padding to strip, a value out of range) goes through the field-by-field checks,
    which give the same Run or say precisely what is wrong.
    """
    return _parse_event_fast(obj) or _parse_event_checked(obj)


def _fast_label(value: object) -> str | None:
    """An optional label as `_text` returns it, or None when `_text` must decide."""
    if value is None:
        return ""
    if type(value) is not str:
        return None
    value = value.strip()
    return value if len(value) <= MAX_TEXT else None


def _fast_number(value: object) -> float | None:
    """A required number >= 0 as `_number(...) or 0.0` gives it, or None when `_number` must decide."""
    kind = type(value)
    if kind is float:
        number = cast(float, value)
        return (number or 0.0) if 0.0 <= number < math.inf else None
    if kind is int:
        integer = cast(int, value)
        return float(integer) if integer >= 0 else None
    return None


def _parse_event_fast(obj: object) -> Run | None:
    if type(obj) is not dict or obj.get("@version") != EVENT_VERSION:
        return None
    labels, perf = obj.get("labels"), obj.get("performance")
    source, objet = obj.get("source"), obj.get("objet")
    if not (type(labels) is type(perf) is type(source) is type(objet) is dict):
        return None
    source_name, objet_name = source.get("name"), objet.get("name")
    etat, debut, fin_text = obj.get("etat"), obj.get("debut"), obj.get("fin")
    if (
        type(source_name) is not str
        or type(objet_name) is not str
        or (etat != "SUCCESS" and etat != "FAILED")
        or type(debut) is not str
        or type(fin_text) is not str
    ):
        return None
    source_name, objet_name = source_name.strip(), objet_name.strip()
    if not 0 < len(source_name) <= MAX_TEXT or not 0 < len(objet_name) <= MAX_TEXT:
        return None
    entreprise, zone = _fast_label(labels.get("entreprise")), _fast_label(labels.get("zone"))
    duree = _fast_number(perf.get("duree_secondes"))
    cpu = _fast_number(perf.get("cpu_time_sec"))
    memory = _fast_number(perf.get("memory_used_bytes"))
    if entreprise is None or zone is None or duree is None or cpu is None or memory is None:
        return None
    rows = perf.get("lignes")  # absent from older events: unknown
    if rows is not None and (type(rows) is not int or not 0 <= rows <= MAX_ROWS):
        return None
    try:
        fin = datetime.fromisoformat(fin_text)
    except ValueError:
        return None
    if fin.tzinfo is None:
        fin = fin.replace(tzinfo=UTC)
    description = obj.get("description") or ""
    if type(description) is not str:
        return None
    description = description.strip()
    if len(description) > MAX_DESCRIPTION:
        return None
    return Run(
        source_name,
        objet_name,
        etat,
        entreprise,
        zone,
        debut,
        fin.timestamp(),
        duree,
        cpu,
        memory,
        description,
        rows,
    )


def _parse_event_checked(obj: object) -> Run:
    """Field by field, with a precise error for the first thing wrong."""
    if not isinstance(obj, dict):
        raise InvalidRecord(f"an event must be a JSON object, got {type(obj).__name__}")
    if obj.get("@version") != EVENT_VERSION:
        raise InvalidRecord(f"unsupported '@version' {obj.get('@version')!r} (expected {EVENT_VERSION!r})")
    labels = obj.get("labels")
    perf = obj.get("performance")
    if not isinstance(labels, dict) or not isinstance(perf, dict):
        raise InvalidRecord("'labels' and 'performance' must be objects")
    flat = {
        "source.name": _field(obj, "source", "name"),
        "objet.name": _field(obj, "objet", "name"),
        "labels.entreprise": labels.get("entreprise"),
        "labels.zone": labels.get("zone"),
        "performance.duree_secondes": perf.get("duree_secondes"),
        "performance.cpu_time_sec": perf.get("cpu_time_sec"),
        "performance.memory_used_bytes": perf.get("memory_used_bytes"),
    }
    etat = obj.get("etat")
    if etat not in ETATS:
        raise InvalidRecord(f"'etat' must be SUCCESS or FAILED, got {etat!r}")
    debut = obj.get("debut")
    if not isinstance(debut, str):
        raise InvalidRecord("'debut' must be a timestamp string")
    fin = _time(obj, "fin", UTC)
    return Run(
        source=_text(flat, "source.name"),
        objet=_text(flat, "objet.name"),
        etat=etat,
        entreprise=_text(flat, "labels.entreprise", required=False),
        zone=_text(flat, "labels.zone", required=False),
        debut=debut,
        fin=fin.timestamp(),
        duree=_number(flat, "performance.duree_secondes") or 0.0,
        cpu=_number(flat, "performance.cpu_time_sec") or 0.0,
        memory=_number(flat, "performance.memory_used_bytes") or 0.0,
        description=_text(obj, "description", required=False, limit=MAX_DESCRIPTION),
        rows=row_count(perf.get("lignes"), "performance.lignes"),
    )
