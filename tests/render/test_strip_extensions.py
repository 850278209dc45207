"""Strip features DAW projects need: per-route pan law, send pan, pre-FX sends, master mute,
balance and automation. Each is checked against the formula, sample by sample."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from stemprint.cli.main import app
from tests.conftest import render_arrays, write_session, write_wav

N = 4800
runner = CliRunner()


def _noise(tmp_path, channels=1, name="a.wav", seed=7):
    x = 0.25 * np.random.default_rng(seed).uniform(-1, 1, (channels, N))
    write_wav(tmp_path / name, x)
    return x


def _mix(tmp_path, session, block_size=4096):
    return render_arrays(write_session(tmp_path, session), block_size=block_size)[0]


@pytest.mark.parametrize("pan", [0.0, 0.5, -0.3, 1.0])
def test_balance_law_on_a_mono_track(tmp_path, pan):
    x = _noise(tmp_path)[0]
    track = {"name": "A", "clips": [{"file": "a.wav"}], "pan": pan, "pan_law": "balance"}
    out = _mix(tmp_path, {"tracks": [track]})["mix"]
    left = math.cos(pan * math.pi / 2) if pan > 0 else 1.0
    right = math.cos(-pan * math.pi / 2) if pan < 0 else 1.0
    np.testing.assert_allclose(out[0], x * left, rtol=0, atol=1e-16)
    np.testing.assert_allclose(out[1], x * right, rtol=0, atol=1e-16)


def test_balance_law_with_pan_automation(tmp_path):
    x = _noise(tmp_path)[0]
    lane = {"param": "pan", "points": [[0.0, -1.0], [f"{N}smp", 1.0]]}
    track = {"name": "A", "clips": [{"file": "a.wav"}], "pan_law": "balance", "automation": [lane]}
    out = _mix(tmp_path, {"tracks": [track]}, block_size=333)["mix"]
    pan = -1 + 2 * np.arange(N) / N
    left = np.where(pan > 0, np.cos(pan * math.pi / 2), 1.0)
    right = np.where(pan < 0, np.cos(-pan * math.pi / 2), 1.0)
    np.testing.assert_allclose(out[0], x * left, atol=1e-15)
    np.testing.assert_allclose(out[1], x * right, atol=1e-15)


def test_constant_power_is_the_contract_law(tmp_path):
    _noise(tmp_path)
    base = {"name": "A", "clips": [{"file": "a.wav"}], "pan": 0.4}
    auto = _mix(tmp_path, {"tracks": [base]})["mix"]
    pinned = _mix(tmp_path, {"tracks": [{**base, "pan_law": "constant_power"}]})["mix"]
    assert np.array_equal(auto, pinned)


def test_send_pan_is_a_balance_after_the_level(tmp_path):
    x = _noise(tmp_path)[0]
    track = {
        "name": "A",
        "clips": [{"file": "a.wav"}],
        "sends": [{"to": "Verb", "level_db": -6.0, "pan": 0.5}],
    }
    out = _mix(tmp_path, {"tracks": [track], "buses": [{"name": "Verb"}]})
    g = 10 ** (-6 / 20)
    post = x * math.sqrt(0.5)
    np.testing.assert_allclose(out["stem:Verb"][0], post * g * math.cos(math.pi / 4), atol=1e-16)
    np.testing.assert_allclose(out["stem:Verb"][1], post * g, atol=1e-16)
    np.testing.assert_allclose(out["mix"], out["stem:A"] + out["stem:Verb"], atol=1e-16)


@pytest.mark.parametrize("block_size", [64, 1000, 4096])
def test_pre_fx_send_taps_before_a_latent_insert(tmp_path, block_size):
    """The send skips the inserts (−12 dB and a 64-sample delay), the fader and the pan, and
    still lands at the sample the track's own output does."""
    x = _noise(tmp_path)[0]
    inserts = [
        {"type": "gain", "gain_db": -12.0},
        {"type": "sample_delay", "delay_samples": 64, "latency_samples": 64},
    ]
    track = {
        "name": "A",
        "clips": [{"file": "a.wav"}],
        "inserts": inserts,
        "gain_db": -6.0,
        "pan": -0.5,
        "sends": [{"to": "Verb", "pre_inserts": True, "level_db": -3.0}],
    }
    session = {"tracks": [track], "buses": [{"name": "Verb"}], "tail_seconds": 0.01}
    out = _mix(tmp_path, session, block_size)
    verb = out["stem:Verb"]
    assert verb.shape[1] >= N
    np.testing.assert_allclose(verb[0, :N], x * 10 ** (-3 / 20), atol=1e-16)
    np.testing.assert_allclose(verb[1, :N], x * 10 ** (-3 / 20), atol=1e-16)
    theta = (-0.5 + 1) * math.pi / 4
    track_gain = 10 ** (-12 / 20) * 10 ** (-6 / 20)
    # pedalboard processes in float32: relative 1e-7
    np.testing.assert_allclose(out["stem:A"][0, :N], x * track_gain * math.cos(theta), rtol=1e-6)


def test_pre_fx_send_from_a_worker_process_is_identical(tmp_path):
    """Tracks rendered in worker processes ship their pre-FX signal too."""
    from stemprint.graph.compile import compile_session
    from stemprint.model.load import load_session
    from stemprint.render.engine import Renderer
    from tests.conftest import ArraySink

    tracks = []
    for i in range(4):
        _noise(tmp_path, name=f"t{i}.wav", seed=i)
        tracks.append(
            {
                "name": f"T{i}",
                "clips": [{"file": f"t{i}.wav"}],
                "inserts": [{"type": "gain", "gain_db": -3.0}],
                "sends": [{"to": "Verb", "pre_inserts": True}],
            }
        )
    path = write_session(tmp_path, {"tracks": tracks, "buses": [{"name": "Verb"}]})
    graph = compile_session(load_session(path))
    results = []
    for processes in (1, 2):
        renderer = Renderer(graph, 512, threads=2, processes=processes)
        sinks = {tap.key: ArraySink() for tap in renderer.taps}
        renderer.run(sinks)  # type: ignore[arg-type]
        results.append({k: s.data for k, s in sinks.items()})
    for key in results[0]:
        assert np.array_equal(results[0][key], results[1][key]), key


def _render_cli(tmp_path, master):
    x = _noise(tmp_path, channels=2)
    session = {"tracks": [{"name": "A", "clips": [{"file": "a.wav"}]}], "master": master}
    path = write_session(tmp_path, session)
    out = tmp_path / "out"
    result = runner.invoke(app, ["render", str(path), "-o", str(out), "--bit-depth", "32f"])
    manifest = json.loads((out / "manifest.json").read_text()) if out.exists() else {}
    files = {
        f["role"]: sf.read(str(out / f["path"]), always_2d=True)[0].T
        for f in manifest.get("files", [])
    }
    return result, x, files


def test_master_mute_silences_the_mix_and_the_package_verifies(tmp_path):
    result, x, files = _render_cli(tmp_path, {"mute": True})
    assert result.exit_code == 0, result.output
    assert not np.any(files["mix"])
    np.testing.assert_allclose(files["premaster"][:, :N], x.astype(np.float32), atol=0)
    np.testing.assert_allclose(files["stem"][:, :N], x.astype(np.float32), atol=0)


def test_master_balance(tmp_path):
    result, x, files = _render_cli(tmp_path, {"pan": 0.5})
    assert result.exit_code == 0, result.output
    mix = files["mix"][:, :N]
    np.testing.assert_allclose(mix[0], (x[0] * math.cos(math.pi / 4)).astype(np.float32), atol=1e-7)
    np.testing.assert_allclose(mix[1], x[1].astype(np.float32), atol=0)


def test_master_gain_automation(tmp_path):
    lane = {"param": "gain_db", "points": [[0.0, 0.0], [f"{N}smp", -24.0]]}
    result, x, files = _render_cli(tmp_path, {"automation": [lane]})
    assert result.exit_code == 0, result.output
    gain = 10 ** (-24 * np.arange(N) / N / 20)
    np.testing.assert_allclose(files["mix"][:, :N], x * gain, atol=1e-7)


def test_master_cannot_automate_a_send(tmp_path):
    lane = {"param": "send:Verb", "points": [[0.0, 0.0]]}
    result, _x, _files = _render_cli(tmp_path, {"automation": [lane]})
    assert result.exit_code == 2
    assert "master.automation[0].param" in result.output


def test_missing_vst3_preset_is_named(tmp_path):
    write_wav(tmp_path / "a.wav", np.zeros((1, 100)))
    (tmp_path / "plugin.vst3").write_bytes(b"")
    track = {
        "name": "A",
        "clips": [{"file": "a.wav"}],
        "inserts": [{"type": "vst3", "path": "plugin.vst3", "preset": "nope.vstpreset"}],
    }
    path = write_session(tmp_path, {"tracks": [track]})
    result = runner.invoke(app, ["validate", str(path), "--allow-plugins"])
    assert result.exit_code == 2
    assert "nope.vstpreset" in result.output and "preset" in result.output


def test_a_route_without_main_output_feeds_only_its_sends(tmp_path):
    """`output: null` (REAPER's unchecked parent send): the track reaches the mix only through
    its send, and the default stems (the return) still sum to the mix."""
    x = _noise(tmp_path, channels=2)
    track = {
        "name": "A",
        "clips": [{"file": "a.wav"}],
        "output": None,
        "gain_db": -6.0,
        "sends": [{"to": "Verb", "level_db": -3.0}],
    }
    path = write_session(tmp_path, {"tracks": [track], "buses": [{"name": "Verb"}]})
    out = tmp_path / "out"
    result = runner.invoke(app, ["render", str(path), "-o", str(out), "--bit-depth", "32f"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert [f["name"] for f in manifest["files"] if f["role"] == "stem"] == ["Verb"]
    mix = sf.read(str(out / "mix.wav"), always_2d=True)[0].T
    expected = x * 10 ** (-9 / 20)
    np.testing.assert_allclose(mix[:, :N], expected.astype(np.float32), atol=1e-7)
    assert manifest["verification"]["passed"]
