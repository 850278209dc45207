"""The `dme` delivery: DX, MX and FX stems in 5.1, the M&E and the printmaster, named as the
streaming platforms publish it, and proven: the stems null against the printmaster and the M&E
equals MX + FX, both to -120 dBFS."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf
from typer.testing import CliRunner

from stemprint.cli.main import app
from tests.conftest import write_session, write_wav

runner = CliRunner()
RATE = 48000
N = RATE  # one second


def film_session(tmp_path, **extra):
    """A 5.1 film-style scene: dialogue in the centre, a stereo score bus folded into the 5.1
    music stem, effects around the room, a shared stereo reverb return."""
    rng = np.random.default_rng(14)
    for name, channels in (("line", 1), ("score", 2), ("door", 1), ("rain", 2)):
        write_wav(tmp_path / f"{name}.wav", 0.2 * rng.uniform(-1, 1, (channels, N)))
    session = {
        "name": "Reel 1",
        "metadata": {"title": "Nightfall", "version": "v03"},
        "frame_rate": 23.976,
        "start_timecode": "01:00:00:00",
        "tail_seconds": 0.25,
        "master": {"layout": "5.1"},
        "buses": [
            {"name": "DX", "layout": "5.1"},
            {"name": "MX", "layout": "5.1"},
            {"name": "FX", "layout": "5.1"},
            {"name": "Score Bus", "output": "MX", "gain_db": -3.0},
            {
                "name": "Verb",
                "inserts": [
                    {"type": "reverb", "room_size": 0.6, "wet_level": 0.4, "dry_level": 0.0}
                ],
            },
        ],
        "tracks": [
            {
                "name": "Line",
                "clips": [{"file": "line.wav"}],
                "output": "DX",
                "sends": [{"to": "Verb", "level_db": -12.0}],
            },
            {"name": "Score", "clips": [{"file": "score.wav"}], "output": "Score Bus"},
            {
                "name": "Door",
                "clips": [{"file": "door.wav", "start_seconds": 0.2}],
                "output": "FX",
                "surround": {"azimuth_deg": 110},
                "sends": [
                    {"to": "Verb", "level_db": -6.0},
                    {"to": "FX", "lfe": True, "level_db": -10.0},
                ],
            },
            {
                "name": "Rain",
                "clips": [{"file": "rain.wav"}],
                "output": "FX",
                "surround": {"divergence": 0.3},
            },
        ],
        **extra,
    }
    return write_session(tmp_path, session)


def _read(path):
    return sf.read(str(path), dtype="float64", always_2d=True)[0].T


def test_dme_package_through_the_cli(tmp_path):
    out = tmp_path / "dme"
    result = runner.invoke(
        app,
        [
            "render",
            str(film_session(tmp_path)),
            "-o",
            str(out),
            "--preset",
            "dme",
            "--bit-depth",
            "32f",
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    files = {(f["role"], f["name"]): f for f in manifest["files"]}
    assert {name for role, name in files if role == "stem"} == {"DX", "MX", "FX"}
    assert ("alt_mix", "ME") in files and ("mix", "Mix") in files
    assert files[("stem", "FX")]["path"] == "stems/Nightfall_v03_FXSTEM_6ch_48k_32b_23976.wav"
    assert files[("mix", "Mix")]["path"] == "Nightfall_v03_PM_6ch_48k_32b_23976.wav"
    assert files[("alt_mix", "ME")]["path"] == "mixes/Nightfall_v03_ME_6ch_48k_32b_23976.wav"
    audio = {key: _read(out / entry["path"]) for key, entry in files.items()}
    assert all(a.shape == (6, manifest["length_samples"]) for a in audio.values())
    dx, mx, fx = (audio[("stem", n)] for n in ("DX", "MX", "FX"))
    assert np.max(np.abs(dx + mx + fx - audio[("mix", "Mix")])) < 1e-6  # float32 files
    assert np.max(np.abs(mx + fx - audio[("alt_mix", "ME")])) < 1e-6
    assert np.any(dx[2]) and not np.any(dx[3])  # dialogue in C; no LFE in the DX
    assert np.any(fx[3])  # the LFE send
    sums = {s["name"]: s for s in manifest["sums"]}
    assert sums["M&E"]["exact"]
    assert sums["M&E"]["reference"] == files[("alt_mix", "ME")]["path"]
    assert manifest["verification"]["passed"], manifest["verification"]


def test_dme_nulls_to_minus_120_dbfs_in_float64_sums(tmp_path):
    """The same package at 32-bit float: every part is float32 on disk, so the sums are checked
    against what the files hold (the engine sums in float64; the files round each part)."""
    from stemprint import load_session, render_package
    from stemprint.export.package import RenderOptions

    loaded = load_session(film_session(tmp_path))
    result = render_package(loaded, tmp_path / "p", RenderOptions(preset="dme", bit_depth="32f"))
    verification = result.manifest["verification"]
    assert verification["passed"]
    residuals = {s["name"]: s for s in result.verification.to_dict()["nulls"]}
    for relation in residuals.values():
        peak = relation["residual_peak_dbfs"]
        assert peak is None or peak <= -120.0, relation


def test_dme_needs_dx_mx_fx(tmp_path):
    path = film_session(tmp_path)
    text = path.read_text().replace("name: FX", "name: SFX").replace("output: FX", "output: SFX")
    text = text.replace("to: FX", "to: SFX")
    path.write_text(text)
    result = runner.invoke(app, ["render", str(path), "-o", str(tmp_path / "x"), "--preset", "dme"])
    assert result.exit_code == 2
    assert "FX is missing" in result.output and "stems" in result.output


def test_film_demo_in_one_command(tmp_path):
    out = tmp_path / "film"
    result = runner.invoke(app, ["demo", "--film", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "package" / "manifest.json").read_text())
    names = sorted((f["role"], f["name"], f["channels"]) for f in manifest["files"])
    assert names == [
        ("alt_mix", "ME", 6),
        ("mix", "Mix", 6),
        ("stem", "DX", 6),
        ("stem", "FX", 6),
        ("stem", "MX", 6),
    ]
    assert manifest["verification"]["passed"]
    dx = next(f for f in manifest["files"] if f["name"] == "DX")
    assert dx["path"] == "stems/Nightfall_v01_DIASTEM_6ch_48k_24b_23976.wav"


def test_discrete_channel_files_hold_each_channel_exactly(tmp_path):
    path = film_session(tmp_path, delivery={"channel_files": True})
    out = tmp_path / "dme"
    result = runner.invoke(app, ["render", str(path), "-o", str(out), "--preset", "dme"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    split = manifest["channel_files"]
    assert len(split) == 6 * len(manifest["files"])
    fx = next(f for f in manifest["files"] if f["name"] == "FX")
    parts = [c for c in split if c["source"] == fx["path"]]
    assert [c["channel"] for c in parts] == ["L", "R", "C", "LFE", "Ls", "Rs"]
    assert parts[2]["path"] == "channels/stems/Nightfall_v03_FXSTEM_6ch_48k_24b_23976.C.wav"
    interleaved = sf.read(str(out / fx["path"]), dtype="int32", always_2d=True)[0]
    for index, part in enumerate(parts):
        mono = sf.read(str(out / part["path"]), dtype="int32", always_2d=True)[0]
        assert mono.shape == (interleaved.shape[0], 1)
        assert np.array_equal(mono[:, 0], interleaved[:, index]), part["channel"]


def test_separate_returns_make_the_me_relation_informational(tmp_path):
    path = film_session(tmp_path, delivery={"returns": "separate"})
    out = tmp_path / "dme"
    result = runner.invoke(app, ["render", str(path), "-o", str(out), "--preset", "dme"])
    assert result.exit_code == 0, result.output  # the verdict does not fail on it
    manifest = json.loads((out / "manifest.json").read_text())
    me = next(s for s in manifest["sums"] if s["name"] == "M&E")
    assert not me["exact"] and "Verb also holds dialogue" in me["why"]
    stems = {f["name"] for f in manifest["files"] if f["role"] == "stem"}
    assert stems == {"DX", "MX", "FX", "Verb"}
