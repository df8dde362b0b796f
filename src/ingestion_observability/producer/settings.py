"""`ingestion-producer`'s settings: flags with the environment variables the deployment sets (settings.py)."""

from __future__ import annotations

from dataclasses import dataclass

from ingestion_observability.settings import CommonSettings, setting, zone_name


@dataclass(frozen=True)
class ProducerSettings(CommonSettings):
    file: str | None = setting(
        "--file", "LOGS_FILE_PATH", None, "records to publish, '-' for stdin; none: the packaged sample"
    )
    simulate_realtime: bool = setting(
        "--simulate-realtime",
        "SIMULATE_REALTIME",
        False,
        "replay with the original spacing between runs",
        boolean=True,
    )
    speed: float = setting(
        "--speed", "SIMULATE_SPEED", 1.0, "replay speed factor with --simulate-realtime", type=float
    )
    timezone: str = setting(
        "--timezone", "SOURCE_TIMEZONE", "UTC", "zone of timestamps written without one", type=zone_name
    )
    delivery_timeout: float = setting(
        "--delivery-timeout",
        "DELIVERY_TIMEOUT_SECONDS",
        120.0,
        "seconds a record may wait for the broker before it counts as failed",
        type=float,
    )
