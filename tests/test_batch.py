"""Batch rendering on a local Dask cluster (loopback only): packages byte-identical to serial
renders, a worker killed mid-run, a bad session failing only its own task."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from stemprint.batch import render_many
from stemprint.batch.names import package_names
from stemprint.cli.main import app
from tests.conftest import write_session, write_wav

distributed = pytest.importorskip("distributed")

RATE = 48000
runner = CliRunner()


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes on 127.0.0.1, started once for the module."""
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        silence_logs=40,
    ) as local:
        yield local


def song(folder: Path, seed: int, seconds: float = 1.5, regions: int = 0, gain_db: float = 0.0):
    """A short session: a compressed drum bus, a vocal through a shared reverb."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    write_wav(folder / "kick.wav", 0.2 * rng.uniform(-1, 1, (1, n)))
    write_wav(folder / "vox.wav", 0.2 * rng.uniform(-1, 1, (2, n)))
    data = {
        "name": f"Song {seed}",
        "tail_seconds": 0.25,
        "tracks": [
            {"name": "Kick", "clips": [{"file": "kick.wav"}], "output": "Drums"},
            {
                "name": "Vox",
                "clips": [{"file": "vox.wav"}],
                "gain_db": gain_db,
                "sends": [{"to": "Verb", "level_db": -12}],
            },
        ],
        "buses": [
            {"name": "Drums", "inserts": [{"type": "compressor", "threshold_db": -18}]},
            {"name": "Verb", "inserts": [{"type": "reverb", "room_size": 0.4}]},
        ],
    }
    if regions:
        step = seconds / regions
        data["regions"] = [
            {"name": f"Part {i + 1}", "start": i * step, "end": (i + 1) * step}
            for i in range(regions)
        ]
    return write_session(folder, data)


def hashes(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def hidden(root: Path) -> list[Path]:
    """Anything hidden or staged under ``root`` (a partial or staging folder)."""
    return [p for p in root.rglob("*") if p.name.startswith(".") or "partial" in p.name]


def summary(root: Path) -> dict:
    return json.loads((root / "batch.json").read_text())


def test_cluster_packages_are_byte_identical_to_serial_renders(cluster, tmp_path):
    sessions = [song(tmp_path / f"song{i}", seed=i) for i in range(3)]
    sessions.append(song(tmp_path / "suite", seed=9, seconds=2.0, regions=4))
    root = tmp_path / "batch"
    result = render_many(sessions, root, scheduler=cluster.scheduler_address, all_regions=True)
    assert result.exit_code == 0 and result.runner == "scheduler" and result.workers == 2
    data = summary(root)
    assert [t["package"] for t in data["tasks"]] == [
        "song0-session", "song1-session", "song2-session",
        "suite-session/Part 1", "suite-session/Part 2", "suite-session/Part 3",
        "suite-session/Part 4",
    ]  # fmt: skip
    assert {t["status"] for t in data["tasks"]} == {"ok"}
    assert {t["verdict"] for t in data["tasks"]} == {"pass"}
    assert len({t["worker"] for t in data["tasks"]}) == 2  # both workers rendered
    for i, session in enumerate(sessions):
        serial = tmp_path / f"serial{i}"
        args = ["render", str(session), "-o", str(serial), "-q"]
        if i == 3:
            args.append("--all-regions")
        assert runner.invoke(app, args).exit_code == 0
        package = root / package_names(sessions)[i]
        assert hashes(package) == hashes(serial)
        assert len(hashes(serial)) >= (24 if i == 3 else 6)
    for task in data["tasks"]:  # the summary's hashes are the files'
        listed = {f["path"]: f["sha256"] for f in task["files"]}
        assert listed == hashes(root / task["package"])
    assert hidden(root) == []


def test_a_worker_killed_mid_run_is_retried(cluster, tmp_path):
    sessions = [song(tmp_path / f"s{i}", seed=20 + i, seconds=4.0) for i in range(3)]
    root = tmp_path / "batch"
    with distributed.Client(cluster.scheduler_address) as client:
        pids = set(client.run(os.getpid).values())
    done: dict = {}
    thread = threading.Thread(
        target=lambda: done.update(
            result=render_many(sessions, root, scheduler=cluster.scheduler_address)
        )
    )
    thread.start()
    killed = _kill_a_rendering_worker(root, pids, thread)
    thread.join(timeout=180)
    assert killed is not None, "no render was caught mid-run"
    result = done["result"]
    assert result.exit_code == 0, [t["message"] for t in result.tasks]
    retried = [t for t in result.tasks if t["attempt"] > 1]
    assert retried and all(not t["worker"].endswith(f":{killed}") for t in retried)
    for task in result.tasks:
        package = root / task["package"]
        manifest = json.loads((package / "manifest.json").read_text())
        assert manifest["verification"]["passed"] is True
        assert {f["path"] for f in manifest["files"]} <= set(hashes(package))
        assert {f["path"]: f["sha256"] for f in task["files"]} == hashes(package)
    assert sorted(p.name for p in root.iterdir()) == ["batch.json"] + package_names(sessions)
    assert hidden(root) == []


def _kill_a_rendering_worker(root: Path, pids: set[int], thread: threading.Thread) -> int | None:
    """SIGKILL the worker whose attempt folder has started writing audio."""
    deadline = time.monotonic() + 60
    while thread.is_alive() and time.monotonic() < deadline:
        for attempt in root.glob(".stemprint-batch-*/task-*/attempt-*"):
            pid = int(attempt.name.rsplit("-", 1)[1])
            if pid in pids and any(attempt.rglob("*.wav")):
                os.kill(pid, signal.SIGKILL)
                return pid
        time.sleep(0.002)
    return None


def test_a_bad_session_fails_only_its_own_task(cluster, tmp_path):
    good = [song(tmp_path / "a", seed=1), song(tmp_path / "b", seed=2)]
    (tmp_path / "bad").mkdir()
    bad = write_session(
        tmp_path / "bad", {"tracks": [{"name": "X", "clips": [{"file": "no.wav"}]}]}
    )
    loud = song(tmp_path / "loud", seed=3, gain_db=14.0)  # clips the mix: the null fails
    root = tmp_path / "batch"
    result = render_many([good[0], bad, good[1], loud], root, scheduler=cluster.scheduler_address)
    data = summary(root)
    codes = [(t["status"], t["exit_code"]) for t in data["tasks"]]
    assert codes == [("ok", 0), ("failed", 2), ("ok", 0), ("failed", 1)]
    assert result.exit_code == data["exit_code"] == 2
    failed = data["tasks"][1]
    assert failed["session"] == str(bad) and failed["package"] is None
    assert "audio file not found" in failed["message"] and "no.wav" in failed["message"]
    assert data["tasks"][3]["verdict"] == "fail" and (root / "loud-session").is_dir()
    assert "failed its verification" in data["tasks"][3]["message"]
    assert hidden(root) == []


def test_serial_without_dask(monkeypatch, tmp_path):
    monkeypatch.setattr("stemprint.batch.dask_available", lambda: False)
    sessions = [song(tmp_path / "one", seed=4), song(tmp_path / "two", seed=5)]
    seen = []
    result = render_many(sessions, tmp_path / "batch", progress=seen.append)
    assert result.runner == "serial" and "dask is not installed" in result.notes[0]
    assert result.exit_code == 0 and summary(tmp_path / "batch")["runner"] == "serial"
    assert [(e.done, e.total) for e in seen] == [(0, 2), (1, 2), (2, 2)]
    assert seen[-1].audio_seconds == pytest.approx(2 * 1.75)


def test_existing_packages_are_refused_without_force(tmp_path):
    session = song(tmp_path / "one", seed=6)
    root = tmp_path / "batch"
    render_many([session], root, serial=True)
    from stemprint.errors import InputError

    with pytest.raises(InputError, match="already holds a batch"):
        render_many([session], root, serial=True)
    (root / "batch.json").unlink()
    with pytest.raises(InputError, match="package folder already exists"):
        render_many([session], root, serial=True)
    before = hashes(root)
    again = render_many([session], root, serial=True, force=True)
    assert again.exit_code == 0 and hashes(root / "one-session") == {
        k.split("/", 1)[1]: v for k, v in before.items() if k.startswith("one-session/")
    }


def test_package_names_are_safe_and_unique():
    paths = [
        Path("/m/album/a/session.yaml"),
        Path("/m/album/b/session.yaml"),
        Path("/m/x/Song.yaml"),
        Path("/m/y/song.rpp"),
        Path("/m/z/.hidden.yaml"),
        Path("/m/q/batch.json.yaml"),
        Path("/m/x/Song.yaml"),
    ]
    assert package_names(paths) == [
        "a-session", "b-session", "x-Song", "y-song", "hidden", "_batch.json", "x-Song 2",
    ]  # fmt: skip


def test_daw_project_in_a_batch(tmp_path):
    from tests.importers.rpp_synth import item, noise, project, track, write_project
    from tests.importers.rpp_synth import write_wav as write_media

    write_media(tmp_path / "media" / "gtr.wav", noise(1, 1, 1.0))
    rpp = write_project(tmp_path, project([track("Gtr", [item("media/gtr.wav", 0.0, 1.0)])]))
    root = tmp_path / "batch"
    result = render_many([rpp], root, serial=True)
    assert result.exit_code == 0, result.tasks[0]["message"]
    package = root / "song"
    assert (package / "import-report.json").is_file()
    assert (
        runner.invoke(app, ["render", str(rpp), "-o", str(tmp_path / "serial"), "-q"]).exit_code
        == 0
    )
    assert hashes(package) == hashes(tmp_path / "serial")


def test_regions_sharing_a_folder_fail_their_session_only(tmp_path):
    session = song(tmp_path / "dup", seed=7, regions=2)
    text = session.read_text().replace("Part 2", "Part 1")
    session.write_text(text)
    other = song(tmp_path / "fine", seed=8)
    result = render_many([session, other], tmp_path / "batch", all_regions=True, serial=True)
    assert [(t["status"], t["exit_code"]) for t in result.tasks] == [("failed", 2), ("ok", 0)]
    assert "same folder" in result.tasks[0]["message"] and result.exit_code == 2
