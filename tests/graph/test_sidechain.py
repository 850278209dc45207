"""Sidechain keys: ducking follows the key, survives stem splitting, is latency compensated,
and a key that closes a loop is a routing cycle."""

from __future__ import annotations

import numpy as np
import pytest

from stemprint.dsp.inserts import CHUNK_SAMPLES
from stemprint.errors import SessionError
from tests.conftest import render_arrays, write_session, write_wav

RATE = 48000
BEAT = RATE // 2  # a kick every 0.5 s


def _sources(tmp_path):
    rng = np.random.default_rng(5)
    n = 4 * RATE
    kick = np.zeros((1, n))
    for start in range(0, n, BEAT):
        kick[0, start : start + 2400] = 0.8 * np.sin(2 * np.pi * 60 * np.arange(2400) / RATE)
    bass = 0.2 * rng.uniform(-1, 1, (1, n))
    write_wav(tmp_path / "kick.wav", kick)
    write_wav(tmp_path / "bass.wav", bass)


def _session(tmp_path, kick_inserts=(), kick_mute=False, name="session.yaml"):
    return write_session(
        tmp_path,
        {
            "tracks": [
                {
                    "name": "Kick",
                    "clips": [{"file": "kick.wav"}],
                    "inserts": list(kick_inserts),
                    "mute": kick_mute,
                },
                {
                    "name": "Bass",
                    "clips": [{"file": "bass.wav"}],
                    "inserts": [
                        {
                            "type": "sidechain_compressor",
                            "sidechain": "Kick",
                            "threshold_db": -30,
                            "ratio": 8,
                            "attack_ms": 1,
                            "release_ms": 60,
                        }
                    ],
                },
            ]
        },
        name=name,
    )


def _rms_db(x):
    return 10 * np.log10(np.mean(x**2))


def test_bass_ducks_under_the_kick_in_its_own_stem(tmp_path):
    _sources(tmp_path)
    out, graph = render_arrays(_session(tmp_path))
    assert [s.name for s in graph.stems] == ["Kick", "Bass"]
    bass = out["stem:Bass"][0]
    during = np.concatenate([bass[s + 200 : s + 2400] for s in range(BEAT, 4 * RATE, BEAT)])
    between = np.concatenate([bass[s + 18000 : s + 23000] for s in range(BEAT, 4 * RATE, BEAT)])
    assert _rms_db(between) - _rms_db(during) > 15  # ducked by more than 15 dB under the kick
    # A muted key is a silent key: no ducking at all.
    muted, _ = render_arrays(_session(tmp_path, kick_mute=True, name="muted.yaml"))
    dry = muted["stem:Bass"][0]
    assert abs(_rms_db(dry[BEAT : 2 * BEAT]) - _rms_db(between)) < 1.5


def test_key_is_latency_compensated(tmp_path):
    _sources(tmp_path)
    plain, _ = render_arrays(_session(tmp_path))
    latent = [
        {"type": "sample_delay", "delay_samples": 1000, "latency_samples": 1000},
        {"type": "gain", "gain_db": 0.0},
    ]
    delayed, graph = render_arrays(_session(tmp_path, latent, name="latent.yaml"))
    assert graph.by_key["track:Kick"].chain_latency_samples == 1000 + CHUNK_SAMPLES
    # The bass waits for its (later) key, and the compressor's control grid is anchored to the
    # timeline: the ducking is exactly the same as without latency (float32 gain stage aside).
    np.testing.assert_allclose(delayed["stem:Bass"], plain["stem:Bass"], atol=1e-7)
    assert np.argmax(np.abs(delayed["stem:Kick"][0, :2400])) == np.argmax(
        np.abs(plain["stem:Kick"][0, :2400])
    )


def test_key_closing_a_loop_is_a_cycle(tmp_path):
    _sources(tmp_path)
    path = write_session(
        tmp_path,
        {
            "tracks": [
                {
                    "name": "Bass",
                    "clips": [{"file": "bass.wav"}],
                    "output": "Low",
                    "inserts": [{"type": "sidechain_compressor", "sidechain": "Low"}],
                },
            ],
            "buses": [{"name": "Low"}],
        },
    )
    with pytest.raises(SessionError, match="routing cycle"):
        render_arrays(path)


def test_unknown_key_route(tmp_path):
    _sources(tmp_path)
    path = write_session(
        tmp_path,
        {
            "tracks": [
                {
                    "name": "Bass",
                    "clips": [{"file": "bass.wav"}],
                    "inserts": [{"type": "sidechain_compressor", "sidechain": "Kik"}],
                }
            ]
        },
    )
    with pytest.raises(SessionError, match="sidechain key route 'Kik' does not exist"):
        render_arrays(path)


def test_ducking_survives_stem_splitting(tmp_path):
    """With split stems the bass stem is rendered from the bass alone, yet its key still comes
    from the full session: it ducks exactly as in the full mix."""
    from stemprint.export.package import RenderOptions, render_package
    from stemprint.model.load import load_session

    _sources(tmp_path)
    plain, _ = render_arrays(_session(tmp_path))
    path = _session(tmp_path, name="split.yaml")
    text = path.read_text() + (
        "stems:\n- {name: Low, routes: [Bass]}\n- {name: Beat, routes: [Kick]}\n"
        "delivery: {returns: split}\n"
    )
    path.write_text(text)
    out = tmp_path / "out"
    manifest = render_package(load_session(path), out, RenderOptions(bit_depth="32f")).manifest
    low = next(f for f in manifest["files"] if f["name"] == "Low")
    assert low["tracks"] == ["Bass"]
    import soundfile as sf

    data = sf.read(str(out / low["path"]), always_2d=True)[0].T
    np.testing.assert_allclose(data, plain["stem:Bass"], atol=1e-7)
    assert manifest["verification"]["passed"] is True


def test_alternate_mixes_take_keys_from_their_own_routes_or_from_the_session(tmp_path):
    import yaml

    from stemprint.export.package import RenderOptions, render_package
    from stemprint.model.load import load_session

    _sources(tmp_path)
    path = _session(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["mixes"] = [
        {"name": "No Kick", "mute": ["Kick"]},  # sidechain: mix (default), as a DAW bounces it
        {"name": "No Kick Aligned", "mute": ["Kick"], "sidechain": "session"},
    ]
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    render_package(load_session(path), out, RenderOptions(bit_depth="32f"))
    import soundfile as sf

    mix = sf.read(str(out / "mix.wav"), always_2d=True)[0].T
    kick_stem = sf.read(str(out / "stems" / "Kick.wav"), always_2d=True)[0].T
    own = sf.read(str(out / "mixes" / "No Kick.wav"), always_2d=True)[0].T
    aligned = sf.read(str(out / "mixes" / "No Kick Aligned.wav"), always_2d=True)[0].T
    bass = sf.read(str(tmp_path / "bass.wav"), always_2d=True)[0].T
    centre = np.cos(np.pi / 4)
    # session keys: the main mix without the kick, ducking included (to float32 precision)
    np.testing.assert_allclose(aligned, mix - kick_stem, atol=1e-6)
    # own keys: the kick is muted, so nothing ducks the bass: the bass as it is
    np.testing.assert_allclose(own[0], bass[0] * centre, atol=1e-6)
    assert _rms_db(own) - _rms_db(aligned) > 1.0  # the ducking is gone
