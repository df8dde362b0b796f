"""A wall-clock profile of the running consumer with py-spy (attached by pid, non-blocking sampling).

Only the main thread is kept (the loop: poll, decode, stage, push to Loki, commit), idle time included, so
time spent waiting on Loki or Kafka shows as what it is.
"""

from __future__ import annotations

import collections
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.is_file() else shutil.which("py-spy")


@dataclass
class Sampler:
    process: subprocess.Popen[bytes]
    output: Path

    @classmethod
    def attach(cls, pid: int, output: Path, rate: int = 200) -> Sampler | None:
        binary = py_spy()
        if binary is None:
            return None
        argv = [
            binary, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
            "--output", str(output), "--nonblocking", "--idle", "--threads",
        ]  # fmt: skip
        log = output.with_suffix(".log").open("wb")
        return cls(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT), output)

    def stop(self) -> None:
        """py-spy writes its output when interrupted."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def wrap(argv: list[str], output: Path, rate: int = 200) -> list[str]:
    """`argv` run under `py-spy record` (CPU samples of every thread, idle left out), or as is without it."""
    binary = py_spy()
    if binary is None:
        return argv
    options = ["--rate", str(rate), "--format", "raw", "--output", str(output), "--threads"]
    return [binary, "record", *options, "--", *argv]


def _frame_name(frame: str) -> str:
    """`handle (ingestion_observability/consumer/runner.py:142)` → `handle (consumer/runner.py)`."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "ingestion_observability/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})" if path else name


def summarise(collapsed: Path, top: int = 15, thread: str | None = "MainThread") -> dict[str, Any]:
    """Top functions of `thread` (None: of all threads) by self and by inclusive share of the samples."""
    self_time: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    text = collapsed.read_text(errors="replace") if collapsed.is_file() else ""
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        if not frames[0].startswith("thread (") or (thread is not None and thread not in frames[0]):
            continue
        count = int(count_text)
        names = [_frame_name(f) for f in frames[1:]]
        if not names:
            continue
        samples += count
        self_time[names[-1]] += count
        for name in set(names):
            total[name] += count
    if not samples:
        return {"samples": 0}

    def share(counter: collections.Counter[str]) -> list[dict[str, Any]]:
        return [{"function": n, "percent": round(100 * c / samples, 1)} for n, c in counter.most_common(top)]

    return {"samples": samples, "self": share(self_time), "inclusive": share(total)}
