"""Package facts: manifest, README, lengths, atomic writes, RF64, sums re-read from disk."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import soundfile as sf

from stemprint.errors import InputError, RenderError
from stemprint.export.package import RenderOptions, render_package, safe_file_name
from stemprint.model.load import load_session
from tests.conftest import write_session, write_wav


def _session(tmp_path, rng, master_inserts=None):
    for name, channels in (("a", 1), ("b", 2), ("c", 1)):
        write_wav(tmp_path / f"{name}.wav", 0.2 * rng.uniform(-1, 1, (channels, 9600)))
    return write_session(
        tmp_path,
        {
            "name": "Pkg Test",
            "tail_seconds": 0.5,
            "tracks": [
                {
                    "name": "Kick/1",
                    "clips": [{"file": "a.wav"}],
                    "output": "Drums",
                    "sends": [{"to": "Verb", "level_db": -6}],
                },
                {"name": "Keys", "clips": [{"file": "b.wav", "start_seconds": 0.1}], "pan": 0.4},
                {
                    "name": "Vox",
                    "clips": [{"file": "c.wav", "start_seconds": 0.2}],
                    "sends": [{"to": "Verb", "level_db": -3}],
                },
            ],
            "buses": [
                {"name": "Drums", "inserts": [{"type": "compressor", "threshold_db": -20}]},
                {
                    "name": "Verb",
                    "inserts": [{"type": "reverb", "wet_level": 1.0, "dry_level": 0.0}],
                },
            ],
            "master": {"inserts": master_inserts or []},
        },
    )


def test_package_contents_and_sums(tmp_path, rng):
    session = _session(tmp_path, rng, [{"type": "limiter", "threshold_db": -3}])
    out = tmp_path / "out"
    result = render_package(load_session(session), out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest == result.manifest
    assert manifest["stemprint"] == 1 and manifest["sample_rate"] == 48000
    length = int(0.2 * 48000) + 9600 + 24000
    assert manifest["length_samples"] == length
    paths = [f["path"] for f in manifest["files"]]
    assert paths == [
        "mix.wav",
        "premaster.wav",
        "stems/Keys.wav",
        "stems/Vox.wav",
        "stems/Drums.wav",
        "stems/Verb.wav",
    ]
    roles = {f["path"]: f["role"] for f in manifest["files"]}
    assert roles["mix.wav"] == "mix" and roles["premaster.wav"] == "premaster"
    data = {}
    for entry in manifest["files"]:
        path = out / entry["path"]
        info = sf.info(str(path))
        assert info.frames == length and info.samplerate == 48000 and info.subtype == "PCM_24"
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        data[entry["path"]] = sf.read(str(path), always_2d=True)[0]
    stems = sum(v for k, v in data.items() if k.startswith("stems/"))
    residual = np.max(np.abs(stems - data["premaster.wav"]))
    assert 20 * np.log10(residual) < -120  # 24-bit quantization of 5 files
    drums = next(f for f in manifest["files"] if f["name"] == "Drums")
    assert drums["routes"] == ["Kick/1", "Drums"] and drums["tap_point"] == "post_fader"
    assert drums["processing"][-1]["inserts"] == ["compressor(threshold_db=-20)"]
    readme = (out / "README.md").read_text()
    assert "premaster.wav" in readme and "compressor(threshold_db=-20)" in readme
    assert "all starting at 0" in readme
    assert not list(tmp_path.glob(".out.partial-*"))


def test_no_premaster_without_master_processing(tmp_path, rng):
    out = tmp_path / "out"
    result = render_package(load_session(_session(tmp_path, rng)), out)
    assert [f["role"] for f in result.manifest["files"]].count("premaster") == 0
    assert result.manifest["stems_sum_to"] == "mix"


def test_refuses_to_overwrite_without_force(tmp_path, rng):
    session = load_session(_session(tmp_path, rng))
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="already exists"):
        render_package(session, out)
    assert (out / "keep.txt").read_text() == "mine"
    # --force replaces only a stemprint package: a folder of the user's is never deleted.
    with pytest.raises(InputError, match="not a stemprint package"):
        render_package(session, out, RenderOptions(force=True))
    assert (out / "keep.txt").read_text() == "mine"
    package = tmp_path / "package"
    render_package(session, package)
    (package / "old.txt").write_text("from an earlier render")
    render_package(session, package, RenderOptions(force=True))
    assert not (package / "old.txt").exists() and (package / "mix.wav").exists()


def test_failed_render_leaves_nothing(tmp_path, rng):
    write_wav(tmp_path / "a.wav", 0.1 * np.ones((1, 480000)))
    session = write_session(
        tmp_path,
        {
            "tracks": [
                {"name": "A", "clips": [{"file": "a.wav"}]},
                {
                    "name": "B",
                    "clips": [{"file": "a.wav", "start_seconds": 5}],
                    "inserts": [{"type": "gain", "gain_db": 2000}],
                },
            ]
        },
    )
    out = tmp_path / "out"
    with pytest.raises(RenderError):
        render_package(load_session(session), out)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_existing_package_survives_a_failed_forced_render(tmp_path, rng):
    good = load_session(_session(tmp_path, rng))
    out = tmp_path / "out"
    render_package(good, out)
    before = (out / "mix.wav").read_bytes()
    write_wav(tmp_path / "n.wav", np.full((1, 100), np.inf), subtype="FLOAT")
    bad = write_session(
        tmp_path, {"tracks": [{"name": "N", "clips": [{"file": "n.wav"}]}]}, name="bad.yaml"
    )
    with pytest.raises(RenderError):
        render_package(load_session(bad), out, RenderOptions(force=True))
    assert (out / "mix.wav").read_bytes() == before


def test_rf64_when_over_threshold(tmp_path, rng):
    out = tmp_path / "out"
    result = render_package(
        load_session(_session(tmp_path, rng)), out, RenderOptions(rf64_threshold_bytes=1000)
    )
    assert {f["format"] for f in result.manifest["files"]} == {"RF64"}
    assert (out / "mix.wav").read_bytes()[:4] == b"RF64"
    assert sf.info(str(out / "mix.wav")).frames == result.manifest["length_samples"]


def test_bit_identical_renders(tmp_path, rng):
    session = load_session(_session(tmp_path, rng, [{"type": "limiter"}]))
    a = render_package(session, tmp_path / "a", RenderOptions(bit_depth="16"))
    b = render_package(session, tmp_path / "b", RenderOptions(bit_depth="16", block_size=333))
    assert [f["sha256"] for f in a.manifest["files"]] == [f["sha256"] for f in b.manifest["files"]]


def test_safe_file_names():
    assert safe_file_name("Kick/1") == "Kick_1"
    assert safe_file_name("a:b*c?") == "a_b_c_"
    assert safe_file_name("CON") == "_CON"
    assert safe_file_name("...") == "_"


def test_file_name_collision_is_an_error(tmp_path, rng):
    write_wav(tmp_path / "a.wav", 0.1 * np.ones((1, 480)))
    session = write_session(
        tmp_path,
        {
            "tracks": [
                {"name": "Vox/1", "clips": [{"file": "a.wav"}]},
                {"name": "Vox_1", "clips": [{"file": "a.wav"}]},
            ]
        },
    )
    with pytest.raises(InputError, match="would both be written as stems/Vox_1.wav"):
        render_package(load_session(session), tmp_path / "out")
    assert not (tmp_path / "out").exists()
