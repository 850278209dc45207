"""The tempo map: beats ↔ seconds (hold steps and linear ramps) and timeline contexts.

Formulas
--------
- Tempo, constant segment: ``t = t0 + 60·(b − b0)/bpm``. Linear ramp from ``bpm0`` at ``b0`` to
  ``bpm1`` at ``b1`` (linear in beats): ``bpm(b) = bpm0 + k·(b − b0)``, ``k = (bpm1 −
  bpm0)/(b1 − b0)``, and ``t = t0 + (60/k)·ln(bpm(b)/bpm0)`` (the whole segment:
  ``60·Δb/(bpm1 − bpm0)·ln(bpm1/bpm0)``); inverse ``b = b0 + (bpm0·e^{k·(t − t0)/60} −
  bpm0)/k``.
- A content timeline in unit ``u`` anchored so that content time ``c0`` sounds at project time
  ``S``: ``offset = (S if u is seconds else beats(S)) − c0``; content time ``c`` sounds at
  ``c + offset`` (seconds), or at ``seconds(c + offset)`` (beats).
- A project without a tempo plays at :data:`DEFAULT_TEMPO_BPM`.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, replace

DEFAULT_TEMPO_BPM = 120.0
"""Tempo when the project has none."""


# -- time --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Segment:
    beat: float
    seconds: float
    bpm: float
    slope: float  # bpm per beat (0: constant tempo)


class TempoClock:
    """Beats ↔ seconds through a piecewise tempo map (hold steps and linear ramps).

    Parameters
    ----------
    points
        ``(beat, bpm, ramps_to_next)`` in beat order; before the first point its tempo holds.
    """

    def __init__(self, points: list[tuple[float, float, bool]]) -> None:
        segments = [_Segment(0.0, 0.0, points[0][1], 0.0)]
        for i, (beat, bpm, ramp) in enumerate(points):
            last = segments[-1]
            if beat > last.beat:
                seconds = self._seconds_in(last, beat)
                segments.append(_Segment(beat, seconds, bpm, 0.0))
            else:
                segments[-1] = replace(last, bpm=bpm if beat == last.beat else last.bpm)
            if ramp and i + 1 < len(points) and points[i + 1][0] > beat:
                next_beat, next_bpm = points[i + 1][0], points[i + 1][1]
                slope = (next_bpm - bpm) / (next_beat - beat)
                segments[-1] = replace(segments[-1], slope=slope)
        self._segments = segments
        self._beats = [s.beat for s in segments]
        self._seconds = [s.seconds for s in segments]

    @staticmethod
    def _seconds_in(seg: _Segment, beat: float) -> float:
        span = beat - seg.beat
        if seg.slope == 0.0:
            return seg.seconds + 60.0 * span / seg.bpm
        bpm = seg.bpm + seg.slope * span
        return seg.seconds + 60.0 / seg.slope * math.log(bpm / seg.bpm)

    def seconds(self, beat: float) -> float:
        """Project seconds at project beat ``beat`` (before 0: the first tempo holds)."""
        seg = self._segments[max(bisect.bisect_right(self._beats, beat) - 1, 0)]
        if beat < seg.beat:
            return seg.seconds + 60.0 * (beat - seg.beat) / seg.bpm
        return self._seconds_in(seg, beat)

    def beats(self, seconds: float) -> float:
        """Project beats at ``seconds`` (the inverse of :meth:`seconds`)."""
        seg = self._segments[max(bisect.bisect_right(self._seconds, seconds) - 1, 0)]
        elapsed = seconds - seg.seconds
        if seg.slope == 0.0 or elapsed < 0:
            return seg.beat + elapsed * seg.bpm / 60.0
        bpm = seg.bpm * math.exp(seg.slope * elapsed / 60.0)
        return seg.beat + (bpm - seg.bpm) / seg.slope

    @property
    def first_bpm(self) -> float:
        """The tempo at beat 0."""
        return self._segments[0].bpm

    @property
    def ramps(self) -> bool:
        """True when any segment is a linear ramp."""
        return any(s.slope != 0.0 for s in self._segments)

    @property
    def changes(self) -> bool:
        """True when the tempo is not one constant."""
        return self.ramps or len({s.bpm for s in self._segments}) > 1


@dataclass(frozen=True)
class Ctx:
    """A timeline's local time → project time: ``unit`` and a translation ``offset``."""

    unit: str
    offset: float
    clock: TempoClock

    def seconds(self, local: float) -> float:
        """Project seconds of local time ``local``."""
        if self.unit == "seconds":
            return local + self.offset
        return self.clock.seconds(local + self.offset)

    def anchored(self, unit: str, at_seconds: float, local: float) -> Ctx:
        """A context of ``unit`` in which local time ``local`` sounds at ``at_seconds``."""
        base = at_seconds if unit == "seconds" else self.clock.beats(at_seconds)
        return Ctx(unit, base - local, self.clock)

    def shifted(self, amount: float) -> Ctx:
        """The same context moved later by ``amount`` local units."""
        return Ctx(self.unit, self.offset + amount, self.clock)

    def span_seconds(self, at_seconds: float, amount: float, unit: str) -> float:
        """Seconds covered by ``amount`` of ``unit`` starting at ``at_seconds``."""
        if unit == "seconds":
            return amount
        start = self.clock.beats(at_seconds)
        return self.clock.seconds(start + amount) - at_seconds
