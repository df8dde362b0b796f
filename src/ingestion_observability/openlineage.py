"""OpenLineage RunEvents (spec 2-0-2) as ingestion runs: recognise, validate, key, pair, render.

Any job with an OpenLineage integration (Airflow's provider, `dbt-ol`, Dagster, Spark, the Python client)
reports its runs as a START event and an end event (COMPLETE, FAIL or ABORT), sharing `run.runId`. This
module is pure (no I/O): the intake validates and keys events with it, the consumer pairs them with it.

Mapping (one run = a START and its end):

==============  ===========================================================================================
run field       from
==============  ===========================================================================================
``source``      ``job.namespace`` (default), or the custom job facet ``ingestion_source.source``
                (``source_from="facet"``; events without that facet keep the namespace)
``objet``       ``job.name``
``debut``       the START's ``eventTime``; the end's when the START was never seen (duration 0 then)
``fin``         the COMPLETE / FAIL / ABORT ``eventTime``
``etat``        SUCCESS for COMPLETE; FAILED for FAIL and for ABORT
``description``  ``run.facets.errorMessage.message`` (an ABORT without one says it was aborted)
``cpu``         ``run.facets.ingestion_resources.cpuSeconds`` of the end event, else absent (None)
``memory``      ``run.facets.ingestion_resources.memoryBytes`` of the end event, else absent (None)
``rows``        the sum of ``outputs[].outputFacets.outputStatistics.rowCount`` of the end event (the
                outputs that report it); absent (None) when no output reports it
``objet.id``    ``run.runId`` (also what the consumer dedupes lineage runs on)
==============  ===========================================================================================

ABORT counts as FAILED: an aborted run (killed, cancelled, timed out by its scheduler) did not deliver its
data, which is what a failure means for an ingestion objective; counting it as a success would hide it, and
ignoring it would leave the run open until the stuck-run alert.

The custom run facet carrying resource usage (OpenLineage custom facets carry `_producer` and
`_schemaURL`; this module reads only the two numbers, both optional, both >= 0)::

    "run": {"runId": "...", "facets": {"ingestion_resources": {
        "_producer": "https://example.com/my-connector",
        "_schemaURL": "https://example.com/schemas/IngestionResourcesRunFacet.json",
        "cpuSeconds": 12.5, "memoryBytes": 73400320}}}

Absent cpu or memory is None, never 0: it is left out of the cpu and memory histograms (a job that does not
measure them must not pull their percentiles down) and is `null` in the log line. Rows likewise: a run whose
outputs carry no `rowCount` adds nothing to `ingestion_rows_total` and leaves `ingestion_last_run_rows` as it
was. A `rowCount` is an integer >= 0 (a whole float such as 12.0 is read as 12); anything else refuses the
event, with the output it was found on.

The Kafka key is `source/objet`, as for connector records: every event of a job (its START and its end
included) lands in one partition, where the consumer holds the job's open runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from ingestion_observability.event import MAX_ROWS, MAX_TEXT, InvalidRecord, Run, normalise, row_count
from ingestion_observability.timeparse import TimestampError, format_timestamp, parse_timestamp

EVENT_TYPES = ("START", "RUNNING", "COMPLETE", "FAIL", "ABORT", "OTHER")
END_TYPES = {"COMPLETE": "SUCCESS", "FAIL": "FAILED", "ABORT": "FAILED"}
RESOURCES_FACET = "ingestion_resources"
SOURCE_FACET = "ingestion_source"
STATISTICS_FACET = "outputStatistics"  # OutputStatisticsOutputDatasetFacet, an output dataset facet
MAX_RUN_ID = 256
MAX_DESCRIPTION = 8192
SourceFrom = Literal["namespace", "facet"]
# Keys only a connector record or an enriched event has: such an object is never a lineage event.
_CONNECTOR_KEYS = ("@version", "Source")


@dataclass(frozen=True, slots=True)
class LineageEvent:
    """The fields of one RunEvent the product uses."""

    event_type: str  # one of EVENT_TYPES
    event_time: float  # epoch seconds
    run_id: str
    source: str
    objet: str
    error: str | None = None  # run.facets.errorMessage.message
    cpu_seconds: float | None = None
    memory_bytes: float | None = None
    rows: int | None = None  # sum of the outputs' outputStatistics.rowCount; None: none reports it

    @property
    def is_end(self) -> bool:
        return self.event_type in END_TYPES


def is_run_event(obj: object) -> bool:
    """Whether `obj` is meant as an OpenLineage RunEvent (not a connector record, not an enriched event).

    Recognised by the RunEvent's required structure (`eventTime`, `run` and `job` objects), not by every
    field being valid: a malformed RunEvent then gets `parse_run_event`'s precise reason (a missing runId,
    an unknown eventType) instead of being read as a connector record.
    """
    return (
        type(obj) is dict
        and "eventTime" in obj
        and isinstance(obj.get("run"), dict)
        and isinstance(obj.get("job"), dict)
        and not any(key in obj for key in _CONNECTOR_KEYS)
    )


def _section(obj: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise InvalidRecord(f"{where}{key!r} must be an object, got {type(value).__name__}")
    return value


def _text(obj: dict[str, Any], key: str, where: str, limit: int) -> str:
    value = obj.get(key)
    if value is None or value == "":
        raise InvalidRecord(f"'{where}{key}' is missing")
    if not isinstance(value, str):
        raise InvalidRecord(f"'{where}{key}' must be a string, got {type(value).__name__}")
    value = value.strip()
    if not value:
        raise InvalidRecord(f"'{where}{key}' is blank")
    if len(value) > limit:
        raise InvalidRecord(f"'{where}{key}' is longer than {limit} characters")
    return value


def _facet(facets: dict[str, Any], name: str) -> dict[str, Any] | None:
    facet = facets.get(name)
    if facet is None:
        return None
    if not isinstance(facet, dict):
        raise InvalidRecord(f"facet {name!r} must be an object, got {type(facet).__name__}")
    return facet


def _amount(facet: dict[str, Any] | None, key: str) -> float | None:
    if facet is None or facet.get(key) is None:
        return None
    value = facet[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRecord(f"'{RESOURCES_FACET}.{key}' must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise InvalidRecord(f"'{RESOURCES_FACET}.{key}' must be a finite number >= 0, got {value!r}")
    return number


def _rows(obj: dict[str, Any]) -> int | None:
    """Rows written: the sum of the outputs' `outputStatistics.rowCount`, None when no output reports one."""
    outputs = obj.get("outputs")
    if outputs is None:
        return None
    if not isinstance(outputs, list):
        raise InvalidRecord(f"'outputs' must be an array, got {type(outputs).__name__}")
    total: int | None = None
    for index, output in enumerate(outputs):
        where = f"outputs[{index}]"
        if not isinstance(output, dict):
            raise InvalidRecord(f"'{where}' must be an object, got {type(output).__name__}")
        facets = output.get("outputFacets")
        if facets is None:
            continue
        if not isinstance(facets, dict):
            raise InvalidRecord(f"'{where}.outputFacets' must be an object, got {type(facets).__name__}")
        statistics = facets.get(STATISTICS_FACET)
        if statistics is None:
            continue
        where = f"{where}.outputFacets.{STATISTICS_FACET}"
        if not isinstance(statistics, dict):
            raise InvalidRecord(f"'{where}' must be an object, got {type(statistics).__name__}")
        rows = row_count(statistics.get("rowCount"), f"{where}.rowCount")
        if rows is not None:
            total = rows if total is None else total + rows
    if total is not None and total > MAX_ROWS:
        raise InvalidRecord(f"the outputs' rowCount add up to more than 2**53 ({total})")
    return total


def parse_run_event(obj: object, *, source_from: SourceFrom = "namespace") -> LineageEvent:
    """Validate a RunEvent; InvalidRecord says which field is wrong and why."""
    if not isinstance(obj, dict):
        raise InvalidRecord(f"a RunEvent must be a JSON object, got {type(obj).__name__}")
    event_type = obj.get("eventType")
    if event_type is None:
        raise InvalidRecord("'eventType' is missing (START, RUNNING, COMPLETE, FAIL, ABORT or OTHER)")
    if event_type not in EVENT_TYPES:
        raise InvalidRecord(f"unknown 'eventType' {event_type!r} (expected one of {', '.join(EVENT_TYPES)})")
    if obj.get("eventTime") in (None, ""):
        raise InvalidRecord("'eventTime' is missing")
    try:
        event_time = parse_timestamp(obj["eventTime"]).timestamp()
    except TimestampError as exc:
        raise InvalidRecord(f"'eventTime': {exc}") from None
    run = _section(obj, "run", "")
    job = _section(obj, "job", "")
    run_id = _text(run, "runId", "run.", MAX_RUN_ID)
    namespace = _text(job, "namespace", "job.", MAX_TEXT)
    objet = _text(job, "name", "job.", MAX_TEXT)
    run_facets = {} if run.get("facets") is None else run["facets"]
    job_facets = {} if job.get("facets") is None else job["facets"]
    if not isinstance(run_facets, dict) or not isinstance(job_facets, dict):
        raise InvalidRecord("'run.facets' and 'job.facets' must be objects")
    source = namespace
    if source_from == "facet" and (facet := _facet(job_facets, SOURCE_FACET)) is not None:
        source = _text(facet, "source", f"job.facets.{SOURCE_FACET}.", MAX_TEXT)
    error: str | None = None
    if (error_facet := _facet(run_facets, "errorMessage")) is not None:
        message = error_facet.get("message")
        if message is not None and not isinstance(message, str):
            raise InvalidRecord(f"'errorMessage.message' must be a string, got {type(message).__name__}")
        error = message[:MAX_DESCRIPTION] if message else None
    resources = _facet(run_facets, RESOURCES_FACET)
    return LineageEvent(
        event_type=event_type,
        event_time=event_time,
        run_id=run_id,
        source=source,
        objet=objet,
        error=error,
        cpu_seconds=_amount(resources, "cpuSeconds"),
        memory_bytes=_amount(resources, "memoryBytes"),
        rows=_rows(obj),
    )


def event_key(event: LineageEvent) -> bytes:
    """`source/objet`, the connector records' key: a job's START and end meet in one partition."""
    return f"{event.source}/{event.objet}".encode()


def _timestamp(epoch: float) -> str:
    return format_timestamp(datetime.fromtimestamp(epoch, UTC))


def to_run(start: LineageEvent | None, end: LineageEvent) -> Run:
    """The run of a START (None when it was never seen) and its COMPLETE / FAIL / ABORT."""
    etat = END_TYPES.get(end.event_type)
    if etat is None:
        raise InvalidRecord(f"a {end.event_type} event does not end a run")
    began = end.event_time if start is None else start.event_time
    return Run(
        source=end.source,
        objet=end.objet,
        etat=etat,
        entreprise="",
        zone="",
        debut=_timestamp(began),
        fin=end.event_time,
        duree=max(0.0, end.event_time - began),  # a START stamped after its end (clock skew) lasted 0 s
        cpu=end.cpu_seconds,
        memory=end.memory_bytes,
        description=_end_description(end),
        rows=end.rows,
    )


def _end_description(end: LineageEvent) -> str:
    """The run's description: its error message (an ABORT without one says it was aborted)."""
    return end.error or ("run aborted (OpenLineage ABORT)" if end.event_type == "ABORT" else "")


def lineage_line(end: LineageEvent, run: Run) -> str:
    """The log line of a paired run: the enriched event's layout (what the dashboards' `| json` reads),
    cpu, memory and rows `null` when the job did not report them, plus the OpenLineage identifiers."""
    event = normalise(
        {
            "ID": end.run_id,
            "Source": run.source,
            "Objet": run.objet,
            "Etat": run.etat,
            "Debut": run.debut,
            "Fin": _timestamp(run.fin),
            "Duree secondes": run.duree,
            "cpu_time": run.cpu or 0.0,
            "memory_used": run.memory or 0.0,
            "Description": run.description,
            "Lignes": run.rows,
        }
    )
    performance = event["performance"]
    if run.cpu is None:
        performance["cpu_time_sec"] = None
    if run.memory is None:
        performance["memory_used_bytes"] = performance["memory_used_mb"] = None
    event["source"]["type"] = "openlineage"
    event["openlineage"] = {"runId": end.run_id, "eventType": end.event_type}
    return orjson.dumps(event).decode()
