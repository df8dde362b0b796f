"""Push log lines to Loki's HTTP push API, batched and gzipped.

We write our own small pusher rather than use python-logging-loki (unmaintained since 2019, one
blocking request per record, and its default endpoint was removed from Loki): the consumer needs
batch pushes whose success gates the Kafka commit, which a logging handler cannot express.
"""

from __future__ import annotations

import gzip
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple

import orjson
import urllib3

from ingestion_observability.catalog import STREAM_LABELS

# Loki rejects entries older than the newest of their stream by more than max_chunk_age/2 (1 h by
# default), older than reject_old_samples_max_age (7 d) or too far in the future (creation grace,
# 10 min). Within these margins an entry keeps its run's end time; otherwise it takes its ingestion
# time: Loki never drops a line for its age.
MAX_BEHIND = 55 * 60.0
MAX_AHEAD = 5 * 60.0


def entry_timestamp(event_end: float, ingested: float, now: float) -> float:
    """Event time when Loki will accept it, else ingestion time (the Kafka record's), else now."""
    earliest, latest = now - MAX_BEHIND, now + MAX_AHEAD
    if earliest <= event_end <= latest:
        return event_end
    if earliest <= ingested <= latest:
        return ingested
    return now


class Entry(NamedTuple):
    event_end: float
    ingested: float  # Kafka record timestamp: the same on every redelivery, so Loki dedupes re-pushes
    line: str
    objet: str


@dataclass
class LokiBatch:
    job: str
    streams: dict[tuple[str, str, str, str], list[Entry]] = field(default_factory=dict)
    size: int = 0
    count: int = 0

    def add(self, stream: tuple[str, str, str, str], entry: Entry) -> None:
        entries = self.streams.get(stream)
        if entries is None:
            entries = self.streams[stream] = []
        entries.append(entry)
        self.size += len(entry[2]) + 64
        self.count += 1

    def payload(self, now: float) -> bytes:
        """The gzipped JSON push body; timestamps are chosen now (a retry may come much later)."""
        earliest, latest = now - MAX_BEHIND, now + MAX_AHEAD
        metadata: dict[str, dict[str, str]] = {}  # one {"objet": ...} per objet, shared by its lines
        streams = []
        for labels, entries in self.streams.items():
            values: list[list[object]] = []
            append = values.append
            for event_end, ingested, line, objet in entries:
                # entry_timestamp(), inlined: this runs for every line
                if not earliest <= event_end <= latest:
                    event_end = ingested if earliest <= ingested <= latest else now
                meta = metadata.get(objet)
                if meta is None:
                    meta = metadata[objet] = {"objet": objet}
                append([str(round(event_end * 1000) * 1_000_000), line, meta])
            stream = {"job": self.job, **dict(zip(STREAM_LABELS, labels, strict=True))}
            streams.append({"stream": {k: v for k, v in stream.items() if v}, "values": values})
        return gzip.compress(orjson.dumps({"streams": streams}), compresslevel=1)


class Outcome(Enum):
    ACCEPTED = "accepted"
    RETRY = "retry"  # Loki down, overloaded or rate limiting: try again later
    REJECTED = "rejected"  # Loki refuses the content (400): retrying will not help


@dataclass(frozen=True)
class PushResult:
    outcome: Outcome
    reason: str
    seconds: float


class LokiClient:
    def __init__(
        self,
        url: str,
        *,
        tenant: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.endpoint = url.rstrip("/") + "/loki/api/v1/push"
        self._headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        if tenant:
            self._headers["X-Scope-OrgID"] = tenant
        if username:
            self._headers.update(urllib3.make_headers(basic_auth=f"{username}:{password or ''}"))
        self._http = urllib3.PoolManager(
            retries=False, timeout=urllib3.Timeout(connect=3.0, read=timeout), maxsize=2
        )

    def push(self, body: bytes) -> PushResult:
        started = time.perf_counter()
        try:
            response = self._http.request("POST", self.endpoint, body=body, headers=self._headers)
        except urllib3.exceptions.HTTPError as exc:
            return PushResult(Outcome.RETRY, f"unreachable: {exc}", time.perf_counter() - started)
        elapsed = time.perf_counter() - started
        if 200 <= response.status < 300:
            return PushResult(Outcome.ACCEPTED, "", elapsed)
        text = response.data[:2000].decode(errors="replace").strip()
        if response.status == 429 or response.status >= 500:
            return PushResult(Outcome.RETRY, f"HTTP {response.status}: {text}", elapsed)
        return PushResult(Outcome.REJECTED, f"HTTP {response.status}: {text}", elapsed)
