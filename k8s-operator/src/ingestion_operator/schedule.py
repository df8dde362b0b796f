"""A CronJob's schedule → its period: the longest gap between two of its runs.

Pure (no Kubernetes I/O). The period is the longest gap, not the usual one, so an irregular schedule raises
no false alarm: `0 9 * * 1-5` runs every 24 h but waits 72 h from Friday to Monday, and its period is 72 h.

Kubernetes reads schedules with robfig/cron's standard parser: five fields, or a macro (`@hourly`, ...,
`@every <Go duration>`), optionally after a `CRON_TZ=<zone> ` or `TZ=<zone> ` prefix. The five fields are
evaluated by cronsim (Vixie cron semantics: names, ranges, steps, day-of-month and day-of-week OR'd unless
one is `*`); cronsim's extensions (`L`, `W`, `#`) are not refused here: the API server refuses them before a
CronJob exists.

Daylight saving time, as cronsim handles it (Debian cron's rule, for a schedule at a fixed hour and minute):
a local time skipped by the spring-forward change runs at the first instant after the gap, a local time
repeated by the fall-back change runs once, the first time. A daily job in a zone with DST therefore has a
25 h period (the fall-back day lasts 25 h), and `30 2 * * *` in Europe/Paris, whose 02:30 does not exist on
the spring-forward day, runs at 03:00 that day. Kubernetes' robfig/cron skips such a run and repeats the
fall-back one: its longest gap is then 47 h, which the default two periods cover.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# Long enough to see every gap of a yearly schedule (Feb 29: 1461 days apart); MAX_FIRE_TIMES bounds the work
# of the frequent ones.
HORIZON = timedelta(days=4 * 365 + 2)
MAX_FIRE_TIMES = 20_000
_ZONE_PREFIX = re.compile(r"(?:CRON_TZ|TZ)=(\S*) +")
_EVERY = re.compile(r"@every +(.*)")
_GO_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS = {
    "ns": Fraction(1, 10**9),
    **dict.fromkeys(("us", "µs", "μs"), Fraction(1, 10**6)),
    "ms": Fraction(1, 1000),
    "s": Fraction(1),
    "m": Fraction(60),
    "h": Fraction(3600),
}
_UNSTEPPED_STAR = re.compile(r"\*(?:/0*1)?")
_DAY_FIELDS = {2: "1-31", 4: "0-6"}  # day-of-month and day-of-week: their whole range


class ScheduleError(ValueError):
    """A CronJob schedule or time zone that cannot be evaluated; the message names the schedule."""


def period_seconds(schedule: str, time_zone: str | None, now: datetime) -> int:
    """The longest gap, in seconds, between two consecutive fire times of `schedule` following `now`.

    `time_zone` is the CronJob's `spec.timeZone` (an IANA name); None reads the schedule in UTC: Kubernetes
    then uses the kube-controller-manager's local time zone, which is UTC on most clusters. The fire times
    are those of the day of `now` (UTC) onwards, up to `MAX_FIRE_TIMES` or `HORIZON` after the first one:
    the result only changes from one day to the next, and is memoised per day (the operator asks again at
    every resync).
    """
    if now.tzinfo is None:
        raise ValueError("now: expected an aware datetime")
    return _period_seconds(schedule, time_zone, now.astimezone(UTC).date())


def time_zone_of(schedule: str, time_zone: str | None) -> str | None:
    """The zone `schedule` is read in: its `CRON_TZ=`/`TZ=` prefix's, else `time_zone`; None: UTC (what
    the alert's description names)."""
    return _split_zone(schedule, time_zone)[1]


@functools.lru_cache(maxsize=1024)
def _period_seconds(schedule: str, time_zone: str | None, day: date) -> int:
    fields, zone = _split_zone(schedule, time_zone)
    every = _EVERY.fullmatch(fields)
    if every is not None:
        return _go_duration_seconds(schedule, every.group(1))
    if fields.startswith("@"):
        if fields not in MACROS:
            raise ScheduleError(f"schedule {schedule!r}: unknown macro {fields!r}")
        fields = MACROS[fields]
    start = datetime.combine(day, time(), UTC).astimezone(UTC if zone is None else ZoneInfo(zone))
    try:
        fire_times = CronSim(_cronsim_expression(schedule, fields), start)
        first = previous = next(fire_times)
        longest = 0
        for _ in range(MAX_FIRE_TIMES - 1):
            current = next(fire_times)
            # timestamps: the difference of two datetimes of one zone is their wall-clock difference
            longest = max(longest, int(current.timestamp() - previous.timestamp()))
            if current - first > HORIZON:
                break
            previous = current
    except CronSimError as exc:
        raise ScheduleError(f"schedule {schedule!r}: {exc}") from None
    except StopIteration:  # cronsim looks 50 years ahead
        raise ScheduleError(f"schedule {schedule!r}: no run within 50 years") from None
    return longest


def _split_zone(schedule: str, time_zone: str | None) -> tuple[str, str | None]:
    """The schedule without its `CRON_TZ=`/`TZ=` prefix, and the zone to read it in (None: UTC)."""
    text = schedule.strip()
    prefix = _ZONE_PREFIX.match(text)
    if prefix is not None:
        if time_zone is not None:
            # as the API server: the two would disagree
            raise ScheduleError(f"schedule {schedule!r}: a TZ or CRON_TZ prefix and a time zone together")
        text, time_zone = text[prefix.end() :], prefix.group(1)
    if time_zone is not None:
        try:
            ZoneInfo(time_zone)
        except (ValueError, KeyError, OSError):  # unknown, malformed, a directory of the database
            raise ScheduleError(f"schedule {schedule!r}: unknown time zone {time_zone!r}") from None
    return text, time_zone


def _go_duration_seconds(schedule: str, text: str) -> int:
    """`@every`'s Go duration (`1h30m`, `90s`, `1.5h`) in whole seconds, at least 1 (as robfig/cron)."""
    if _GO_DURATION_PART.sub("", text) or not text:
        raise ScheduleError(f"schedule {schedule!r}: invalid duration {text!r} (expected e.g. 90s, 1h30m)")
    total = sum(Fraction(number) * _GO_UNITS[unit] for number, unit in _GO_DURATION_PART.findall(text))
    return max(1, int(total))


def _cronsim_expression(schedule: str, fields: str) -> str:
    """The five fields as robfig/cron reads them, in cronsim's syntax: `?` is `*`, and a day field
    restricts (the day fields are then OR'd) unless it holds an unstepped `*`, where cronsim, like Vixie
    cron, takes any field starting with `*` (`*/2`) as unrestricted."""
    parts = fields.replace("?", "*").split()
    if len(parts) != 5:
        raise ScheduleError(f"schedule {schedule!r}: expected 5 fields or a macro, got {len(parts)} field(s)")
    for index, whole in _DAY_FIELDS.items():
        items = parts[index].split(",")
        if any(_UNSTEPPED_STAR.fullmatch(item) for item in items):
            parts[index] = "*"
        else:
            parts[index] = ",".join(whole + item[1:] if item.startswith("*") else item for item in items)
    return " ".join(parts)
