"""Automation of fader, pan, mute and send level: sample-exact, on the timeline, block-size
independent."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stemprint.errors import SessionError
from tests.conftest import render_arrays, write_session, write_wav

N = 6000


def _tone(tmp_path, channels=1):
    x = np.full((channels, N), 0.5)
    write_wav(tmp_path / "a.wav", x)
    return x


def _render(tmp_path, automation, block_size=4096, inserts=(), sends=(), buses=()):
    path = write_session(
        tmp_path,
        {
            "tracks": [
                {
                    "name": "A",
                    "clips": [{"file": "a.wav"}],
                    "automation": automation,
                    "inserts": list(inserts),
                    "sends": list(sends),
                }
            ],
            "buses": list(buses),
        },
    )
    return render_arrays(path, block_size=block_size)[0]


def test_fader_ramp_is_sample_exact(tmp_path):
    _tone(tmp_path)
    lane = {"param": "gain_db", "points": [["1000smp", 0.0], ["3000smp", -20.0]]}
    out = _render(tmp_path, [lane])
    t = np.arange(N)
    db = np.where(t < 1000, 0.0, np.where(t >= 3000, -20.0, -20.0 * ((t - 1000) / 2000)))
    expected = 0.5 * 10 ** (db / 20) * math.sqrt(0.5)
    np.testing.assert_allclose(out["mix"][0], expected, rtol=1e-12)
    assert out["mix"][0, 2000] == pytest.approx(0.5 * 10 ** (-10 / 20) * math.sqrt(0.5), 1e-12)


def test_pan_automation_follows_the_law(tmp_path):
    _tone(tmp_path)
    lane = {"param": "pan", "points": [[0.0, -1.0], ["6000smp", 1.0]]}
    out = _render(tmp_path, [lane])
    pan = -1 + 2 * np.arange(N) / 6000
    theta = (pan + 1) * math.pi / 4
    np.testing.assert_allclose(out["mix"][0], 0.5 * np.cos(theta), atol=1e-15)
    np.testing.assert_allclose(out["mix"][1], 0.5 * np.sin(theta), atol=1e-15)


@pytest.mark.parametrize("block_size", [32, 100, 999, 65536])
def test_block_size_independent(tmp_path, block_size):
    _tone(tmp_path)
    lanes = [
        {"param": "gain_db", "points": [[0.0, -3.0], ["2500smp", 0.0], ["2500smp", -9.0]]},
        {"param": "pan", "interpolation": "hold", "points": [[0.0, 0.0], ["4000smp", 0.5]]},
        {"param": "mute", "points": [[0.0, 0], ["5000smp", 1]]},
        {"param": "send:Verb", "points": [[0.0, -20.0], ["6000smp", 0.0]]},
    ]
    args = {"sends": [{"to": "Verb"}], "buses": [{"name": "Verb"}]}
    reference = _render(tmp_path, lanes, 4096, **args)
    other = _render(tmp_path, lanes, block_size, **args)
    for key in reference:
        assert np.array_equal(reference[key], other[key]), key


def test_mute_ramps_without_clicks(tmp_path):
    _tone(tmp_path)
    out = _render(tmp_path, [{"param": "mute", "points": [[0.0, 0], ["3000smp", 1]]}])
    left = out["mix"][0] / (0.5 * math.sqrt(0.5))
    assert np.all(left[:3000] == 1.0) and np.all(left[3240:] == 0.0)
    assert np.max(np.abs(np.diff(left))) <= 1 / 240 + 1e-12  # 5 ms ramp at 48 kHz


def test_mute_also_silences_pre_fader_sends(tmp_path):
    _tone(tmp_path)
    out = _render(
        tmp_path,
        [{"param": "mute", "points": [[0.0, 0], ["3000smp", 1]]}],
        sends=[{"to": "Verb", "pre_fader": True}],
        buses=[{"name": "Verb"}],
    )
    assert np.all(out["stem:Verb"][:, 3240:] == 0.0) and np.all(out["stem:Verb"][:, :3000] == 0.5)


def test_automation_stays_on_the_timeline_through_latency(tmp_path):
    _tone(tmp_path)
    lane = [{"param": "gain_db", "points": [["1000smp", 0.0], ["3000smp", -20.0]]}]
    plain = _render(tmp_path, lane)
    latent = _render(
        tmp_path,
        lane,
        inserts=[{"type": "sample_delay", "delay_samples": 777, "latency_samples": 777}],
    )
    np.testing.assert_array_equal(latent["mix"], plain["mix"])


def test_automation_errors(tmp_path):
    _tone(tmp_path)
    with pytest.raises(SessionError, match="no send to 'Room'"):
        _render(tmp_path, [{"param": "send:Room", "points": [[0, 0]]}])
    with pytest.raises(SessionError, match="unknown automation param"):
        _render(tmp_path, [{"param": "volume", "points": [[0, 0]]}])
    with pytest.raises(SessionError, match="pan points go from -1 to 1"):
        _render(tmp_path, [{"param": "pan", "points": [[0, 2]]}])


def test_insert_parameter_automation_on_a_control_grid(tmp_path):
    """A gain insert automated from 0 to -12 dB steps every 256 timeline samples."""
    _tone(tmp_path)
    lane = {
        "param": "insert.0.gain_db",
        "interpolation": "hold",
        "points": [[0.0, 0.0], ["1000smp", -12.0]],
    }
    out = _render(tmp_path, [lane], inserts=[{"type": "gain", "gain_db": 0.0}])
    left = out["mix"][0] / (0.5 * math.sqrt(0.5))
    # The value at each 256-sample interval's first sample holds for the interval: the change
    # at sample 1000 takes effect at 1024 (float32 plug-in precision).
    np.testing.assert_allclose(left[:1024], 1.0, rtol=1e-6)
    np.testing.assert_allclose(left[1024:N], 10 ** (-12 / 20), rtol=1e-6)
    again = _render(tmp_path, [lane], block_size=100, inserts=[{"type": "gain", "gain_db": 0.0}])
    assert np.array_equal(again["mix"], out["mix"])


def test_insert_automation_errors(tmp_path):
    _tone(tmp_path)
    with pytest.raises(SessionError, match="no insert 2"):
        _render(
            tmp_path,
            [{"param": "insert.2.gain_db", "points": [[0, 0]]}],
            inserts=[{"type": "gain"}],
        )
    with pytest.raises(SessionError, match="gain has no parameter 'ratio'"):
        _render(
            tmp_path, [{"param": "insert.0.ratio", "points": [[0, 0]]}], inserts=[{"type": "gain"}]
        )
