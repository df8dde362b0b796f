"""A CronJob's schedule → its period: the longest gap between two runs, in the CronJob's time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ingestion_operator import schedule
from ingestion_operator.schedule import ScheduleError, period_seconds, time_zone_of

NOW = datetime(2026, 6, 10, 12, 34, tzinfo=UTC)
HOUR, DAY = 3600, 86400


@pytest.mark.parametrize(
    ("expression", "period"),
    [
        ("* * * * *", 60),
        ("*/5 * * * *", 300),
        ("0 * * * *", HOUR),
        ("@hourly", HOUR),
        ("@daily", DAY),
        ("@midnight", DAY),
        ("15 3 * * *", DAY),
        ("@weekly", 7 * DAY),
        ("@monthly", 31 * DAY),  # July to August
        ("@yearly", 366 * DAY),  # 2028 (a leap year) to 2029
        ("@annually", 366 * DAY),
        ("0 9 * * 1-5", 72 * HOUR),  # Friday to Monday
        ("0 9 * * MON-FRI", 72 * HOUR),
        ("0 9-17 * * 1-5", 64 * HOUR),  # Friday 17:00 to Monday 09:00
        ("0 0 29 2 *", (4 * 365 + 1) * DAY),  # 2028-02-29 to 2032-02-29
        ("0 0 31 * *", 61 * DAY),  # August 31 to October 31
        ("@every 90s", 90),
        ("@every 1h30m", 5400),
        ("@every 1.5h", 5400),
        ("@every 2h0m30s", 2 * HOUR + 30),
        ("@every 500ms", 1),  # robfig/cron: at least a second
        ("  0 * * * *  ", HOUR),
    ],
)
def test_period_is_the_longest_gap(expression: str, period: int) -> None:
    assert period_seconds(expression, None, NOW) == period


def test_day_fields_as_kubernetes_reads_them() -> None:
    """robfig/cron: `?` is `*`; a stepped star restricts, so the day fields are OR'd (odd days or Mondays:
    never more than 2 days apart), where Vixie cron would AND them."""
    assert period_seconds("0 0 ? * 1", None, NOW) == 7 * DAY
    assert period_seconds("0 0 */2 * 1", None, NOW) == period_seconds("0 0 1-31/2 * 1", None, NOW) == 2 * DAY
    # an unstepped star keeps the other field alone: Mondays
    assert period_seconds("0 0 */1 * 1", None, NOW) == period_seconds("0 0 5,* * 1", None, NOW) == 7 * DAY


def test_time_zone() -> None:
    daily = "30 2 * * *"
    assert period_seconds(daily, "Asia/Tokyo", NOW) == period_seconds(daily, None, NOW) == DAY
    assert period_seconds(daily, "UTC", NOW) == DAY
    # the fall-back day lasts 25 h: a daily job with DST waits 25 h once a year
    assert period_seconds(daily, "Europe/Paris", NOW) == 25 * HOUR
    assert period_seconds("0 9 * * 1-5", "Europe/Paris", NOW) == 73 * HOUR
    # an hourly or fixed-period job does not see DST
    assert period_seconds("0 * * * *", "Europe/Paris", NOW) == HOUR
    assert period_seconds("@every 1h30m", "Europe/Paris", NOW) == 5400


@pytest.mark.parametrize("day", ["2026-03-29", "2026-10-25"], ids=["spring-forward", "fall-back"])
def test_dst_days(day: str) -> None:
    """From the change's very day, in Europe/Paris: 02:30 is missing (it runs at 03:00) or repeated (it runs
    once), and the period stays the fall-back day's 25 h."""
    now = datetime.fromisoformat(day).replace(tzinfo=UTC)
    assert period_seconds("30 2 * * *", "Europe/Paris", now) == 25 * HOUR
    assert period_seconds("30 2 * * *", "Europe/Paris", now - timedelta(days=1)) == 25 * HOUR


def test_zone_prefix() -> None:
    paris = period_seconds("30 2 * * *", "Europe/Paris", NOW)
    assert period_seconds("CRON_TZ=Europe/Paris 30 2 * * *", None, NOW) == paris
    assert period_seconds("TZ=Europe/Paris 30 2 * * *", None, NOW) == paris
    assert period_seconds("CRON_TZ=Asia/Tokyo @every 1h", None, NOW) == HOUR
    assert time_zone_of("CRON_TZ=Europe/Paris 30 2 * * *", None) == "Europe/Paris"
    assert time_zone_of("30 2 * * *", "Asia/Tokyo") == "Asia/Tokyo"
    assert time_zone_of("30 2 * * *", None) is None


@pytest.mark.parametrize(
    ("expression", "time_zone", "message"),
    [
        ("CRON_TZ=Europe/Paris 0 * * * *", "Europe/Paris", "a TZ or CRON_TZ prefix and a time zone together"),
        ("TZ=UTC 0 * * * *", "UTC", "a TZ or CRON_TZ prefix and a time zone together"),
        ("0 * * * *", "Europe/Nowhere", "unknown time zone 'Europe/Nowhere'"),
        ("0 * * * *", "europe/paris", "unknown time zone 'europe/paris'"),
        ("0 * * * *", "Europe", "unknown time zone 'Europe'"),  # a directory of the database
        ("0 * * * *", "../etc/passwd", "unknown time zone '../etc/passwd'"),
        ("0 * * * *", "", "unknown time zone ''"),
        ("CRON_TZ=Mars/Olympus 0 * * * *", None, "unknown time zone 'Mars/Olympus'"),
        ("@reboot", None, "unknown macro '@reboot'"),
        ("@Daily", None, "unknown macro '@Daily'"),
        ("@every", None, "unknown macro '@every'"),
        ("@every 1h 30m", None, "invalid duration '1h 30m'"),
        ("@every 90", None, "invalid duration '90'"),
        ("@every 1d", None, "invalid duration '1d'"),
        ("", None, "expected 5 fields or a macro, got 0 field(s)"),
        ("* * * *", None, "expected 5 fields or a macro, got 4 field(s)"),
        ("0 * * * * *", None, "expected 5 fields or a macro, got 6 field(s)"),  # no seconds field
        ("60 * * * *", None, "Bad minute"),
        ("0 24 * * *", None, "Bad hour"),
        ("0 0 32 * *", None, "Bad day-of-month"),
        ("0 0 * 13 *", None, "Bad month"),
        ("0 0 * * 8", None, "Bad day-of-week"),
        ("*/0 * * * *", None, "Bad minute"),
        ("0 0 30 2 *", None, "Bad day-of-month"),  # never
    ],
)
def test_invalid(expression: str, time_zone: str | None, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        period_seconds(expression, time_zone, NOW)
    assert str(caught.value).startswith(f"schedule {expression!r}: ")
    assert message in str(caught.value)


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware"):
        period_seconds("0 * * * *", None, datetime(2026, 6, 10))


def test_memoised_per_day() -> None:
    """The work is done once per schedule, zone and day (UTC), whatever the time of day or the zone of
    `now`; the memo does not change the result."""
    schedule._period_seconds.cache_clear()
    fresh = period_seconds("0 9 * * 1-5", "Europe/Paris", NOW)
    same_day = (
        NOW.replace(hour=0, minute=0),
        NOW.replace(hour=23, minute=59),
        NOW.astimezone(ZoneInfo("Asia/Tokyo")),
    )
    assert [period_seconds("0 9 * * 1-5", "Europe/Paris", now) for now in same_day] == [fresh] * 3
    assert schedule._period_seconds.cache_info().misses == 1
    assert period_seconds("0 9 * * 1-5", "Europe/Paris", NOW + timedelta(days=1)) == fresh
    assert period_seconds("0 9 * * 1-5", None, NOW) == 72 * HOUR
    assert schedule._period_seconds.cache_info().misses == 3
    schedule._period_seconds.cache_clear()
    assert period_seconds("0 9 * * 1-5", "Europe/Paris", NOW) == fresh
