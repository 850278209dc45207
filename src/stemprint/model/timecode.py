"""SMPTE timecode: parse and validate ``start_timecode``, convert it to samples since midnight.

Broadcast WAV stores where a file starts as a count of samples since midnight (the ``bext``
TimeReference, EBU Tech 3285 v2, and the iXML timestamp); the session states it as a timecode
``HH:MM:SS:FF`` and a frame rate. The conversion is exact: integers and fractions only.

Frame rates
-----------
=========  ==================  ===========  ==============
rate       frames per second   nominal fps  drop frame
=========  ==================  ===========  ==============
23.976     24000/1001          24           no
24         24                  24           no
25         25                  25           no
29.97      30000/1001          30           with ``;``
29.97df    30000/1001          30           always
30         30                  30           no
=========  ==================  ===========  ==============

- A ``;`` or ``.`` before the frames marks drop frame (``01:00:00;00``); drop frame exists only at
  29.97 (``29.97df``, or ``29.97`` with such a separator). Frames run from 0 to nominal fps − 1.
- Frame count (SMPTE 12M): non-drop ``n = (3600·HH + 60·MM + SS)·fps_nominal + FF``. Drop frame
  skips the frame numbers 00 and 01 at the start of every minute except minutes 0, 10, 20 … (so
  those labels do not exist): ``n = (3600·HH + 60·MM + SS)·30 + FF − 2·(M − ⌊M/10⌋)`` with
  ``M = 60·HH + MM`` the total minutes.
- Samples since midnight: ``n · sample_rate / fps`` with the exact ``fps`` of the table (so
  ``n · sample_rate · 1001/24000`` at 23.976), rounded to the nearest sample, halves up. At
  48 kHz every rate but 29.97 gives an integer; 01:00:00:00 at 23.976 is 86 400 frames × 2002 =
  172 972 800 samples (not 3600 × 48 000: 23.976 timecode runs 0.1 % slower than the clock).
- Samples back to timecode (display): the frame holding the sample, to within half a sample, so
  the conversion round-trips exactly; hours wrap at 24.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from stemprint.errors import SessionError

FIELD = "start_timecode"


@dataclass(frozen=True)
class FrameRate:
    """One frame rate of the table in the module header.

    Attributes
    ----------
    name
        The session's spelling (``23.976``, ``29.97df`` …).
    fps
        Exact frames per second.
    nominal_fps
        Frames per timecode second (the ``FF`` range).
    drop_frame
        Drop frame counting whatever the separator (``29.97df``).
    """

    name: str
    fps: Fraction
    nominal_fps: int
    drop_frame: bool = False

    @property
    def allows_drop_frame(self) -> bool:
        """Drop frame counting exists at this rate (29.97 only)."""
        return self.fps == Fraction(30000, 1001)


FRAME_RATES: dict[str, FrameRate] = {
    "23.976": FrameRate("23.976", Fraction(24000, 1001), 24),
    "24": FrameRate("24", Fraction(24), 24),
    "25": FrameRate("25", Fraction(25), 25),
    "29.97": FrameRate("29.97", Fraction(30000, 1001), 30),
    "29.97df": FrameRate("29.97df", Fraction(30000, 1001), 30, drop_frame=True),
    "30": FrameRate("30", Fraction(30), 30),
}

_PATTERN = re.compile(r"(\d{2}):(\d{2}):(\d{2})([:;.])(\d{2})")
_FIX_FORMAT = 'write it as "HH:MM:SS:FF", e.g. "01:00:00:00" (";" before the frames: drop frame)'
_DF_FRAMES_PER_10_MINUTES = 17982  # 10 · 60 · 30 − 9 · 2
_DF_FRAMES_PER_MINUTE = 1798  # 60 · 30 − 2 (a minute that drops)


@dataclass(frozen=True)
class Timecode:
    """A validated timecode at a frame rate.

    Attributes
    ----------
    hours, minutes, seconds, frames
        The label's fields.
    rate
        Its frame rate.
    drop_frame
        Counted as drop frame (SMPTE 12M).
    """

    hours: int
    minutes: int
    seconds: int
    frames: int
    rate: FrameRate
    drop_frame: bool

    @property
    def frame_count(self) -> int:
        """Frames since midnight (module header)."""
        seconds = (self.hours * 60 + self.minutes) * 60 + self.seconds
        count = seconds * self.rate.nominal_fps + self.frames
        if self.drop_frame:
            total_minutes = self.hours * 60 + self.minutes
            count -= 2 * (total_minutes - total_minutes // 10)
        return count

    def samples_since_midnight(self, sample_rate: int) -> int:
        """``frame_count · sample_rate / fps``, nearest sample, halves up."""
        return _round_half_up(self.frame_count * sample_rate / self.rate.fps)

    def __str__(self) -> str:
        separator = ";" if self.drop_frame else ":"
        return f"{self.hours:02d}:{self.minutes:02d}:{self.seconds:02d}{separator}{self.frames:02d}"


def _round_half_up(value: Fraction) -> int:
    return (2 * value.numerator + value.denominator) // (2 * value.denominator)


def frame_rate(value: Any) -> FrameRate:
    """The :class:`FrameRate` named by ``value`` (``"23.976"``, ``29.97``, ``"29.97DF"`` …).

    Raises
    ------
    SessionError
        Not one of the rates of the module header.
    """
    text = f"{value:g}" if isinstance(value, float) else str(value).strip().lower()
    if text not in FRAME_RATES:
        raise SessionError(
            f"frame_rate {value!r} is not one of {', '.join(FRAME_RATES)}",
            field="frame_rate",
            fix=f"set frame_rate to one of {', '.join(FRAME_RATES)}",
        )
    return FRAME_RATES[text]


def parse_timecode(text: str, rate: Any) -> Timecode:
    """Parse and validate ``text`` (``HH:MM:SS:FF``) at ``rate``.

    Parameters
    ----------
    text
        The timecode; ``;`` or ``.`` before the frames marks drop frame.
    rate
        A frame rate name or number (:func:`frame_rate`).

    Returns
    -------
    Timecode
        The validated timecode.

    Raises
    ------
    SessionError
        ``field="start_timecode"``: malformed, a field out of range, drop frame at a rate other
        than 29.97, or a frame label that drop frame skips.
    """
    fps = frame_rate(rate)
    match = _PATTERN.fullmatch(str(text).strip())
    if match is None:
        raise SessionError(f"timecode {text!r} is not HH:MM:SS:FF", field=FIELD, fix=_FIX_FORMAT)
    hours, minutes, seconds, frames = (int(match.group(i)) for i in (1, 2, 3, 5))
    drop = fps.drop_frame or match.group(4) in ";."
    _check_ranges(text, hours, minutes, seconds, frames, fps)
    if drop:
        _check_drop_frame(text, hours, minutes, seconds, frames, fps)
    return Timecode(hours, minutes, seconds, frames, fps, drop)


def _check_ranges(
    text: str, hours: int, minutes: int, seconds: int, frames: int, fps: FrameRate
) -> None:
    if hours > 23 or minutes > 59 or seconds > 59:
        raise SessionError(
            f"timecode {text!r} is not a time of day (hours 00-23, minutes and seconds 00-59)",
            field=FIELD,
            fix=_FIX_FORMAT,
        )
    if frames >= fps.nominal_fps:
        raise SessionError(
            f"timecode {text!r} has frame {frames:02d}, but {fps.name} fps counts frames "
            f"00-{fps.nominal_fps - 1:02d}",
            field=FIELD,
            fix=f"use a frame number below {fps.nominal_fps}, or correct frame_rate",
        )


def _check_drop_frame(
    text: str, hours: int, minutes: int, seconds: int, frames: int, fps: FrameRate
) -> None:
    if not fps.allows_drop_frame:
        raise SessionError(
            f"timecode {text!r} is drop frame (';' before the frames), which exists only at "
            f"29.97 fps, not at {fps.name}",
            field=FIELD,
            fix="write ':' before the frames, or set frame_rate to 29.97df",
        )
    if seconds == 0 and frames < 2 and minutes % 10 != 0:
        raise SessionError(
            f"timecode {text!r} does not exist in drop frame: frames 00 and 01 are skipped at "
            "the start of every minute not divisible by 10",
            field=FIELD,
            fix=f"start at {hours:02d}:{minutes:02d}:00;02 (the first frame of that minute)",
        )


def samples_to_timecode(samples: int, sample_rate: int, rate: Any, drop_frame: bool = False) -> str:
    """The timecode label of the frame holding sample ``samples`` (since midnight).

    Parameters
    ----------
    samples
        Samples since midnight.
    sample_rate
        Hz.
    rate
        Frame rate (:func:`frame_rate`); ``29.97df`` implies ``drop_frame``.
    drop_frame
        Label in drop frame (29.97 only).

    Raises
    ------
    SessionError
        Drop frame asked at a rate other than 29.97.
    """
    fps = frame_rate(rate)
    drop = drop_frame or fps.drop_frame
    if drop and not fps.allows_drop_frame:
        raise SessionError(
            f"drop frame exists only at 29.97 fps, not at {fps.name}",
            field="frame_rate",
            fix="set frame_rate to 29.97df",
        )
    # Half a sample of slack: a rounded TimeReference maps back to its own frame.
    count = int((2 * samples + 1) * fps.fps // (2 * sample_rate))
    if drop:
        count = _drop_frame_label_count(count)
    nominal = fps.nominal_fps
    frames = count % nominal
    total_seconds = count // nominal
    hours = (total_seconds // 3600) % 24
    timecode = Timecode(hours, total_seconds // 60 % 60, total_seconds % 60, frames, fps, drop)
    return str(timecode)


def _drop_frame_label_count(count: int) -> int:
    """A drop-frame frame count as the non-drop count its label reads (labels skipped added)."""
    tens, rest = divmod(count, _DF_FRAMES_PER_10_MINUTES)
    skipped = 18 * tens
    if rest > 2:
        skipped += 2 * ((rest - 2) // _DF_FRAMES_PER_MINUTE)
    return count + skipped


def session_timecode(session: Any, file: str | None = None) -> Timecode | None:
    """The session's ``start_timecode`` at its ``frame_rate``, validated (``None`` if unset).

    Parameters
    ----------
    session
        A :class:`~stemprint.model.session.Session` (``start_timecode``, ``frame_rate``).
    file
        The session file, named in errors.

    Raises
    ------
    SessionError
        An invalid timecode, or a ``start_timecode`` without ``frame_rate``.
    """
    text = getattr(session, "start_timecode", None)
    if text is None:
        return None
    rate = getattr(session, "frame_rate", None)
    try:
        if rate is None:
            raise SessionError(
                f"start_timecode {text!r} needs a frame rate",
                field=FIELD,
                fix=f"add frame_rate: one of {', '.join(FRAME_RATES)}",
            )
        return parse_timecode(text, rate)
    except SessionError as exc:
        if file is None:
            raise
        raise SessionError(exc.message, file=file, field=exc.field, fix=exc.fix) from None


def time_reference_samples(
    session: Any, sample_rate: int | None = None, file: str | None = None
) -> int | None:
    """The session's start timecode as samples since midnight (``bext`` TimeReference).

    Parameters
    ----------
    session
        A :class:`~stemprint.model.session.Session` (``start_timecode``, ``frame_rate``,
        ``sample_rate``).
    sample_rate
        The files' sample rate (default: the session's).
    file
        The session file, named in errors.

    Returns
    -------
    int or None
        ``None`` when the session has no ``start_timecode``.

    Raises
    ------
    SessionError
        As :func:`session_timecode`.
    """
    timecode = session_timecode(session, file)
    if timecode is None:
        return None
    return timecode.samples_since_midnight(sample_rate or int(session.sample_rate))


__all__ = [
    "FRAME_RATES",
    "FrameRate",
    "Timecode",
    "frame_rate",
    "parse_timecode",
    "samples_to_timecode",
    "session_timecode",
    "time_reference_samples",
]
