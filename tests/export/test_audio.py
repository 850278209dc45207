"""Writer facts: quantization scale, dither only where asked, overs counted before clipping."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from stemprint.export.audio import AudioWriter


def _write(path, signal, bit_depth, dither="auto", block=1000):
    writer = AudioWriter(path, 48000, signal.shape[0], bit_depth, dither, seed_name="x")
    for i in range(0, signal.shape[1], block):
        writer.write(signal[:, i : i + block])
    writer.close()
    return writer, sf.read(str(path), always_2d=True)[0].T


@pytest.mark.parametrize(("bit_depth", "bits"), [("16", 16), ("24", 24), ("32", 32)])
def test_integer_round_trip_within_half_lsb(tmp_path, rng, bit_depth, bits):
    x = rng.uniform(-0.9, 0.9, (2, 5000))
    writer, back = _write(tmp_path / "a.wav", x, bit_depth, dither="none")
    assert np.max(np.abs(back - x)) <= 0.5 / 2 ** (bits - 1) + 1e-15
    assert writer.stats.clipped_samples == 0 and writer.dither_name == "none"
    info = sf.info(str(tmp_path / "a.wav"))
    assert info.subtype == f"PCM_{bits}"


def test_tpdf_dither_on_16_bit_only(tmp_path, rng):
    x = rng.uniform(-0.5, 0.5, (2, 20000))
    w16, back16 = _write(tmp_path / "a.wav", x, "16")
    w24, back24 = _write(tmp_path / "b.wav", x, "24")
    assert w16.dither_name == "tpdf" and w24.dither_name == "none"
    err16 = (back16 - x) * 2**15
    # TPDF ±1 LSB plus rounding: error within ±1.5 LSB, variance 1/12 + 1/6 = 0.25 LSB²
    assert np.max(np.abs(err16)) <= 1.5 + 1e-9
    assert np.var(err16) == pytest.approx(0.25, rel=0.05)
    assert np.max(np.abs(back24 - x)) * 2**23 <= 0.5 + 1e-9  # plain rounding, no dither


def test_dither_is_block_size_independent(tmp_path, rng):
    x = rng.uniform(-0.5, 0.5, (2, 7000))
    _, a = _write(tmp_path / "a.wav", x, "16", block=64)
    _, b = _write(tmp_path / "b.wav", x, "16", block=5000)
    assert np.array_equal(a, b)


def test_overs_counted_before_clipping(tmp_path):
    x = np.zeros((2, 100))
    x[0, :10] = 1.5
    x[1, 50] = -1.2
    writer, back = _write(tmp_path / "a.wav", x, "24")
    assert writer.stats.overs == 11
    assert writer.stats.clipped_samples == 11
    assert writer.stats.peak_dbfs == pytest.approx(20 * np.log10(1.5))
    assert back[0, 0] == pytest.approx(1 - 2**-23)


def test_float_keeps_overs(tmp_path):
    x = np.zeros((2, 100))
    x[0, 3] = 1.5
    writer, back = _write(tmp_path / "a.wav", x, "32f")
    assert writer.stats.overs == 1 and writer.stats.clipped_samples == 0
    assert back[0, 3] == 1.5 and writer.dither_name == "none"
