"""The documents a newcomer walks: README.md, docs/*.md and the chart's README.

Every relative link resolves to a file of the repository, and its `#anchor` to a heading of that file
(GitHub's slugs); every `make <target>` they name is a target of the Makefile; the alert table of
docs/alerts.md names exactly the alerts the library renders; docs/benchmarks.md is what `python -m bench.page`
writes from the results files; the README stays short and maps every page.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import page
from ingestion_observability.render.rules import alert_names

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
CHART_README = ROOT / "charts" / "ingestion-observability" / "README.md"
DOCUMENTS = [README, *sorted(DOCS.glob("*.md")), CHART_README]
README_MAX_LINES = 200

_FENCE = re.compile(r"^\s*(```|~~~)")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_MAKE = re.compile(r"(?<![\w./$-])make(?![\w-])")
_TARGET = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _lines(path: Path) -> Iterator[tuple[int, str, bool]]:
    """(line number, text, inside a fenced code block) of each line."""
    fenced = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
            yield number, line, True
            continue
        yield number, line, fenced


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: the rendered text in lower case, without punctuation, spaces as `-`."""
    text = _CODE_SPAN.sub(lambda m: m.group(2), heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link shows its text
    text = re.sub(r"[*~]|(?<!\w)_|_(?!\w)", "", text)  # emphasis markers; `snake_case` keeps its `_`
    kept = "".join(c for c in text.lower() if c in " -_" or unicodedata.category(c)[0] in "LNM" or c == "_")
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings, duplicates numbered as GitHub does (`x`, `x-1`, …)."""
    seen: dict[str, int] = {}
    out = set()
    for _, line, fenced in _lines(path):
        match = None if fenced else _HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def links(path: Path) -> Iterator[tuple[int, str]]:
    """The link targets of a Markdown file, outside code."""
    for number, line, fenced in _lines(path):
        if fenced:
            continue
        for match in _LINK.finditer(_CODE_SPAN.sub("", line)):
            yield number, match.group(1)


def make_targets_named(path: Path) -> Iterator[tuple[int, str]]:
    """`make a b VAR=x` in code (spans and fenced blocks) names targets a and b."""
    for number, line, fenced in _lines(path):
        code = [line] if fenced else [m.group(2) for m in _CODE_SPAN.finditer(line)]
        for text in code:
            for match in _MAKE.finditer(text):
                for word in text[match.end() :].split():
                    if not _TARGET.fullmatch(word):  # `VAR=x`, `&&`, `#`: the targets end there
                        break
                    yield number, word


def makefile_targets() -> set[str]:
    targets: set[str] = set()
    for line in (ROOT / "Makefile").read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9_.\- ]+?)\s*:(?![:=])", line)
        if match and not line.startswith(("\t", " ")):
            names = match.group(1).split()
            if names and names[0] == ".PHONY":
                names = line.split(":", 1)[1].split()
            targets.update(name for name in names if _TARGET.fullmatch(name))
    return targets


def test_the_documents_are_there() -> None:
    assert README.exists() and CHART_README.exists()
    assert len(DOCUMENTS) > 3, "docs/*.md"


@pytest.mark.parametrize("document", DOCUMENTS, ids=_name)
def test_relative_links_resolve(document: Path) -> None:
    broken = []
    for number, target in links(document):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (document.parent / path_part).resolve() if path_part else document
        if not resolved.exists():
            broken.append(f"line {number}: {target} (no {resolved})")
        elif not resolved.is_relative_to(ROOT):
            broken.append(f"line {number}: {target} (outside the repository)")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"line {number}: {target} (no heading #{anchor} in {_name(resolved)})")
    assert not broken, f"{_name(document)}:\n" + "\n".join(broken)


@pytest.mark.parametrize("document", DOCUMENTS, ids=_name)
def test_make_targets_exist(document: Path) -> None:
    targets = makefile_targets()
    missing = [
        f"line {number}: make {name}" for number, name in make_targets_named(document) if name not in targets
    ]
    assert not missing, f"{_name(document)} names targets the Makefile lacks:\n" + "\n".join(missing)


def test_the_alert_table_names_every_alert() -> None:
    text = (DOCS / "alerts.md").read_text(encoding="utf-8")
    section = text.split("## Alert rules", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `(Ingestion\w+)` \|", section, flags=re.MULTILINE)
    assert sorted(listed) == sorted(alert_names()), "docs/alerts.md: one row per alert of alert_names()"


def test_the_benchmarks_page_is_up_to_date() -> None:
    expected = page.render(page.collect())
    assert page.PAGE.read_text(encoding="utf-8") == expected, "run `python -m bench.page`"


def test_the_readme_is_short_and_maps_every_page() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    linked = {target.partition("#")[0] for _, target in links(README)}
    unmapped = [_name(p) for p in DOCS.glob("*.md") if _name(p) not in linked]
    assert not unmapped, f"README.md's map of the docs lacks {unmapped}"


def test_slugs_follow_github() -> None:
    assert slug("Mapping (module `ingestion_observability.openlineage`)") == (
        "mapping-module-ingestion_observabilityopenlineage"
    )
    assert slug("The chart's default receivers") == "the-charts-default-receivers"
    assert slug("Routing a source to its owner") == "routing-a-source-to-its-owner"
    assert slug("Rendering rules and dashboards: `ingestion-render`") == (
        "rendering-rules-and-dashboards-ingestion-render"
    )
    assert slug("Glossaire : état, début") == "glossaire--état-début"
