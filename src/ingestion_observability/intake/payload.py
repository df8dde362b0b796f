"""Request bodies → items: one JSON object, a JSON array, or NDJSON; every item keeps its position."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import orjson


class PayloadError(ValueError):
    """The body as a whole is unusable (not JSON, empty, badly encoded)."""


class TooLarge(ValueError):
    """The body, once decompressed, is past the size limit."""


@dataclass(frozen=True, slots=True)
class Item:
    position: str  # "body", "index 12" (array), "line 40" (NDJSON): what error reports name
    value: Any = None
    error: str | None = None


def decode_body(raw: bytes, encoding: str, limit: int) -> bytes:
    """The body without its Content-Encoding (gzip, as OpenLineage's HTTP transport may send it).

    Inflated at most `limit` + 1 bytes: a small gzip bomb cannot expand past the limit in memory.
    """
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding != "gzip":
        raise PayloadError(f"unsupported Content-Encoding {encoding!r} (gzip or none)")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        body = inflater.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise PayloadError(f"invalid gzip body: {exc}") from None
    if len(body) > limit or inflater.unconsumed_tail:
        raise TooLarge(f"decompressed body exceeds {limit} bytes")
    return body


def read_items(body: bytes, *, ndjson: bool) -> list[Item]:
    """The items of a body; NDJSON (when allowed) is one object per line, each line reported alone."""
    if not body.strip():
        raise PayloadError("empty body")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if ndjson and body.lstrip()[:1] != b"[" and body.strip().count(b"\n"):
            return _lines(body)
        raise PayloadError(f"not valid JSON: {exc}") from None
    if isinstance(document, list):
        if not document:
            raise PayloadError("empty JSON array")
        return [Item(f"index {index}", value) for index, value in enumerate(document)]
    return [Item("body", document)]


def _lines(body: bytes) -> list[Item]:
    items = []
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(Item(f"line {number}", orjson.loads(line)))
        except orjson.JSONDecodeError as exc:
            items.append(Item(f"line {number}", error=f"not valid JSON: {exc}"))
    return items
