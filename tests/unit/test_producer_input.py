from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingestion_observability.event import normalise
from ingestion_observability.producer.generate import generate_records
from ingestion_observability.producer.publisher import event_key
from ingestion_observability.producer.reader import InputError, read_records
from ingestion_observability.producer.replay import Pacer, rebase_shift


def test_reads_a_json_array_and_reports_bytes(tmp_path: Path) -> None:
    path = tmp_path / "logs.json"
    path.write_text(json.dumps([{"a": 1}, {"a": 2.5}, {"a": "x"}], indent=2))
    seen: list[int] = []
    items = list(read_records(path, seen.append))
    assert [i.record for i in items] == [{"a": 1}, {"a": 2.5}, {"a": "x"}]
    assert [i.where for i in items] == ["index 0", "index 1", "index 2"]
    assert isinstance(items[1].record["a"], float)  # not Decimal
    assert sum(seen) == path.stat().st_size


def test_reads_ndjson_and_reports_bad_lines_by_number(tmp_path: Path) -> None:
    path = tmp_path / "logs.ndjson"
    path.write_text('{"a": 1}\n\nnot json\n{"a": 2}\n')
    items = list(read_records(path))
    assert [(i.where, i.record) for i in items if not i.error] == [("line 1", {"a": 1}), ("line 4", {"a": 2})]
    [bad] = [i for i in items if i.error]
    assert bad.where == "line 3"
    assert "not valid JSON" in bad.error  # type: ignore[operator]


def test_truncated_array_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "logs.json"
    path.write_text('[{"a": 1}, {"a": ')
    items = read_records(path)
    assert next(items).record == {"a": 1}
    with pytest.raises(InputError, match="invalid JSON array after index 0"):
        next(items)


def test_streams_large_ndjson_lazily(tmp_path: Path) -> None:
    path = tmp_path / "big.ndjson"
    with path.open("w") as out:
        for record in generate_records(20_000):
            out.write(json.dumps(record) + "\n")
    items = read_records(path)
    first = next(items)
    assert first.record["ID"] == 1
    assert sum(1 for _ in items) == 19_999


def test_generated_records_are_valid_distinct_and_about_two_percent_failed() -> None:
    events = [normalise(r) for r in generate_records(5000)]
    assert len({(e["source"]["name"], e["objet"]["name"], e["debut"]) for e in events}) == 5000
    failed = sum(e["etat"] == "FAILED" for e in events) / len(events)
    assert 0.01 < failed < 0.03


def test_key_is_source_slash_objet() -> None:
    event = normalise(next(generate_records(1)))
    assert event_key(event) == b"PowerBI/objet_000"


def test_rebase_makes_the_newest_run_end_now() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert rebase_shift(datetime(2025, 12, 31, 23, tzinfo=UTC), now) == timedelta(hours=1)


def test_pacer_keeps_original_spacing_divided_by_speed() -> None:
    slept: list[float] = []
    pacer = Pacer(speed=10, sleep=slept.append)
    for t in (100.0, 110.0, 105.0, 130.0):
        pacer.wait(t)
    assert slept == [1.0, 2.0]  # an out-of-order run does not rewind the clock
    with pytest.raises(ValueError):
        Pacer(speed=0)
