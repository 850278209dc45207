"""Nothing the user owns is lost: --force replaces only a package, no output holds an input, a
full disk is bad input (exit 2) and leaves nothing behind. Through the CLI (exit code and
message), as a user meets them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from stemprint.cli.main import app
from tests.conftest import write_session, write_wav

runner = CliRunner()


def _session_with_audio_folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(5)
    write_wav(tmp_path / "audio" / "a.wav", 0.2 * rng.uniform(-1, 1, (1, 4800)))
    return write_session(tmp_path, {"tracks": [{"name": "A", "clips": [{"file": "audio/a.wav"}]}]})


def test_force_never_replaces_the_sessions_own_audio_folder(tmp_path):
    session = _session_with_audio_folder(tmp_path)
    before = (tmp_path / "audio" / "a.wav").read_bytes()
    result = runner.invoke(app, ["render", str(session), "-o", str(tmp_path / "audio"), "--force"])
    assert result.exit_code == 2, result.output
    assert "holds an input" in result.output
    assert (tmp_path / "audio" / "a.wav").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audio", "session.yaml"]


def test_force_never_replaces_a_folder_that_is_not_a_package(tmp_path):
    session = _session_with_audio_folder(tmp_path)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    result = runner.invoke(app, ["render", str(session), "-o", str(mine), "--force"])
    assert result.exit_code == 2, result.output
    assert "not a stemprint package" in result.output
    assert (mine / "notes.txt").read_text() == "keep me"


def test_no_output_inside_the_session_folder_tree_that_holds_inputs(tmp_path):
    session = _session_with_audio_folder(tmp_path)
    # The session's own folder holds the session file and the audio: never an output.
    result = runner.invoke(app, ["render", str(session), "-o", str(tmp_path), "--force"])
    assert result.exit_code == 2 and "holds an input" in result.output


def test_force_replaces_an_earlier_package(tmp_path):
    session = _session_with_audio_folder(tmp_path)
    out = tmp_path / "out"
    assert runner.invoke(app, ["render", str(session), "-o", str(out), "-q"]).exit_code == 0
    again = runner.invoke(app, ["render", str(session), "-o", str(out), "--force", "-q"])
    assert again.exit_code == 0, again.output
    assert (out / "mix.wav").exists()


def test_a_package_that_cannot_fit_is_refused_before_rendering(tmp_path, monkeypatch):
    session = _session_with_audio_folder(tmp_path)
    usage = shutil.disk_usage(tmp_path)

    def tiny(path: object) -> object:
        return type(usage)(usage.total, usage.total - 1000, 1000)

    monkeypatch.setattr("stemprint.export.publish.shutil.disk_usage", tiny)
    result = runner.invoke(app, ["render", str(session), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "not enough disk space" in result.output and "1000" not in result.output
    assert "0.0 MB free" in result.output and "needs about" in result.output
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (needs root and mount; skipped elsewhere)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_disk_that_fills_up_while_writing_is_exit_2_and_leaves_nothing(
    tmp_path, small_disk, monkeypatch
):
    rng = np.random.default_rng(6)
    write_wav(tmp_path / "long.wav", 0.2 * rng.uniform(-1, 1, (2, 48000 * 10)), subtype="PCM_24")
    session = write_session(tmp_path, {"tracks": [{"name": "L", "clips": [{"file": "long.wav"}]}]})
    # The estimate would refuse it up front; pretend the disk looked big enough to start.
    real = shutil.disk_usage
    monkeypatch.setattr("stemprint.export.publish.check_free_space", lambda out_dir, needed: None)
    monkeypatch.setattr("stemprint.export.package.check_free_space", lambda out_dir, needed: None)
    result = runner.invoke(app, ["render", str(session), "-o", str(small_disk / "out")])
    assert result.exit_code == 2, result.output
    assert "not enough disk space" in result.output and "internal error" not in result.output
    assert list(small_disk.iterdir()) == []
    assert real(small_disk).free > 900 * 1024  # the staging folder was removed
