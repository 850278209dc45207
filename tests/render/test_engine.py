"""Engine facts: gain and pan math, sends, nested buses, mute/solo, clips, resampling, block-size
independence, stems summing to the master input, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.conftest import render_arrays, write_session, write_wav

RATE = 48000


def _noise(rng: np.random.Generator, channels: int, n: int, level: float = 0.25) -> np.ndarray:
    return level * rng.standard_normal((channels, n)).clip(-3, 3) / 3


def test_mono_constant_power_pan_and_fader(tmp_path, rng):
    x = _noise(rng, 1, 4800)
    write_wav(tmp_path / "a.wav", x)
    path = write_session(
        tmp_path,
        {"tracks": [{"name": "A", "clips": [{"file": "a.wav"}], "gain_db": -6.0, "pan": 0.5}]},
    )
    out, graph = render_arrays(path)
    g = 10 ** (-6 / 20)
    theta = (0.5 + 1) * math.pi / 4
    assert graph.length_samples == 4800
    np.testing.assert_allclose(out["mix"][0], x[0] * (g * math.cos(theta)), rtol=1e-12, atol=0)
    np.testing.assert_allclose(out["mix"][1], x[0] * (g * math.sin(theta)), rtol=1e-12, atol=0)
    # Centre: -3.01 dB each side.
    assert 20 * math.log10(math.cos(math.pi / 4)) == pytest.approx(-3.0103, abs=1e-4)


@pytest.mark.parametrize("pan", [0.5, -0.25, 0.0, 1.0])
def test_stereo_balance_pan(tmp_path, rng, pan):
    x = _noise(rng, 2, 4800)
    write_wav(tmp_path / "s.wav", x)
    path = write_session(
        tmp_path, {"tracks": [{"name": "S", "clips": [{"file": "s.wav"}], "pan": pan}]}
    )
    out, _ = render_arrays(path)
    left = math.cos(pan * math.pi / 2) if pan > 0 else 1.0
    right = math.cos(-pan * math.pi / 2) if pan < 0 else 1.0
    np.testing.assert_allclose(out["mix"][0], x[0] * left, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(out["mix"][1], x[1] * right, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("pre_fader", [False, True])
def test_sends_pre_and_post_fader(tmp_path, rng, pre_fader):
    x = _noise(rng, 1, 4800)
    write_wav(tmp_path / "a.wav", x)
    path = write_session(
        tmp_path,
        {
            "tracks": [
                {
                    "name": "A",
                    "clips": [{"file": "a.wav"}],
                    "gain_db": -6.0,
                    "pan": 0.5,
                    "sends": [{"to": "Rev", "level_db": -9.0, "pre_fader": pre_fader}],
                }
            ],
            "buses": [{"name": "Rev"}],
        },
    )
    out, _ = render_arrays(path)
    send = 10 ** (-9 / 20)
    if pre_fader:  # after inserts, before fader and pan; mono on both channels at unity
        expected = np.vstack([x[0], x[0]]) * send
    else:
        g = 10 ** (-6 / 20)
        theta = 1.5 * math.pi / 4
        expected = np.vstack([x[0] * (g * math.cos(theta)), x[0] * (g * math.sin(theta))]) * send
    np.testing.assert_allclose(out["stem:Rev"], expected, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(out["stem:Rev"] + out["stem:A"], out["premaster"], atol=1e-16)


def test_nested_buses(tmp_path, rng):
    x = _noise(rng, 2, 4800)
    write_wav(tmp_path / "s.wav", x)
    path = write_session(
        tmp_path,
        {
            "tracks": [{"name": "T", "clips": [{"file": "s.wav"}], "gain_db": -2.0, "output": "A"}],
            "buses": [
                {"name": "A", "gain_db": -3.0, "pan": 0.2, "output": "B"},
                {"name": "B", "gain_db": 2.0, "output": "C"},
                {"name": "C", "pan": -0.5},
            ],
            "master": {"gain_db": -1.0},
        },
    )
    out, graph = render_arrays(path)
    assert [s.name for s in graph.stems] == ["C"]
    y = x * 10 ** (-2 / 20)
    y = y * 10 ** (-3 / 20) * np.array([[math.cos(0.2 * math.pi / 2)], [1.0]])
    y = y * 10 ** (2 / 20)
    y = y * np.array([[1.0], [math.cos(0.5 * math.pi / 2)]])
    np.testing.assert_allclose(out["stem:C"], y, rtol=1e-12)
    np.testing.assert_allclose(out["mix"], y * 10 ** (-1 / 20), rtol=1e-12)


def _mute_solo_session(tmp_path, rng, **flags):
    signals = {name: _noise(rng, 1, 2400) for name in ("t1", "t2", "t3")}
    for name, sig in signals.items():
        write_wav(tmp_path / f"{name}.wav", sig)
    tracks = [
        {
            "name": "T1",
            "clips": [{"file": "t1.wav"}],
            "output": "Drums",
            "sends": [{"to": "Room", "level_db": -6}],
        },
        {"name": "T2", "clips": [{"file": "t2.wav"}], "output": "Drums"},
        {"name": "T3", "clips": [{"file": "t3.wav"}]},
    ]
    buses = [{"name": "Drums"}, {"name": "Room"}]
    for key, value in flags.items():
        route, flag = key.split("_")
        for strip in tracks + buses:
            if strip["name"] == route:
                strip[flag] = value
    return write_session(tmp_path, {"tracks": tracks, "buses": buses}), signals


def _centre(sig):
    return np.vstack([sig[0], sig[0]]) * math.cos(math.pi / 4)


def test_mute_silences_route_and_its_sends(tmp_path, rng):
    path, s = _mute_solo_session(tmp_path, rng, T1_mute=True)
    out, _ = render_arrays(path)
    assert not out["stem:Room"].any()
    np.testing.assert_allclose(out["stem:Drums"], _centre(s["t2"]), rtol=1e-12)
    np.testing.assert_allclose(out["mix"], _centre(s["t2"]) + _centre(s["t3"]), rtol=1e-12)


def test_muted_bus_keeps_sends_of_its_tracks(tmp_path, rng):
    path, s = _mute_solo_session(tmp_path, rng, Drums_mute=True)
    out, _ = render_arrays(path)
    assert not out["stem:Drums"].any()
    np.testing.assert_allclose(out["stem:Room"], _centre(s["t1"]) * 10 ** (-6 / 20), rtol=1e-12)


def test_solo_track_keeps_its_buses_and_returns(tmp_path, rng):
    path, s = _mute_solo_session(tmp_path, rng, T1_solo=True)
    out, _ = render_arrays(path)
    np.testing.assert_allclose(out["stem:Drums"], _centre(s["t1"]), rtol=1e-12)
    np.testing.assert_allclose(out["stem:Room"], _centre(s["t1"]) * 10 ** (-6 / 20), rtol=1e-12)
    assert not out["stem:T3"].any()


def test_solo_bus_keeps_its_tracks(tmp_path, rng):
    path, s = _mute_solo_session(tmp_path, rng, Drums_solo=True)
    out, _ = render_arrays(path)
    np.testing.assert_allclose(out["stem:Drums"], _centre(s["t1"]) + _centre(s["t2"]), rtol=1e-12)
    assert not out["stem:T3"].any()
    assert not out["stem:Room"].any()


def test_clip_offset_duration_gain_and_fades(tmp_path, rng):
    x = _noise(rng, 1, 4800, level=0.5)
    write_wav(tmp_path / "a.wav", x)
    clip = {
        "file": "a.wav",
        "start_seconds": 0.01,
        "offset_seconds": 0.005,
        "duration_seconds": 0.02,
        "gain_db": -3.0,
        "fade_in_seconds": 0.001,
        "fade_out_seconds": 0.002,
    }
    path = write_session(tmp_path, {"tracks": [{"name": "A", "clips": [clip]}]})
    out, graph = render_arrays(path, block_size=64)  # fades span several blocks
    assert graph.length_samples == 480 + 960
    envelope = np.ones(960)
    envelope[:48] = np.arange(48) / 48
    envelope[-96:] = 1 - np.arange(96) / 96  # fade-out f(1 - i/n)
    expected = np.zeros(1440)
    expected[480:] = x[0, 240:1200] * 10 ** (-3 / 20) * envelope
    np.testing.assert_allclose(out["mix"][0], expected * math.cos(math.pi / 4), rtol=1e-12)
    assert out["mix"][0, 480] == 0.0  # fade-in starts at silence
    # The fade-out's last sample is f(1/n); the clip's end is then silent.


def test_overlapping_clips_sum_and_tail(tmp_path, rng):
    a, b = _noise(rng, 1, 1000), _noise(rng, 2, 1000)
    write_wav(tmp_path / "a.wav", a)
    write_wav(tmp_path / "b.wav", b)
    path = write_session(
        tmp_path,
        {
            "tail_seconds": 0.01,
            "tracks": [
                {
                    "name": "T",
                    "clips": [{"file": "a.wav"}, {"file": "b.wav", "start_seconds": 0.01}],
                }
            ],
        },
    )
    out, graph = render_arrays(path)
    assert graph.length_samples == 480 + 1000 + 480
    expected = np.zeros((2, 1960))
    expected[:, :1000] += a  # mono clip on a stereo track: both channels at unity
    expected[:, 480:1480] += b
    np.testing.assert_allclose(out["mix"], expected, rtol=1e-12)


def test_resampled_source_with_warning(tmp_path):
    t44 = np.arange(44100) / 44100
    write_wav(tmp_path / "s.wav", 0.5 * np.sin(2 * np.pi * 1000 * t44)[None], 44100)
    path = write_session(tmp_path, {"tracks": [{"name": "A", "clips": [{"file": "s.wav"}]}]})
    out, graph = render_arrays(path)
    assert any("44100 Hz, resampled to 48000 Hz" in w for w in graph.warnings)
    assert graph.length_samples == 48000
    t48 = np.arange(48000) / 48000
    expected = 0.5 * np.sin(2 * np.pi * 1000 * t48) * math.cos(math.pi / 4)
    error = out["mix"][0, 2000:-2000] - expected[2000:-2000]  # away from the edges
    assert 20 * np.log10(np.max(np.abs(error))) < -100


def test_plain_session_matches_float64_sum(tmp_path, rng):
    tracks, expected = [], np.zeros((2, 9000))
    for i in range(8):
        channels = 1 + i % 2
        x = _noise(rng, channels, 6000 + 300 * i)
        write_wav(tmp_path / f"t{i}.wav", x)
        gain_db, pan, start = float(rng.uniform(-12, 3)), float(rng.uniform(-1, 1)), 100 * i
        tracks.append(
            {
                "name": f"T{i}",
                "gain_db": gain_db,
                "pan": pan,
                "clips": [{"file": f"t{i}.wav", "start_seconds": start / RATE}],
                "output": "Bus" if i % 3 == 0 else "master",
            }
        )
        g = 10 ** (gain_db / 20)
        if channels == 1:
            theta = (pan + 1) * math.pi / 4
            y = np.vstack([x[0] * math.cos(theta), x[0] * math.sin(theta)]) * g
        else:
            y = (
                x
                * g
                * np.array(
                    [
                        [math.cos(pan * math.pi / 2) if pan > 0 else 1.0],
                        [math.cos(-pan * math.pi / 2) if pan < 0 else 1.0],
                    ]
                )
            )
        expected[:, start : start + x.shape[1]] += y
    path = write_session(tmp_path, {"tracks": tracks, "buses": [{"name": "Bus"}]})
    out, graph = render_arrays(path, block_size=1000)
    expected = expected[:, : graph.length_samples]
    residual = np.max(np.abs(out["mix"] - expected))
    assert residual == 0 or 20 * np.log10(residual) < -140


def _processed_session(tmp_path, rng):
    """Inserts everywhere, a shared reverb, a pre-fader delay send, a latent master limiter."""
    for name, channels in (("kick", 1), ("keys", 2), ("vox", 1)):
        write_wav(tmp_path / f"{name}.wav", _noise(rng, channels, 12000, 0.6))
    return write_session(
        tmp_path,
        {
            "tail_seconds": 0.1,
            "tracks": [
                {
                    "name": "Kick",
                    "clips": [{"file": "kick.wav"}],
                    "output": "Drums",
                    "inserts": [
                        {"type": "highpass_filter", "cutoff_frequency_hz": 40},
                        {"type": "compressor", "threshold_db": -18, "ratio": 4},
                    ],
                    "sends": [{"to": "Room", "level_db": -12}],
                },
                {
                    "name": "Keys",
                    "clips": [{"file": "keys.wav", "start_seconds": 0.013}],
                    "pan": -0.3,
                    "inserts": [
                        {"type": "chorus"},
                        {
                            "type": "sidechain_compressor",
                            "sidechain": "Kick",
                            "threshold_db": -30,
                            "ratio": 4,
                        },
                    ],
                    "sends": [{"to": "Room", "level_db": -9}],
                },
                {
                    "name": "Vox",
                    "clips": [{"file": "vox.wav", "fade_in_seconds": 0.01}],
                    "invert_polarity": True,
                    "inserts": [{"type": "resample", "target_sample_rate": 22050}],
                    "sends": [{"to": "Echo", "level_db": -6, "pre_fader": True}],
                },
            ],
            "buses": [
                {"name": "Drums", "inserts": [{"type": "distortion", "drive_db": 6}]},
                {"name": "Room", "inserts": [{"type": "reverb", "room_size": 0.7}]},
                {
                    "name": "Echo",
                    "inserts": [{"type": "delay", "delay_seconds": 0.01, "feedback": 0.3}],
                    "output": "Drums",
                },
            ],
            "master": {
                "inserts": [{"type": "brickwall_limiter", "ceiling_db": -1.0}],
                "gain_db": -0.5,
            },
        },
    )


def test_block_size_independence_and_stems_sum(tmp_path, rng):
    path = _processed_session(tmp_path, rng)
    reference, graph = render_arrays(path, block_size=4096)
    assert graph.master.latency_samples > 0 and graph.by_key["track:Vox"].chain_latency_samples > 0
    # The stems sum to the master input (float64; only summation order differs).
    stems = sum(v for k, v in reference.items() if k.startswith("stem:"))
    assert np.max(np.abs(stems - reference["premaster"])) < 1e-14  # below -280 dBFS
    for block_size in (32, 100, 1000, 4097, 65536):
        out, _ = render_arrays(path, block_size=block_size)
        for key, data in reference.items():
            assert np.array_equal(out[key], data), f"{key} differs at block size {block_size}"


def test_render_is_deterministic(tmp_path, rng):
    path = _processed_session(tmp_path, rng)
    first, _ = render_arrays(path)
    second, _ = render_arrays(path)
    for key in first:
        assert np.array_equal(first[key], second[key])


def test_thread_count_does_not_change_the_output(tmp_path, rng):
    from stemprint.graph.compile import compile_session
    from stemprint.model.load import load_session
    from stemprint.render.engine import Renderer
    from tests.conftest import ArraySink

    path = _processed_session(tmp_path, rng)
    results = []
    for threads in (1, 2, 4):
        renderer = Renderer(compile_session(load_session(path)), 1000, threads=threads)
        sinks = {tap.key: ArraySink() for tap in renderer.taps}
        renderer.run(sinks)  # type: ignore[arg-type]
        results.append({k: s.data for k, s in sinks.items()})
    for other in results[1:]:
        for key, data in results[0].items():
            assert np.array_equal(other[key], data), key
