"""The changelog topic: created at start-up when missing, compacted, with the input's partition count."""

from __future__ import annotations

import logging
from collections.abc import Callable

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

log = logging.getLogger(__name__)


class StateTopicError(RuntimeError):
    """The changelog topic cannot hold the state of the input's partitions one to one."""


def ensure_state_topic(
    bootstrap_servers: str, topic: str, state_topic: str, wait: Callable[[str], bool]
) -> bool:
    """Create the changelog topic if needed, once the input topic exists (`wait(reason)` is called until
    then: a consumer started before its topic waits, it does not crash-loop). False if `wait` gave up."""
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap_servers.split(","), client_id="ingestion-consumer-admin"
    )
    try:
        while True:
            described = {
                t["name"]: t for t in admin.describe_topics([topic, state_topic]) if not t["error_code"]
            }
            if topic in described and described[topic]["partitions"]:
                break
            if not wait(f"input topic {topic} to exist"):
                return False
        partitions = len(described[topic]["partitions"])
        if state_topic not in described:
            replicas = len(described[topic]["partitions"][0]["replica_nodes"])
            config = {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}
            try:
                admin.create_topics([NewTopic(state_topic, partitions, replicas, topic_configs=config)])
                log.info("created the changelog topic %s (%d partitions, compacted)", state_topic, partitions)
            except TopicAlreadyExistsError:
                pass  # another consumer created it meanwhile
            return True
        state_partitions = len(described[state_topic]["partitions"])
        if state_partitions != partitions:
            raise StateTopicError(
                f"{state_topic} has {state_partitions} partitions but {topic} has {partitions}: each input "
                "partition's state lives in the changelog partition of the same number"
            )
        return True
    finally:
        admin.close()
