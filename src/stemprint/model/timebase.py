"""Musical time: a tempo map, and positions and lengths in seconds, samples or bars.

Conventions
-----------
* **Tempo** ``tempo_bpm`` counts *quarter notes* per minute, whatever the time signature (the MIDI
  convention, and the default of most DAWs). A bar of 7/8 at 120 bpm lasts 7 × 0.25 s = 1.75 s.
* **Beats** are counted in the time signature's denominator unit: 4/4 has four quarter-note beats
  per bar, 7/8 seven eighth-note beats. A beat lasts ``4 / denominator`` quarter notes.
* **Ticks**: 960 per quarter note (:data:`PPQ`), so a beat has ``3840 / denominator`` ticks
  (960 in x/4, 480 in x/8). The tick field of a position is 0-based and below that number.
* **Bars and beats** are 1-based: ``"1.1.0"`` is the start of the timeline (0 s).
* **Changes** of tempo and time signature take effect at the first beat of a bar
  (:class:`TempoChange`); tempo changes are instantaneous (no ramps).
* **Exact arithmetic**: positions are resolved with :class:`fractions.Fraction` on the exact
  binary values of the floats given, so the result never depends on the order of additions.
  :meth:`TempoMap.sample` rounds ``seconds × sample_rate`` to the nearest integer, ties to even
  (Python's :func:`round` of the exact fraction). :meth:`TempoMap.seconds` returns the nearest
  float to the exact time.

Position values (as read from YAML)
-----------------------------------
=========================================  ==================================================
value                                      meaning
=========================================  ==================================================
``12.5`` (int or float), ``"12.5s"``       seconds
``"48000smp"``, ``{samples: 48000}``       samples (an integer)
``"17.1.0"``, ``"17.1"``                   bar 17, beat 1, tick 0
``{seconds: 12.5}``                        seconds
``{bar: 17, beat: 1, tick: 0}``            bar 17, beat 1, tick 0 (beat and tick optional)
=========================================  ==================================================

Beware: an unquoted ``17.1`` in YAML is a float, hence 17.1 *seconds*; write ``"17.1"`` (quoted)
for bar 17, beat 1.

Length values: a number or ``"12.5s"`` (seconds), ``"480smp"`` or ``{samples: 480}`` (samples),
``"2 bars"`` / ``"1 bar"`` / ``{bars: 2}``, ``"3 beats"`` / ``"1 beat"`` / ``{beats: 3}``.
Bars and beats may be fractional (``"1.5 beats"``) and are counted forward from a start position
through any tempo and time-signature changes (a beat after a change to 7/8 is an eighth note).
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from stemprint.errors import InputError

PPQ = 960
"""Ticks per quarter note."""

POSITION_FORMS = (
    "a number of seconds (12.5 or '12.5s'), samples ('48000smp' or {samples: 48000}), "
    "or 'bar.beat.tick' ('17.1.0' or '17.1'; bars and beats count from 1, ticks from 0, "
    f"{PPQ} per quarter note)"
)
"""The accepted position forms, as quoted in error messages."""

LENGTH_FORMS = (
    "a number of seconds (2.5 or '2.5s'), samples ('480smp' or {samples: 480}), "
    "bars ('2 bars', {bars: 2}) or beats ('3 beats', {beats: 3})"
)
"""The accepted length forms, as quoted in error messages."""

_DENOMINATORS = (1, 2, 4, 8, 16, 32, 64)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _finite(
    value: float, what: str, *, minimum: float | None = None, strict: bool = False
) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        relation = "greater than" if strict else "at least"
        raise ValueError(f"{what} must be {relation} {minimum:g}, got {value}")
    return value


# --------------------------------------------------------------------------------------------
# Positions and lengths


class SecondsPosition(_Model):
    """A timeline position in seconds from the start of the session (0 s)."""

    seconds: float = Field(description="Seconds from the session start, finite and >= 0.")

    @field_validator("seconds", mode="after")
    @classmethod
    def _check(cls, value: float) -> float:
        return _finite(value, "seconds", minimum=0.0)


class SamplePosition(_Model):
    """A timeline position as a sample index (sample 0 is the session start)."""

    samples: int = Field(ge=0, description="Sample index from the session start.")


class MusicalPosition(_Model):
    """A timeline position as bar, beat and tick (1-based bar and beat, 0-based tick).

    Whether ``beat`` and ``tick`` exist in the bar depends on the time signature in force there;
    :class:`TempoMap` checks it when it resolves the position.
    """

    bar: int = Field(ge=1, description="1-based bar number.")
    beat: int = Field(1, ge=1, description="1-based beat in the bar, in denominator units.")
    tick: int = Field(0, ge=0, description=f"0-based tick in the beat ({PPQ} per quarter note).")

    def __str__(self) -> str:
        return f"{self.bar}.{self.beat}.{self.tick}"


Position = SecondsPosition | SamplePosition | MusicalPosition
"""A parsed timeline position."""


class SecondsLength(_Model):
    """A length in seconds."""

    seconds: float = Field(description="Seconds, finite and >= 0.")

    @field_validator("seconds", mode="after")
    @classmethod
    def _check(cls, value: float) -> float:
        return _finite(value, "seconds", minimum=0.0)


class SampleLength(_Model):
    """A length in samples."""

    samples: int = Field(ge=0)


class BarsLength(_Model):
    """A length in bars (may be fractional), counted forward from a start position."""

    bars: float

    @field_validator("bars", mode="after")
    @classmethod
    def _check(cls, value: float) -> float:
        return _finite(value, "bars", minimum=0.0)


class BeatsLength(_Model):
    """A length in beats (denominator units, may be fractional), counted from a start position."""

    beats: float

    @field_validator("beats", mode="after")
    @classmethod
    def _check(cls, value: float) -> float:
        return _finite(value, "beats", minimum=0.0)


Length = SecondsLength | SampleLength | BarsLength | BeatsLength
"""A parsed length."""

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_SECONDS_RE = re.compile(rf"^\s*({_NUMBER})\s*s\s*$")
_SAMPLES_RE = re.compile(r"^\s*([+-]?\d+)\s*smp\s*$")
_BBT_RE = re.compile(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?\s*$")
_BARS_RE = re.compile(rf"^\s*({_NUMBER})\s*bars?\s*$")
_BEATS_RE = re.compile(rf"^\s*({_NUMBER})\s*beats?\s*$")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _coerce_position(value: Any) -> Position:
    """Parse ``value`` into a :data:`Position`; raises ``ValueError`` (for pydantic fields)."""
    if isinstance(value, SecondsPosition | SamplePosition | MusicalPosition):
        return value
    try:
        if _is_number(value):
            return SecondsPosition(seconds=float(value))
        if isinstance(value, str):
            if m := _SECONDS_RE.match(value):
                return SecondsPosition(seconds=float(m.group(1)))
            if m := _SAMPLES_RE.match(value):
                return SamplePosition(samples=int(m.group(1)))
            if m := _BBT_RE.match(value):
                return MusicalPosition(
                    bar=int(m.group(1)), beat=int(m.group(2)), tick=int(m.group(3) or 0)
                )
        elif isinstance(value, Mapping):
            keys = set(value)
            if keys == {"samples"}:
                return SamplePosition.model_validate(dict(value))
            if keys == {"seconds"}:
                return SecondsPosition.model_validate(dict(value))
            if keys and keys <= {"bar", "beat", "tick"} and "bar" in keys:
                return MusicalPosition.model_validate(dict(value))
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise _ParseError(
            f"invalid position {value!r}: {_first_error(exc)}", POSITION_FORMS
        ) from exc
    hint = ""
    if isinstance(value, str) and re.fullmatch(rf"\s*{_NUMBER}\s*", value):
        hint = " (a number in quotes is ambiguous: add 's' for seconds, or write bar.beat)"
    raise _ParseError(f"cannot read {value!r} as a position{hint}", POSITION_FORMS)


def _coerce_length(value: Any) -> Length:
    """Parse ``value`` into a :data:`Length`; raises ``ValueError`` (for pydantic fields)."""
    if isinstance(value, SecondsLength | SampleLength | BarsLength | BeatsLength):
        return value
    try:
        if _is_number(value):
            return SecondsLength(seconds=float(value))
        if isinstance(value, str):
            if m := _SECONDS_RE.match(value):
                return SecondsLength(seconds=float(m.group(1)))
            if m := _SAMPLES_RE.match(value):
                return SampleLength(samples=int(m.group(1)))
            if m := _BARS_RE.match(value):
                return BarsLength(bars=float(m.group(1)))
            if m := _BEATS_RE.match(value):
                return BeatsLength(beats=float(m.group(1)))
        elif isinstance(value, Mapping) and len(value) == 1:
            kinds: dict[str, type[_Model]] = {
                "seconds": SecondsLength,
                "samples": SampleLength,
                "bars": BarsLength,
                "beats": BeatsLength,
            }
            (key,) = value
            if key in kinds:
                return kinds[key].model_validate(dict(value))  # type: ignore[return-value]
    except ValueError as exc:
        raise _ParseError(f"invalid length {value!r}: {_first_error(exc)}", LENGTH_FORMS) from exc
    raise _ParseError(f"cannot read {value!r} as a length", LENGTH_FORMS)


class _ParseError(ValueError):
    """A parse failure: ``str()`` has the accepted forms (for pydantic), ``short`` has not."""

    def __init__(self, short: str, forms: str) -> None:
        self.short = short
        super().__init__(f"{short}; use {forms}")


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        message = str(first.get("msg", exc))
        if first.get("type") == "value_error":  # our own message, which names the field
            return message.removeprefix("Value error, ")
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where}: {message}" if where else message
    return str(exc)


def parse_position(value: Any, *, field: str | None = None) -> Position:
    """Parse a position as written in a session file.

    Parameters
    ----------
    value
        A number (seconds), a string (``"12.5s"``, ``"48000smp"``, ``"17.1.0"``, ``"17.1"``),
        a mapping (``{samples: 48000}``, ``{seconds: 1.5}``, ``{bar: 17, beat: 1, tick: 0}``) or
        an already parsed :data:`Position`.
    field
        Location of the value in its file, for the error message.

    Returns
    -------
    Position
        :class:`SecondsPosition`, :class:`SamplePosition` or :class:`MusicalPosition`.

    Raises
    ------
    InputError
        If ``value`` is none of the accepted forms, or negative, or not finite.
    """
    try:
        return _coerce_position(value)
    except _ParseError as exc:
        raise InputError(exc.short, field=field, fix=f"write {POSITION_FORMS}") from None


def parse_length(value: Any, *, field: str | None = None) -> Length:
    """Parse a length as written in a session file.

    Parameters
    ----------
    value
        A number (seconds), a string (``"2.5s"``, ``"480smp"``, ``"2 bars"``, ``"3 beats"``),
        a one-key mapping (``{seconds: …}``, ``{samples: …}``, ``{bars: …}``, ``{beats: …}``) or
        an already parsed :data:`Length`.
    field
        Location of the value in its file, for the error message.

    Returns
    -------
    Length
        :class:`SecondsLength`, :class:`SampleLength`, :class:`BarsLength` or
        :class:`BeatsLength`.

    Raises
    ------
    InputError
        If ``value`` is none of the accepted forms, or negative, or not finite.
    """
    try:
        return _coerce_length(value)
    except _ParseError as exc:
        raise InputError(exc.short, field=field, fix=f"write {LENGTH_FORMS}") from None


PositionField = Annotated[Position, BeforeValidator(_coerce_position)]
"""A pydantic field type that accepts every position form (errors become ``ValidationError``)."""

LengthField = Annotated[Length, BeforeValidator(_coerce_length)]
"""A pydantic field type that accepts every length form (errors become ``ValidationError``)."""


# --------------------------------------------------------------------------------------------
# Time signature, tempo changes, tempo map

_SIGNATURE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


class TimeSignature(_Model):
    """A time signature; accepts ``"7/8"`` or ``{numerator: 7, denominator: 8}``."""

    numerator: int = Field(ge=1, le=128, description="Beats per bar.")
    denominator: int = Field(description="Beat unit: 1, 2, 4, 8, 16, 32 or 64 (4 = quarter).")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            m = _SIGNATURE_RE.match(value)
            if not m:
                raise ValueError(
                    f"cannot read {value!r} as a time signature; write it like '4/4' or '7/8'"
                )
            return {"numerator": int(m.group(1)), "denominator": int(m.group(2))}
        return value

    @field_validator("denominator", mode="after")
    @classmethod
    def _denominator(cls, value: int) -> int:
        if value not in _DENOMINATORS:
            raise ValueError(f"time signature denominator must be one of {_DENOMINATORS}")
        return value

    @property
    def ticks_per_beat(self) -> int:
        """Ticks in one beat: ``3840 // denominator``."""
        return 4 * PPQ // self.denominator

    def __str__(self) -> str:
        return f"{self.numerator}/{self.denominator}"


class TempoChange(_Model):
    """A tempo and/or time-signature change at the first beat of ``bar`` (instantaneous)."""

    bar: int = Field(ge=2, description="1-based bar where the change takes effect (>= 2).")
    tempo_bpm: float | None = Field(None, description="New tempo in quarter notes per minute.")
    time_signature: TimeSignature | None = Field(None, description="New time signature.")

    @field_validator("tempo_bpm", mode="after")
    @classmethod
    def _tempo(cls, value: float | None) -> float | None:
        if value is not None:
            _finite(value, "tempo_bpm", minimum=0.0, strict=True)
        return value

    @model_validator(mode="after")
    def _something(self) -> TempoChange:
        if self.tempo_bpm is None and self.time_signature is None:
            raise ValueError("a tempo change needs tempo_bpm, time_signature or both")
        return self


@dataclass(frozen=True)
class _Segment:
    """A run of bars with one tempo and time signature, from the first beat of ``bar``."""

    bar: int  # 1-based first bar
    beat0: Fraction  # beats (of every signature so far) before this segment
    seconds0: Fraction  # exact start time
    signature: TimeSignature
    seconds_per_beat: Fraction

    @property
    def seconds_per_bar(self) -> Fraction:
        return self.seconds_per_beat * self.signature.numerator


def _four_four() -> TimeSignature:
    return TimeSignature(numerator=4, denominator=4)


class TempoMap(_Model):
    """Tempo and time signatures over the timeline; resolves positions to seconds and samples.

    Parameters
    ----------
    sample_rate
        Render sample rate in Hz.
    tempo_bpm
        Tempo from bar 1, in quarter notes per minute.
    time_signature
        Time signature from bar 1 (``"4/4"`` by default).
    changes
        Tempo and/or time-signature changes, at strictly increasing bars (>= 2). Each stays in
        force until the next change; a change that sets only one of the two keeps the other.
    """

    sample_rate: int = Field(gt=0, le=768000, description="Render sample rate in Hz.")
    tempo_bpm: float = Field(description="Tempo from bar 1, quarter notes per minute.")
    time_signature: TimeSignature = Field(default_factory=_four_four)
    changes: list[TempoChange] = Field(default_factory=list)

    _segments: list[_Segment] = PrivateAttr(default_factory=list)

    @field_validator("tempo_bpm", mode="after")
    @classmethod
    def _tempo(cls, value: float) -> float:
        return _finite(value, "tempo_bpm", minimum=0.0, strict=True)

    @model_validator(mode="after")
    def _increasing(self) -> TempoMap:
        for index in range(1, len(self.changes)):
            if self.changes[index].bar <= self.changes[index - 1].bar:
                raise ValueError(
                    f"changes[{index}] at bar {self.changes[index].bar} does not come after "
                    f"changes[{index - 1}] at bar {self.changes[index - 1].bar}; list changes "
                    "in bar order, one per bar"
                )
        return self

    def model_post_init(self, context: Any, /) -> None:
        tempo = Fraction(self.tempo_bpm)
        signature = self.time_signature
        segment = _Segment(1, Fraction(0), Fraction(0), signature, _beat_seconds(tempo, signature))
        segments = [segment]
        for change in self.changes:
            bars = change.bar - segment.bar
            if change.tempo_bpm is not None:
                tempo = Fraction(change.tempo_bpm)
            if change.time_signature is not None:
                signature = change.time_signature
            segment = _Segment(
                bar=change.bar,
                beat0=segment.beat0 + bars * segment.signature.numerator,
                seconds0=segment.seconds0 + bars * segment.seconds_per_bar,
                signature=signature,
                seconds_per_beat=_beat_seconds(tempo, signature),
            )
            segments.append(segment)
        self._segments = segments

    # -- public API ---------------------------------------------------------------------------

    def seconds(self, position: Position | Any) -> float:
        """Time of ``position`` in seconds from the session start.

        Parameters
        ----------
        position
            A :data:`Position` or any value :func:`parse_position` accepts.

        Returns
        -------
        float
            The float nearest to the exact time.

        Raises
        ------
        InputError
            If the position cannot be parsed, or its beat or tick does not exist in its bar.
        """
        return float(self.exact_seconds(position))

    def sample(self, position: Position | Any) -> int:
        """Sample index of ``position``: ``round(seconds × sample_rate)``, ties to even.

        The product is rounded from the exact rational time (see the module docstring), so a
        position exactly half-way between two samples goes to the even one. A
        :class:`SamplePosition` is returned unchanged.
        """
        return _round_half_even(self.exact_seconds(position) * self.sample_rate)

    def beats_to_seconds(self, start_position: Position | Any, length_beats: float) -> float:
        """Duration in seconds of ``length_beats`` beats counted forward from ``start_position``.

        Beats are in the denominator unit of the time signature in force at each point, so
        the count follows tempo and time-signature changes. ``length_beats`` may be fractional.
        """
        return float(self._beats_end(self.exact_seconds(start_position), length_beats)[1])

    def bars_to_seconds(self, start_position: Position | Any, length_bars: float) -> float:
        """Duration in seconds of ``length_bars`` bars counted forward from ``start_position``.

        A bar is counted as a continuous coordinate: from beat 3 of a 4/4 bar, 1 bar ends at
        beat 3 of the next bar (if that bar has another signature, at the same fraction of it).
        ``length_bars`` may be fractional.
        """
        return float(self._bars_end(self.exact_seconds(start_position), length_bars)[1])

    def length_seconds(self, start_position: Position | Any, length: Length | Any) -> float:
        """Duration in seconds of ``length`` (any :data:`Length` form) from ``start_position``."""
        start = self.exact_seconds(start_position)
        return float(self._length_end(start, length) - start)

    def length_samples(self, start_position: Position | Any, length: Length | Any) -> int:
        """Length in samples: ``sample(end) − sample(start)``, each rounded as in :meth:`sample`.

        Taking the difference of rounded ends (rather than rounding the duration) makes
        back-to-back regions tile the timeline without gaps or overlaps.
        """
        start = self.exact_seconds(start_position)
        end = self._length_end(start, length)
        rate = self.sample_rate
        return _round_half_even(end * rate) - _round_half_even(start * rate)

    def time_signature_at(self, bar: int) -> TimeSignature:
        """The time signature in force in 1-based ``bar``."""
        return self._segment_for_bar(bar).signature

    def tempo_bpm_at(self, position: Position | Any) -> float:
        """The tempo in force at ``position`` (quarter notes per minute)."""
        segment = self._segment_for_seconds(self.exact_seconds(position))
        return float(Fraction(60) * 4 / segment.signature.denominator / segment.seconds_per_beat)

    def exact_seconds(self, position: Position | Any) -> Fraction:
        """Time of ``position`` as an exact :class:`~fractions.Fraction` of seconds."""
        position = parse_position(position)
        if isinstance(position, SecondsPosition):
            return Fraction(position.seconds)
        if isinstance(position, SamplePosition):
            return Fraction(position.samples, self.sample_rate)
        segment = self._segment_for_bar(position.bar)
        signature = segment.signature
        if position.beat > signature.numerator:
            raise InputError(
                f"position {position} has beat {position.beat}, but bar {position.bar} is in "
                f"{signature} and has beats 1..{signature.numerator}",
                fix="use a beat that exists in the bar, or the next bar",
            )
        if position.tick >= signature.ticks_per_beat:
            raise InputError(
                f"position {position} has tick {position.tick}, but a beat of {signature} has "
                f"ticks 0..{signature.ticks_per_beat - 1} ({PPQ} per quarter note)",
                fix="use a smaller tick, or the next beat",
            )
        beats = (
            (position.bar - segment.bar) * signature.numerator
            + (position.beat - 1)
            + Fraction(position.tick, signature.ticks_per_beat)
        )
        return segment.seconds0 + beats * segment.seconds_per_beat

    # -- internals ----------------------------------------------------------------------------

    def _segment_for_bar(self, bar: int) -> _Segment:
        index = bisect.bisect_right([s.bar for s in self._segments], bar) - 1
        return self._segments[max(index, 0)]

    def _segment_for_seconds(self, seconds: Fraction) -> _Segment:
        index = bisect.bisect_right([s.seconds0 for s in self._segments], seconds) - 1
        return self._segments[max(index, 0)]

    def _beats_end(self, start: Fraction, length_beats: float) -> tuple[Fraction, Fraction]:
        """End time and duration of ``length_beats`` beats from ``start`` (exact)."""
        _check_length(length_beats, "length_beats")
        segment = self._segment_for_seconds(start)
        beat = segment.beat0 + (start - segment.seconds0) / segment.seconds_per_beat
        target = beat + Fraction(length_beats)
        index = bisect.bisect_right([s.beat0 for s in self._segments], target) - 1
        end_segment = self._segments[max(index, 0)]
        end = end_segment.seconds0 + (target - end_segment.beat0) * end_segment.seconds_per_beat
        return end, end - start

    def _bars_end(self, start: Fraction, length_bars: float) -> tuple[Fraction, Fraction]:
        """End time and duration of ``length_bars`` bars from ``start`` (exact)."""
        _check_length(length_bars, "length_bars")
        segment = self._segment_for_seconds(start)
        bar = segment.bar + (start - segment.seconds0) / segment.seconds_per_bar
        target = bar + Fraction(length_bars)
        end_segment = self._segments[
            max(bisect.bisect_right([s.bar for s in self._segments], target) - 1, 0)
        ]
        end = end_segment.seconds0 + (target - end_segment.bar) * end_segment.seconds_per_bar
        return end, end - start

    def _length_end(self, start: Fraction, length: Length | Any) -> Fraction:
        length = parse_length(length)
        if isinstance(length, SecondsLength):
            return start + Fraction(length.seconds)
        if isinstance(length, SampleLength):
            return start + Fraction(length.samples, self.sample_rate)
        if isinstance(length, BarsLength):
            return self._bars_end(start, length.bars)[0]
        return self._beats_end(start, length.beats)[0]


def _beat_seconds(tempo_bpm: Fraction, signature: TimeSignature) -> Fraction:
    """Seconds per beat: 60 / tempo (per quarter note) × 4 / denominator (quarters per beat)."""
    return Fraction(60) / tempo_bpm * Fraction(4, signature.denominator)


def _round_half_even(value: Fraction) -> int:
    return round(value)  # Fraction.__round__ rounds ties to even


def _check_length(value: float, what: str) -> None:
    if isinstance(value, bool) or not _is_number(value):
        raise InputError(f"{what} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise InputError(
            f"{what} must be finite and zero or positive, got {value}",
            fix="count lengths forward from the start position",
        )
