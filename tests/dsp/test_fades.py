"""Fade curves: endpoints, monotonicity, crossfade level laws, block independence."""

from __future__ import annotations

import numpy as np
import pytest

from stemprint.dsp.fades import FADE_SHAPES, crossfade_gains, fade_gain
from stemprint.errors import InputError

FS = 48000


@pytest.mark.parametrize("shape", FADE_SHAPES)
def test_endpoints(shape: str) -> None:
    n = 480
    index = np.array([-5, 0, 1, n - 1, n, n + 7])
    fade_in = fade_gain(shape, index, n, "in")
    fade_out = fade_gain(shape, index, n, "out")
    assert fade_in.dtype == np.float64
    assert fade_in[0] == 0.0 and fade_in[1] == 0.0  # before and at the first sample
    assert fade_in[4] == 1.0 and fade_in[5] == 1.0  # at and after index n
    assert 0.0 < fade_in[2] < fade_in[3] < 1.0
    assert fade_out[0] == 1.0 and fade_out[1] == 1.0
    assert fade_out[4] == 0.0 and fade_out[5] == 0.0
    assert 1.0 > fade_out[2] > fade_out[3] > 0.0


@pytest.mark.parametrize("shape", FADE_SHAPES)
def test_monotone(shape: str) -> None:
    n = 4801
    index = np.arange(n + 1)
    assert np.all(np.diff(fade_gain(shape, index, n, "in")) > 0.0)
    assert np.all(np.diff(fade_gain(shape, index, n, "out")) < 0.0)


def test_curve_values() -> None:
    index = np.array([0, 25, 50, 75, 100])
    np.testing.assert_array_equal(fade_gain("linear", index, 100, "in"), [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_array_equal(fade_gain("linear", index, 100, "out"), [1, 0.75, 0.5, 0.25, 0])
    half = fade_gain("equal_power", np.array([50]), 100, "in")[0]
    assert half == pytest.approx(np.sqrt(0.5), abs=1e-15)
    # Exponential: 10^(3(x − 1)) offset by the −60 dB floor and rescaled to end at 1.
    expo = fade_gain("exponential", np.array([50]), 100, "in")[0]
    assert expo == pytest.approx((10**-1.5 - 1e-3) / (1 - 1e-3), rel=1e-14)
    # Within 0.1 dB of a straight dB line above −20 dB (x >= 2/3).
    x_index = np.arange(67, 101)
    level_db = 20 * np.log10(fade_gain("exponential", x_index, 100, "in"))
    assert np.all(np.abs(level_db - (-60.0) * (1 - x_index / 100)) < 0.1)


@pytest.mark.parametrize("shape", FADE_SHAPES)
def test_fade_out_mirrors_fade_in(shape: str) -> None:
    n = 1000
    i = np.arange(n + 1)
    np.testing.assert_allclose(
        fade_gain(shape, i, n, "out"), fade_gain(shape, n - i, n, "in"), atol=1e-15, rtol=0
    )


@pytest.mark.parametrize("shape", FADE_SHAPES)
def test_block_independent(shape: str) -> None:
    n = 3000
    start = 1234  # fade start on the absolute timeline
    absolute = np.arange(0, 6000)
    whole = fade_gain(shape, absolute - start, n, "in")
    for block in (1, 7, 64, 1000):
        parts = [
            fade_gain(shape, absolute[k : k + block] - start, n, "in")
            for k in range(0, absolute.size, block)
        ]
        assert np.array_equal(np.concatenate(parts), whole)


def test_linear_crossfade_of_identical_material_is_transparent() -> None:
    rng = np.random.default_rng(7)
    signal = rng.uniform(-1.0, 1.0, size=(2, FS // 5))
    start, n = 2000, 4800
    fade_out, fade_in = crossfade_gains("linear", n)
    outgoing = signal.copy()
    outgoing[:, start + n :] = 0.0
    outgoing[:, start : start + n] *= fade_out
    incoming = signal.copy()
    incoming[:, :start] = 0.0
    incoming[:, start : start + n] *= fade_in
    assert np.max(np.abs(outgoing + incoming - signal)) <= 1e-15
    assert np.max(np.abs(fade_out + fade_in - 1.0)) <= 1e-15


def test_equal_power_gains_keep_power() -> None:
    for n in (1, 2, 3, 480, 4801):
        fade_out, fade_in = crossfade_gains("equal_power", n)
        assert np.max(np.abs(fade_out**2 + fade_in**2 - 1.0)) <= 1e-15


def test_equal_power_crossfade_of_independent_noise_keeps_rms() -> None:
    window = FS // 1000  # 1 ms
    windows = 200
    rng = np.random.default_rng(11)
    a = rng.standard_normal((windows, window))
    b = rng.standard_normal((windows, window))
    # Make the two noises uncorrelated and of equal power in every 1 ms window, so the test
    # measures the gain law rather than the chance correlation of short noise windows.
    b -= a * (np.sum(a * b, axis=1, keepdims=True) / np.sum(a * a, axis=1, keepdims=True))
    a /= np.sqrt(np.mean(a * a, axis=1, keepdims=True))
    b /= np.sqrt(np.mean(b * b, axis=1, keepdims=True))
    a, b = a.ravel(), b.ravel()

    start, n = 20 * window, 100 * window  # a 100 ms crossfade from 20 ms
    index = np.arange(a.size) - start
    mixed = a * fade_gain("equal_power", index, n, "out") + b * fade_gain(
        "equal_power", index, n, "in"
    )
    rms_db = 10 * np.log10(np.mean(mixed.reshape(windows, window) ** 2, axis=1))
    assert np.max(np.abs(rms_db)) < 0.1


def test_zero_length_and_crossfade_shapes() -> None:
    index = np.array([-1, 0, 5])
    np.testing.assert_array_equal(fade_gain("linear", index, 0, "in"), [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(fade_gain("linear", index, 0, "out"), [1.0, 0.0, 0.0])
    fade_out, fade_in = crossfade_gains("exponential", 0)
    assert fade_out.shape == fade_in.shape == (0,)
    fade_out, fade_in = crossfade_gains("equal_power", 4)
    assert fade_out.shape == (4,) and fade_in[0] == 0.0 and fade_out[0] == 1.0


def test_errors() -> None:
    index = np.arange(4)
    with pytest.raises(InputError, match="unknown fade shape 'cubic'") as info:
        fade_gain("cubic", index, 4, "in")
    assert info.value.fix is not None and "equal_power" in info.value.fix
    with pytest.raises(InputError, match="direction"):
        fade_gain("linear", index, 4, "up")
    with pytest.raises(InputError, match="length"):
        fade_gain("linear", index, -1, "in")
    with pytest.raises(InputError, match="integers"):
        fade_gain("linear", index.astype(float), 4, "in")
    with pytest.raises(InputError, match="length"):
        crossfade_gains("linear", -3)
