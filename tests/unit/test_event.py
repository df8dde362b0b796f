from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ingestion_observability.event import InvalidRecord, normalise, parse_event
from ingestion_observability.sample import sample_logs_path


def raw(**overrides: Any) -> dict[str, Any]:
    record = {
        "ID": 1224,
        "Entreprise": "akonovia",
        "Zone": "1-Raw",
        "Source": "PowerBI",
        "Objet": "workspaces",
        "Transformation": "PowerBI_API_get_data",
        "Etat": "SUCCESS",
        "Debut": "2025-09-15 10:30:00.000",
        "Fin": "2025-09-15 10:30:01.154",
        "Duree secondes": 1.154133,
        "cpu_time": 0.11,
        "memory_used": 5849088,
        "Description": "ok",
    }
    record.update(overrides)
    return {k: v for k, v in record.items() if v is not ...}


def test_enriched_event_has_the_seed_layout() -> None:
    event = normalise(raw())
    assert event["@timestamp"] == "2025-09-15T10:30:01.154Z"
    assert event["@version"] == "1"
    assert event["event"] == {"dataset": "ingestion-logs", "kind": "event", "outcome": "success"}
    assert event["source"] == {"name": "PowerBI", "type": "api"}
    assert event["objet"] == {"id": 1224, "name": "workspaces", "transformation": "PowerBI_API_get_data"}
    assert event["etat"] == "SUCCESS"
    assert event["debut"] == "2025-09-15T10:30:00.000Z"
    assert event["performance"] == {
        "duree_secondes": 1.154133,
        "cpu_time_sec": 0.11,
        "memory_used_bytes": 5849088,
        "memory_used_mb": 5.58,
        "lignes": None,  # not reported: unknown (null), never 0
    }
    assert event["labels"] == {
        "etat": "SUCCESS",
        "source": "PowerBI",
        "zone": "1-Raw",
        "entreprise": "akonovia",
    }
    assert event["metrics"] == {"is_failed": 0, "is_success": 1, "high_memory_usage": 0, "high_cpu_usage": 0}
    assert event["description"] == "ok"


def test_failed_run_and_high_usage_flags() -> None:
    event = normalise(raw(Etat="failed", memory_used=200 * 1024 * 1024, cpu_time=61.0))
    assert event["etat"] == "FAILED"
    assert event["event"]["outcome"] == "failure"
    assert event["metrics"] == {"is_failed": 1, "is_success": 0, "high_memory_usage": 1, "high_cpu_usage": 1}


@pytest.mark.parametrize(
    ("debut", "fin", "expected_start"),
    [
        ("2025-09-15T10:30:00Z", "2025-09-15T10:30:02Z", "2025-09-15T10:30:00.000Z"),
        ("2025-09-15T12:30:00+02:00", "2025-09-15T12:30:02+02:00", "2025-09-15T10:30:00.000Z"),
        ("2025-09-15 10:30:00", "2025-09-15 10:30:02", "2025-09-15T10:30:00.000Z"),
        ("2025-09-15 10:30:00.5", "2025-09-15 10:30:02.5", "2025-09-15T10:30:00.500Z"),
        ("2025-09-15T10:30:00.123456", "2025-09-15T10:30:02.123456", "2025-09-15T10:30:00.123Z"),
    ],
)
def test_timestamp_variants(debut: str, fin: str, expected_start: str) -> None:
    event = normalise(raw(Debut=debut, Fin=fin))
    assert event["debut"] == expected_start


def test_naive_timestamps_in_a_configured_zone() -> None:
    event = normalise(raw(Debut="2025-09-15 12:30:00", Fin="2025-09-15 12:30:01"), ZoneInfo("Europe/Paris"))
    assert event["debut"] == "2025-09-15T10:30:00.000Z"


def test_duration_computed_from_debut_and_fin_when_missing() -> None:
    event = normalise(
        raw(**{"Duree secondes": ..., "Debut": "2025-09-15 10:30:00", "Fin": "2025-09-15 10:30:02.5"})
    )
    assert event["performance"]["duree_secondes"] == 2.5


def test_shift_moves_every_timestamp() -> None:
    event = normalise(raw(), shift=timedelta(days=1))
    assert event["debut"] == "2025-09-16T10:30:00.000Z"
    assert event["@timestamp"] == "2025-09-16T10:30:01.154Z"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"Source": ...}, "'Source' is missing"),
        ({"Source": "  "}, "'Source' is blank"),
        ({"Objet": 12}, "'Objet' must be a string"),
        ({"Etat": "RUNNING"}, "'Etat' must be SUCCESS or FAILED"),
        ({"Debut": "yesterday"}, "'Debut': unrecognised timestamp"),
        ({"Fin": "2025-09-15 10:29:00"}, "'Fin' (2025-09-15 10:29:00) is before 'Debut'"),
        ({"cpu_time": "fast"}, "'cpu_time' must be a number"),
        ({"memory_used": -1}, "'memory_used' must be a finite number >= 0"),
        ({"Duree secondes": float("nan")}, "'Duree secondes' must be a finite number"),
        ({"memory_used": True}, "'memory_used' must be a number"),
        ({"ID": [1]}, "'ID' must be an integer or a string"),
        ({"Source": "x" * 300}, "'Source' is longer than 256"),
    ],
)
def test_invalid_records_say_why(overrides: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidRecord) as excinfo:
        normalise(raw(**overrides))
    assert reason in str(excinfo.value)


@pytest.mark.parametrize(
    ("lignes", "expected"),
    [(3864, 3864), (0, 0), (12.0, 12), (2**53, 2**53), (None, None), (..., None)],
    ids=["int", "zero", "whole-float", "largest", "null", "absent"],
)
def test_lignes_is_rows_written_or_unknown(lignes: Any, expected: int | None) -> None:
    event = normalise(raw(Lignes=lignes))
    assert event["performance"]["lignes"] == expected
    assert type(event["performance"]["lignes"]) is type(expected)  # 12.0 is published as 12
    assert parse_event(json.loads(json.dumps(event))).rows == expected


@pytest.mark.parametrize(
    ("lignes", "reason"),
    [
        (-1, "'Lignes' must be >= 0, got -1"),
        (1.5, "'Lignes' must be a whole number of rows, got 1.5"),
        (float("nan"), "'Lignes' must be a whole number of rows, got nan"),
        (float("inf"), "'Lignes' must be a whole number of rows, got inf"),
        (-2.0, "'Lignes' must be >= 0, got -2.0"),
        (2**53 + 1, "'Lignes' must be at most 2**53"),
        ("12", "'Lignes' must be an integer (rows written), got str"),
        ("", "'Lignes' must be an integer (rows written), got str"),
        (True, "'Lignes' must be an integer (rows written), got bool"),
        ([12], "'Lignes' must be an integer (rows written), got list"),
    ],
)
def test_bad_lignes_are_refused_with_the_reason(lignes: Any, reason: str) -> None:
    with pytest.raises(InvalidRecord) as excinfo:
        normalise(raw(Lignes=lignes))
    assert reason in str(excinfo.value)


def test_an_event_published_before_lignes_existed_reads_as_unknown() -> None:
    event = normalise(raw(Lignes=10))
    del event["performance"]["lignes"]
    assert parse_event(event).rows is None
    assert parse_event(normalise(raw(Lignes=10))).rows == 10


def test_a_record_must_be_an_object() -> None:
    with pytest.raises(InvalidRecord, match="must be a JSON object"):
        normalise(["not", "a", "record"])


def test_parse_event_round_trips_the_enriched_event() -> None:
    run = parse_event(json.loads(json.dumps(normalise(raw(Etat="FAILED")))))
    assert (run.source, run.objet, run.etat, run.entreprise, run.zone) == (
        "PowerBI",
        "workspaces",
        "FAILED",
        "akonovia",
        "1-Raw",
    )
    assert run.failed
    assert run.fin == datetime(2025, 9, 15, 10, 30, 1, 154000, tzinfo=UTC).timestamp()
    assert (run.duree, run.cpu, run.memory) == (1.154133, 0.11, 5849088)
    assert run.key == ("PowerBI", "workspaces", "2025-09-15T10:30:00.000Z")


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda e: e.update({"@version": "2"}), "unsupported '@version'"),
        (lambda e: e.update({"etat": "MAYBE"}), "'etat' must be SUCCESS or FAILED"),
        (lambda e: e.update({"performance": []}), "must be objects"),
        (
            lambda e: e["performance"].update({"duree_secondes": "1.2"}),
            "'performance.duree_secondes' must be a number",
        ),
        (lambda e: e["source"].update({"name": None}), "'source.name' is missing"),
        (lambda e: e.update({"fin": "soon"}), "'fin': unrecognised timestamp"),
        (lambda e: e.update({"source": "PowerBI"}), "'source' must be an object"),
        (lambda e: e["performance"].update({"lignes": -3}), "'performance.lignes' must be >= 0"),
        (lambda e: e["performance"].update({"lignes": "3"}), "'performance.lignes' must be an integer"),
        (lambda e: e["performance"].update({"lignes": 2.5}), "'performance.lignes' must be a whole number"),
    ],
)
def test_parse_event_rejects_wrong_types(mutate: Any, reason: str) -> None:
    event = normalise(raw())
    mutate(event)
    with pytest.raises(InvalidRecord) as excinfo:
        parse_event(event)
    assert reason in str(excinfo.value)


def test_sample_data_matches_the_seed() -> None:
    records = json.loads(sample_logs_path().read_text())
    events = [normalise(r) for r in records]
    assert len(events) == 72
    assert {e["source"]["name"] for e in events} == {
        "PowerBI",
        "Efficy",
        "sharepoint_graph",
        "EasyProjects",
        "zohobooks",
    }
    assert len({(e["source"]["name"], e["objet"]["name"]) for e in events}) == 72
    failed = [e for e in events if e["etat"] == "FAILED"]
    assert [(e["source"]["name"], e["objet"]["name"]) for e in failed] == [
        ("sharepoint_graph", "EventFactureApplication")
    ]
    assert "timeout" in failed[0]["description"].lower()
    assert {e["labels"]["entreprise"] for e in events} == {"akonovia"}
    assert {e["labels"]["zone"] for e in events} == {"1-Raw"}
    assert all(5 <= e["performance"]["memory_used_mb"] <= 20 for e in events)
    assert all(0.1 <= e["performance"]["cpu_time_sec"] <= 0.5 for e in events)
    assert sum(1 <= e["performance"]["duree_secondes"] <= 3 for e in events) == 71
    assert all(e["performance"]["lignes"] is None for e in events)  # the sample reports no rows


def _variants() -> list[Any]:
    from ingestion_observability.producer.generate import generate_records

    events: list[Any] = [normalise(r) for r in generate_records(200)]
    base = normalise(raw())
    mutations: list[Callable[[dict[str, Any]], object]] = [
        lambda e: e["source"].update({"name": "  PowerBI  "}),
        lambda e: e["labels"].update({"zone": None}),
        lambda e: e["labels"].update({"entreprise": "x" * 300}),
        lambda e: e["performance"].update({"duree_secondes": 3, "cpu_time_sec": 0}),
        lambda e: e["performance"].update({"memory_used_bytes": -1}),
        lambda e: e["performance"].update({"cpu_time_sec": float("inf")}),
        lambda e: e.update({"fin": "2025-09-15 10:30:01"}),
        lambda e: e.update({"fin": "2025-09-15T12:30:01+02:00"}),
        lambda e: e["objet"].update({"name": ""}),
        lambda e: e["performance"].update({"lignes": 3864}),
        lambda e: e["performance"].update({"lignes": 12.0}),
        lambda e: e["performance"].update({"lignes": -1}),
        lambda e: e["performance"].update({"lignes": True}),
        lambda e: e["performance"].pop("lignes"),
    ]
    for mutate in mutations:
        event = json.loads(json.dumps(base))
        mutate(event)
        events.append(event)
    return events


@pytest.mark.parametrize("event", _variants())
def test_fast_path_agrees_with_the_checked_path(event: Any) -> None:
    from ingestion_observability.event import _parse_event_checked, _parse_event_fast

    fast = _parse_event_fast(event)
    try:
        checked = _parse_event_checked(event)
    except InvalidRecord:
        assert fast is None  # only the checked path may refuse, with its precise message
    else:
        assert fast is None or fast == checked


def test_fast_path_takes_well_formed_events() -> None:
    from ingestion_observability.event import _parse_event_fast
    from ingestion_observability.producer.generate import generate_records

    assert all(_parse_event_fast(normalise(r)) is not None for r in generate_records(100))


def test_fast_path_reads_lignes() -> None:
    from ingestion_observability.event import _parse_event_fast

    fast = _parse_event_fast(normalise(raw(Lignes=3864)))
    assert fast is not None and fast.rows == 3864
    unknown = _parse_event_fast(normalise(raw()))
    assert unknown is not None and unknown.rows is None
