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


@pytest.mark.parametrize("block_size", [256, 1000, 4096])
def test_whole_block_reads_give_the_samples_of_adding_into_zeros(tmp_path, block_size, monkeypatch):
    """A block one integer-PCM clip covers is read straight into the track buffer; every case
    around it (fades, gain, two clips in a block, a mono clip on a stereo track, another rate,
    a float file holding -0.0 and NaN-free values) gives the same samples as the general path."""
    from stemprint.render.sources import ClipReader

    rng = np.random.default_rng(4)
    write_wav(tmp_path / "a.wav", rng.uniform(-0.9, 0.9, (2, 9001)), subtype="PCM_24")
    write_wav(tmp_path / "m.wav", rng.uniform(-0.9, 0.9, (1, 5003)), subtype="PCM_16")
    write_wav(tmp_path / "r.wav", rng.uniform(-0.5, 0.5, (1, 4410)), 44100, subtype="PCM_24")
    zeros = rng.uniform(-0.5, 0.5, (1, 3000))
    zeros[0, ::7] = -0.0
    write_wav(tmp_path / "z.wav", zeros, subtype="FLOAT")
    session = write_session(
        tmp_path,
        {
            "tracks": [
                {"name": "A", "output": "BA", "clips": [
                    {"file": "a.wav", "gain_db": -3.0, "fade_in_seconds": 0.01},
                    {"file": "a.wav", "start_seconds": 0.25, "fade_out_seconds": 0.02},
                ]},
                {"name": "M", "output": "BM", "pan": 0.3,
                 "clips": [{"file": "m.wav", "start_seconds": 0.013}]},
                {"name": "R", "output": "BR", "clips": [{"file": "r.wav"}]},
                {"name": "Z", "output": "BZ", "clips": [{"file": "z.wav", "start_seconds": 0.002}]},
            ],
            "buses": [{"name": name} for name in ("BA", "BM", "BR", "BZ")],
        },
    )  # fmt: skip
    original, plain_reads = ClipReader.whole_block, []

    def counted(self, *args):
        out = original(self, *args)
        plain_reads.append(out is not None)
        return out

    monkeypatch.setattr(ClipReader, "whole_block", counted)
    fast = _one_thread(session, block_size)
    assert any(plain_reads) and not all(plain_reads)  # both paths ran
    monkeypatch.setattr(ClipReader, "whole_block", lambda self, *args: None)
    general = _one_thread(session, block_size)
    assert np.array_equal(render_arrays(session, block_size)[0]["mix"], general["mix"])
    assert fast.keys() == general.keys()
    for key, data in general.items():
        assert np.array_equal(fast[key], data), key
        assert not np.signbit(data[data == 0]).any(), key  # no -0.0 reaches a route


def _one_thread(session, block_size):
    from stemprint.graph.compile import compile_session
    from stemprint.model.load import load_session
    from stemprint.render.engine import Renderer
    from tests.conftest import ArraySink

    renderer = Renderer(compile_session(load_session(session)), block_size, threads=1)
    sinks = {tap.key: ArraySink() for tap in renderer.taps}
    renderer.run(sinks)  # type: ignore[arg-type]
    return {k: s.data for k, s in sinks.items()}
