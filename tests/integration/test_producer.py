"""The producer CLI against the real Kafka: invalid records reported, --strict, undelivered records."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import orjson
import pytest

from devstack.kafka import KafkaBroker
from ingestion_observability.event import normalise
from tests.integration.support import produce, read_topic, runs

pytestmark = pytest.mark.integration


def run_producer(kafka: KafkaBroker, topic: str, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = produce(kafka.bootstrap_servers, topic, *args)
    return code, out.getvalue()


@pytest.fixture
def mixed_file(tmp_path: Path) -> Path:
    good = [orjson.dumps(r).decode() for r in runs(3, day=20)]
    lines = [good[0], "{not json", json.dumps({"Source": "PowerBI"}), good[1], good[2]]
    path = tmp_path / "mixed.ndjson"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_invalid_records_are_reported_and_the_rest_published(
    kafka: KafkaBroker, topic: str, mixed_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    code, out = run_producer(kafka, topic, f"--file={mixed_file}")
    assert code == 0
    assert "3 sent, 2 invalid, 0 failed" in out
    warnings = [r.getMessage() for r in caplog.records if "invalid record" in r.getMessage()]
    assert any("line 2" in w and "not valid JSON" in w for w in warnings)
    assert any("line 3" in w and "'Objet' is missing" in w for w in warnings)
    messages = read_topic(kafka.bootstrap_servers, topic, 3)
    assert sorted(m.value for m in messages) == sorted(orjson.dumps(normalise(r)) for r in runs(3, day=20))
    assert {m.key for m in messages} == {f"{r['Source']}/{r['Objet']}".encode() for r in runs(3, day=20)}


def test_strict_stops_at_the_first_invalid_record(kafka: KafkaBroker, topic: str, mixed_file: Path) -> None:
    code, out = run_producer(kafka, topic, f"--file={mixed_file}", "--strict")
    assert code == 2
    assert "1 sent, 1 invalid, 0 failed" in out


def test_undelivered_records_fail_the_run(kafka: KafkaBroker, mixed_file: Path) -> None:
    code, out = run_producer(kafka, "no-such-topic", f"--file={mixed_file}", "--delivery-timeout=2")
    assert code == 1
    assert "0 sent, 2 invalid, 3 failed" in out
