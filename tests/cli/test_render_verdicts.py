"""Every preset's package is verified, through the CLI (exit code, verdict line, the report on
disk), and the render's own verification measures the files while writing them (no read-back)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from stemprint.cli.main import app
from tests.conftest import write_session, write_wav

runner = CliRunner()


def _session(tmp_path):
    rng = np.random.default_rng(8)
    for name, channels in (("kick", 1), ("keys", 2), ("vox", 1)):
        write_wav(tmp_path / f"{name}.wav", 0.05 * rng.uniform(-1, 1, (channels, 24000)))
    return write_session(
        tmp_path,
        {
            "tail_seconds": 0.3,
            "tracks": [
                {"name": "Kick", "clips": [{"file": "kick.wav"}], "output": "Drums"},
                {"name": "Keys", "clips": [{"file": "keys.wav"}], "sends": [{"to": "Verb"}]},
                {"name": "Lead Vox", "clips": [{"file": "vox.wav"}], "sends": [{"to": "Verb"}]},
            ],
            "buses": [
                {"name": "Drums", "inserts": [{"type": "compressor", "threshold_db": -20}]},
                {"name": "Verb", "inserts": [{"type": "reverb", "wet_level": 1, "dry_level": 0}]},
            ],
            "master": {"inserts": [{"type": "limiter", "threshold_db": -6}]},
        },
    )


@pytest.mark.parametrize(
    ("preset", "sums"),
    [
        ("performance", [("stems via master", False)]),  # the limiter is not linear
        ("multitrack", []),
        ("remix", [("stems", True)]),
        ("mastering", [("stems", True)]),
        ("sync", [("stems", True)]),
    ],
)
def test_every_preset_is_verified(tmp_path, preset, sums):
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["render", str(_session(tmp_path)), "-o", str(out), "--preset", preset]
    )
    assert result.exit_code == 0, result.output
    assert "verification PASS" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["verification"]["passed"] is True
    assert [(s["name"], s["exact"]) for s in manifest["sums"]] == sums
    report = json.loads((out / "verification.json").read_text())
    assert report["passed"] is True and len(report["files"]) == len(manifest["files"])


def test_premaster_never_with_a_limiter_passes(tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["render", str(_session(tmp_path)), "-o", str(out), "--premaster", "never"]
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(s["reference"], s["exact"]) for s in manifest["sums"]] == [("mix.wav", False)]


def test_remix_is_measured_live_not_read_back(tmp_path, monkeypatch):
    from stemprint.analysis import verify

    def no_read_back(*args, **kwargs):
        raise AssertionError("the package was read back")

    monkeypatch.setattr(verify, "_measure", no_read_back)
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["render", str(_session(tmp_path)), "-o", str(out), "--preset", "remix"]
    )
    assert result.exit_code == 0, result.output
    roles = {f["name"]: f["role"] for f in json.loads((out / "manifest.json").read_text())["files"]}
    assert roles["Drums"] == "stem" and roles["Drums (dry)"] == "stem_dry"


def test_delivery_warnings_reach_the_terminal(tmp_path):
    out = tmp_path / "out"
    session = _session(tmp_path)
    result = runner.invoke(app, ["render", str(session), "-o", str(out), "--preset", "mixing"])
    assert result.exit_code == 0, result.output
    # The split through the Drums compressor is said on the terminal, not only in the manifest.
    manifest = json.loads((out / "manifest.json").read_text())
    for warning in manifest["warnings"]:
        assert warning.split(":")[0] in result.output


def test_mono_stems_pass_their_own_verification(tmp_path):
    rng = np.random.default_rng(4)
    write_wav(tmp_path / "m.wav", 0.1 * rng.uniform(-1, 1, (1, 9600)))
    write_wav(tmp_path / "s.wav", 0.1 * rng.uniform(-1, 1, (2, 9600)))
    session = write_session(
        tmp_path,
        {
            "delivery": {"mono_stems": True},
            "tracks": [
                {"name": "Mono", "clips": [{"file": "m.wav"}]},
                {"name": "Wide", "clips": [{"file": "s.wav"}]},
            ],
        },
    )
    out = tmp_path / "out"
    result = runner.invoke(app, ["render", str(session), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "verification PASS" in result.output
    files = {f["name"]: f for f in json.loads((out / "manifest.json").read_text())["files"]}
    assert files["Mono"]["channels"] == 1 and files["Wide"]["channels"] == 2


def test_meter_processes_give_the_report_one_thread_gives(tmp_path, monkeypatch):
    """A package of 2+ minutes of audio rendered on two threads is metered in forked processes;
    its verdict, levels and null numbers are those of the one-thread render (metered in the
    render process)."""
    from stemprint.analysis import live_workers
    from stemprint.render.workers import fork_available

    session = _session(tmp_path)
    rng = np.random.default_rng(21)
    for name, channels in (("kick", 1), ("keys", 2), ("vox", 1)):  # the same routing, longer
        write_wav(tmp_path / f"{name}.wav", 0.05 * rng.uniform(-1, 1, (channels, 48000 * 40)))
    started: list[list[str]] = []
    original = live_workers.MeterProcess.__init__

    def spy(self, keys, *args, **kwargs):
        started.append(list(keys))
        original(self, keys, *args, **kwargs)

    monkeypatch.setattr(live_workers.MeterProcess, "__init__", spy)
    reports = {}
    for threads in ("1", "2"):
        out = tmp_path / f"out{threads}"
        result = runner.invoke(
            app, ["render", str(session), "-o", str(out), "--threads", threads, "--no-report"]
        )
        assert result.exit_code == 0, result.output
        assert "verification PASS" in result.output
        report = json.loads((out / "verification.json").read_text())
        report.pop("elapsed_seconds", None)
        report.pop("package", None)
        reports[threads] = report
    if fork_available():  # only the two-thread render forked, two processes for every file
        written = sorted(p.name for p in (tmp_path / "out2").rglob("*.wav"))
        assert len(started) == 2
        assert sorted(Path(k).name for keys in started for k in keys) == written
    assert reports["1"]["files"] == reports["2"]["files"]
    assert reports["1"]["nulls"] == reports["2"]["nulls"]
    assert reports["2"]["passed"] is True
