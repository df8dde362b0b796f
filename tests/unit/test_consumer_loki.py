"""Loki batches: stream grouping, structured metadata, the timestamp each entry gets."""

from __future__ import annotations

import gzip
import json

import pytest

from ingestion_observability.consumer.loki import MAX_AHEAD, MAX_BEHIND, Entry, LokiBatch, entry_timestamp

NOW = 1_800_000_000.0

TIMESTAMP_CASES = [
    (NOW - 60, NOW - 1, NOW - 60),  # recent: the run's end time
    (NOW - MAX_BEHIND + 1, NOW, NOW - MAX_BEHIND + 1),
    (NOW - 2 * 3600, NOW - 5, NOW - 5),  # too far behind: ingestion time
    (NOW - 30 * 86400, NOW - 5, NOW - 5),  # older than Loki's 7 days
    (NOW + MAX_AHEAD + 60, NOW - 5, NOW - 5),  # in the future (clock skew)
    (NOW - 30 * 86400, NOW - 30 * 86400, NOW),  # replayed old topic: now
]


@pytest.mark.parametrize(("event_end", "ingested", "expected"), TIMESTAMP_CASES)
def test_loki_timestamp_choice(event_end: float, ingested: float, expected: float) -> None:
    assert entry_timestamp(event_end, ingested, NOW) == expected


def test_payload_timestamps_are_those_of_entry_timestamp() -> None:
    """payload() inlines entry_timestamp(): both must choose the same time for every entry."""
    batch = LokiBatch("job")
    for i, (event_end, ingested, _) in enumerate(TIMESTAMP_CASES):
        batch.add(("s", "SUCCESS", "", ""), Entry(event_end, ingested, f"line {i}", "o"))
    [stream] = json.loads(gzip.decompress(batch.payload(NOW)))["streams"]
    assert [int(ts) for ts, _, _ in stream["values"]] == [
        round(entry_timestamp(end, ingested, NOW) * 1000) * 1_000_000 for end, ingested, _ in TIMESTAMP_CASES
    ]
    assert [line for _, line, _ in stream["values"]] == [f"line {i}" for i in range(len(TIMESTAMP_CASES))]


def test_loki_batch_groups_streams_and_keeps_objet_out_of_labels() -> None:
    batch = LokiBatch("ingestion-logs")
    batch.add(("PowerBI", "SUCCESS", "akonovia", "1-Raw"), Entry(NOW - 10, NOW, '{"a":1}', "workspaces"))
    batch.add(("PowerBI", "SUCCESS", "akonovia", "1-Raw"), Entry(NOW - 5, NOW, '{"a":2}', "datasets"))
    batch.add(("Efficy", "FAILED", "", ""), Entry(NOW - 3 * 3600, NOW - 1, '{"a":3}', "Contact"))
    body = json.loads(gzip.decompress(batch.payload(NOW)))
    assert batch.count == 3
    assert batch.size == 3 * (7 + 64)
    streams = {json.dumps(s["stream"], sort_keys=True): s["values"] for s in body["streams"]}
    powerbi = streams[
        json.dumps(
            {
                "job": "ingestion-logs",
                "source": "PowerBI",
                "etat": "SUCCESS",
                "entreprise": "akonovia",
                "zone": "1-Raw",
            },
            sort_keys=True,
        )
    ]
    assert powerbi == [
        [str(int((NOW - 10) * 1e9)), '{"a":1}', {"objet": "workspaces"}],
        [str(int((NOW - 5) * 1e9)), '{"a":2}', {"objet": "datasets"}],
    ]
    # empty label values are left out (Loki refuses them); too-old entries take the ingestion time
    efficy = streams[
        json.dumps({"job": "ingestion-logs", "source": "Efficy", "etat": "FAILED"}, sort_keys=True)
    ]
    assert efficy == [[str(int((NOW - 1) * 1e9)), '{"a":3}', {"objet": "Contact"}]]


def test_payload_timestamps_are_chosen_when_pushed() -> None:
    """A retried push re-chooses: an entry that has grown too old for Loki takes the ingestion time."""
    batch = LokiBatch("job")
    batch.add(("s", "SUCCESS", "", ""), Entry(NOW - 3000, NOW, "x", "o"))
    first = json.loads(gzip.decompress(batch.payload(NOW)))["streams"][0]["values"][0][0]
    later = json.loads(gzip.decompress(batch.payload(NOW + 600)))["streams"][0]["values"][0][0]
    assert int(first) == int((NOW - 3000) * 1e9)
    assert int(later) == int(NOW * 1e9)


def test_an_empty_batch_has_no_stream() -> None:
    batch = LokiBatch("job")
    assert (batch.count, batch.size) == (0, 0)
    assert json.loads(gzip.decompress(batch.payload(NOW))) == {"streams": []}
