from __future__ import annotations

import ast

import pytest

from ingestion_observability.render.promql import eq, number, quote, selector, stream, var, window_count

VALUES = [
    'a"b\\c',
    ".*",
    "x\ny",
    "tab\tcr\r",
    "Zoho — été ☃ 🚀",
    "$source",
    "[[objet]]",
    "${__range}",
    "nbsp\xa0\u2028",
    "\x00\x7f",
]


@pytest.mark.parametrize("value", VALUES)
def test_quote_round_trips(value: str) -> None:
    # Python string literals decode the same escapes as Go's strconv.Unquote (what PromQL/LogQL use).
    assert ast.literal_eval(quote(value)) == value


@pytest.mark.parametrize("value", VALUES)
def test_quote_is_one_line_without_grafana_syntax(value: str) -> None:
    literal = quote(value)
    assert "\n" not in literal and "\r" not in literal
    assert "$" not in literal and "[" not in literal  # Grafana cannot interpolate a literal


def test_quote_examples() -> None:
    assert quote('a"b\\c') == r'"a\"b\\c"'
    assert quote("x\ny") == r'"x\ny"'
    assert quote("$source") == r'"\x24source"'
    assert quote("été ☃") == '"été ☃"'  # printable unicode stays readable
    assert quote("\u2028\U000e0001") == r'"\u2028\U000e0001"'


def test_quote_rejects_lone_surrogates() -> None:
    with pytest.raises(ValueError, match="surrogate"):
        quote("a\ud800")


def test_matchers_and_selectors() -> None:
    assert eq("source", ".*") == 'source=".*"'
    assert var("objet", "objet") == 'objet=~"$objet"'
    assert selector("up") == "up"
    assert selector("up", [eq("job", "x"), var("a", "b")]) == 'up{job="x", a=~"$b"}'
    assert stream([eq("job", "ingestion-logs")]) == '{job="ingestion-logs"}'
    with pytest.raises(ValueError, match="invalid label"):
        eq("bad-name", "x")


def test_window_count_counts_new_series_from_zero() -> None:
    assert window_count("m", "5m") == "round((m unless m offset 5m) or increase(m[5m]))"


def test_number_is_exact() -> None:
    assert number(157286400.0) == "157286400"
    assert number(0.02) == "0.02"
    assert number(14.4) == "14.4"
