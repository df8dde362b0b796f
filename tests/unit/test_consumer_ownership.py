"""The consumer loop's ownership paths on a scripted fake Kafka (tests/unit/fakes.py): rebalances inside
poll, memberships lost before and during a commit, refused commits, a rebalance while a batch is retried, a
predecessor committing late, unknown outcomes, bounded transactions, and what /metrics may export."""

from __future__ import annotations

import time
from collections.abc import Callable

from kafka.errors import CommitFailedError
from prometheus_client import CollectorRegistry

from ingestion_observability.consumer.config import ConsumerConfig
from ingestion_observability.consumer.delivery import Delivery, Topics
from ingestion_observability.consumer.health import HealthState
from ingestion_observability.consumer.loki import Outcome
from ingestion_observability.consumer.loop import IngestionConsumer
from ingestion_observability.consumer.metrics import ConsumerMetrics
from ingestion_observability.consumer.pipeline import BatchLimits
from tests.unit.fakes import GROUP, Broker, Changelog, Member, Producers, Sink
from tests.unit.test_consumer_staging import event

TOPIC = "runs"
ALL = {0, 1, 2}


class Harness:
    def __init__(
        self,
        broker: Broker,
        sink: Sink | None = None,
        batches: BatchLimits | None = None,
        session_timeout_ms: int = 10_000,
        transaction_timeout: float = 30.0,
    ) -> None:
        self.broker = broker
        self.member = Member(broker)
        self.producers = Producers(broker)
        self.sink = sink or Sink()
        delivery = Delivery(
            Topics(TOPIC, f"{TOPIC}.dlq", f"{TOPIC}.state", GROUP),
            self.sink,
            self.producers,
            transaction_timeout=transaction_timeout,
        )
        config = ConsumerConfig(
            "fake:9092",
            topic=TOPIC,
            group_id=GROUP,
            batches=batches or BatchLimits(max_seconds=0.0),
            session_timeout_ms=session_timeout_ms,
        )
        self.metrics = ConsumerMetrics(CollectorRegistry())
        self.consumer = IngestionConsumer(
            config, self.metrics, HealthState(), self.member, Changelog(broker), delivery
        )
        self.consumer.subscribe()
        self.member.heartbeat_at = time.monotonic()

    def steps(self, until: Callable[[], bool], what: str, limit: float = 10.0) -> None:
        deadline = time.monotonic() + limit
        while not until():
            assert time.monotonic() < deadline, f"{what}: not reached; Kafka calls {self.broker.calls}"
            self.consumer.step()
            time.sleep(0.002)

    def exported_runs(self) -> int:
        return sum(sum(s.runs.values()) for p in self.consumer.exported() for s in p.committed.values())

    def served(self) -> set[int]:
        return set(self.consumer.ownership.served)


def published(broker: Broker, per_partition: int, first: int = 0) -> int:
    """`per_partition` new runs (one objet each) on every partition; returns how many in all."""
    for partition in range(broker.partitions):
        broker.publish(
            partition,
            [event(at=n, objet=f"objet-{partition}-{n % 7}") for n in range(first, first + per_partition)],
        )
    return broker.partitions * per_partition


def committed_runs(broker: Broker) -> int:
    """What a fresh member would restore: the runs in the committed changelog."""
    restored, refused = Changelog(broker).restore(sorted(broker.changelog))
    assert not refused
    return sum(sum(s.runs.values()) for p in restored.values() for s in p.committed.values())


def joined(harness: Harness, partitions: set[int] = ALL) -> None:
    harness.member.script.append(lambda: harness.member.rebalance(partitions))
    harness.steps(lambda: harness.served() == partitions, "partitions served")


def test_listeners_only_record_and_the_loop_takes_in_order() -> None:
    broker = Broker(TOPIC)
    total = published(broker, 20)
    h = Harness(broker)
    joined(h)  # the fake raises if a listener makes a blocking consumer call
    calls = broker.calls
    taken = calls[: calls.index("restore [0, 1, 2]") + 4]
    assert taken == [
        "init_transactions",  # ends whatever transaction an older producer of our id left open
        "committed 0",
        "committed 1",
        "committed 2",
        "restore [0, 1, 2]",  # after the offsets: a transaction ending in between is in both or neither
        "seek 0@0",
        "seek 1@0",
        "seek 2@0",
    ]
    h.steps(lambda: h.exported_runs() == total, "every run exported")
    assert committed_runs(broker) == total and broker.committed == {0: 20, 1: 20, 2: 20}


def test_no_commit_once_the_membership_is_reset_then_taken_again_from_kafka() -> None:
    broker = Broker(TOPIC)
    first = published(broker, 10)
    h = Harness(broker)
    joined(h)
    h.steps(lambda: h.exported_runs() == first, "first runs committed")
    published(broker, 10, first=10)
    h.consumer.step()  # staged and pushed, not committed yet
    assert h.consumer.pipeline.batch.messages or h.consumer.pipeline._inflight
    # kafka-python's heartbeat finds the session gone; another member owns the partitions now
    h.member.generation, h.member.member_id = -1, ""
    broker.generation, broker.owner = broker.generation + 1, "m-other"
    assert h.consumer.exported() == []  # the partitions may be another member's: nothing shown
    commits, mark = len(broker.transactions), len(broker.calls)
    assert not h.consumer.pipeline.flush()
    assert len(broker.transactions) == commits and "begin" not in broker.calls[mark:]
    assert h.served() == set() and h.metrics.transactions.labels("lost")._value.get() == 1
    for _ in range(5):  # waiting for the group: no restore, no seek, no offsets read
        h.consumer.step()
    assert broker.calls[mark:] == []
    h.member.script.append(lambda: h.member.lose(then={0, 2}))
    h.steps(lambda: h.served() == {0, 2}, "assigned again")
    h.steps(lambda: h.exported_runs() == 2 * 20, "partitions 0 and 2 exact")
    assert broker.committed[0] == broker.committed[2] == 20 and broker.committed[1] == 10


def test_a_generation_reset_in_the_middle_of_a_commit_loses_the_partitions() -> None:
    broker = Broker(TOPIC)
    h = Harness(broker)
    joined(h)
    total = published(broker, 10)

    def taken_over() -> None:  # during send_offsets_to_transaction: the group moves on without us
        broker.generation, broker.owner = broker.generation + 1, "m-other"
        h.member.generation, h.member.member_id = -1, ""

    h.producers.made[-1].during_offsets = taken_over
    h.steps(lambda: h.metrics.transactions.labels("lost")._value.get() == 1, "the commit refused")
    assert broker.transactions == [] and broker.committed == {}  # CommitFailedError: aborted
    assert h.served() == set() and h.consumer.exported() == []
    h.producers.made[-1].during_offsets = lambda: None
    h.member.script.append(lambda: h.member.lose(then=ALL))
    h.steps(lambda: h.exported_runs() == total, "exact once assigned again")
    assert committed_runs(broker) == total


def test_a_commit_refused_by_the_group_is_not_retried() -> None:
    broker = Broker(TOPIC)
    h = Harness(broker)
    joined(h)
    published(broker, 5)
    refusals = 0

    def refuse() -> None:
        nonlocal refusals
        refusals += 1
        raise CommitFailedError("UNKNOWN_MEMBER_ID")

    h.producers.made[-1].during_offsets = refuse
    h.steps(lambda: refusals == 1 and not h.consumer.pipeline._inflight, "the commit refused")
    for _ in range(20):
        h.consumer.step()
    assert refusals == 1 and h.served() == set()  # lost: waits for the group, no retry of the same batch


def test_a_rebalance_while_a_batch_is_retried_seeks_every_retained_partition() -> None:
    broker = Broker(TOPIC)
    h = Harness(broker, Sink())
    joined(h)
    first = published(broker, 10)
    h.steps(lambda: h.exported_runs() == first, "first runs committed")
    h.sink.outcomes = [Outcome.RETRY] * 3
    total = first + published(broker, 10, first=10)
    h.consumer.step()  # staged and pushing: the store answers 503
    h.member.script.append(lambda: h.member.rebalance(ALL))  # inside the retry's wait: every partition kept
    assert not h.consumer.pipeline.flush()  # the batch belongs to an older epoch: abandoned
    assert broker.committed == {0: 10, 1: 10, 2: 10}
    h.steps(lambda: h.exported_runs() == total, "exact after the rebalance")
    assert {"seek 0@10", "seek 1@10", "seek 2@10"} <= set(broker.calls)  # kept positions were not trusted
    assert committed_runs(broker) == total


def test_a_predecessor_committing_late_is_in_both_the_offsets_and_the_state() -> None:
    broker = Broker(TOPIC)
    half = published(broker, 10)
    predecessor = Harness(broker)
    joined(predecessor)
    predecessor.producers.made[-1].late = True  # its transactions end when someone next reads offsets
    predecessor.steps(lambda: bool(broker.pending), "the predecessor's transaction in flight")
    predecessor.member.heartbeat_at = predecessor.member.generation = -1  # frozen, then gone
    heir = Harness(broker)
    total = half + published(broker, 10, first=10)
    joined(heir)
    heir.steps(lambda: heir.exported_runs() == total, "exact: the late transaction read before the state")
    assert committed_runs(broker) == total


def test_an_unknown_outcome_makes_a_new_producer_before_reading_kafka() -> None:
    broker = Broker(TOPIC)
    h = Harness(broker, transaction_timeout=0.2)
    joined(h)
    stuck = h.producers.made[-1]
    stuck.hanging = True
    total = published(broker, 10)
    h.steps(lambda: h.metrics.transactions.labels("reset")._value.get() == 1, "the outcome unknown")
    mark = len(broker.calls)
    h.steps(lambda: h.exported_runs() == total, "exact after the reset")
    after = broker.calls[mark:]
    assert after.index("init_transactions") < after.index("committed 0") < after.index("restore [0, 1, 2]")
    assert len(h.producers.made) == 2
    stuck.hang.set()


def test_transactions_are_bounded_by_their_changelog_records() -> None:
    broker = Broker(TOPIC, partitions=1)
    broker.publish(0, [event(at=n, objet=f"objet-{n}") for n in range(35)])
    h = Harness(broker, batches=BatchLimits(max_seconds=60.0, max_changelog_records=10))
    joined(h, {0})
    h.steps(lambda: h.exported_runs() == 30, "three full batches")
    assert broker.transactions == [10, 10, 10]
    assert h.consumer.pipeline.flush() and broker.transactions == [10, 10, 10, 5]


def test_nothing_is_exported_while_the_membership_is_unconfirmed() -> None:
    broker = Broker(TOPIC)
    total = published(broker, 5)
    h = Harness(broker, session_timeout_ms=300)
    joined(h)
    h.steps(lambda: h.exported_runs() == total, "exported")
    time.sleep(0.4)  # no heartbeat accepted for a session timeout: a thawed process's view
    assert h.consumer.exported() == []
    h.member.heartbeat_at = time.monotonic()  # the coordinator accepted one again
    assert h.exported_runs() == total
    h.member.generation = -1
    assert h.consumer.exported() == []


def test_an_empty_assignment_reads_the_topic_metadata_again() -> None:
    broker = Broker(TOPIC, metadata_known=False)
    h = Harness(broker)
    h.consumer.step()
    assert h.member.metadata_refreshes == 1  # kafka-python alone would wait for metadata_max_age_ms
    broker.metadata_known = True
    h.consumer._next_metadata = 0.0
    h.consumer.step()
    assert h.member.metadata_refreshes == 1  # partitions known, none for us: a legitimately idle member
