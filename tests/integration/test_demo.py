"""`make demo` on free ports: services up, sample ingested, French summary, health, then everything down."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devstack import demo
from devstack.process import free_port

pytestmark = pytest.mark.integration


def test_demo_up_health_down(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ports = [
        f"--kafka-port={free_port()}",
        f"--prometheus-port={free_port()}",
        f"--loki-port={free_port()}",
        f"--metrics-port={free_port()}",
    ]
    work = tmp_path / "demo"
    try:
        assert demo.main(["up", f"--dir={work}", *ports]) == 0
        out = capsys.readouterr().out
        assert "72 sent, 0 invalid, 0 failed" in out
        for line in ("Succès          71", "Échecs          1", "Taux d'échec    1.39%"):
            assert line in out
        assert "sharepoint_graph      12   dont échecs : 1" in out
        assert "IngestionEchecDetecte (critical) sharepoint_graph / EventFactureApplication" in out
        assert demo.main(["health", *ports]) == 0
    finally:
        pids = json.loads((work / "pids.json").read_text()) if (work / "pids.json").exists() else {}
        assert demo.main(["down", f"--dir={work}"]) == 0
    assert set(pids) == {"kafka", "loki", "prometheus", "consumer"}
    for pid in pids.values():  # gone, or a zombie waiting for this test process to reap it
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    assert demo.main(["health", *ports]) == 1
