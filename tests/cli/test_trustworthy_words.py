"""Issue #12 regressions through the CLI: reproducible bytes in every format, words that say
what the files hold, and musical choices that are never silent."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from stemprint.cli.main import app
from tests.conftest import write_session, write_wav

runner = CliRunner()
RATE = 48000


def _write_sources(tmp_path, seconds=1.0):
    rng = np.random.default_rng(12)
    n = int(seconds * RATE)
    write_wav(tmp_path / "kick.wav", 0.1 * rng.uniform(-1, 1, (1, n)))
    write_wav(tmp_path / "keys.wav", 0.1 * rng.uniform(-1, 1, (2, n)))
    write_wav(tmp_path / "bgv.wav", 0.1 * rng.uniform(-1, 1, (1, n)))


def _session(tmp_path, **extra):
    _write_sources(tmp_path)
    data = {
        "tail_seconds": 0.25,
        "tracks": [
            {"name": "Kick", "clips": [{"file": "kick.wav"}]},
            {"name": "Keys", "clips": [{"file": "keys.wav"}], "sends": [{"to": "Verb"}]},
            {"name": "BGV", "clips": [{"file": "bgv.wav"}], "sends": [{"to": "Verb"}]},
        ],
        "buses": [{"name": "Verb", "inserts": [{"type": "reverb", "room_size": 0.4}]}],
        "master": {"inserts": [{"type": "limiter", "threshold_db": -3}]},
        **extra,
    }
    return write_session(tmp_path, data)


def _hashes(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize(
    "args",
    [["--bit-depth", "16"], ["--bit-depth", "24"], ["--bit-depth", "32"], ["--bit-depth", "32f"],
     ["--format", "aiff", "--bit-depth", "32f"], ["--format", "flac"]],
)  # fmt: skip
def test_two_renders_are_byte_identical_in_every_format(tmp_path, args):
    session = _session(tmp_path)
    for name in ("a", "b"):
        result = runner.invoke(app, ["render", str(session), "-o", str(tmp_path / name), *args])
        assert result.exit_code == 0, result.output
    first, second = _hashes(tmp_path / "a"), _hashes(tmp_path / "b")
    assert first == second  # audio, manifest, README and verification.json alike
    assert len(first) >= 7


def test_manifest_and_readme_say_what_the_files_hold(tmp_path):
    session = _session(tmp_path, delivery={"tail": {"mode": "until_silent", "hold_seconds": 0.1}})
    out = tmp_path / "out"
    result = runner.invoke(app, ["render", str(session), "-o", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    # The tail kept, not the 30 s cap.
    assert manifest["tail_seconds"] < 5.0
    assert manifest["length_samples"] == RATE + round(manifest["tail_seconds"] * RATE)
    # The engine's fixed chunking is buffering, not the reverb's latency.
    verb = next(r for r in manifest["latency"]["routes"] if r["route"] == "Verb")
    assert verb["latency_samples"] == 0 and verb["buffering_samples"] == 16384
    readme = (out / "README.md").read_text()
    assert "(sums to the mix)" not in readme
    assert "the stems together sum to `premaster.wav`" in readme


def test_sync_preset_keeps_backing_vocals_out_of_the_instrumental(tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["render", str(_session(tmp_path)), "-o", str(out), "--preset", "sync"]
    )
    assert result.exit_code == 0, result.output
    files = {f["name"]: f for f in json.loads((out / "manifest.json").read_text())["files"]}
    assert sorted(files["Instrumental"]["tracks"]) == ["Keys", "Kick"]
    assert files["A Cappella"]["tracks"] == ["BGV"]


def test_validate_never_advises_a_negative_latency(tmp_path):
    _write_sources(tmp_path)
    session = write_session(
        tmp_path,
        {
            "tracks": [
                {
                    "name": "Kick",
                    "clips": [{"file": "kick.wav"}],
                    # Declares 100 samples it does not have: the output is 100 samples early.
                    "inserts": [
                        {"type": "sample_delay", "delay_samples": 0, "latency_samples": 100}
                    ],
                }
            ]
        },
    )
    result = runner.invoke(app, ["validate", str(session), "--measure-latency"])
    assert result.exit_code == 0, result.output
    assert "differs by -100 samples" in result.output
    assert "latency_samples: -" not in result.output
    assert "lower the declared `latency_samples` by 100" in result.output


def test_a_region_starts_warm_with_the_reverb_of_what_played_before(tmp_path):
    session = _session(tmp_path, regions=[{"name": "Late", "start": 0.5, "end": 0.75}])
    full, part = tmp_path / "full", tmp_path / "part"
    assert (
        runner.invoke(
            app, ["render", str(session), "-o", str(full), "--bit-depth", "32f"]
        ).exit_code
        == 0
    )
    result = runner.invoke(
        app, ["render", str(session), "-o", str(part), "--bit-depth", "32f", "--region", "Late"]
    )
    assert result.exit_code == 0, result.output
    mix = sf.read(str(full / "premaster.wav"), always_2d=True)[0]
    late = sf.read(str(part / "premaster - Late.wav"), always_2d=True)[0]
    start = RATE // 2
    np.testing.assert_array_equal(late, mix[start : start + len(late)])


def test_dry_multitrack_with_a_mono_track_and_stems_passes(tmp_path):
    session = _session(tmp_path, delivery={"multitrack": "dry"})
    out = tmp_path / "out"
    result = runner.invoke(app, ["render", str(session), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "verification PASS" in result.output
    files = {f["name"]: f for f in json.loads((out / "manifest.json").read_text())["files"]}
    assert files["Kick"]["channels"] == 1 or any(f["channels"] == 1 for f in files.values())


def test_per_stem_tap_points_mixed_do_not_claim_a_missing_stem(tmp_path):
    stems = [
        {"name": "Drums", "routes": ["Kick"]},
        {"name": "Music", "routes": ["Keys", "Verb"], "tap": "pre_fader"},
        {"name": "Vocals", "routes": ["BGV"]},
    ]
    out = tmp_path / "out"
    session = _session(tmp_path, stems=stems, delivery={"returns": "split"})
    result = runner.invoke(app, ["render", str(session), "-o", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sums"] == [] and "missing" not in result.output
    roles = {f["name"]: f["role"] for f in manifest["files"]}
    assert roles["Music"] == "stem_pre_fader" and roles["Drums"] == "stem_post_fader"
