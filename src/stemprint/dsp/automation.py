"""Breakpoint automation lanes, evaluated per sample from absolute sample indices.

Every value here is a function of the absolute sample index ``t`` (sample 0 = session start)
alone, computed by one closed formula, never accumulated across samples or blocks. Any block
split therefore gives bit-identical values: ``values(0, 100)`` equals
``concatenate([values(0, 7), values(7, 93)])`` exactly.

Lane semantics
--------------
Points ``(s_k, v_k)`` are sorted by sample; several points may share one sample (a jump).

* Before the first point the value is the first point's value; from the last point on, the last
  point's value; a lane without points is ``default`` everywhere.
* At a sample with several points, the *last* of them holds from that sample on; the first of
  them is the target the ramp arriving there heads for.
* ``linear``: between consecutive distinct samples ``s0 < s1`` (the last point at ``s0`` and the
  first at ``s1``), for ``s0 <= t < s1``::

      value[t] = v0 + (v1 − v0) · ((t − s0) / (s1 − s0))

  with the fraction computed as one float64 division of integers: a ramp from 0 at sample 100
  to 1 at sample 200 gives exactly 0.5 at sample 150.
* ``hold``: ``value[t]`` is the value of the last point at or before ``t``.

Control rate
------------
Parameters that cannot change per sample (insert parameters) change every
:data:`CONTROL_INTERVAL_SAMPLES` samples on a grid anchored to sample 0: interval ``k`` covers
``kL … kL + L − 1`` and uses the lane value at its first sample ``kL``
(:meth:`AutomationLane.control_values`, :func:`control_boundaries`).

Gain lanes are interpolated in dB and converted per sample (:func:`gain_db_lane_to_linear`), so a
linear ramp in dB is exponential in amplitude.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from stemprint.errors import InputError

CONTROL_INTERVAL_SAMPLES = 64
"""Default control interval in samples (0.67 ms at 96 kHz, 1.33 ms at 48 kHz)."""

MUTE_RAMP_SECONDS = 0.005
"""Default length of a mute ramp: 5 ms."""

Interpolation = Literal["linear", "hold"]
INTERPOLATIONS: tuple[str, ...] = get_args(Interpolation)


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _check_span(start_sample: int, n: int) -> None:
    if not _is_int(start_sample):
        raise InputError(f"start_sample must be an integer, got {start_sample!r}")
    if not _is_int(n) or n < 0:
        raise InputError(f"n must be an integer >= 0, got {n!r}")


def _check_interval(interval: int, what: str) -> None:
    if not _is_int(interval) or interval < 1:
        raise InputError(f"{what} must be an integer >= 1, got {interval!r}", field=what)


class AutomationLane:
    """A breakpoint automation lane over the absolute sample timeline.

    Parameters
    ----------
    points
        ``(sample, value)`` pairs: integer sample index >= 0 and finite value, sorted by sample
        (non-decreasing; repeat a sample for a jump).
    interpolation
        ``"linear"`` (ramps between points) or ``"hold"`` (steps at points).
    default
        The value everywhere when ``points`` is empty.

    Raises
    ------
    InputError
        On unsorted points, negative or non-integer samples, non-finite values, or an unknown
        interpolation.
    """

    __slots__ = ("_default", "_interpolation", "_points", "_samples", "_values")

    def __init__(
        self,
        points: Sequence[tuple[int, float]],
        interpolation: str = "linear",
        default: float = 0.0,
    ) -> None:
        if interpolation not in INTERPOLATIONS:
            raise InputError(
                f"unknown interpolation {interpolation!r}",
                field="interpolation",
                fix=f"use one of {', '.join(INTERPOLATIONS)}",
            )
        if isinstance(default, bool) or not math.isfinite(default):
            raise InputError(f"default must be a finite number, got {default!r}", field="default")
        checked: list[tuple[int, float]] = []
        for index, point in enumerate(points):
            try:
                sample, value = point
            except (TypeError, ValueError):
                raise InputError(
                    f"point {point!r} is not a (sample, value) pair", field=f"points[{index}]"
                ) from None
            if not _is_int(sample) or sample < 0:
                raise InputError(
                    f"point sample must be an integer >= 0, got {sample!r}",
                    field=f"points[{index}]",
                )
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise InputError(
                    f"point value must be a number, got {value!r}", field=f"points[{index}]"
                )
            if not math.isfinite(value):
                raise InputError(
                    f"point value must be finite, got {value!r}", field=f"points[{index}]"
                )
            if checked and sample < checked[-1][0]:
                raise InputError(
                    f"point at sample {sample} comes after one at sample {checked[-1][0]}",
                    field=f"points[{index}]",
                    fix="sort the points by sample",
                )
            checked.append((int(sample), float(value)))
        self._points = tuple(checked)
        self._interpolation = interpolation
        self._default = float(default)
        self._samples = np.array([p[0] for p in checked], dtype=np.int64)
        self._values = np.array([p[1] for p in checked], dtype=np.float64)

    @property
    def points(self) -> tuple[tuple[int, float], ...]:
        """The validated ``(sample, value)`` points."""
        return self._points

    @property
    def interpolation(self) -> str:
        """``"linear"`` or ``"hold"``."""
        return self._interpolation

    @property
    def default(self) -> float:
        """The value of a lane without points."""
        return self._default

    def __repr__(self) -> str:
        return (
            f"AutomationLane({list(self._points)!r}, interpolation={self._interpolation!r}, "
            f"default={self._default!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AutomationLane):
            return NotImplemented
        return (self._points, self._interpolation, self._default) == (
            other._points,
            other._interpolation,
            other._default,
        )

    def __hash__(self) -> int:
        return hash((self._points, self._interpolation, self._default))

    def values_at(self, samples: npt.ArrayLike) -> np.ndarray:
        """Lane values at arbitrary absolute sample indices.

        Parameters
        ----------
        samples
            Integer absolute sample indices, any shape (negative indices get the first value).

        Returns
        -------
        numpy.ndarray
            float64 values, same shape as ``samples``.
        """
        t = np.asarray(samples)
        if not np.issubdtype(t.dtype, np.integer):
            raise InputError(f"sample indices must be integers, got dtype {t.dtype}")
        t = t.astype(np.int64)
        count = self._samples.size
        if count == 0:
            return np.full(t.shape, self._default, dtype=np.float64)
        # Last point at or before t (the last of several at one sample); -1 before the first.
        last = np.searchsorted(self._samples, t, side="right") - 1
        held = self._values[np.maximum(last, 0)]
        if self._interpolation == "hold" or count == 1:
            return held
        inside = (last >= 0) & (last < count - 1)
        k = last[inside]
        s0 = self._samples[k]
        s1 = self._samples[k + 1]  # > t >= s0: the first point at the next distinct sample
        v0 = self._values[k]
        v1 = self._values[k + 1]
        fraction = (t[inside] - s0).astype(np.float64) / (s1 - s0).astype(np.float64)
        held[inside] = v0 + (v1 - v0) * fraction
        return held

    def values(self, start_sample: int, n: int) -> np.ndarray:
        """Per-sample values of the block ``start_sample … start_sample + n − 1``.

        Parameters
        ----------
        start_sample
            Absolute index of the block's first sample.
        n
            Block length in samples (>= 0).

        Returns
        -------
        numpy.ndarray
            float64 values, shape ``(n,)``; independent of how the timeline is split in blocks.
        """
        _check_span(start_sample, n)
        return self.values_at(np.arange(start_sample, start_sample + n, dtype=np.int64))

    def control_values(
        self,
        start_sample: int,
        n: int,
        control_interval_samples: int = CONTROL_INTERVAL_SAMPLES,
    ) -> np.ndarray:
        """Per-sample values held per control interval, on a grid anchored to sample 0.

        Sample ``t`` gets the lane value at ``(t // L) · L`` with ``L =
        control_interval_samples``: the value sampled at the first sample of its interval.

        Parameters
        ----------
        start_sample
            Absolute index of the block's first sample.
        n
            Block length in samples (>= 0).
        control_interval_samples
            Control interval ``L`` in samples (>= 1); default :data:`CONTROL_INTERVAL_SAMPLES`.

        Returns
        -------
        numpy.ndarray
            float64 values, shape ``(n,)``, constant within each interval.
        """
        _check_span(start_sample, n)
        _check_interval(control_interval_samples, "control_interval_samples")
        t = np.arange(start_sample, start_sample + n, dtype=np.int64)
        length = int(control_interval_samples)
        return self.values_at((t // length) * length)


def control_boundaries(
    start_sample: int,
    n: int,
    control_interval_samples: int = CONTROL_INTERVAL_SAMPLES,
) -> np.ndarray:
    """Absolute sample indices in ``[start_sample, start_sample + n)`` where a control interval
    starts, i.e. where a new control value takes effect (the multiples of the interval).

    The value in force at ``start_sample`` itself, if it is not a boundary, is the one of the
    interval that began before the block (``control_values(start_sample, 1, L)``).

    Parameters
    ----------
    start_sample
        Absolute index of the block's first sample.
    n
        Block length in samples (>= 0).
    control_interval_samples
        Control interval ``L`` in samples (>= 1).

    Returns
    -------
    numpy.ndarray
        int64 absolute sample indices, increasing, shape ``(m,)``.
    """
    _check_span(start_sample, n)
    _check_interval(control_interval_samples, "control_interval_samples")
    length = int(control_interval_samples)
    first = -(-int(start_sample) // length) * length
    return np.arange(first, int(start_sample) + int(n), length, dtype=np.int64)


def gain_db_lane_to_linear(values_db: npt.ArrayLike) -> np.ndarray:
    """Linear gains ``10 ** (values_db / 20)`` of per-sample dB values (``-inf`` gives 0).

    Parameters
    ----------
    values_db
        Gains in dB, any shape (e.g. :meth:`AutomationLane.values` of a gain lane).

    Returns
    -------
    numpy.ndarray
        float64 linear gains, same shape.
    """
    return np.power(10.0, np.asarray(values_db, dtype=np.float64) / 20.0)


def mute_ramp_samples(sample_rate: int, ramp_seconds: float = MUTE_RAMP_SECONDS) -> int:
    """Mute ramp length in samples: ``max(1, round(ramp_seconds × sample_rate))``.

    240 samples at 48 kHz for the default 5 ms (:data:`MUTE_RAMP_SECONDS`).
    """
    if not _is_int(sample_rate) or sample_rate <= 0:
        raise InputError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    if not math.isfinite(ramp_seconds) or ramp_seconds < 0:
        raise InputError(f"ramp_seconds must be finite and >= 0, got {ramp_seconds!r}")
    return max(1, round(ramp_seconds * sample_rate))


def mute_ramp(
    mute_lane: AutomationLane, start_sample: int, n: int, ramp_samples: int
) -> np.ndarray:
    """Per-sample gain of a mute lane, with a linear ramp after every change so it never clicks.

    The lane is a ``hold`` lane of 0 (audible) and 1 (muted). With the gate ``g[t] = 1 −
    mute[t]`` and ``R = ramp_samples``, the gain is the mean of the gate over the last ``R``
    samples::

        gain[t] = (g[t − R + 1] + … + g[t]) / R

    computed exactly as an integer count divided by ``R``. A change at sample ``c`` (isolated by
    at least ``R`` samples) thus ramps linearly *starting at* ``c``: ``gain[c + k − 1] = k/R``
    towards the new state for ``k = 1 … R``, so the new state is fully reached at ``c + R − 1``.
    Changes closer together than ``R`` give partial ramps. The gain never changes by more than
    ``1/R`` from one sample to the next, and depends only on the absolute index.

    Parameters
    ----------
    mute_lane
        A ``hold`` lane whose values (and default) are 0 or 1.
    start_sample
        Absolute index of the block's first sample.
    n
        Block length in samples (>= 0).
    ramp_samples
        Ramp length ``R`` in samples (>= 1; 1 means no ramp); see :func:`mute_ramp_samples`.

    Returns
    -------
    numpy.ndarray
        float64 gains in ``[0, 1]``, shape ``(n,)``.
    """
    _check_span(start_sample, n)
    _check_interval(ramp_samples, "ramp_samples")
    if mute_lane.interpolation != "hold":
        raise InputError("a mute lane must use hold interpolation", fix='set interpolation: "hold"')
    states = [mute_lane.default] + [value for _, value in mute_lane.points]
    if any(value not in (0.0, 1.0) for value in states):
        raise InputError(
            "mute lane values must be 0 (audible) or 1 (muted)",
            fix="use 0 and 1 only (or false and true)",
        )
    length = int(ramp_samples)
    t = np.arange(start_sample, start_sample + n, dtype=np.int64)
    if not mute_lane.points:
        return np.full(n, 1.0 - mute_lane.default, dtype=np.float64)

    # Distinct change samples s_i and the gate from each on (the last point at that sample).
    samples = np.array([s for s, _ in mute_lane.points], dtype=np.int64)
    gates = 1 - np.array([v for _, v in mute_lane.points], dtype=np.float64).astype(np.int64)
    last_at = np.r_[samples[1:] != samples[:-1], True]
    knots = samples[last_at]
    knot_gates = gates[last_at]
    gate_before = int(gates[0])
    # open_count(u) = number of audible samples before u, relative to knots[0] (exact integers).
    counts_at_knots = np.r_[0, np.cumsum(knot_gates[:-1] * np.diff(knots))]

    def open_count(u: np.ndarray) -> np.ndarray:
        k = np.searchsorted(knots, u, side="right") - 1
        before = k < 0
        k = np.maximum(k, 0)
        result = counts_at_knots[k] + knot_gates[k] * (u - knots[k])
        result[before] = gate_before * (u[before] - knots[0])
        return result

    audible = open_count(t + 1) - open_count(t + 1 - length)
    return audible.astype(np.float64) / float(length)
