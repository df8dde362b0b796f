"""Only the member that owns a partition commits it: the hole in Kafka's check, and the paths that reach it.

Real Kafka, Prometheus and log store. Each race is made to happen every run: a gate in front of the log
store holds or fails a member's pushes, SIGSTOP freezes it, and kafka-python's own log says when its
membership is gone.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from devstack.consumer import ConsumerProcess
from devstack.kafka import KafkaBroker
from devstack.victorialogs import VictoriaLogsServer
from ingestion_observability.consumer.clients import SubscribedConsumer
from ingestion_observability.consumer.delivery import Delivery, Topics, Verdict
from ingestion_observability.consumer.loki import LokiBatch, LokiClient
from ingestion_observability.consumer.staging import StagedBatch
from tests.integration.fleet import Fleet
from tests.integration.gate import LogStoreGate
from tests.integration.support import Aggregates, runs, send_events, wait_until

pytestmark = pytest.mark.integration

# kafka-python's heartbeat, once the coordinator answered that this member is no longer in the group
MEMBERSHIP_GONE = "local member_id was not recognized"


@pytest.fixture
def gate(logstore: VictoriaLogsServer) -> Iterator[LogStoreGate]:
    with LogStoreGate(logstore.url) as gate:
        yield gate


def member(bootstrap: str, topic: str, group: str) -> SubscribedConsumer:
    consumer = SubscribedConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        isolation_level="read_committed",
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    return consumer


def committed(consumer: KafkaConsumer, tp: TopicPartition) -> int | None:
    return consumer.committed(tp, timeout_ms=10_000)  # type: ignore[no-any-return]


def test_a_reset_membership_is_accepted_by_the_broker_and_refused_by_the_consumer(
    kafka: KafkaBroker, topic: str
) -> None:
    group = f"{topic}-group"
    a, b = member(kafka.bootstrap_servers, topic, group), member(kafka.bootstrap_servers, topic, group)
    try:

        def polled(member: SubscribedConsumer) -> bool:
            member.finish_pending_join()  # kafka-python 3.0.12 may leave a join in flight otherwise
            member.poll(timeout_ms=100)
            return bool(member.assignment())

        wait_until(lambda: polled(a) & polled(b), what="A and B both members with partitions")
        owned = sorted(b.assignment())[0]  # B owns it, A does not
        assert owned not in a.assignment()
        b.commit({owned: OffsetAndMetadata(10, "", -1)})
        a._coordinator.reset_generation()  # what kafka-python does when A's session is found gone
        stale = a.group_metadata()
        assert (stale.generation_id, stale.member_id) == (-1, "")

        # the hole: a transactional offset commit with no generation is accepted while B owns the partition
        producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers, transactional_id=f"{topic}-raw")
        producer.init_transactions()
        producer.begin_transaction()
        producer.send_offsets_to_transaction({owned: OffsetAndMetadata(77, "", -1)}, stale)
        producer.commit_transaction()
        producer.close()
        assert committed(b, owned) == 77

        # the consumer's commit path refuses to make that call: nothing is committed
        b.commit({owned: OffsetAndMetadata(10, "", -1)})
        made: list[object] = []

        def transactional() -> KafkaProducer:
            made.append(
                new := KafkaProducer(bootstrap_servers=kafka.bootstrap_servers, transactional_id=topic)
            )
            new.init_transactions()
            return new

        delivery = Delivery(
            Topics(topic, f"{topic}.dlq", f"{topic}.state", group),
            LokiClient("http://127.0.0.1:9"),
            transactional,
        )
        batch = StagedBatch(LokiBatch(topic), offsets={owned.partition: 99})
        result = delivery.commit(batch, a.group_metadata())
        assert committed(b, owned) == 10
        assert made == []  # not even a transaction was begun
        assert result.verdict is Verdict.LOST, result
    finally:
        a.close(autocommit=False)
        b.close(autocommit=False)


def log_mentions(consumer: ConsumerProcess, text: str) -> int:
    return consumer.process.log_path.read_text(errors="replace").count(text)


def test_a_thawed_member_with_staged_work_commits_nothing(fleet: Fleet, gate: LogStoreGate) -> None:
    records = list(runs(6_000, day=100))
    first, held, later = records[:2_000], records[2_000:4_000], records[4_000:]
    zombie = fleet.start("a", logs_url=gate.url)
    send_events(fleet.kafka.bootstrap_servers, fleet.topic, first)
    fleet.wait_exact(Aggregates.of(first))
    commits = zombie.total("ingestion_consumer_transactions_total", result="committed")
    assignments = log_mentions(zombie, "assigned [")

    gate.hold()  # its next push is stored, and the answer held: the batch stays staged, uncommitted
    send_events(fleet.kafka.bootstrap_servers, fleet.topic, held)
    gate.wait_held()
    zombie.process.signal(signal.SIGSTOP)  # frozen past its session: the heir takes every partition
    heir = fleet.start("b")
    send_events(fleet.kafka.bootstrap_servers, fleet.topic, later)
    fleet.wait_exact(Aggregates.of(records))

    zombie.process.signal(signal.SIGCONT)
    wait_until(lambda: log_mentions(zombie, MEMBERSHIP_GONE), what="the zombie told its membership is gone")
    gate.release()  # now its push succeeds, with its staged batch on hand and no membership
    wait_until(
        lambda: log_mentions(zombie, "assigned [") > assignments,
        timeout=60,
        what="the zombie assigned partitions again",
    )
    assert zombie.total("ingestion_consumer_transactions_total", result="committed") == commits
    fleet.wait_exact(Aggregates.of(records), timeout=30)

    # what Kafka holds: a fresh member restoring every partition shows exactly what was published
    fleet.kill("a", signal.SIGTERM)
    fleet.kill("b", signal.SIGTERM)
    assert heir.process.proc.returncode == 0
    fresh = fleet.start("c")
    expected = Aggregates.of(records)
    wait_until(
        lambda: fresh.total("ingestion_duration_seconds_count") == expected.count,
        what="every run restored by a fresh member",
        seen=lambda: fresh.total("ingestion_duration_seconds_count"),
    )
    fleet.wait_exact(expected, timeout=30)
    assert fleet.counter_resets() == 0


def test_a_consumer_started_before_its_topic_is_served_within_seconds(
    kafka: KafkaBroker, logstore: VictoriaLogsServer, tmp_path: Path
) -> None:
    topic = f"late-{time.monotonic_ns()}"
    with ConsumerProcess.start(
        tmp_path / "consumer.log",
        kafka.bootstrap_servers,
        logstore.push_url,
        topic=topic,
        group_id=topic,
        extra_args=[f"--loki-job={topic}"],  # the session's log store: its own job, as every test
    ) as consumer:
        wait_until(
            lambda: f"waiting for input topic {topic} to exist" in consumer.readiness(),
            what="the consumer waiting for its topic, not crashed",
            seen=consumer.readiness,
        )
        kafka.create_topics([topic, f"{topic}.dlq"], partitions=3)
        records = list(runs(100, day=120))
        send_events(kafka.bootstrap_servers, topic, records)
        # seconds, not kafka-python's metadata refresh (5 min)
        wait_until(
            lambda: consumer.total("ingestion_duration_seconds_count") == 100, timeout=30, what="100 runs"
        )
        consumer.wait_ready(timeout=10)


def test_a_rebalance_while_a_batch_is_retried_is_exact(fleet: Fleet, gate: LogStoreGate) -> None:
    records = list(runs(6_000, day=110))
    first, retried = records[:3_000], records[3_000:]
    fleet.start("a", logs_url=gate.url)
    send_events(fleet.kafka.bootstrap_servers, fleet.topic, first)
    fleet.wait_exact(Aggregates.of(first))
    gate.fail()  # the log store answers 503: the batch is retried, consumption paused
    send_events(fleet.kafka.bootstrap_servers, fleet.topic, retried)
    wait_until(lambda: gate.failed >= 2, what="the batch retried")
    joined = fleet.start("b")  # a second member joins while the first one retries
    wait_until(lambda: joined.total("ingestion_consumer_owned_objets") > 0, what="the second member serving")
    gate.release()
    fleet.wait_exact(Aggregates.of(records))
    assert fleet.counter_resets() == 0


def joined_after_topic_appears(kafka: KafkaBroker, finish_pending_join: bool) -> set[int]:
    """A member subscribed before its topic has partitions, polling with no timeout while they appear: the
    join they start is always still in flight when poll() returns, and the leader's own assignment makes
    kafka-python's need_rejoin() false meanwhile. What the member holds after 10 s of ordinary polls."""
    topic = f"joined-{time.monotonic_ns()}"
    consumer = SubscribedConsumer(
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=topic,
        enable_auto_commit=False,
        retry_backoff_ms=100,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the first join: an empty assignment
            consumer.poll(timeout_ms=100)
        kafka.create_topics([topic], partitions=3)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # the join starts, poll() returns before it ends
            consumer.poll(timeout_ms=0)
            time.sleep(0.05)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not consumer.assignment():
            if finish_pending_join:
                consumer.finish_pending_join()
            consumer.poll(timeout_ms=200)
        return {tp.partition for tp in consumer.assignment()}
    finally:
        consumer.close(autocommit=False)


def test_a_join_kafka_python_leaves_in_flight_is_completed(kafka: KafkaBroker) -> None:
    assert joined_after_topic_appears(kafka, finish_pending_join=False) == set()  # the race, every time
    assert joined_after_topic_appears(kafka, finish_pending_join=True) == {0, 1, 2}
