"""Level conversions, in one place: decibels and linear ratios.

Formulas
--------
- amplitude (a gain, a sample value): ``dB = 20·log10(x)``, ``x = 10**(dB/20)``;
- power (a mean square, an energy): ``dB = 10·log10(p)``.
Zero (or less) converts to a floor, −inf by default; these are plain floats, for scalars.
"""

from __future__ import annotations

import math


def db_to_linear(gain_db: float) -> float:
    """Amplitude ratio of a gain in dB (``10 ** (gain_db / 20)``)."""
    return float(10.0 ** (gain_db / 20.0))


def amplitude_to_db(value: float, floor_db: float = -math.inf) -> float:
    """``20·log10(value)`` in dB, at least ``floor_db`` (``floor_db`` for zero)."""
    if value <= 0.0:
        return float(floor_db)
    return max(20.0 * math.log10(value), float(floor_db))


def power_to_db(value: float) -> float:
    """``10·log10(value)`` in dB, −inf for zero."""
    if value <= 0.0:
        return -math.inf
    return 10.0 * math.log10(value)
