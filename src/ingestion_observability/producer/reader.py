"""Stream run records from a JSON array or NDJSON file (or stdin) without loading it whole."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import ijson
import orjson


class InputError(RuntimeError):
    """The input as a whole cannot be read (not JSON, truncated array...)."""


@dataclass(frozen=True, slots=True)
class Item:
    """One record of the input: `where` says where (for error reports); `error` is set when unparsable."""

    where: str
    record: Any = None
    error: str | None = None


class _CountingReader:
    """A binary reader that reports bytes read (drives the progress bar)."""

    def __init__(self, raw: IO[bytes], on_bytes: Callable[[int], object] | None) -> None:
        self._raw = raw
        self._on_bytes = on_bytes

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        if self._on_bytes and data:
            self._on_bytes(len(data))
        return data

    def readline(self) -> bytes:
        data = self._raw.readline()
        if self._on_bytes and data:
            self._on_bytes(len(data))
        return data


def _first_byte(raw: IO[bytes]) -> bytes:
    """Skip leading whitespace and return the first significant byte (left unread when seekable)."""
    while True:
        byte = raw.read(1)
        if not byte or not byte.isspace():
            return byte


def _ndjson(reader: _CountingReader, first: bytes) -> Iterator[Item]:
    number = 0
    pending = first
    while line := reader.readline():
        number += 1
        line, pending = pending + line, b""
        if not line.strip():
            continue
        try:
            yield Item(f"line {number}", orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            yield Item(f"line {number}", error=f"not valid JSON: {exc}")


def _array(reader: _CountingReader, first: bytes) -> Iterator[Item]:
    class _Prefixed:
        def __init__(self) -> None:
            self.head = first

        def read(self, size: int = -1) -> bytes:
            if size == 0:  # ijson probes with read(0) to tell bytes from text
                return b""
            head, self.head = self.head, b""
            return head + reader.read(size)

    index = 0
    try:
        for record in ijson.items(_Prefixed(), "item", use_float=True):
            yield Item(f"index {index}", record)
            index += 1
    except ijson.JSONError as exc:
        raise InputError(f"invalid JSON array after index {index - 1}: {exc}") from None


def read_records(path: str | Path, on_bytes: Callable[[int], object] | None = None) -> Iterator[Item]:
    """Yield every record of `path` ("-" for stdin): a JSON array of objects, or one object per line."""
    raw: IO[bytes] = sys.stdin.buffer if str(path) == "-" else Path(path).open("rb")  # noqa: SIM115
    try:
        reader = _CountingReader(raw, on_bytes)
        first = _first_byte(raw)
        if on_bytes and first:
            on_bytes(1)
        if first == b"[":
            yield from _array(reader, first)
        elif first:
            yield from _ndjson(reader, first)
    finally:
        if raw is not sys.stdin.buffer:
            raw.close()
