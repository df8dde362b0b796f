"""The operator's intake client: against a scripted local HTTP server (each answer of the intake's contract
mapped to a PublishError reason), against the real intake's HTTP server in this process (Kafka faked), and,
as an integration test, through the real intake process and a real Kafka to the consumer's staging."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from kafka.errors import KafkaTimeoutError
from prometheus_client import CollectorRegistry

from devstack.process import free_port
from ingestion_observability import catalog, openlineage
from ingestion_observability.consumer.loki import LokiBatch
from ingestion_observability.consumer.staging import StagedBatch, StagingLimits, stage
from ingestion_observability.consumer.state import PartitionState
from ingestion_observability.intake.publish import IntakePublisher as KafkaPublisher
from ingestion_observability.intake.server import Intake, IntakeConfig, Tokens, serve
from ingestion_operator.intake import LINEAGE_PATH, IntakePublisher, PublishError
from ingestion_operator.jobrun import ending, run_events
from tests.operator.fake_jobs import SELECTION, SOURCE, completed, failed, job

TOKEN = "s3cret-from-the-secret"
EVENTS = run_events(completed(job()), SELECTION, ending(completed(job())))


@dataclass
class Scripted:
    """What the local server answers, in order (then 200), and what it received."""

    answers: list[tuple[int, bytes]] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)  # path, headers, body


@pytest.fixture
def server() -> Iterator[tuple[str, Scripted]]:
    """A tiny HTTP server on a free port of 127.0.0.1, stopped after the test."""
    scripted = Scripted()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            scripted.requests.append((self.path, dict(self.headers), body))
            status, answer = scripted.answers.pop(0) if scripted.answers else (200, b'{"published": 2}')
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", scripted
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.write_text(f"# the intake's token file format\n\n{TOKEN}\nsecond-token\n")
    return path


def test_acknowledged_events_return(server: tuple[str, Scripted], token_file: Path) -> None:
    url, scripted = server
    IntakePublisher(url, token_file, timeout=5).publish(EVENTS)
    [(path, headers, body)] = scripted.requests
    assert path == LINEAGE_PATH  # the trailing slash of the URL is not doubled
    assert headers["Authorization"] == f"Bearer {TOKEN}"  # the first line that is no comment
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == EVENTS


def test_the_token_file_is_read_at_each_request(server: tuple[str, Scripted], token_file: Path) -> None:
    """A rotated Secret: the next request carries the new token, without a restart."""
    url, scripted = server
    publisher = IntakePublisher(url, token_file, timeout=5)
    publisher.publish(EVENTS)
    token_file.write_text("rotated-token\n")
    publisher.publish(EVENTS)
    assert [headers["Authorization"] for _, headers, _ in scripted.requests] == [
        f"Bearer {TOKEN}",
        "Bearer rotated-token",
    ]


def test_without_a_token_file_no_authorization(server: tuple[str, Scripted]) -> None:
    url, scripted = server
    IntakePublisher(url, None, timeout=5).publish(EVENTS)
    assert "Authorization" not in scripted.requests[0][1]


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_an_unavailable_intake(server: tuple[str, Scripted], token_file: Path, status: int) -> None:
    url, scripted = server
    scripted.answers = [(status, b'{"failed": 2, "items": [{"position": "index 0", "status": "failed"}]}')]
    with pytest.raises(PublishError, match=f"HTTP {status}") as raised:
        IntakePublisher(url, token_file, timeout=5).publish(EVENTS)
    assert raised.value.reason == "IntakeUnavailable"


def test_refused_items_name_their_reasons(server: tuple[str, Scripted], token_file: Path) -> None:
    url, scripted = server
    items = [
        {"position": "index 0", "status": "published"},
        {"position": "index 1", "status": "invalid", "reason": "'eventTime' is missing"},
    ]
    scripted.answers = [(400, json.dumps({"published": 1, "invalid": 1, "items": items}).encode())]
    with pytest.raises(PublishError) as raised:
        IntakePublisher(url, token_file, timeout=5).publish(EVENTS)
    assert raised.value.reason == "IntakeRefused"
    assert str(raised.value).endswith("HTTP 400: index 1: 'eventTime' is missing")


@pytest.mark.parametrize(
    ("status", "body", "said"),
    [
        (
            401,
            b'{"error": "missing or invalid bearer token"}',
            '{"error": "missing or invalid bearer token"}',
        ),
        (413, b"<html>too large</html>", "<html>too large</html>"),  # not JSON: the body's start
    ],
)
def test_other_refusals(
    server: tuple[str, Scripted], token_file: Path, status: int, body: bytes, said: str
) -> None:
    url, scripted = server
    scripted.answers = [(status, body)]
    with pytest.raises(PublishError) as raised:
        IntakePublisher(url, token_file, timeout=5).publish(EVENTS)
    assert raised.value.reason == "IntakeRefused" and str(raised.value).endswith(f"HTTP {status}: {said}")


def test_connection_refused_is_unavailable(token_file: Path) -> None:
    with pytest.raises(PublishError) as raised:
        IntakePublisher(f"http://127.0.0.1:{free_port()}", token_file, timeout=5).publish(EVENTS)
    assert raised.value.reason == "IntakeUnavailable"


@pytest.mark.parametrize("content", [None, "# only a comment\n\n"], ids=["missing", "no-token"])
def test_no_token(server: tuple[str, Scripted], tmp_path: Path, content: str | None) -> None:
    url, scripted = server
    path = tmp_path / "tokens"
    if content is not None:
        path.write_text(content)
    with pytest.raises(PublishError) as raised:
        IntakePublisher(url, path, timeout=5).publish(EVENTS)
    assert raised.value.reason == "NoToken" and scripted.requests == []  # nothing sent without a token


# --- the real intake's HTTP server, Kafka faked ------------------------------------------------------------


class FakeKafka:
    """The intake's Kafka publisher: records what it acknowledges; `error` fails every record."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes]] = []
        self.error: BaseException | None = None

    def publish(self, records: Sequence[tuple[bytes, bytes]]) -> list[BaseException | None]:
        if self.error is not None:
            return [self.error] * len(records)
        self.records.extend(records)
        return [None] * len(records)


@pytest.fixture
def intake(token_file: Path) -> Iterator[tuple[str, FakeKafka]]:
    """The intake's own server (ingestion_observability.intake.server) in a thread, on a free port."""
    config = IntakeConfig(bootstrap_servers="unused:9092", topic="runs", token_file=token_file)
    real = Intake(config, Tokens([], token_file), CollectorRegistry())
    kafka = FakeKafka()
    real.publisher = cast(KafkaPublisher, kafka)
    httpd = serve(real, 0, "127.0.0.1")
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", kafka
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_the_real_intake_accepts_the_operators_events(
    intake: tuple[str, FakeKafka], token_file: Path
) -> None:
    url, kafka = intake
    pods: list[dict[str, Any]] = []
    body = failed(job())
    events = run_events(body, SELECTION, ending(body), pods)
    IntakePublisher(url, token_file, timeout=5).publish(events)
    assert [key for key, _ in kafka.records] == [f"{SOURCE}/load-1".encode()] * 2  # one partition
    assert [orjson.loads(value) for _, value in kafka.records] == events  # published as sent


def test_the_real_intake_refuses_a_wrong_token(intake: tuple[str, FakeKafka], tmp_path: Path) -> None:
    url, kafka = intake
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-token\n")
    with pytest.raises(PublishError, match="HTTP 401") as raised:
        IntakePublisher(url, wrong, timeout=5).publish(EVENTS)
    assert raised.value.reason == "IntakeRefused" and kafka.records == []


def test_the_real_intake_without_kafka_is_unavailable(
    intake: tuple[str, FakeKafka], token_file: Path
) -> None:
    url, kafka = intake
    kafka.error = KafkaTimeoutError("no ack within the delivery timeout")
    with pytest.raises(PublishError, match="HTTP 503") as raised:
        IntakePublisher(url, token_file, timeout=5).publish(EVENTS)
    assert raised.value.reason == "IntakeUnavailable"


def test_the_real_intake_names_an_invalid_event(intake: tuple[str, FakeKafka], token_file: Path) -> None:
    url, kafka = intake
    broken = [EVENTS[0], {**EVENTS[1], "eventTime": ""}]
    with pytest.raises(PublishError) as raised:
        IntakePublisher(url, token_file, timeout=5).publish(broken)
    assert raised.value.reason == "IntakeRefused"
    assert str(raised.value).endswith("HTTP 400: index 1: 'eventTime' is missing")
    assert len(kafka.records) == 1  # the valid START is published: the retry sends it again, harmlessly


# --- the real intake process and Kafka ---------------------------------------------------------------------


@pytest.mark.integration
def test_through_the_real_intake_and_kafka_to_the_consumer(tmp_path: Path, token_file: Path) -> None:
    """A run published twice (the crash between Kafka's ack and the Job's patch) reaches Kafka twice and
    is counted once by the consumer's staging. About 10 s: a Kafka broker and an intake process."""
    from devstack.intake import IntakeProcess
    from devstack.kafka import KafkaBroker
    from tests.integration.support import read_topic

    body = failed(job())
    events = run_events(body, SELECTION, ending(body))
    with KafkaBroker.start(tmp_path / "kafka") as kafka:
        kafka.create_topics(["runs"], partitions=1)
        intake = IntakeProcess.start(
            tmp_path / "intake.log",
            kafka.bootstrap_servers,
            "runs",
            extra_args=[f"--token-file={token_file}"],
        )
        try:
            intake.wait_ready()
            publisher = IntakePublisher(intake.url, token_file, timeout=15)
            publisher.publish(events)
            publisher.publish(events)
        finally:
            intake.stop()
        messages = read_topic(kafka.bootstrap_servers, "runs", expected=4)
    assert [m.key for m in messages] == [f"{SOURCE}/load-1".encode()] * 4
    partition, batch = PartitionState(0), StagedBatch(LokiBatch("ingestion-logs"))
    stage(batch, partition, messages, StagingLimits())
    partition.commit(batch.states[0])
    state = partition.committed[(SOURCE, "load-1")]
    assert state.runs == {("FAILED", "", ""): 1} and batch.duplicates == 2
    assert sum(state.histograms[catalog.DURATION.name].counts) == 1
    assert openlineage.parse_run_event(orjson.loads(messages[3].value)).run_id == "uid-load-1"
