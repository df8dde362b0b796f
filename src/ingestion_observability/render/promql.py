"""String literals and selectors shared by PromQL and LogQL.

Both languages lex double-quoted strings the Go way (`strconv.Unquote` escapes), so one escaping serves
both. User-supplied values (source, objet, entreprise, zone, job) only ever appear as `=` matchers on a
`quote()`d literal, never inside a regex: a source named `.*` selects exactly the source `.*`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_ESCAPES = {
    "\\": "\\\\",
    '"': '\\"',
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    # Grafana interpolates `$var`, `${var}` and `[[var]]` in every query before the datasource sees it:
    # hex escapes keep a literal `$` or `[` out of its reach, and both parsers decode them back.
    "$": "\\x24",
    "[": "\\x5b",
}


def quote(value: str) -> str:
    """A double-quoted literal that PromQL and LogQL decode back to exactly `value`."""
    out = []
    for char in value:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif "\ud800" <= char <= "\udfff":
            raise ValueError(f"{value!r}: lone surrogates cannot be encoded in a query")
        elif not char.isprintable():
            code = ord(char)
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def eq(label: str, value: str) -> str:
    """An exact matcher on a user-supplied value."""
    return f"{_checked(label)}={quote(value)}"


def var(label: str, variable: str) -> str:
    """A regex matcher on a Grafana template variable (Grafana regex-escapes the selected values)."""
    return f'{_checked(label)}=~"${_checked(variable)}"'


def selector(metric: str, matchers: Iterable[str] = ()) -> str:
    joined = ", ".join(matchers)
    return f"{metric}{{{joined}}}" if joined else metric


def stream(matchers: Iterable[str]) -> str:
    """A LogQL stream selector."""
    return "{" + ", ".join(matchers) + "}"


def window_increase(series: str, window: str) -> str:
    """Increase of a counter over `window`, counting series created inside the window from zero.

    The consumer creates a counter on first sight, so a series can appear directly at 1: `increase()`
    sees no change there (and nothing at all with a single sample). A series absent `window` ago has
    counted everything it holds inside the window, so its value is the increase; the `or` takes
    `increase()` only for older series.
    """
    return f"(({series} unless {series} offset {window}) or increase({series}[{window}]))"


def window_count(series: str, window: str) -> str:
    """`window_increase` rounded: events are whole, and extrapolation must not turn 3 failures into 3.1."""
    return f"round{window_increase(series, window)}"


def number(value: float) -> str:
    """A float as PromQL reads it back exactly (no 1.5e+08 rounding of thresholds)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _checked(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"invalid label or variable name {name!r}")
    return name
