"""Channel layouts: the surround panner, fold-downs, LFE sends, mono buses and what is refused,
each checked against its formula sample by sample (``dsp.layouts``)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from stemprint.cli.main import app
from stemprint.dsp.layouts import matrix, surround_pan_matrix
from stemprint.graph.compile import compile_session
from stemprint.model.load import load_session
from stemprint.render.engine import Renderer
from tests.conftest import ArraySink, render_arrays, write_session, write_wav

N = 4800
C, LFE, LS, RS = 2, 3, 4, 5
runner = CliRunner()


def _noise(tmp_path, name, channels=1, seed=1):
    x = 0.25 * np.random.default_rng(seed).uniform(-1, 1, (channels, N))
    write_wav(tmp_path / name, x)
    return x


def _render(tmp_path, session, block_size=4096):
    return render_arrays(write_session(tmp_path, session), block_size=block_size)[0]


def test_centred_mono_dialogue_lands_in_the_centre_only(tmp_path):
    dx = _noise(tmp_path, "dx.wav")[0]
    session = {
        "master": {"layout": "5.1"},
        "tracks": [{"name": "Dialogue", "clips": [{"file": "dx.wav"}]}],
    }
    mix = _render(tmp_path, session)["mix"]
    assert mix.shape == (6, N)
    assert np.array_equal(mix[C], dx)
    assert not np.any(np.delete(mix, C, axis=0))


@pytest.mark.parametrize(
    ("surround", "expected"),
    [
        ({"azimuth_deg": 110}, {RS: 1.0}),
        ({"azimuth_deg": -30}, {0: 1.0}),
        ({"azimuth_deg": 15}, {C: math.cos(math.pi / 4), 1: math.sin(math.pi / 4)}),
        ({"azimuth_deg": 0, "use_center": False}, {0: math.sqrt(0.5), 1: math.sqrt(0.5)}),
        ({"azimuth_deg": 180}, {LS: math.sqrt(0.5), RS: math.sqrt(0.5)}),
    ],
)
def test_pairwise_constant_power_panner(tmp_path, surround, expected):
    x = _noise(tmp_path, "fx.wav")[0]
    session = {
        "master": {"layout": "5.1"},
        "tracks": [
            {"name": "FX", "clips": [{"file": "fx.wav"}], "surround": surround, "gain_db": -6.0}
        ],
    }
    mix = _render(tmp_path, session)["mix"]
    g = 10 ** (-6 / 20)
    for channel in range(6):
        np.testing.assert_allclose(mix[channel], x * g * expected.get(channel, 0.0), atol=1e-16)


def test_pan_maps_across_the_front_and_divergence_keeps_the_power(tmp_path):
    x = _noise(tmp_path, "m.wav")[0]
    track = {"name": "M", "clips": [{"file": "m.wav"}], "pan": 0.5, "surround": {"divergence": 0.4}}
    mix = _render(tmp_path, {"master": {"layout": "5.1"}, "tracks": [track]})["mix"]
    gains = surround_pan_matrix("5.1", 1, 15.0, divergence=0.4)[:, 0]
    np.testing.assert_allclose(mix, np.outer(gains, x), atol=1e-16)
    assert float(np.sum(gains**2)) == pytest.approx(1.0, abs=1e-15)


def test_stereo_bus_folds_into_a_surround_master_and_a_surround_bus_folds_down(tmp_path):
    music = _noise(tmp_path, "mx.wav", channels=2, seed=2)
    fx = _noise(tmp_path, "fx.wav", seed=3)[0]
    session = {
        "master": {"layout": "5.1"},
        "buses": [
            {"name": "MX"},
            {"name": "FX", "layout": "5.1"},
            {"name": "Stereo Print", "output": None},
        ],
        "tracks": [
            {"name": "Score", "clips": [{"file": "mx.wav"}], "output": "MX"},
            {
                "name": "Door",
                "clips": [{"file": "fx.wav"}],
                "output": "FX",
                "surround": {"azimuth_deg": -110},
                "sends": [{"to": "Stereo Print"}],
            },
        ],
    }
    out = _render(tmp_path, session)
    expected = np.zeros((6, N))
    expected[:2] += music  # a stereo bus into 5.1: L and R, nothing invented
    expected[LS] += fx
    np.testing.assert_allclose(out["mix"], expected, atol=1e-16)
    np.testing.assert_allclose(out["stem:FX"][LS], fx, atol=1e-16)
    # The 5.1 post-fader send folds into the stereo bus by BS.775: Lo = L + 0.7071·Ls.
    assert "stem:Stereo Print" not in out  # no main output: not a stem
    folded = matrix("5.1", "stereo") @ np.vstack([np.zeros((4, N)), fx[None], np.zeros((1, N))])
    np.testing.assert_allclose(folded[0], fx * math.sqrt(0.5), atol=1e-16)


def test_surround_bus_into_a_stereo_master_is_the_bs775_fold_down(tmp_path):
    fx = _noise(tmp_path, "fx.wav", seed=3)[0]
    dx = _noise(tmp_path, "dx.wav", seed=4)[0]
    session = {
        "buses": [{"name": "Film", "layout": "5.1"}],
        "tracks": [
            {
                "name": "Door",
                "clips": [{"file": "fx.wav"}],
                "output": "Film",
                "surround": {"azimuth_deg": 110},
            },
            {"name": "Line", "clips": [{"file": "dx.wav"}], "output": "Film"},
        ],
    }
    mix = _render(tmp_path, session)["mix"]
    s = math.sqrt(0.5)
    np.testing.assert_allclose(mix[0], s * dx, atol=1e-16)
    np.testing.assert_allclose(mix[1], s * dx + s * fx, atol=1e-16)


def test_lfe_send_pre_and_post_fader(tmp_path):
    x = _noise(tmp_path, "boom.wav", channels=2, seed=5)
    session = {
        "master": {"layout": "5.1"},
        "tracks": [
            {
                "name": "Boom",
                "clips": [{"file": "boom.wav"}],
                "gain_db": -6.0,
                "sends": [{"to": "master", "lfe": True, "level_db": -10.0}],
            }
        ],
    }
    # `master` is not a bus name: send to a 5.1 bus that outputs to the master instead.
    session["buses"] = [{"name": "Sub", "layout": "5.1"}]
    session["tracks"][0]["sends"] = [
        {"to": "Sub", "lfe": True, "level_db": -10.0},
        {"to": "Sub", "lfe": True, "pre_fader": True},
    ]
    mix = _render(tmp_path, session)["mix"]
    mono = x.mean(axis=0)
    lfe = mono * 10 ** (-6 / 20) * 10 ** (-10 / 20) + mono
    np.testing.assert_allclose(mix[LFE], lfe, atol=1e-15)
    np.testing.assert_allclose(mix[:2], x * 10 ** (-6 / 20), atol=1e-16)


def test_mono_bus_sums_its_inputs(tmp_path):
    st = _noise(tmp_path, "st.wav", channels=2, seed=6)
    mo = _noise(tmp_path, "mo.wav", seed=7)[0]
    session = {
        "buses": [{"name": "Mono", "layout": "mono"}],
        "tracks": [
            {"name": "St", "clips": [{"file": "st.wav"}], "output": "Mono", "pan": 0.7},
            {"name": "Mo", "clips": [{"file": "mo.wav"}], "output": "Mono", "gain_db": -6.0},
        ],
    }
    out = _render(tmp_path, session)
    summed = 0.5 * (st[0] + st[1]) + mo * 10 ** (-6 / 20)
    centre = math.sqrt(0.5)
    np.testing.assert_allclose(out["mix"], np.vstack([summed, summed]) * centre, atol=1e-16)


def _surround_session(tmp_path):
    tracks = []
    for i, azimuth in enumerate((0, -30, 30, 110, -110, 60)):
        _noise(tmp_path, f"t{i}.wav", channels=1 + i % 2, seed=10 + i)
        tracks.append(
            {
                "name": f"T{i}",
                "clips": [{"file": f"t{i}.wav"}],
                "surround": {"azimuth_deg": azimuth},
                "output": "Bus",
                "inserts": [{"type": "gain", "gain_db": -1.0}],
                "sends": [
                    {"to": "Verb", "level_db": -12.0},
                    {"to": "Bus", "lfe": True, "level_db": -20.0},
                ],
            }
        )
    return write_session(
        tmp_path,
        {
            "master": {"layout": "5.1"},
            "buses": [
                {
                    "name": "Bus",
                    "layout": "5.1",
                    "inserts": [{"type": "sidechain_compressor", "threshold_db": -30.0}],
                },
                {"name": "Verb", "inserts": [{"type": "reverb", "room_size": 0.5}]},
            ],
            "tracks": tracks,
            "tail_seconds": 0.2,
        },
    )


def test_surround_render_is_identical_for_every_block_size_and_process_count(tmp_path):
    graph = compile_session(load_session(_surround_session(tmp_path)))
    results = []
    for block, processes in ((4096, 1), (333, 1), (1024, 2)):
        renderer = Renderer(graph, block, threads=2, processes=processes)
        sinks = {tap.key: ArraySink() for tap in renderer.taps}
        renderer.run(sinks)  # type: ignore[arg-type]
        results.append({k: s.data for k, s in sinks.items()})
    for other in results[1:]:
        for key, data in results[0].items():
            assert data.shape[0] == 6, key
            assert np.array_equal(data, other[key]), key


def test_surround_package_through_the_cli(tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["render", str(_surround_session(tmp_path)), "-o", str(out), "--bit-depth", "32f"]
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    for entry in manifest["files"]:
        info = sf.info(str(out / entry["path"]))
        assert info.channels == 6 and entry["channels"] == 6, entry["path"]
    assert manifest["verification"]["passed"]
    mix = sf.read(str(out / "mix.wav"), always_2d=True)[0].T
    stems = sum(
        sf.read(str(out / e["path"]), always_2d=True)[0].T
        for e in manifest["files"]
        if e["role"] == "stem"
    )
    assert np.max(np.abs(mix - stems)) < 1e-6


@pytest.mark.parametrize(
    ("bus", "words"),
    [
        (
            {"inserts": [{"type": "reverb"}]},
            ["reverb", "Film", "returns its input unchanged", "stereo return"],
        ),
        (
            {"inserts": [{"type": "compressor"}]},
            ["compressor", "not be linked", "sidechain_compressor"],
        ),
        ({"pan": 0.3}, ["pan has no meaning", "buses[0].pan"]),
    ],
)
def test_what_a_surround_bus_refuses_through_the_cli(tmp_path, bus, words):
    _noise(tmp_path, "a.wav")
    session = {
        "master": {"layout": "5.1"},
        "buses": [{"name": "Film", "layout": "5.1", **bus}],
        "tracks": [{"name": "A", "clips": [{"file": "a.wav"}], "output": "Film"}],
    }
    result = runner.invoke(app, ["validate", str(write_session(tmp_path, session))])
    assert result.exit_code == 2, result.output
    for word in words:
        assert word in result.output, (word, result.output)


@pytest.mark.parametrize(
    ("send", "words"),
    [
        ({"to": "Film", "pan": 0.5}, ["send pan is a stereo balance"]),
        ({"to": "Verb", "lfe": True}, ["LFE send", "no LFE channel"]),
    ],
)
def test_what_a_send_refuses(tmp_path, send, words):
    _noise(tmp_path, "a.wav")
    session = {
        "master": {"layout": "5.1"},
        "buses": [{"name": "Film", "layout": "5.1"}, {"name": "Verb"}],
        "tracks": [{"name": "A", "clips": [{"file": "a.wav"}], "sends": [send]}],
    }
    result = runner.invoke(app, ["validate", str(write_session(tmp_path, session))])
    assert result.exit_code == 2
    for word in words:
        assert word in result.output, (word, result.output)
