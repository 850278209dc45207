"""Fade curves and crossfade gains, computed per sample from the sample's index in the fade.

Index convention
----------------
A fade of length ``n`` samples covers the local indices ``0 … n−1`` (index ``i`` is the sample
``fade_start + i`` on the absolute timeline). With ``x = i / n`` (float64 division):

* **fade-in**: ``gain[i] = f(x)``. Index 0 gets ``f(0) = 0``; index ``n`` (the first sample
  after the fade) would get ``f(1) = 1``, so the last faded sample ``n−1`` is just below 1.
* **fade-out**: ``gain[i] = f(1 − x)``, the same curve mirrored in value at the *same* index:
  index 0 gets 1, index ``n−1`` gets ``f(1/n)`` (just above 0) and index ``n`` would get 0.

Indices below 0 are clamped to 0 and indices above ``n`` to ``n`` (``x`` is clipped to
``[0, 1]``), so a caller may pass ``absolute_sample − fade_start`` for any block. Each gain
depends only on its index, so any block split of a fade gives bit-identical gains.

A crossfade of two overlapping clips over the same ``n`` samples uses the fade-out for the
outgoing clip and the fade-in for the incoming one *at the same indices*, so at every sample:

* ``linear``: ``f(x) = x``; fade-out ``1 − x``; the gains sum to 1 (up to one rounding), which
  keeps the amplitude of correlated (identical) material constant;
* ``equal_power``: ``f(x) = sin(πx/2)``; fade-out ``cos(πx/2)``; the squared gains sum to 1,
  which keeps the power of uncorrelated material constant;
* ``exponential``: a curve linear in dB from −60 dB, offset so that it starts at exactly 0::

      f(x) = (10^(3(x − 1)) − 10^−3) / (1 − 10^−3)

  i.e. ``f(x) ≈ 10^(−60 dB · (1 − x) / 20)`` over most of its range (within 0.1 dB above
  −20 dB, within 1 dB above −40 dB). It rises slowly and finishes fast; the fade-out (its
  mirror) falls by a constant number of dB per sample, which sounds even. It is neither
  amplitude- nor power-preserving as a crossfade.

Every curve is monotone, ``f(0) = 0`` and ``f(1) = 1`` exactly.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from stemprint.errors import InputError

FadeShape = Literal["linear", "equal_power", "exponential"]
"""Fade curve names."""

FADE_SHAPES: tuple[str, ...] = get_args(FadeShape)
"""The accepted fade shapes, in documentation order."""

FadeDirection = Literal["in", "out"]

EXPONENTIAL_FLOOR_DB = -60.0
"""Level in dB where the ``exponential`` curve would start if it were not offset to 0."""

_FLOOR = 10.0 ** (EXPONENTIAL_FLOOR_DB / 20.0)  # 1e-3
_SPAN_DECADES = -EXPONENTIAL_FLOOR_DB / 20.0  # 3


def _check_shape(shape: str) -> None:
    if shape not in FADE_SHAPES:
        raise InputError(
            f"unknown fade shape {shape!r}",
            field="shape",
            fix=f"use one of {', '.join(FADE_SHAPES)}",
        )


def _check_length(length: int) -> None:
    if isinstance(length, bool) or not isinstance(length, int | np.integer) or length < 0:
        raise InputError(
            f"fade length must be an integer number of samples >= 0, got {length!r}",
            field="length",
        )


def _curve(shape: str, x: np.ndarray, *, mirrored: bool) -> np.ndarray:
    """``f(x)`` (``mirrored=False``) or ``f(1 − x)`` (``mirrored=True``) for ``x`` in [0, 1]."""
    if shape == "linear":
        return 1.0 - x if mirrored else x.copy()
    if shape == "equal_power":
        angle = (np.pi / 2.0) * x
        if not mirrored:
            return np.sin(angle)  # sin(float(pi/2)) is exactly 1.0
        return np.where(x >= 1.0, 0.0, np.cos(angle))  # cos(float(pi/2)) is 6e-17, not 0
    # exponential
    exponent = -_SPAN_DECADES * x if mirrored else _SPAN_DECADES * (x - 1.0)
    gain = (np.power(10.0, exponent) - _FLOOR) / (1.0 - _FLOOR)
    return np.clip(gain, 0.0, 1.0)


def fade_gain(
    shape: str,
    index: npt.ArrayLike,
    length: int,
    direction: str,
) -> np.ndarray:
    """Gain of a fade at local sample indices.

    Parameters
    ----------
    shape
        ``"linear"``, ``"equal_power"`` or ``"exponential"`` (see the module docstring).
    index
        Integer local indices ``i`` into the fade, any shape; typically
        ``absolute_sample − fade_start``. Indices outside ``[0, length]`` are clamped.
    length
        Fade length ``n`` in samples (>= 0). With ``n = 0`` there is no fade: a fade-in has gain
        1 and a fade-out gain 0 at every index >= 0.
    direction
        ``"in"`` (0 → 1) or ``"out"`` (1 → 0).

    Returns
    -------
    numpy.ndarray
        float64 linear gains, same shape as ``index``: ``f(i/n)`` for a fade-in,
        ``f(1 − i/n)`` for a fade-out.

    Raises
    ------
    InputError
        On an unknown shape or direction, a negative length, or non-integer indices.
    """
    _check_shape(shape)
    _check_length(length)
    if direction not in ("in", "out"):
        raise InputError(
            f"unknown fade direction {direction!r}", field="direction", fix='use "in" or "out"'
        )
    indices = np.asarray(index)
    if not np.issubdtype(indices.dtype, np.integer):
        raise InputError(
            f"fade indices must be integers, got dtype {indices.dtype}",
            field="index",
            fix="pass sample indices as an integer array (absolute sample − fade start)",
        )
    clamped = np.clip(indices.astype(np.int64), 0, length)
    if length == 0:
        x = np.ones(clamped.shape, dtype=np.float64)
        x[indices < 0] = 0.0
    else:
        x = clamped.astype(np.float64) / float(length)
    return _curve(shape, x, mirrored=direction == "out")


def crossfade_gains(shape: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gains of an ``n``-sample crossfade: the outgoing and the incoming clip.

    Parameters
    ----------
    shape
        ``"linear"`` (for correlated material), ``"equal_power"`` (uncorrelated material) or
        ``"exponential"``.
    n
        Crossfade length in samples (>= 0).

    Returns
    -------
    fade_out, fade_in : numpy.ndarray
        float64 arrays of shape ``(n,)``: ``fade_gain(shape, i, n, "out")`` and
        ``fade_gain(shape, i, n, "in")`` for ``i = 0 … n−1``. Multiply the outgoing clip's
        last ``n`` samples by ``fade_out`` and the incoming clip's first ``n`` by ``fade_in``.
    """
    _check_length(n)
    index = np.arange(n, dtype=np.int64)
    return fade_gain(shape, index, n, "out"), fade_gain(shape, index, n, "in")
