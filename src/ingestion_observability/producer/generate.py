"""Realistic generated run records (sources, objets, ~2 % failures, sample-like durations/cpu/memory)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

SOURCES = ("PowerBI", "Efficy", "sharepoint_graph", "EasyProjects", "zohobooks")


def generate_records(
    count: int,
    *,
    sources: int = len(SOURCES),
    objets_per_source: int = 15,
    failure_ratio: float = 0.02,
    start: datetime | None = None,
    seed: int = 42,
) -> Iterator[dict[str, Any]]:
    """`count` raw records, one run every second from `start`; run keys are all distinct."""
    rng = random.Random(seed)
    names = [SOURCES[i] if i < len(SOURCES) else f"source_{i:02d}" for i in range(sources)]
    moment = start or datetime(2025, 9, 15, tzinfo=UTC)
    for number in range(count):
        source = names[number % sources]
        objet = f"objet_{(number // sources) % objets_per_source:03d}"
        failed = rng.random() < failure_ratio
        duration = rng.uniform(1.0, 3.0) if not failed else rng.uniform(5.0, 30.0)
        end = moment + timedelta(seconds=duration)
        yield {
            "ID": number + 1,
            "Entreprise": "akonovia",
            "Zone": "1-Raw",
            "Source": source,
            "Objet": objet,
            "Transformation": f"{source}_extract",
            "Etat": "FAILED" if failed else "SUCCESS",
            "Debut": moment.isoformat(timespec="milliseconds"),
            "Fin": end.isoformat(timespec="milliseconds"),
            "Duree secondes": round(duration, 6),
            "cpu_time": round(rng.uniform(0.1, 0.5), 2),
            "memory_used": rng.randint(5 << 20, 20 << 20),
            "Description": "Timeout: ReadTimeout après 30 s" if failed else "Extraction terminée",
            # rows of a successful run (no draw from `rng`: the other fields stay as they were); a failed
            # run reports none, which is unknown, not 0
            **({} if failed else {"Lignes": 100 + (number * 37) % 4900}),
        }
        moment += timedelta(seconds=1)
