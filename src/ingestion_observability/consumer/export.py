"""/metrics of the business series: a prometheus-client Collector over the committed states this process owns.

Nothing is kept in prometheus-client's own metric objects: every scrape reads the owned partitions' states,
so a revoked partition's series leave /metrics at once, and a restored one continues at its value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import accumulate

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from ingestion_observability import catalog
from ingestion_observability.consumer.state import BOUNDS, ObjetState, PartitionState

LE = {name: [*(floatToGoString(b) for b in bounds), "+Inf"] for name, bounds in BOUNDS.items()}  # type: ignore[no-untyped-call]


class StateCollector(Collector):
    def __init__(self, owned: Callable[[], Iterable[PartitionState]]) -> None:
        self._owned = owned

    def collect(self) -> Iterator[Metric]:
        # A snapshot of whole, committed states (the loop replaces them, never edits them).
        states: list[ObjetState] = [s for p in list(self._owned()) for s in list(p.committed.values())]
        runs = CounterMetricFamily(catalog.RUNS.name, catalog.RUNS.help, labels=catalog.RUN_LABELS)
        failures = CounterMetricFamily(catalog.FAILURES.name, catalog.FAILURES.help, labels=catalog.OBJET)
        last_run = GaugeMetricFamily(catalog.LAST_RUN.name, catalog.LAST_RUN.help, labels=catalog.OBJET)
        status = GaugeMetricFamily(catalog.LAST_STATUS.name, catalog.LAST_STATUS.help, labels=catalog.OBJET)
        histograms = {
            f.name: HistogramMetricFamily(f.name, f.help, labels=catalog.OBJET) for f in catalog.HISTOGRAMS
        }
        for state in states:
            objet = [state.source, state.objet]
            for (etat, entreprise, zone), count in state.runs.items():
                runs.add_metric([state.source, etat, state.objet, entreprise, zone], count)
            failures.add_metric(objet, state.failures)  # at 0 from the first run: rates see the first one
            for name, family in histograms.items():
                hist = state.histograms[name]
                family.add_metric(
                    objet, list(zip(LE[name], accumulate(hist.counts), strict=True)), hist.total
                )
            if state.last_etat:
                last_run.add_metric(objet, state.last_end)
                status.add_metric(objet, 1.0 if state.last_etat == "SUCCESS" else 0.0)
        yield runs
        yield failures
        yield from histograms.values()
        yield last_run
        yield status
