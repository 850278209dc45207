"""Automation: points on the project timeline → session gain and pan lanes.

- Points are project seconds (:class:`~.reader.AutoPoint`); the interpolation of a point leads
  to the next. Volume lanes are in dB (``unit="linear"``: ``gain_db = 20·log10(v)``), pan lanes
  in ``[-1, 1]`` (``normalized``: ``pan = 2·v − 1``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element

from stemprint.importers.common import SILENT_DB, gain_points_to_db, gain_to_db
from stemprint.importers.dawproject.params import _pan_value
from stemprint.importers.dawproject.reader import AutoPoint, _Reader

# -- automation ----------------------------------------------------------------------------------


def _clamp_times(points: list[list[float]]) -> list[list[float]]:
    return [[max(t, 0.0), v] for t, v in points]


def _lane(points: list[AutoPoint], convert: Callable[[float], float]) -> tuple[str, list[Any]]:
    """Points → (interpolation, [[seconds, value]]): hold steps become jumps in a linear lane."""
    pts = sorted(points, key=lambda p: p.seconds)
    if all(not p.linear for p in pts[:-1]):
        return "hold", _clamp_times([[p.seconds, convert(p.value)] for p in pts])
    out: list[list[float]] = []
    for p, nxt in zip(pts, [*pts[1:], None], strict=True):
        out.append([p.seconds, convert(p.value)])
        if nxt is not None and not p.linear:
            out.append([nxt.seconds, convert(p.value)])
    return "linear", _clamp_times(out)


def _gain_lane(points: list[AutoPoint], unit: str) -> tuple[str, list[Any], bool]:
    """Volume points → a ``gain_db`` lane; gain-linear ramps densified (dB-linear lane)."""
    if unit == "decibel":
        return (*_lane(points, lambda v: max(v, SILENT_DB)), False)
    pts = sorted(points, key=lambda p: p.seconds)
    if all(not p.linear for p in pts[:-1]):
        return "hold", _clamp_times([[p.seconds, gain_to_db(p.value)] for p in pts]), False
    out: list[list[float]] = []
    densified = False
    for p, nxt in zip(pts, [*pts[1:], None], strict=True):
        if nxt is None:
            out.append([p.seconds, gain_to_db(p.value)])
        elif p.linear:
            seg, added = gain_points_to_db([(p.seconds, p.value), (nxt.seconds, nxt.value)])
            out.extend([t, db] for t, db in seg[:-1])
            densified = densified or added
        else:
            out.extend([[p.seconds, gain_to_db(p.value)], [nxt.seconds, gain_to_db(p.value)]])
    return "linear", _clamp_times(out), densified


@dataclass
class _Params:
    """Which session parameter each automatable DAWproject parameter id drives."""

    targets: dict[str, tuple[str, Element]] = field(default_factory=dict)

    def add(self, elem: Element | None, param: str) -> None:
        if elem is not None and elem.get("id"):
            self.targets[elem.get("id", "")] = (param, elem)


def _automation(
    reader: _Reader,
    params: _Params,
    points: dict[str, list[AutoPoint]],
    units: dict[str, str],
    where: str,
) -> list[dict[str, Any]]:
    lanes: list[dict[str, Any]] = []
    for pid, (param, elem) in params.targets.items():
        pts = points.pop(pid, None)
        if not pts:
            continue
        unit = units.get(pid) or elem.get("unit", "")
        if param == "gain_db" or param.startswith("send:"):
            interpolation, values, densified = _gain_lane(pts, unit or "linear")
            if densified:
                reader.add(
                    "AUTOMATION_DENSIFIED",
                    where,
                    "none",
                    f"a gain-linear {param} ramp",
                    "resampled into dB-linear points (within 0.05 dB)",
                )
        elif param == "pan":
            interpolation, values = _lane(pts, functools.partial(_pan_value, elem))
        elif param == "mute":
            interpolation, values = "hold", _lane(pts, lambda v: 1.0 if v > 0.5 else 0.0)[1]
        else:
            reader.add(
                "AUTOMATION_UNSUPPORTED",
                where,
                "approximate",
                f"automation of {param}",
                "left out; the parameter keeps its value",
            )
            continue
        lanes.append({"param": param, "interpolation": interpolation, "points": values})
    return lanes
