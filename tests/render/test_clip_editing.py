"""Clip editing: reverse, loop, clip gain envelopes."""

from __future__ import annotations

import numpy as np
import pytest

from stemprint.errors import SessionError
from tests.conftest import render_arrays, write_session, write_wav

RATE = 48000
CENTRE = np.sqrt(0.5)


def _ramp(tmp_path, n=1000):
    x = (np.arange(n) / n)[None] * 0.5
    write_wav(tmp_path / "r.wav", x)
    return x[0]


@pytest.mark.parametrize("block_size", [32, 333, 4096])
def test_reverse_and_loop(tmp_path, block_size):
    ramp = _ramp(tmp_path)
    path = write_session(
        tmp_path,
        {
            "tracks": [
                {
                    "name": "Rev",
                    "clips": [{"file": "r.wav", "reverse": True, "offset_seconds": 100 / RATE}],
                },
                {
                    "name": "Loop",
                    "clips": [
                        {
                            "file": "r.wav",
                            "loop": True,
                            "offset_seconds": 600 / RATE,
                            "duration_seconds": 1000 / RATE,
                        }
                    ],
                },
                {
                    "name": "Both",
                    "clips": [
                        {
                            "file": "r.wav",
                            "loop": True,
                            "reverse": True,
                            "offset_seconds": 600 / RATE,
                            "duration_seconds": 1000 / RATE,
                        }
                    ],
                },
            ]
        },
    )
    out, _ = render_arrays(path, block_size=block_size)
    np.testing.assert_allclose(out["stem:Rev"][0, :900] / CENTRE, ramp[100:][::-1], atol=1e-15)
    np.testing.assert_allclose(
        out["stem:Loop"][0, :1000] / CENTRE, np.tile(ramp[600:], 3)[:1000], atol=1e-15
    )
    np.testing.assert_allclose(
        out["stem:Both"][0, :1000] / CENTRE, np.tile(ramp[600:][::-1], 3)[:1000], atol=1e-15
    )


def test_clip_gain_envelope(tmp_path):
    write_wav(tmp_path / "one.wav", np.full((1, 1000), 0.5))
    path = write_session(
        tmp_path,
        {
            "tracks": [
                {
                    "name": "A",
                    "clips": [
                        {
                            "file": "one.wav",
                            "start_seconds": 100 / RATE,
                            "gain_envelope": [[0.0, 0.0], [500 / RATE, -20.0]],
                        }
                    ],
                }
            ]
        },
    )
    out, _ = render_arrays(path, block_size=64)
    i = np.arange(1000)
    db = np.where(i < 500, -20.0 * i / 500, -20.0)
    np.testing.assert_allclose(out["mix"][0, 100:1100] / CENTRE, 0.5 * 10 ** (db / 20), rtol=1e-12)


def test_loop_needs_a_duration(tmp_path):
    _ramp(tmp_path)
    path = write_session(
        tmp_path, {"tracks": [{"name": "A", "clips": [{"file": "r.wav", "loop": True}]}]}
    )
    with pytest.raises(SessionError, match="a loop clip needs a duration"):
        render_arrays(path)
