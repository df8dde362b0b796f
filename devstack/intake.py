"""`ingestion-intake` as a child process (tests and the bench post to it)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from devstack.process import LocalHttpProcess, ServiceProcess, free_port, http_ok


class IntakeProcess(LocalHttpProcess):
    """`ingestion-intake` as a child process on a free port of 127.0.0.1."""

    @classmethod
    def start(
        cls,
        log_path: Path,
        bootstrap_servers: str,
        topic: str,
        *,
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        port: int | None = None,
        timeout: float = 30.0,
    ) -> IntakeProcess:
        port = port or free_port()
        argv = [
            sys.executable,
            "-m",
            "ingestion_observability.intake.cli",
            f"--bootstrap-servers={bootstrap_servers}",
            f"--topic={topic}",
            f"--port={port}",
            "--address=127.0.0.1",
            *extra_args,
        ]
        intake = cls(ServiceProcess("ingestion-intake", argv, log_path, env=env), port)
        intake.wait_or_stop(lambda: http_ok(f"{intake.url}/healthz"), timeout)
        return intake
