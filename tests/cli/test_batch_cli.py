"""``stemprint batch``: the contract's summary, exit codes, the local cluster, the serial
fallback (loopback only)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from stemprint.cli.main import app
from tests.conftest import write_session
from tests.test_batch import cluster, hashes, hidden, song  # noqa: F401 - the fixture

pytest.importorskip("distributed")

runner = CliRunner()


def test_batch_on_a_scheduler_with_a_bad_session(cluster, tmp_path):  # noqa: F811
    good = [song(tmp_path / "one", seed=1), song(tmp_path / "two", seed=2, regions=2)]
    (tmp_path / "bad").mkdir()
    bad = write_session(tmp_path / "bad", {"tracks": [{"name": "X", "output": "Nowhere"}]})
    root = tmp_path / "out"
    args = ["batch", str(good[0]), str(bad), str(good[1]), "-o", str(root), "--all-regions"]
    result = runner.invoke(app, [*args, "--scheduler", cluster.scheduler_address])
    assert result.exit_code == 2, result.output
    assert "unknown bus 'Nowhere'" in result.output  # the bad task's message, with its line
    assert f"{bad}:6: tracks[0].output" in result.output
    data = json.loads((root / "batch.json").read_text())
    assert data["exit_code"] == 2 and data["runner"] == "scheduler"
    rows = [(t["session"], t["region"], t["status"], t["exit_code"]) for t in data["tasks"]]
    assert rows == [
        (str(good[0]), None, "ok", 0),
        (str(bad), None, "failed", 2),
        (str(good[1]), "Part 1", "ok", 0),
        (str(good[1]), "Part 2", "ok", 0),
    ]
    assert (root / "two-session" / "Part 2" / "manifest.json").is_file()
    assert hidden(root) == []


def test_batch_on_a_local_cluster_of_workers(tmp_path):
    sessions = [song(tmp_path / f"s{i}", seed=10 + i) for i in range(3)]
    root = tmp_path / "out"
    result = runner.invoke(
        app, ["batch", *map(str, sessions), "-o", str(root), "--workers", "2", "--bit-depth", "16"]
    )
    assert result.exit_code == 0, result.output
    assert "3/3 tasks ok on a local cluster of 2 workers" in result.output
    data = json.loads((root / "batch.json").read_text())
    assert data["runner"] == "local" and data["workers"] == 2
    for task in data["tasks"]:
        manifest = json.loads((root / task["package"] / "manifest.json").read_text())
        assert manifest["bit_depth"] == "16" and task["verdict"] == "pass"
    again = runner.invoke(app, ["batch", str(sessions[0]), "-o", str(root)])
    assert again.exit_code == 2 and "--force" in again.output


def test_batch_without_dask_runs_serially(monkeypatch, tmp_path):
    monkeypatch.setattr("stemprint.batch.dask_available", lambda: False)
    session = song(tmp_path / "one", seed=3)
    root = tmp_path / "out"
    result = runner.invoke(app, ["batch", str(session), "-o", str(root)])
    assert result.exit_code == 0, result.output
    assert "dask is not installed" in result.output
    serial = tmp_path / "serial"
    assert runner.invoke(app, ["render", str(session), "-o", str(serial), "-q"]).exit_code == 0
    assert hashes(root / "session") == hashes(serial)  # one session: named after its file
    scheduler = runner.invoke(
        app, ["batch", str(session), "-o", str(tmp_path / "o2"), "--scheduler", "tcp://127.0.0.1:1"]
    )
    assert scheduler.exit_code == 2 and "needs Dask" in scheduler.output


def test_unreachable_scheduler(monkeypatch, tmp_path):
    monkeypatch.setattr("stemprint.batch.cluster.CONNECT_TIMEOUT_SECONDS", 1)
    session = song(tmp_path / "one", seed=4)
    result = runner.invoke(
        app,
        ["batch", str(session), "-o", str(tmp_path / "out"), "--scheduler", "tcp://127.0.0.1:9"],
    )
    assert result.exit_code == 2 and "cannot reach the Dask scheduler" in result.output
