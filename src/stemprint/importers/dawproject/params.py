"""Parameter values: volume, pan and device parameters converted to session units.

Formulas
--------
- Volume ``unit="linear"``: ``gain_db = 20·log10(v)``; ``decibel``: ``gain_db = v``.
- Pan ``normalized`` ``v ∈ [0, 1]``: ``pan = 2·v − 1`` (else ``−1 + 2·(v − min)/(max − min)``).
- EQ frequency ``unit="semitones"`` (MIDI note scale): ``Hz = 440·2^((st − 69)/12)``.
"""

from __future__ import annotations

import math
from xml.etree.ElementTree import Element

from stemprint.importers.common import SILENT_DB, gain_to_db
from stemprint.importers.dawproject.reader import _Reader


def semitones_to_hz(semitones: float) -> float:
    """MIDI-note-scale frequency → Hz: ``440·2^((st − 69)/12)``."""
    return 440.0 * 2.0 ** ((semitones - 69.0) / 12.0)


# -- parameters ----------------------------------------------------------------------------------


def _volume_db(reader: _Reader, param: Element | None, where: str) -> float:
    """A Volume parameter in dB (linear gain, decibel; normalized is reported)."""
    if param is None:
        return 0.0
    value = reader.num(param, "value", 1.0)
    return _gain_value_db(reader, value, param.get("unit", "linear"), where)


def _gain_value_db(reader: _Reader, value: float, unit: str, where: str) -> float:
    if unit == "decibel":
        return max(value, SILENT_DB) if not math.isnan(value) else 0.0
    if unit not in ("linear", "normalized") or not math.isfinite(value) or value < 0:
        reader.add(
            "VOLUME_UNIT",
            where,
            "approximate",
            f"a gain of {value} ({unit}) stemprint cannot read",
            "read as 0 dB",
        )
        return 0.0
    if unit == "normalized":
        reader.add(
            "VOLUME_UNIT",
            where,
            "approximate",
            "a volume given as a normalized fader position (the fader law is unknown)",
            "read as a linear gain",
        )
    return gain_to_db(value)


def _pan_value(param: Element | None, value: float | None = None) -> float:
    """A Pan parameter as −1..1: ``2v − 1`` when normalized, else scaled from its range."""
    if param is None:
        return 0.0
    v = value if value is not None else float(param.get("value", "0.5") or 0.5)
    low, high = param.get("min"), param.get("max")
    if param.get("unit", "normalized") == "normalized" or low is None or high is None:
        pan = 2.0 * v - 1.0
    else:
        lo, hi = float(low), float(high)
        pan = -1.0 + 2.0 * (v - lo) / (hi - lo) if hi > lo else 0.0
    return min(max(pan, -1.0), 1.0) if math.isfinite(pan) else 0.0


def _param_value(reader: _Reader, elem: Element | None, default: float) -> tuple[float, str]:
    if elem is None:
        return default, ""
    return reader.num(elem, "value", default), elem.get("unit", "")


def _to_db(value: float, unit: str) -> float:
    return gain_to_db(value) if unit == "linear" else value


def _to_ms(value: float, unit: str) -> float:
    return value * 1000.0 if unit in ("seconds", "linear", "") else value


def _to_hz(value: float, unit: str) -> float:
    return semitones_to_hz(value) if unit == "semitones" else value
