"""Printed files reused from the render cache, through the CLI: a re-render copies exactly the
files whose bytes would not change, and its package and its verification are those of a cold
render, byte for byte; a damaged or edited file, a damaged record or a record without levels is
a miss, and the file is written again."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from stemprint.cli.main import app
from tests.conftest import write_session, write_wav

runner = CliRunner()

SESSION = {
    "tail_seconds": 0.4,
    "tracks": [
        {"name": "Kick", "clips": [{"file": "kick.wav"}], "gain_db": -3.0, "output": "Drums",
         "inserts": [{"type": "compressor", "threshold_db": -20, "ratio": 3}]},
        {"name": "Hat", "clips": [{"file": "hat.wav", "start_seconds": 0.05}], "pan": 0.4,
         "output": "Drums", "sends": [{"to": "Verb", "level_db": -10}]},
        {"name": "Keys", "clips": [{"file": "keys.wav"}], "sends": [{"to": "Verb", "level_db": -6}],
         "inserts": [{"type": "highpass_filter", "cutoff_frequency_hz": 80}]},
        {"name": "Vox", "clips": [{"file": "vox.wav", "fade_in_seconds": 0.02}], "pan": -0.2},
    ],
    "buses": [
        {"name": "Drums", "inserts": [{"type": "compressor", "threshold_db": -14, "ratio": 2}]},
        {"name": "Verb", "inserts": [{"type": "reverb", "room_size": 0.5}]},
    ],
    "master": {"inserts": [{"type": "limiter", "threshold_db": -4}]},
}  # fmt: skip


@pytest.fixture
def media(tmp_path: Path) -> Path:
    """Music-like sources of odd lengths: a decaying kick, noise bursts, a chord, a vowel."""
    rate = 48000
    rng = np.random.default_rng(11)
    t = np.arange(37_001) / rate
    kick = np.sin(2 * np.pi * 55 * t) * np.exp(-t * 9) * 0.8
    hat = rng.normal(0, 0.1, t.size) * (np.sin(2 * np.pi * 4 * t) > 0.6)
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) * 0.15
    vox = np.sin(2 * np.pi * 180 * t + 2 * np.sin(2 * np.pi * 5 * t)) * 0.3
    write_wav(tmp_path / "kick.wav", kick[None, :])
    write_wav(tmp_path / "hat.wav", hat[None, :23_457])
    write_wav(tmp_path / "keys.wav", np.stack([chord, np.roll(chord, 40)]))
    write_wav(tmp_path / "vox.wav", vox[None, :], subtype="PCM_24")
    return tmp_path


def _cli(folder: Path, session: dict, out: str, *options: str) -> dict:
    path = write_session(folder, session)
    args = ["render", str(path), "-o", str(folder / out), "--no-report", *options]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "verification PASS" in result.output or "--no-verify" in options
    return json.loads((folder / out / "manifest.json").read_text())


def _bytes(package: Path) -> dict[str, bytes]:
    """Every file of a package; the manifest without its ``cache`` entry."""
    found = {}
    for path in sorted(p for p in package.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.name == "manifest.json":
            manifest = json.loads(data)
            manifest.pop("cache", None)
            data = json.dumps(manifest, sort_keys=True).encode()
        found[str(path.relative_to(package))] = data
    return found


def _change(kind: str) -> dict:
    session = copy.deepcopy(SESSION)
    tracks = {t["name"]: t for t in session["tracks"]}
    if kind == "fader":
        tracks["Kick"]["gain_db"] = -2.0  # Drums, the premaster and the mix change
    elif kind == "send":
        tracks["Keys"]["sends"][0]["level_db"] = -9.0  # Verb and what follows
    elif kind == "bus_insert":
        session["buses"][0]["inserts"][0]["ratio"] = 4
    elif kind == "mono_stems":
        session["delivery"] = {"mono_stems": True}
        tracks["Vox"]["pan"] = 0.0  # a stem that stays mono: rewritten as a mono file
    return session


def _audio(manifest: dict) -> list[str]:
    return [f["path"] for f in manifest["files"]]


@pytest.mark.parametrize("threads", ["1", "2"])
@pytest.mark.parametrize("kind", ["none", "fader", "send", "bus_insert"])
def test_unchanged_files_are_copied_and_verified_as_written(media, kind, threads):
    cache = str(media / "cache")
    first = _cli(media, SESSION, "first", "--cache", cache, "--threads", threads)
    assert first["cache"]["files_reused"] == []
    changed = _change(kind)
    _cli(media, changed, "cold", "--threads", threads)
    warm = _cli(media, changed, "warm", "--cache", cache, "--threads", threads)
    cold_files, first_files = _bytes(media / "cold"), _bytes(media / "first")
    assert _bytes(media / "warm") == cold_files  # verification.json included
    unchanged = [p for p in _audio(warm) if first_files[p] == cold_files[p]]
    assert warm["cache"]["files_reused"] == unchanged
    if kind == "none":
        assert unchanged == _audio(warm)
        assert set(warm["cache"]["idle"]) == set(warm["cache"]["reused"])  # nothing ran
    else:
        assert 0 < len(unchanged) < len(_audio(warm))
        assert "mix.wav" not in unchanged


def test_a_mono_file_is_reused_with_its_levels(media):
    session = _change("mono_stems")
    cache = str(media / "cache")
    first = _cli(media, session, "first", "--cache", cache)
    vox = next(f for f in first["files"] if f["name"] == "Vox")
    assert vox["channels"] == 1
    session["tracks"][0]["gain_db"] = -1.0
    _cli(media, session, "cold")
    warm = _cli(media, session, "warm", "--cache", cache)
    assert vox["path"] in warm["cache"]["files_reused"]
    assert _bytes(media / "warm") == _bytes(media / "cold")


def _entry(cache: Path, suffix: str) -> list[Path]:
    return sorted((cache / "entries").glob(f"*.{suffix}"))


def _file_entry_of(cache: Path, sha256: str) -> Path:
    for record in _entry(cache, "json"):
        if json.loads(record.read_text())["sha256"] == sha256:
            return record.with_suffix(".file")
    raise AssertionError("no entry for that file")


@pytest.mark.parametrize("damage", ["cache_file", "package_file", "record", "record_levels"])
def test_damage_is_a_miss_and_the_file_is_written_again(media, damage):
    cache = media / "cache"
    first = _cli(media, SESSION, "first", "--cache", str(cache))
    victim = next(f for f in first["files"] if f["name"] == "Keys")
    entry = _file_entry_of(cache, victim["sha256"])
    if damage in ("cache_file", "package_file"):
        # One sample changed in place: in the cache, or in the package it was linked from
        # (a user's in-place edit); either way the copy fails its SHA-256 check.
        path = entry if damage == "cache_file" else media / "first" / victim["path"]
        with path.open("r+b") as handle:
            handle.seek(-7, 2)
            byte = handle.read(1)
            handle.seek(-7, 2)
            handle.write(bytes([byte[0] ^ 0x40]))
    else:
        record_path = entry.with_suffix(".json")
        record = json.loads(record_path.read_text())
        if damage == "record":
            record["stats"]["frames"] += 1
        else:  # levels that are not the file's: the record's own check fails
            record["measurement"]["file"]["levels"]["loudness_lufs"] -= 3.0
        record_path.write_text(json.dumps(record))
    _cli(media, SESSION, "cold")
    warm = _cli(media, SESSION, "warm", "--cache", str(cache))
    assert victim["path"] not in warm["cache"]["files_reused"]
    assert len(warm["cache"]["files_reused"]) == len(_audio(warm)) - 1
    assert _bytes(media / "warm") == _bytes(media / "cold")


def test_files_stored_without_levels_are_not_reused_by_a_verified_render(media):
    cache = str(media / "cache")
    _cli(media, SESSION, "quick", "--cache", cache, "--no-verify")
    _cli(media, SESSION, "cold")
    warm = _cli(media, SESSION, "warm", "--cache", cache)
    assert warm["cache"]["files_reused"] == []  # no levels recorded: written and measured
    assert _bytes(media / "warm") == _bytes(media / "cold")
    again = _cli(media, SESSION, "again", "--cache", cache)
    assert again["cache"]["files_reused"] == _audio(again)
    assert _bytes(media / "again") == _bytes(media / "cold")


def test_another_format_is_not_reused(media):
    cache = str(media / "cache")
    _cli(media, SESSION, "first", "--cache", cache, "--bit-depth", "16")
    warm = _cli(media, SESSION, "warm", "--cache", cache)
    assert warm["cache"]["files_reused"] == []
    # Every route with an entry came back from it (Vox has no inserts, so no entry).
    assert warm["cache"]["rendered"] == ["Vox"]


def test_a_resampled_package_reuses_its_files_and_reads_them_back(media):
    # Resampled files are verified by reading them back (no live levels): copies are read too.
    cache = str(media / "cache")
    rate = ["--sample-rate", "44100"]
    _cli(media, SESSION, "first", "--cache", cache, *rate)
    changed = _change("fader")
    _cli(media, changed, "cold", *rate)
    warm = _cli(media, changed, "warm", "--cache", cache, *rate)
    assert warm["sample_rate"] == 44100
    assert 0 < len(warm["cache"]["files_reused"]) < len(_audio(warm))
    assert _bytes(media / "warm") == _bytes(media / "cold")
