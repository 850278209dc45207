"""Automation lanes against hand-computed envelopes, and block-size independence."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from stemprint.dsp.automation import (
    CONTROL_INTERVAL_SAMPLES,
    AutomationLane,
    control_boundaries,
    gain_db_lane_to_linear,
    mute_ramp,
    mute_ramp_samples,
)
from stemprint.errors import InputError

BLOCKS = (1, 7, 64, 1000)


def in_blocks(
    produce: Callable[[int, int], np.ndarray], start: int, total: int, block: int
) -> np.ndarray:
    parts = []
    for offset in range(0, total, block):
        parts.append(produce(start + offset, min(block, total - offset)))
    return np.concatenate(parts)


def test_linear_ramp_is_sample_exact() -> None:
    lane = AutomationLane([(100, 0.0), (200, 1.0)])
    values = lane.values(0, 300)
    assert values[150] == 0.5
    assert values[125] == 0.25
    assert values[100] == 0.0 and values[200] == 1.0
    np.testing.assert_array_equal(values[:101], 0.0)  # first value before the first point
    np.testing.assert_array_equal(values[200:], 1.0)  # last value after the last point
    expected = (np.arange(100, 200) - 100) / 100.0
    np.testing.assert_array_equal(values[100:200], expected)


def test_linear_ramp_between_arbitrary_values() -> None:
    lane = AutomationLane([(0, -6.0), (48, 6.0), (96, -12.0)])
    values = lane.values(0, 120)
    assert values[24] == 0.0
    assert values[48] == 6.0
    assert values[72] == -3.0
    assert values[95] == 6.0 + (-18.0) * (47 / 48)
    np.testing.assert_array_equal(values[96:], -12.0)


def test_hold_interpolation() -> None:
    lane = AutomationLane([(10, 1.0), (20, 3.0), (30, -2.0)], interpolation="hold")
    values = lane.values(0, 40)
    np.testing.assert_array_equal(values[:20], 1.0)  # includes before the first point
    np.testing.assert_array_equal(values[20:30], 3.0)
    np.testing.assert_array_equal(values[30:], -2.0)


def test_jumps_with_duplicate_points() -> None:
    # Ramp 0 → 1 over 100..200, jump to 5 at 200, ramp 5 → 3 over 200..300.
    lane = AutomationLane([(100, 0.0), (200, 1.0), (200, 5.0), (300, 3.0)])
    values = lane.values(0, 400)
    assert values[199] == 0.99
    assert values[200] == 5.0
    assert values[250] == 4.0
    assert values[300] == 3.0
    # Three points at one sample: ramp heads for the first, the last holds from there on.
    lane3 = AutomationLane([(0, 0.0), (10, 1.0), (10, 7.0), (10, 2.0)])
    values3 = lane3.values(0, 20)
    assert values3[5] == 0.5
    np.testing.assert_array_equal(values3[10:], 2.0)
    hold = AutomationLane([(0, 0.0), (5, 1.0), (5, 2.0)], interpolation="hold")
    np.testing.assert_array_equal(hold.values(0, 8), [0, 0, 0, 0, 0, 2, 2, 2])


def test_single_point_and_empty_lane() -> None:
    np.testing.assert_array_equal(AutomationLane([(50, 0.3)]).values(0, 100), 0.3)
    np.testing.assert_array_equal(AutomationLane([], default=-3.0).values(10, 5), -3.0)
    assert AutomationLane([]).values(0, 0).shape == (0,)


@pytest.mark.parametrize("interpolation", ["linear", "hold"])
def test_block_size_independence(interpolation: str) -> None:
    rng = np.random.default_rng(3)
    samples = np.sort(rng.integers(0, 5000, size=40))
    samples[10] = samples[9]  # a jump
    points = [(int(s), float(v)) for s, v in zip(samples, rng.normal(size=40), strict=True)]
    lane = AutomationLane(points, interpolation=interpolation)
    start, total = 37, 6000
    whole = lane.values(start, total)
    control = lane.control_values(start, total, 64)
    for block in BLOCKS:
        assert np.array_equal(in_blocks(lane.values, start, total, block), whole)
        assert np.array_equal(
            in_blocks(lambda s, n: lane.control_values(s, n, 64), start, total, block), control
        )


def test_control_values_anchor_to_absolute_grid() -> None:
    lane = AutomationLane([(0, 0.0), (1000, 1000.0)])  # value = sample index
    values = lane.control_values(100, 100, 64)
    # Samples 100..127 lie in interval 64..127, 128..191 in 128.., 192..199 in 192..
    np.testing.assert_array_equal(values[:28], 64.0)
    np.testing.assert_array_equal(values[28:92], 128.0)
    np.testing.assert_array_equal(values[92:], 192.0)
    assert CONTROL_INTERVAL_SAMPLES == 64
    np.testing.assert_array_equal(lane.control_values(0, 3), [0.0, 0.0, 0.0])


def test_control_boundaries() -> None:
    np.testing.assert_array_equal(control_boundaries(100, 100, 64), [128, 192])
    np.testing.assert_array_equal(control_boundaries(128, 64, 64), [128])
    np.testing.assert_array_equal(control_boundaries(0, 130), [0, 64, 128])
    assert control_boundaries(1, 63, 64).size == 0
    assert control_boundaries(5, 0, 64).size == 0
    assert control_boundaries(0, 10, 64).dtype == np.int64
    # Boundaries of any block split concatenate to those of the whole span.
    whole = control_boundaries(37, 6000, 64)
    for block in BLOCKS:
        parts = in_blocks(lambda s, n: control_boundaries(s, n, 64), 37, 6000, block)
        assert np.array_equal(parts, whole)


def test_gain_db_to_linear() -> None:
    gains = gain_db_lane_to_linear(np.array([0.0, -6.0, 20.0, -np.inf]))
    np.testing.assert_allclose(gains[:3], [1.0, 10 ** (-6 / 20), 10.0], rtol=1e-15)
    assert gains[0] == 1.0 and gains[3] == 0.0


def test_mute_ramp_envelope() -> None:
    ramp = 10
    lane = AutomationLane([(0, 0), (100, 1), (200, 0)], interpolation="hold")
    gain = mute_ramp(lane, 0, 300, ramp)
    np.testing.assert_array_equal(gain[:100], 1.0)
    # Ramp down starting at 100: 9/10 at 100 … 0 at 109.
    np.testing.assert_array_equal(gain[100:110], np.arange(9, -1, -1) / 10)
    np.testing.assert_array_equal(gain[110:200], 0.0)
    np.testing.assert_array_equal(gain[200:210], np.arange(1, 11) / 10)
    np.testing.assert_array_equal(gain[210:], 1.0)


def test_mute_ramp_close_changes_and_edges() -> None:
    ramp = 8
    # Unmuted, then muted for 3 samples only: a partial ramp that never reaches 0.
    lane = AutomationLane([(50, 1.0), (53, 0.0)], interpolation="hold")
    gain = mute_ramp(lane, 0, 100, ramp)
    # Before the first point the lane holds its first value: muted.
    np.testing.assert_array_equal(gain[:50], 0.0)
    assert gain[50:53].tolist() == [0.0, 0.0, 0.0]
    np.testing.assert_array_equal(gain[53:61], np.arange(1, 9) / 8)
    lane = AutomationLane([(0, 0.0), (40, 1.0), (43, 0.0)], interpolation="hold")
    gain = mute_ramp(lane, 0, 100, ramp)
    assert gain[42] == 5 / 8 and gain[43] == 5 / 8 and gain[47] == 5 / 8
    assert gain.min() == 5 / 8 and gain[60] == 1.0
    # Default, no points; a ramp of 1 sample is the plain gate.
    np.testing.assert_array_equal(mute_ramp(AutomationLane([], "hold", 1.0), 0, 5, ramp), 0.0)
    lane = AutomationLane([(3, 1), (5, 0)], interpolation="hold")
    np.testing.assert_array_equal(mute_ramp(lane, 0, 7, 1), [0, 0, 0, 0, 0, 1, 1])


def test_mute_ramp_is_smooth_and_block_independent() -> None:
    rng = np.random.default_rng(5)
    changes = np.sort(rng.choice(np.arange(10, 20000), size=60, replace=False))
    points = [(int(s), float(k % 2)) for k, s in enumerate(changes)]
    points.insert(5, (points[4][0], 1.0 - points[4][1]))  # a duplicate (ignored) state
    lane = AutomationLane(points, interpolation="hold")
    ramp = mute_ramp_samples(48000)
    assert ramp == 240
    start, total = 3, 21000
    whole = mute_ramp(lane, start, total, ramp)
    assert np.all((whole >= 0.0) & (whole <= 1.0))
    assert np.max(np.abs(np.diff(whole))) <= 1.0 / ramp + 1e-15
    for block in BLOCKS:
        parts = in_blocks(lambda s, n: mute_ramp(lane, s, n, ramp), start, total, block)
        assert np.array_equal(parts, whole)


def test_errors() -> None:
    with pytest.raises(InputError, match="sort"):
        AutomationLane([(10, 0.0), (5, 1.0)])
    with pytest.raises(InputError, match="integer >= 0"):
        AutomationLane([(-1, 0.0)])
    with pytest.raises(InputError, match="integer >= 0"):
        AutomationLane([(1.5, 0.0)])  # type: ignore[list-item]
    with pytest.raises(InputError, match="finite"):
        AutomationLane([(1, float("nan"))])
    with pytest.raises(InputError, match="pair"):
        AutomationLane([(1, 2, 3)])  # type: ignore[list-item]
    with pytest.raises(InputError, match="interpolation"):
        AutomationLane([], interpolation="cubic")
    lane = AutomationLane([(0, 0.0)])
    with pytest.raises(InputError, match="n must be"):
        lane.values(0, -1)
    with pytest.raises(InputError, match="control_interval_samples"):
        lane.control_values(0, 10, 0)
    with pytest.raises(InputError, match="hold"):
        mute_ramp(lane, 0, 10, 5)
    with pytest.raises(InputError, match="0 .audible. or 1"):
        mute_ramp(AutomationLane([(0, 0.5)], "hold"), 0, 10, 5)
    with pytest.raises(InputError, match="ramp_samples"):
        mute_ramp(AutomationLane([(0, 1.0)], "hold"), 0, 10, 0)
