"""docs/benchmarks.md, written from the results files: the last step of `make bench`, or on its own.

    python -m bench.page            # rewrite docs/benchmarks.md from bench/results*.json
    python -m bench.page --check    # exit 1 when it differs from what would be written (a test does the same)

The runs are `bench/results.json` (what `make bench` wrote last) and the kept runs `bench/results-*.json`,
newest first. The prose around their tables is `bench/page-template.md`: edit that, not the page.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.report import eps, headline, markdown, markdown_table, n

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench"
RESULTS = RESULTS_DIR / "results.json"
PAGE = ROOT / "docs" / "benchmarks.md"
TEMPLATE = RESULTS_DIR / "page-template.md"
GLANCE, RUNS = "@@GLANCE@@", "@@RUNS@@"


@dataclass(frozen=True)
class Run:
    path: Path
    results: dict[str, Any]

    @property
    def date(self) -> str:
        return str(self.results["environment"]["date"])

    @property
    def label(self) -> str:
        """What the run was for, from its file name: `results-2026-12-05-after-ownership.json` →
        after-ownership."""
        if self.path.name == "results.json":
            return "the last `make bench`"
        return re.sub(r"^\d{4}-\d{2}-\d{2}-?", "", self.path.stem.removeprefix("results-"))

    @property
    def title(self) -> str:
        return f"{self.date[:10]} {self.label}".strip()


def collect(directory: Path = RESULTS_DIR) -> list[Run]:
    """Every results file of `directory` (results.json and results-*.json), newest first."""
    paths = [
        p
        for p in directory.glob("results*.json")
        if p.name == "results.json" or p.name.startswith("results-")
    ]
    runs = [Run(p, json.loads(p.read_text(encoding="utf-8"))) for p in paths]
    return sorted(runs, key=lambda run: (run.date, run.path.name), reverse=True)


def _of(value: float, limit: float) -> str:
    return f"{value / limit:.2f} of {n(limit)}"


def _consumer(r: dict[str, Any], key: str) -> str | None:
    if key not in r or "raw_poll" not in r:
        return None
    rate = r[key]["events_per_second"]
    return f"{eps(rate)} ({_of(rate, r['raw_poll']['events_per_second'])})"


def _to_raw_producer(r: dict[str, Any], section: dict[str, Any] | None) -> str | None:
    if section is None or "raw_produce" not in r:
        return None
    rate = section["events_per_second"]
    return f"{eps(rate)} ({_of(rate, r['raw_produce']['events_per_second'])})"


def _rss(r: dict[str, Any]) -> str | None:
    peaks = [r[k]["rss_peak_mb"] for k in ("memory", "memory_malloc_tuned") if k in r]
    return " / ".join(f"{p} MB" for p in peaks) or None


def _restore(r: dict[str, Any]) -> str | None:
    if not r.get("restore"):
        return None
    biggest = max(r["restore"], key=lambda x: x["series"])
    return f"{biggest['restore_seconds']} s ({n(biggest['series'])} series)"


def _scrape(r: dict[str, Any]) -> str | None:
    c = r.get("cardinality")
    return f"{c['scrape_ms_median']} ms ({n(c['series_ingestion'])} series)" if c else None


def _notification(name: str) -> Callable[[dict[str, Any]], str | None]:
    def cell(r: dict[str, Any]) -> str | None:
        m = r.get("notification", {}).get(name)
        return f"{m['p95_s']} s ({m['p95_s'] / m['limit_s']:.2f} of {m['limit_s']} s)" if m else None

    return cell


def _operator(r: dict[str, Any]) -> str | None:
    o = r.get("operator")
    if not o or o.get("skipped"):
        return None
    return f"{o['ready_seconds']} s ({o['sources']} sources)"


def _load(r: dict[str, Any]) -> str | None:
    env = r["environment"]
    if "load_average_start" not in env:
        return None
    return f"{env['load_average_start'][0]:.1f} → {env['load_average_end'][0]:.1f}"


# The figures most worth comparing across runs; each cell: the measure and its ratio to the limit of its run.
GLANCE_ROWS: tuple[tuple[str, Callable[[dict[str, Any]], str | None]], ...] = (
    ("load average, start → end", _load),
    ("consumer end to end (of the raw poll loop)", lambda r: _consumer(r, "consumer")),
    ("consumer, null log store (of the raw poll loop)", lambda r: _consumer(r, "consumer_null_loki")),
    ("producer acks=all (of the raw producer)", lambda r: _to_raw_producer(r, r.get("producer"))),
    (
        "intake, 1 000-event arrays (of the raw producer)",
        lambda r: _to_raw_producer(r, r.get("intake", {}).get("arrays")),
    ),
    (
        "intake, single-event POSTs (of the raw producer)",
        lambda r: _to_raw_producer(r, r.get("intake", {}).get("single")),
    ),
    ("consumer RSS peak, default / tuned malloc", _rss),
    ("restore of the largest state", _restore),
    ("scrape of /metrics", _scrape),
    ("time to notification p95, demo (of its limit)", _notification("demo")),
    ("time to notification p95, chart defaults (of its limit)", _notification("chart defaults")),
    ("operator: sources Ready", _operator),
)


def _link(path: Path, page: Path) -> str:
    return os.path.relpath(path, page.parent).replace(os.sep, "/")


def glance(runs: list[Run]) -> str:
    header = ["", *(run.title for run in runs)]
    body = []
    for name, cell in GLANCE_ROWS:
        cells = [cell(run.results) or "" for run in runs]
        if any(cells):
            body.append([name, *cells])
    return markdown_table(header, body)


def run_section(run: Run, page: Path) -> str:
    env = run.results["environment"]
    lines = [
        f"### {run.title}",
        "",
        f"[`bench/{run.path.name}`]({_link(run.path, page)}): {headline(run.results)}.",
    ]
    if env.get("note"):
        lines += ["", str(env["note"])]
    return "\n".join([*lines, "", markdown(run.results)])


def render(runs: list[Run], page: Path = PAGE, template: str | None = None) -> str:
    text = template if template is not None else TEMPLATE.read_text(encoding="utf-8")
    sections = (
        "\n\n".join(run_section(run, page) for run in runs)
        if runs
        else "No results file yet: run `make bench`."
    )
    generated = (
        "<!-- Generated by `python -m bench.page` (the last step of `make bench`) from "
        "bench/page-template.md and bench/results*.json: do not edit. -->\n"
    )
    return generated + text.replace(GLANCE, glance(runs) if runs else "").replace(RUNS, sections)


def write(page: Path = PAGE, directory: Path = RESULTS_DIR) -> Path:
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(render(collect(directory), page), encoding="utf-8")
    return page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.page", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when the page is not what would be written"
    )
    args = parser.parse_args(argv)
    if args.check:
        expected = render(collect())
        if not PAGE.exists() or PAGE.read_text(encoding="utf-8") != expected:
            print(f"{PAGE.relative_to(ROOT)} is stale: run `python -m bench.page`", file=sys.stderr)
            return 1
        return 0
    print(write().relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
