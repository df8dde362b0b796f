"""The pure staging step: Kafka messages of one partition → a staged batch (new objet states, Loki lines,
dead letters). No Kafka, no I/O: what it stages becomes visible only once the batch is committed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import orjson

from ingestion_observability import catalog
from ingestion_observability.consumer.loki import Entry, LokiBatch
from ingestion_observability.consumer.state import BOUNDS, ObjetState, PartitionState
from ingestion_observability.event import MAX_MESSAGE_BYTES, InvalidRecord, Run, normalise, parse_event
from ingestion_observability.openlineage import (
    LineageEvent,
    is_run_event,
    lineage_line,
    parse_run_event,
    to_run,
)
from ingestion_observability.settings import setting

DURATION, CPU, MEMORY, RECOVERY = (f.name for f in catalog.HISTOGRAMS)
MAX_ROWS_TOTAL = 2**64 - 1


class Message(Protocol):
    """What staging reads of a Kafka record (kafka-python's ConsumerRecord has these)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None


@dataclass(slots=True)
class DeadLetter:
    value: bytes | None
    key: bytes | None
    topic: str
    partition: int
    offset: int
    error: str

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            ("error", self.error.encode()),
            ("source.topic", self.topic.encode()),
            ("source.partition", str(self.partition).encode()),
            ("source.offset", str(self.offset).encode()),
        ]


@dataclass
class StagedBatch:
    """Everything a batch changes, applied only after its transaction commits."""

    loki: LokiBatch
    epoch: int = 0  # the ownership epoch it was staged in (ownership.py): committed only in that epoch
    # per input partition: the new versions of the objets the batch touched
    states: dict[int, dict[tuple[str, str], ObjetState]] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    offsets: dict[int, int] = field(default_factory=dict)  # next offset to commit per partition
    tombstones: dict[int, list[bytes]] = field(default_factory=dict)  # changelog keys to forget (rebuild)
    messages: int = 0
    processed: int = 0
    duplicates: int = 0
    invalid: int = 0
    folded: Counter[str] = field(default_factory=Counter)
    changelog_records: int = 0  # one per (source, objet) touched
    changelog_bytes: int = 0  # their estimated size (bounds the transaction, see pipeline.BatchLimits)

    @property
    def empty(self) -> bool:
        return not self.messages and not self.tombstones


@dataclass(frozen=True)
class StagingLimits:
    max_message_bytes: int = setting(
        "--max-message-bytes",
        "MAX_MESSAGE_BYTES",
        MAX_MESSAGE_BYTES,
        "larger messages are dead-lettered",
        type=int,
    )
    max_objets_per_source: int = setting(
        "--max-objets-per-source",
        "MAX_OBJETS_PER_SOURCE",
        500,
        "distinct objet label values per source before folding into 'other'",
        type=int,
    )
    recent_keys_per_objet: int = setting(
        "--recent-keys-per-objet",
        "RECENT_KEYS_PER_OBJET",
        512,
        "run keys remembered per objet (in its state) to count a redelivered or replayed run once",
        type=int,
    )


def stage(
    batch: StagedBatch, partition: PartitionState, messages: Sequence[Message], limits: StagingLimits
) -> None:
    """Stage messages of one partition, in order (the hot path)."""
    if not messages:
        return
    touched = batch.states.setdefault(partition.partition, {})
    loads, add_line = orjson.loads, batch.loki.add
    batch.messages += len(messages)
    for message in messages:
        value = message.value
        try:
            if value is None:
                raise InvalidRecord("empty message (no value)")
            if len(value) > limits.max_message_bytes:
                raise InvalidRecord(f"{len(value)} bytes exceeds the {limits.max_message_bytes} limit")
            obj: Any = loads(value)
            lineage = parse_run_event(obj) if is_run_event(obj) else None
            if lineage is None:
                if type(obj) is dict and "@version" not in obj and "Source" in obj:
                    obj = normalise(obj)  # a raw record published straight by a connector
                    line = orjson.dumps(obj).decode()
                else:
                    line = value.decode()
                run = parse_event(obj)
        except (orjson.JSONDecodeError, InvalidRecord, UnicodeDecodeError) as exc:
            error = f"not valid JSON: {exc}" if isinstance(exc, orjson.JSONDecodeError) else str(exc)
            batch.invalid += 1
            batch.dead_letters.append(
                DeadLetter(value, message.key, message.topic, message.partition, message.offset, error)
            )
            continue
        source, objet = (run.source, run.objet) if lineage is None else (lineage.source, lineage.objet)
        label, folded = partition.label(source, objet, limits.max_objets_per_source)
        key = (source, label)
        state = touched.get(key)
        if state is None:
            latest = partition.latest(key)
            state = ObjetState.new(source, label) if latest is None else latest.evolve()
            touched[key] = partition.staged[key] = state
            batch.changelog_records += 1
            batch.changelog_bytes += estimated_size(state)
        # a run's key: its start (connector records) or its runId (OpenLineage); a folded state holds several
        # objets, so there the key names the objet too
        run_key = run.debut if lineage is None else f"openlineage:{lineage.run_id}"
        if folded:
            run_key = f"{objet}/{run_key}"
        if run_key in state.recent:
            batch.duplicates += 1
            continue
        if lineage is not None:
            if not lineage.is_end:  # a START opens the run; RUNNING and OTHER change nothing
                _open(state, lineage, limits.recent_keys_per_objet)
                batch.processed += 1
                continue
            run, line = _close(state, lineage)
        if folded:
            batch.folded[source] += 1
        observe(state, run, run_key, limits.recent_keys_per_objet)
        batch.processed += 1
        add_line(
            (run.source, run.etat, run.entreprise, run.zone),
            Entry(run.fin, message.timestamp / 1000.0, line, run.objet),
        )
    batch.offsets[partition.partition] = messages[-1].offset + 1


def failure_label(description: str) -> str:
    """A description as a label value: bounded, its cut marked."""
    limit = catalog.DESCRIPTION_LABEL_MAX
    return description if len(description) <= limit else description[: limit - 1] + "…"


def estimated_size(state: ObjetState) -> int:
    """About the size of a state's changelog record: histograms and labels, its run keys, its last error."""
    failure = 0 if state.last_failure is None else len(state.last_failure[1])
    return 1024 + len(state.source) + len(state.objet) + failure + 40 * len(state.recent)


def _open(state: ObjetState, start: LineageEvent, max_open: int) -> None:
    """A START: the run is open until its end event (a repeated START keeps the first one's time)."""
    opened = state.open_runs = {} if state.open_runs is None else state.open_runs
    opened.setdefault(start.run_id, start.event_time)
    if len(opened) > max_open:  # bounded: the oldest open run is forgotten (its end then lasts 0 s)
        del opened[next(iter(opened))]


def _close(state: ObjetState, end: LineageEvent) -> tuple[Run, str]:
    """An end event: the run it closes (paired with its START when this partition saw it) and its line."""
    opened = state.open_runs = {} if state.open_runs is None else state.open_runs
    started = opened.pop(end.run_id, None)
    start = None if started is None else replace(end, event_type="START", event_time=started)
    run = to_run(start, end)
    return run, lineage_line(end, run)


def observe(state: ObjetState, run: Run, run_key: str, recent_keys: int) -> None:
    """One run's effect on its objet's state (MTTR and the last run follow event time, not arrival)."""
    runs_key = (run.etat, run.entreprise, run.zone)
    state.runs[runs_key] = state.runs.get(runs_key, 0) + 1
    hist = state.histograms
    hist[DURATION].observe(BOUNDS[DURATION], run.duree)
    # absent (an OpenLineage run without the resources facet) is not observed: never read as 0
    if run.cpu is not None:
        hist[CPU].observe(BOUNDS[CPU], run.cpu)
    if run.memory is not None:
        hist[MEMORY].observe(BOUNDS[MEMORY], run.memory)
    failed = run.etat == "FAILED"
    newest = run.fin >= state.last_end
    if failed:
        state.failures += 1
        # the outage started at its first failure, unless a newer success already ended it
        if state.failed_since is None and (newest or state.last_etat != "SUCCESS"):
            state.failed_since = run.fin
        if state.last_failure is None or run.fin >= state.last_failure[0]:
            state.last_failure = (run.fin, failure_label(run.description))
    elif state.failed_since is not None and run.fin >= state.failed_since:
        hist[RECOVERY].observe(BOUNDS[RECOVERY], max(0.0, run.fin - state.failed_since))
        state.failed_since = None
    if newest:  # a late, older run does not move the last run
        state.last_end, state.last_etat = run.fin, run.etat
    rows = run.rows
    if rows is not None:  # a run that does not report rows leaves both as they are: unknown is not 0
        # bounded to what the changelog's JSON integers hold (2**64 - 1), far past where Prometheus'
        # float64 stops being exact (2**53): an absurd total cannot make the state unwritable
        state.rows_total = min((state.rows_total or 0) + rows, MAX_ROWS_TOTAL)
        if state.last_rows is None or run.fin >= state.last_rows[0]:
            state.last_rows = (run.fin, rows)
    recent = state.recent
    recent[run_key] = None
    if len(recent) > recent_keys:
        del recent[next(iter(recent))]
