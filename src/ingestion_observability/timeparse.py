"""Timestamps of run records: the variants connectors write, always returned as aware UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo


class TimestampError(ValueError):
    pass


def parse_timestamp(value: object, naive_tz: tzinfo = UTC) -> datetime:
    """Parse ISO 8601 (with `Z` or an offset) or `YYYY-MM-DD HH:MM:SS[.fff]`.

    A timestamp without a zone is read in `naive_tz` (UTC unless configured), then converted to UTC.
    """
    if not isinstance(value, str) or not value.strip():
        raise TimestampError(f"expected a timestamp string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise TimestampError(f"unrecognised timestamp {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=naive_tz)
    return parsed.astimezone(UTC)


def format_timestamp(value: datetime) -> str:
    """`2025-09-15T10:30:00.000Z`: millisecond precision, UTC, like the seed's `@timestamp`."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
