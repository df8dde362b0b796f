"""/metrics of the business series: a prometheus-client Collector over the committed states this process owns.

Nothing is kept in prometheus-client's own metric objects: every scrape reads the owned partitions' states,
so a revoked partition's series leave /metrics at once, and a restored one continues at its value.

`collect()` is the Collector (any registry can take it); `text()` serves the same bytes for a scrape from
each state's lines, cached on the state: a committed state never changes (staging works on a copy), so its
lines stay valid until the next commit replaces it, whereas prometheus-client formats every sample of every
scrape (docs/benchmarks.md: scrape time); a unit test holds `text()` equal to its output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import accumulate

from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from ingestion_observability import catalog
from ingestion_observability.consumer.state import BOUNDS, ObjetState, PartitionState

LE = {name: [*map(floatToGoString, bounds), "+Inf"] for name, bounds in BOUNDS.items()}
Sample = tuple[str, tuple[tuple[str, str], ...], float]  # name, labels, value


def samples(state: ObjetState) -> dict[str, list[Sample]]:
    """The series of one (source, objet), per family name (the catalog's order)."""
    objet: tuple[tuple[str, str], ...] = (("source", state.source), ("objet", state.objet))
    out: dict[str, list[Sample]] = {
        catalog.RUNS.name: [
            (
                catalog.RUNS.sample,
                tuple(zip(catalog.RUN_LABELS, (state.source, e, state.objet, ent, z), strict=True)),
                n,
            )
            for (e, ent, z), n in state.runs.items()
        ],
        # at 0 from the first run: rates see the first failure
        catalog.FAILURES.name: [(catalog.FAILURES.sample, objet, state.failures)],
    }
    for family in catalog.HISTOGRAMS:
        hist = state.histograms[family.name]
        rows: list[Sample] = [
            (f"{family.name}_bucket", (*objet, ("le", le)), float(count))
            for le, count in zip(LE[family.name], accumulate(hist.counts), strict=True)
        ]
        rows += [
            (f"{family.name}_count", objet, float(sum(hist.counts))),
            (f"{family.name}_sum", objet, hist.total),
        ]
        out[family.name] = rows
    last = state.last_etat
    out[catalog.LAST_RUN.name] = [(catalog.LAST_RUN.name, objet, state.last_end)] if last else []
    out[catalog.LAST_STATUS.name] = (
        [(catalog.LAST_STATUS.name, objet, float(last == "SUCCESS"))] if last else []
    )
    failure = state.last_failure
    out[catalog.LAST_FAILURE.name] = (
        []
        if failure is None
        else [(catalog.LAST_FAILURE.name, (*objet, ("description", failure[1])), failure[0])]
    )
    opened = state.open_runs  # only objets reported over OpenLineage have these two
    out[catalog.IN_PROGRESS.name] = [] if opened is None else [(catalog.IN_PROGRESS.name, objet, len(opened))]
    out[catalog.OLDEST_OPEN.name] = (
        [(catalog.OLDEST_OPEN.name, objet, min(opened.values()))] if opened else []
    )
    # rows: only objets some run of which reported them (never reported: unknown, no series)
    total, last_rows = state.rows_total, state.last_rows
    out[catalog.ROWS.name] = [] if total is None else [(catalog.ROWS.sample, objet, float(total))]
    out[catalog.LAST_RUN_ROWS.name] = (
        [] if last_rows is None else [(catalog.LAST_RUN_ROWS.name, objet, float(last_rows[1]))]
    )
    return out


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _line(name: str, labels: tuple[tuple[str, str], ...], value: float) -> str:
    pairs = ",".join(f'{key}="{_escape(text)}"' for key, text in sorted(labels))  # as prometheus-client
    return f"{name}{{{pairs}}} {floatToGoString(value)}\n"  # type: ignore[no-untyped-call]


def _lines(rows: list[Sample]) -> str:
    return "".join(_line(*row) for row in rows)


HEADERS = {f.name: f"# HELP {f.sample} {f.help}\n# TYPE {f.sample} {f.kind}\n" for f in catalog.BUSINESS}


class StateCollector(Collector):
    def __init__(self, owned: Callable[[], Iterable[PartitionState]]) -> None:
        self._owned = owned

    def _states(self) -> list[ObjetState]:
        # A snapshot of whole, committed states (the loop replaces them, never edits them).
        return [s for p in list(self._owned()) for s in list(p.committed.values())]

    def collect(self) -> Iterator[Metric]:
        families = {f.name: Metric(f.name, f.help, f.kind) for f in catalog.BUSINESS}
        for state in self._states():
            for name, rows in samples(state).items():
                for sample, labels, value in rows:
                    families[name].add_sample(sample, dict(labels), value)
        yield from families.values()

    def text(self) -> bytes:
        """The text exposition of `collect()`, from each state's cached lines."""
        per_family: dict[str, list[str]] = {name: [HEADERS[name]] for name in HEADERS}
        for state in self._states():
            lines = state.exposition
            if lines is None:
                lines = state.exposition = {name: _lines(rows) for name, rows in samples(state).items()}
            for name, text in lines.items():
                per_family[name].append(text)
        return "".join(text for texts in per_family.values() for text in texts).encode()
