"""Start, wait for and stop a local service process; always stopped, logs kept for diagnosis."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Self


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bool(200 <= resp.status < 300)
    except (urllib.error.URLError, OSError):
        return False


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class ServiceProcess:
    """A child process whose output goes to `log_path`; stop() ends it (SIGTERM, then SIGKILL)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str | os.PathLike[str]],
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [str(a) for a in argv],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,  # its own process group: stop() reaches its children too
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str = "ready") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            if ready():
                return
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not {what} after {timeout:.0f}s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def signal(self, sig: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.proc.wait(timeout=timeout)
        self._log.close()
        return self.proc.returncode


class LocalService:
    """A launcher's handle: `stop()`, or leaving its `with` block, ends what it started."""

    def stop(self) -> object:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class OneProcessService(LocalService):
    """A handle around one ServiceProcess."""

    process: ServiceProcess
    stop_timeout = 20.0

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    def stop(self, timeout: float | None = None) -> int | None:
        return self.process.stop(self.stop_timeout if timeout is None else timeout)

    def wait_or_stop(self, ready: Callable[[], bool], timeout: float, what: str = "ready") -> None:
        """Wait for the process to be ready; a failed or interrupted wait stops it before raising."""
        try:
            self.process.wait_until(ready, timeout, what)
        except BaseException:
            self.process.stop()
            raise


class LocalHttpProcess(OneProcessService):
    """One of the product's processes serving HTTP on 127.0.0.1 (consumer, intake)."""

    def __init__(self, process: ServiceProcess, port: int) -> None:
        self.process = process
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def target(self) -> str:
        """The `host:port` Prometheus scrapes."""
        return f"127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until /readyz answers 200."""
        self.process.wait_until(lambda: http_ok(f"{self.url}/readyz"), timeout, "ready")

    def readiness(self) -> str:
        """What /readyz says now, ready or not."""
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=5) as resp:
                return str(resp.read().decode())
        except urllib.error.HTTPError as exc:
            return str(exc.read().decode())
