"""Clips placed in bars under a tempo map, fade shapes and crossfades."""

from __future__ import annotations

import numpy as np
import pytest

from stemprint.errors import SessionError
from tests.conftest import render_arrays, write_session, write_wav

RATE = 48000


def test_bar_positions_under_a_tempo_change(tmp_path):
    click = np.zeros((1, 100))
    click[0, 0] = 0.5
    write_wav(tmp_path / "click.wav", click)
    path = write_session(
        tmp_path,
        {
            "tempo_bpm": 120,
            "tempo_changes": [{"bar": 9, "tempo_bpm": 90}, {"bar": 11, "time_signature": "7/8"}],
            "tracks": [
                {"name": "A", "clips": [{"file": "click.wav", "start": "10.2.0"}]},
                {"name": "B", "clips": [{"file": "click.wav", "start": "12.3.0"}]},
                {"name": "C", "clips": [{"file": "click.wav", "start": "4800smp"}]},
            ],
        },
    )
    out, graph = render_arrays(path)
    # Bars 1-8 at 120 bpm (2 s each) = 16 s; bar 9 at 90 bpm lasts 4 × 60/90 s; beat 2 of bar 10
    # is one more beat (60/90 s) in. Bar 11 (7/8 at 90 bpm: eighths of 30/90 s) lasts 7/3 s;
    # beat 3 of bar 12 is two eighths in.
    bar10_beat2 = 16 + 4 * 60 / 90 + 60 / 90
    bar12_beat3 = 16 + 2 * 4 * 60 / 90 + 7 * 30 / 90 + 2 * 30 / 90
    for key, seconds in (("stem:A", bar10_beat2), ("stem:B", bar12_beat3), ("stem:C", 0.1)):
        assert int(np.argmax(np.abs(out[key][0]))) == round(seconds * RATE), key


def test_duration_in_beats(tmp_path):
    write_wav(tmp_path / "n.wav", 0.1 * np.ones((1, 3 * RATE)))
    path = write_session(
        tmp_path,
        {
            "tempo_bpm": 100,
            "tracks": [
                {"name": "A", "clips": [{"file": "n.wav", "start": "2.1.0", "duration": "3 beats"}]}
            ],
        },
    )
    out, graph = render_arrays(path)
    start = round(4 * 0.6 * RATE)
    assert graph.length_samples == start + round(3 * 0.6 * RATE)
    assert out["mix"][0, start - 1] == 0 and out["mix"][0, start] > 0


def test_start_given_twice_is_an_error(tmp_path):
    write_wav(tmp_path / "n.wav", 0.1 * np.ones((1, 480)))
    path = write_session(
        tmp_path,
        {
            "tracks": [
                {"name": "A", "clips": [{"file": "n.wav", "start": "2.1.0", "start_seconds": 1.0}]}
            ]
        },
    )
    with pytest.raises(SessionError, match="either start or start_seconds"):
        render_arrays(path)


@pytest.mark.parametrize(("shape", "correlated"), [("linear", True), ("equal_power", False)])
def test_crossfades_keep_constant_level(tmp_path, shape, correlated):
    rng = np.random.default_rng(3)
    a = 0.25 * rng.uniform(-1, 1, (1, 2 * RATE))
    b = a.copy() if correlated else 0.25 * rng.uniform(-1, 1, (1, 2 * RATE))
    write_wav(tmp_path / "a.wav", a)
    write_wav(tmp_path / "b.wav", b)
    overlap = 0.5  # seconds: clip A fades out while clip B fades in
    path = write_session(
        tmp_path,
        {
            "tracks": [
                {
                    "name": "T",
                    "clips": [
                        {
                            "file": "a.wav",
                            "duration_seconds": 1.0,
                            "fade_out_seconds": overlap,
                            "fade_out_shape": shape,
                        },
                        {
                            "file": "b.wav",
                            "start_seconds": 1.0 - overlap,
                            "offset_seconds": 1.0 - overlap,
                            "duration_seconds": 1.0,
                            "fade_in_seconds": overlap,
                            "fade_in_shape": shape,
                        },
                    ],
                }
            ]
        },
    )
    out, _ = render_arrays(path)
    mix = out["mix"][0] / np.sqrt(0.5)  # undo the centre pan
    if correlated:  # identical material: a linear crossfade gives back the source exactly
        np.testing.assert_allclose(mix[: int(1.5 * RATE)], a[0, : int(1.5 * RATE)], atol=1e-15)
    else:  # unrelated material: equal power keeps the RMS level in every 50 ms window
        reference = np.sqrt(np.mean(a[0, : RATE // 2] ** 2))
        for start in range(int(0.5 * RATE), RATE, RATE // 20):
            window = mix[start : start + RATE // 20]
            level = 20 * np.log10(np.sqrt(np.mean(window**2)) / reference)
            assert abs(level) < 0.6, (start, level)
