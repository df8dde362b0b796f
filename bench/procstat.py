"""Resident memory and CPU time of a process, read from /proc (Linux)."""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _status(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def _kib(value: str) -> int:
    return int(value.split()[0]) * 1024


def rss_bytes(pid: int) -> int:
    """VmRSS: resident memory now."""
    return _kib(_status(pid)["VmRSS"])


def peak_rss_bytes(pid: int) -> int:
    """VmHWM: the highest resident memory since the process started."""
    return _kib(_status(pid)["VmHWM"])


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User + system CPU time of the process (all its threads), or of one of its threads, seconds."""
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    stat = Path(path).read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": fields from the 3rd on
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _TICKS


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()
