"""French renderings of configured values for annotations and panel texts."""

from __future__ import annotations

import re

_UNITS = {"w": "sem.", "d": "j", "h": "h", "m": "min", "s": "s"}


def duree(window: str) -> str:
    """`1h30m` -> `1 h 30 min`, `1d` -> `1 j`."""
    return " ".join(f"{n} {_UNITS[unit]}" for n, unit in re.findall(r"(\d+)([wdhms])", window))


def nombre(value: float) -> str:
    """A number the French way: `14,4`, `10000`."""
    return format(value, ".10g").replace(".", ",")


def pourcent(ratio: float) -> str:
    return f"{nombre(ratio * 100)} %"
