"""Everything the consumer is configured with, each setting declared once (`ingestion-consumer -h` lists
them with their variables and defaults)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ingestion_observability.consumer.pipeline import BatchLimits
from ingestion_observability.consumer.staging import StagingLimits
from ingestion_observability.settings import CommonSettings, setting


@dataclass(frozen=True)
class ConsumerConfig(CommonSettings):
    group_id: str = setting("--group-id", "KAFKA_GROUP_ID", "ingestion-consumer-group", "consumer group")
    session_timeout_ms: int = setting(
        "--session-timeout-ms",
        "KAFKA_SESSION_TIMEOUT_MS",
        45_000,
        "a crashed consumer's partitions wait this long before another member takes them",
        type=int,
    )
    dlq_topic: str = setting("--dlq-topic", "KAFKA_DLQ_TOPIC", "", "dead-letter topic; empty: <topic>.dlq")
    state_topic: str = setting(
        "--state-topic", "KAFKA_STATE_TOPIC", "", "compacted changelog of the counts; empty: <topic>.state"
    )
    transactional_id: str = setting(
        "--transactional-id",
        "KAFKA_TRANSACTIONAL_ID",
        "",
        "transactional id, stable per replica (the pod name); empty: <group>-<host>-<pid>",
    )
    transaction_timeout_ms: int = setting(
        "--transaction-timeout-ms",
        "KAFKA_TRANSACTION_TIMEOUT_MS",
        10_000,
        "a crashed process's open transaction blocks its partitions' offsets this long at most",
        type=int,
    )
    rebuild_state: bool = setting(
        "--rebuild-state",
        "REBUILD_STATE",
        False,
        "recount the partitions whose state is refused (unreadable changelog) from the topic's start",
        boolean=True,
    )
    loki_url: str = setting("--loki-url", "LOKI_URL", "http://localhost:3100", "Loki base URL")
    loki_tenant: str | None = setting(
        "--loki-tenant", "LOKI_TENANT_ID", None, "X-Scope-OrgID for a multi-tenant Loki"
    )
    loki_username: str | None = setting("--loki-username", "LOKI_USERNAME", None, "basic-auth user for Loki")
    loki_job: str = setting(
        "--loki-job", "LOKI_JOB", "ingestion-logs", "value of the `job` label of the streams"
    )
    metrics_port: int = setting(
        "--metrics-port", "METRICS_PORT", 8000, "port of /metrics, /healthz, /readyz", type=int
    )
    metrics_address: str = setting(
        "--metrics-address", "METRICS_ADDRESS", "0.0.0.0", "address the HTTP server binds"
    )
    shutdown_seconds: float = setting(
        "--shutdown-seconds",
        "SHUTDOWN_SECONDS",
        8.0,
        "on SIGTERM, how long the batches in flight may take to be stored and committed",
        type=float,
    )
    lag_interval_seconds: float = setting(
        "--lag-interval-seconds",
        "LAG_INTERVAL_SECONDS",
        5.0,
        "how often kafka_consumer_lag is read from the brokers",
        type=float,
    )
    # A password only from the environment (a Secret), never from a flag visible in `ps`: cli.config_from.
    loki_password: str | None = None
    limits: StagingLimits = field(default_factory=StagingLimits)
    batches: BatchLimits = field(default_factory=BatchLimits)

    def __post_init__(self) -> None:
        for name, suffix in (("dlq_topic", "dlq"), ("state_topic", "state")):
            if not getattr(self, name):
                object.__setattr__(self, name, f"{self.topic}.{suffix}")
