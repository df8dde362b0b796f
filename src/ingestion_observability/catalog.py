"""Every metric the consumer exports, its labels and buckets, and the Loki stream labels: declared once.

The consumer exports these (consumer/export.py), the renderer queries them (render/records.py), the chart
relabels them (`BUSINESS_RELABELINGS`): none of them retypes a name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MIB = 1024 * 1024


@dataclass(frozen=True)
class Family:
    name: str  # the family name; a counter's samples end in _total
    kind: Literal["counter", "gauge", "histogram"]
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()

    @property
    def sample(self) -> str:
        """The name PromQL selects (a counter's `_total`; a histogram's base name)."""
        return f"{self.name}_total" if self.kind == "counter" else self.name


OBJET = ("source", "objet")
RUN_LABELS = ("source", "etat", "objet", "entreprise", "zone")

# --- business series: one owner per (source, objet), the consumer holding its Kafka partition -------------
RUNS = Family("ingestion_runs", "counter", "Ingestion job runs, by outcome (etat SUCCESS/FAILED)", RUN_LABELS)
FAILURES = Family("ingestion_failures", "counter", "FAILED ingestion runs", OBJET)
# Fitted to the sample (1-3 s, 0.1-0.5 s cpu, 5-20 MB) with room for the alert thresholds (60 s, 150 MB).
DURATION = Family(
    "ingestion_duration_seconds",
    "histogram",
    "Run duration (Duree secondes)",
    OBJET,
    (0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 120, 300, 600),
)
CPU = Family(
    "ingestion_cpu_usage_seconds",
    "histogram",
    "CPU time of a run (cpu_time)",
    OBJET,
    (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
)
MEMORY = Family(
    "ingestion_memory_usage_bytes",
    "histogram",
    "Memory used by a run (memory_used)",
    OBJET,
    tuple(float(n * MIB) for n in (1, 2, 5, 10, 20, 50, 100, 150, 250, 500, 1024)),
)
RECOVERY = Family(
    "ingestion_recovery_seconds",
    "histogram",
    "Time from a FAILED run to the next SUCCESS of the same objet, event time (MTTR)",
    OBJET,
    (60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400, 259200),
)
LAST_RUN = Family(
    "ingestion_last_run_timestamp",
    "gauge",
    "End time of the newest run of an objet, epoch seconds (event time)",
    OBJET,
)
LAST_STATUS = Family(
    "ingestion_last_run_status",
    "gauge",
    "Outcome of the newest run of an objet by event time: 1 SUCCESS, 0 FAILED",
    OBJET,
)
# Runs reported over OpenLineage: a START opens a run, its COMPLETE / FAIL / ABORT ends it.
IN_PROGRESS = Family(
    "ingestion_runs_in_progress",
    "gauge",
    "Runs started (OpenLineage START) and not ended yet, per objet reported over OpenLineage",
    OBJET,
)
OLDEST_OPEN = Family(
    "ingestion_oldest_open_run_timestamp",
    "gauge",
    "Start time of the objet's oldest run still open, epoch seconds (event time)",
    OBJET,
)
# The newest failure's error, for the alerts' notifications: one series per objet (a new failure replaces
# it), its description cut to DESCRIPTION_LABEL_MAX characters so a label stays small.
DESCRIPTION_LABEL_MAX = 300
LAST_FAILURE = Family(
    "ingestion_last_failure_info",
    "gauge",
    "The newest FAILED run of an objet by event time: its description (truncated) as a label, its end "
    "time (epoch seconds) as the value",
    (*OBJET, "description"),
)
# Rows written (a connector's `Lignes`, OpenLineage's outputStatistics.rowCount): only runs that report them
# count, so both series are absent for an objet until a run of it reports rows (unknown is not 0).
ROWS = Family(
    "ingestion_rows",
    "counter",
    "Rows written by the runs of an objet that report them (Lignes, OpenLineage outputStatistics.rowCount)",
    OBJET,
)
LAST_RUN_ROWS = Family(
    "ingestion_last_run_rows",
    "gauge",
    "Rows written by the newest run of an objet, by event time, among those that report rows",
    OBJET,
)
BUSINESS = (
    RUNS,
    FAILURES,
    DURATION,
    CPU,
    MEMORY,
    RECOVERY,
    LAST_RUN,
    LAST_STATUS,
    LAST_FAILURE,
    IN_PROGRESS,
    OLDEST_OPEN,
    ROWS,
    LAST_RUN_ROWS,
)
HISTOGRAMS = (DURATION, CPU, MEMORY, RECOVERY)

# --- the consumer's self-metrics: per process, they keep `pod` and `instance` ---------------------------
SELF_PREFIX = "ingestion_consumer_"
# 1 while the process would answer /readyz with 200: the alerts' inhibitions read it
CONSUMER_READY = Family(
    f"{SELF_PREFIX}ready", "gauge", "1 when this consumer is ready (as /readyz), else 0", ()
)
KAFKA_LAG = Family(
    "kafka_consumer_lag",
    "gauge",
    "Messages between the consumer's position and the end of the partition",
    ("topic", "partition"),
)

# Loki stream labels of a run's line (low cardinality); objet travels as structured metadata.
STREAM_LABELS = ("source", "etat", "entreprise", "zone")


# Business series lose `pod` and `instance` at scrape time, so a series that moves to another consumer (a
# rebalance, a rollout) continues as the same series; the self-metrics and kafka_consumer_lag keep them.
# RE2 has no negative lookahead: mark the self-metrics first, then blank both labels of the others.
def _blank_on_business(label: str) -> dict[str, object]:
    return {
        "sourceLabels": ["__name__", "__tmp_self_metric"],
        "regex": "ingestion_.*;",
        "targetLabel": label,
        "replacement": "",
    }


BUSINESS_RELABELINGS: tuple[dict[str, object], ...] = (
    {
        "sourceLabels": ["__name__"],
        "regex": f"{SELF_PREFIX}.*",
        "targetLabel": "__tmp_self_metric",
        "replacement": "true",
    },
    _blank_on_business("pod"),
    _blank_on_business("instance"),
    {"regex": "__tmp_self_metric", "action": "labeldrop"},
)


def prometheus_relabel_configs() -> list[dict[str, object]]:
    """BUSINESS_RELABELINGS in Prometheus' own config syntax (snake_case keys), for a local Prometheus."""
    keys = {"sourceLabels": "source_labels", "targetLabel": "target_label"}
    return [{keys.get(k, k): v for k, v in rule.items()} for rule in BUSINESS_RELABELINGS]
