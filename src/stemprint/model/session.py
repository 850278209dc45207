"""The session data model (format version 1): tracks, clips, buses, the master.

A session is data only: loading it never runs code. Every name here carries its unit
(``gain_db``, ``start_seconds``); the product contract (README, "Pan laws") fixes the pan laws,
send tap points and stem semantics that the engines implement.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stemprint.model.timebase import (
    LengthField,
    PositionField,
    TempoChange,
    TempoMap,
    TimeSignature,
)

FadeShapeName = Literal["linear", "equal_power", "exponential"]
PanLawName = Literal["auto", "constant_power", "balance"]

MASTER = "master"
"""The reserved route name of the master bus, used in ``output`` fields."""


def _finite_non_negative(value: float | None, what: str) -> float | None:
    if value is None:
        return value
    if not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value}")
    if value < 0:
        raise ValueError(f"{what} must be zero or positive, got {value}")
    return value


def _finite(value: float, what: str) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value}")
    return value


class _Model(BaseModel):
    # Unknown keys are errors, so a typo (`gian_db`) never silently renders the wrong mix.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Clip(_Model):
    """A region of an audio file placed on the timeline of a track."""

    file: str = Field(description="Path of the audio file, relative to the session file.")
    start_seconds: float = Field(0.0, description="Timeline position of the clip's first sample.")
    offset_seconds: float = Field(0.0, description="Where inside the file the clip starts.")
    duration_seconds: float | None = Field(
        None, description="Length of the clip; default: the rest of the file after the offset."
    )
    gain_db: float = Field(0.0, description="Clip gain in dB.")
    fade_in_seconds: float = Field(0.0, description="Fade-in length at the clip start.")
    fade_out_seconds: float = Field(0.0, description="Fade-out length at the clip end.")
    fade_in_shape: FadeShapeName = Field(
        "linear",
        description="linear, equal_power (crossfades of unrelated material) or exponential.",
    )
    fade_out_shape: FadeShapeName = Field("linear", description="As fade_in_shape.")
    reverse: bool = Field(False, description="Play the clip's part of the file backwards.")
    loop: bool = Field(
        False,
        description="Repeat the file from offset_seconds to its end to fill the clip's duration.",
    )
    gain_envelope: list[tuple[float, float]] = Field(
        default_factory=list,
        description="Clip gain envelope: [seconds from the clip start, gain dB] points, linear "
        "in dB between them (on top of gain_db).",
    )
    start: PositionField | None = Field(
        None,
        description='Timeline position in any form: seconds, "48000smp", or "17.1.0" '
        "(bar.beat.tick, with the session's tempo map). Instead of start_seconds.",
    )
    duration: LengthField | None = Field(
        None,
        description='Clip length in any form: seconds, "480smp", "2 bars", "3 beats". Instead '
        "of duration_seconds.",
    )

    @model_validator(mode="after")
    def _one_form(self) -> Clip:
        if self.start is not None and "start_seconds" in self.model_fields_set:
            raise ValueError("give either start or start_seconds, not both")
        if self.duration is not None and self.duration_seconds is not None:
            raise ValueError("give either duration or duration_seconds, not both")
        return self

    @field_validator(
        "start_seconds", "offset_seconds", "fade_in_seconds", "fade_out_seconds", mode="after"
    )
    @classmethod
    def _times(cls, value: float, info: Any) -> float:
        _finite_non_negative(value, info.field_name)
        return value

    @field_validator("duration_seconds", mode="after")
    @classmethod
    def _duration(cls, value: float | None) -> float | None:
        _finite_non_negative(value, "duration_seconds")
        if value == 0:
            raise ValueError("duration_seconds must be positive; remove the clip instead")
        return value

    @field_validator("gain_db", mode="after")
    @classmethod
    def _gain(cls, value: float) -> float:
        return _finite(value, "gain_db")


class Insert(BaseModel):
    """One processor in a strip's insert chain.

    ``type`` is a pedalboard plug-in class in snake_case (``highpass_filter``), its parameters the
    class's keyword arguments (``cutoff_frequency_hz``). ``type: vst3`` / ``audio_unit`` hosts an
    external plug-in from ``path`` (only with ``--allow-plugins``); its other keys set plug-in
    parameters. Parameters are checked against pedalboard when the session is validated.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str = Field(description="Processor type: a pedalboard class in snake_case, or vst3.")

    @property
    def params(self) -> dict[str, Any]:
        """The processor's parameters (every key but ``type``)."""
        return dict(self.model_extra or {})


class Send(_Model):
    """An aux send from a strip to a bus (usually a return, e.g. a shared reverb)."""

    to: str = Field(description="Name of the receiving bus.")
    level_db: float = Field(0.0, description="Send level in dB.")
    pre_fader: bool = Field(
        False, description="Tap before fader and pan (true) or after them (false, default)."
    )
    pre_inserts: bool = Field(
        False,
        description="Pre-FX send: tap after the polarity switch, before the inserts, fader and "
        "pan (REAPER's pre-FX receive). Implies pre-fader.",
    )
    invert_polarity: bool = Field(False, description="Flip the send's polarity.")
    pan: float = Field(
        0.0,
        ge=-1.0,
        le=1.0,
        description="Send pan: a balance on the send's stereo signal (p > 0 scales the left "
        "side by cos(p·π/2), p < 0 the right side by cos(−p·π/2)).",
    )

    @field_validator("level_db", "pan", mode="after")
    @classmethod
    def _level(cls, value: float, info: Any) -> float:
        return _finite(value, info.field_name)


class AutomationLaneDef(_Model):
    """Breakpoint automation of one strip parameter.

    ``param`` is ``gain_db`` (the fader), ``pan``, ``mute`` (0 or 1, ramped over 5 ms so it
    never clicks), ``send:<bus>`` (that send's level in dB) or ``insert.<index>.<parameter>``
    (a pedalboard insert's parameter, changed every 256 samples on the timeline). Points are
    ``[position, value]`` with positions in any form (seconds, ``"48000smp"``, ``"17.1.0"``).
    Fader, pan and send automation are applied per sample, on the session timeline.
    """

    param: str = Field(description="gain_db, pan, mute or send:<bus>.")
    interpolation: Literal["linear", "hold"] = Field(
        "linear", description="Ramp between points (linear) or step at them (hold)."
    )
    points: list[tuple[PositionField, float]] = Field(
        min_length=1, description="[position, value] pairs in time order."
    )

    @field_validator("param", mode="after")
    @classmethod
    def _param(cls, value: str) -> str:
        if value not in ("gain_db", "pan", "mute") and not value.startswith(("send:", "insert.")):
            raise ValueError(
                f"unknown automation param {value!r}; use gain_db, pan, mute, send:<bus> or "
                "insert.<index>.<parameter>"
            )
        return value


class _Strip(_Model):
    """What tracks and buses share: inserts, fader, pan, mute/solo, sends, output."""

    name: str = Field(min_length=1, description="Unique route name.")
    inserts: list[Insert] = Field(default_factory=list, description="Processed in order.")
    gain_db: float = Field(0.0, description="Fader gain in dB.")
    pan: float = Field(0.0, ge=-1.0, le=1.0, description="-1 (left) .. +1 (right).")
    pan_law: PanLawName = Field(
        "auto",
        description="auto (default): mono sources constant-power (−3 dB centre), stereo sources "
        "balance; constant_power: the same, pinned; balance: a 0 dB-centre balance for mono "
        "sources too (a mono source on both sides at unity, then the stereo balance).",
    )
    mute: bool = False
    solo: bool = Field(False, description="Solo in place: the routes it feeds stay audible.")
    invert_polarity: bool = Field(False, description="Flip the polarity before the inserts.")
    sends: list[Send] = Field(default_factory=list)
    output: str | None = Field(
        MASTER,
        description='A bus name, or "master" (the default); null: no main output, the route '
        "feeds only its sends (REAPER's unchecked master/parent send).",
    )
    automation: list[AutomationLaneDef] = Field(
        default_factory=list, description="Automation lanes (fader, pan, mute, send levels)."
    )

    @field_validator("gain_db", "pan", mode="after")
    @classmethod
    def _finite_values(cls, value: float, info: Any) -> float:
        return _finite(value, info.field_name)

    @field_validator("name", mode="after")
    @classmethod
    def _name(cls, value: str) -> str:
        if value.strip() != value:
            raise ValueError(f"name {value!r} has leading or trailing spaces")
        if value.lower() == MASTER:
            raise ValueError('"master" is reserved for the master bus')
        return value


class Track(_Strip):
    """A track: clips summed into a channel strip. Mono if all its sources are mono."""

    clips: list[Clip] = Field(default_factory=list)


class Bus(_Strip):
    """A stereo bus: a group (tracks output to it) or a return (fed by sends)."""


class Master(_Model):
    """The master bus: the sum of every route that outputs to it, then inserts, fader, pan."""

    gain_db: float = Field(0.0, description="Master fader gain in dB.")
    inserts: list[Insert] = Field(default_factory=list)
    pan: float = Field(0.0, ge=-1.0, le=1.0, description="Master balance, -1 .. +1.")
    mute: bool = Field(False, description="Mute the master: the mix is silent, stems are not.")
    automation: list[AutomationLaneDef] = Field(
        default_factory=list, description="Master automation lanes: gain_db, pan, mute."
    )

    @field_validator("gain_db", "pan", mode="after")
    @classmethod
    def _gain(cls, value: float, info: Any) -> float:
        return _finite(value, info.field_name)


TapPointName = Literal["post_fader", "pre_fader", "dry", "via_master"]


class StemDef(_Model):
    """A stem of a delivery: a named set of routes printed to one file."""

    name: str = Field(min_length=1, description="Stem name (and file name).")
    routes: list[str] = Field(
        min_length=1,
        description="Track or bus names, or shell-style patterns (`Vox*`); `track:X` / `bus:X` "
        "when a track and a bus share a name. A bus stands for every track that outputs into it.",
    )
    tap: TapPointName | None = Field(
        None, description="Tap point for this stem (default: the delivery's)."
    )


class MixDef(_Model):
    """An alternate mix: a full render through the master with some routes muted or soloed."""

    name: str = Field(min_length=1, description="Mix name, e.g. Instrumental.")
    mute: list[str] = Field(default_factory=list, description="Routes (names or patterns) muted.")
    solo: list[str] = Field(
        default_factory=list, description="Routes (names or patterns) kept; all others muted."
    )
    sidechain: Literal["mix", "session"] = Field(
        "mix",
        description="Where sidechain keys come from: `mix` (default): the mix's own routes, as "
        "a DAW bounces it (a muted kick no longer ducks the bass); `session`: the full "
        "session's keys, so the mix lines up with the main mix, ducking included.",
    )


class TailPolicy(_Model):
    """How long to render after the last audible clip."""

    mode: Literal["fixed", "until_silent"] = "fixed"
    seconds: float | None = Field(
        None, description="fixed: tail length (default: the session's tail_seconds)."
    )
    threshold_db: float = Field(-90.0, description="until_silent: every output below this (dBFS).")
    hold_seconds: float = Field(0.5, description="until_silent: ... for this long.")
    max_seconds: float = Field(30.0, description="until_silent: hard cap after the last clip.")

    @field_validator("seconds", "hold_seconds", "max_seconds", mode="after")
    @classmethod
    def _non_negative(cls, value: float | None, info: Any) -> float | None:
        return _finite_non_negative(value, info.field_name)


class Delivery(_Model):
    """What the package holds and how it is written (all optional; presets set several)."""

    preset: Literal["mastering", "mixing", "remix", "sync", "multitrack", "performance"] | None = (
        Field(None, description="One word that sets the fields below (explicit fields win).")
    )
    tap: TapPointName | None = Field(None, description="Default tap point of the stems.")
    returns: Literal["separate", "split"] | None = Field(
        None,
        description="separate: each return bus routed to the master is its own stem; split: "
        "each stem carries its own share of the returns (rendered per stem in the same pass).",
    )
    wet_and_dry: bool | None = Field(None, description="Print every stem twice: wet and dry.")
    multitrack: Literal["post_fader", "dry"] | None = Field(
        None, description="Also print every track to its own file."
    )
    stems: bool | None = Field(None, description="Print the stems (false: mixes only).")
    tail: TailPolicy | None = None
    format: Literal["wav", "aiff", "flac"] | None = None
    bit_depth: Literal["16", "24", "32", "32f"] | None = None
    sample_rate: int | None = Field(None, gt=0, le=768000, description="Delivery rate (soxr VHQ).")
    mono_stems: bool | None = Field(
        None,
        description="Write a stem or track file as mono when its two channels are identical "
        "for the whole render (a mono route panned to the centre): the file holds one channel.",
    )
    peak_limit_dbfs: float | None = Field(
        None, description="Warn when a stem peaks above this (mastering: -3 dBFS)."
    )
    file_name: str | None = Field(
        None,
        description="Template for stem file names: {session} {stem} {index} {sample_rate} "
        "{bit_depth} {preset} {tap}.",
    )


class RegionDef(_Model):
    """A named range of the timeline, rendered on its own (``render --region``)."""

    name: str = Field(min_length=1)
    start: PositionField = Field(description="Where the region starts (any position form).")
    end: PositionField = Field(description="Where it ends (any position form).")
    loop: bool = Field(
        False,
        description="Render it to loop seamlessly: the tail that rings past the end is wrapped "
        "onto the start (files are exactly the region's length).",
    )
    fade_out_seconds: float = Field(
        0.0, description="A fade-out at the region's end (cutdowns); linear."
    )

    @field_validator("fade_out_seconds", mode="after")
    @classmethod
    def _fade(cls, value: float) -> float:
        _finite_non_negative(value, "fade_out_seconds")
        return value


class Session(_Model):
    """A stemprint session, format version 1."""

    tempo_bpm: float = Field(
        120.0, gt=0, description="Tempo from bar 1 (quarter notes per minute), for bar positions."
    )
    time_signature: TimeSignature = Field(
        default_factory=lambda: TimeSignature(numerator=4, denominator=4),
        description='Time signature from bar 1, e.g. "4/4" or "7/8".',
    )
    tempo_changes: list[TempoChange] = Field(
        default_factory=list, description="Tempo and time-signature changes at bar starts."
    )

    def tempo_map(self) -> TempoMap:
        """The session's tempo map (resolves bar positions to samples)."""
        return TempoMap(
            sample_rate=self.sample_rate,
            tempo_bpm=self.tempo_bpm,
            time_signature=self.time_signature,
            changes=self.tempo_changes,
        )

    stemprint: Literal[1] = Field(description="Format version; 1.")
    name: str = Field("Untitled", description="Session name, used in the package README.")
    sample_rate: int = Field(48000, gt=0, le=768000, description="Render sample rate in Hz.")
    tail_seconds: float = Field(
        3.0, description="Rendered after the last audible clip ends, for reverb and delay tails."
    )
    tracks: list[Track] = Field(default_factory=list)
    buses: list[Bus] = Field(default_factory=list)
    master: Master = Field(default_factory=Master)
    stems: list[StemDef] | None = Field(
        None, description="Stem definitions (default: one per route that outputs to the master)."
    )
    mixes: list[MixDef] = Field(default_factory=list, description="Alternate mixes.")
    regions: list[RegionDef] = Field(
        default_factory=list, description="Named ranges, rendered with `render --region`."
    )
    delivery: Delivery = Field(default_factory=Delivery)

    @field_validator("tail_seconds", mode="after")
    @classmethod
    def _tail(cls, value: float) -> float:
        _finite_non_negative(value, "tail_seconds")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> Session:
        # Tracks and buses are separate name spaces (a `Bass` track may feed a `Bass` bus:
        # `output` and sends always name buses), but names repeat within neither.
        for kind, routes in (("tracks", self.tracks), ("buses", self.buses)):
            seen: dict[str, int] = {}
            for index, route in enumerate(routes):
                if route.name in seen:
                    raise ValueError(
                        f"duplicate name {route.name!r} at {kind}[{index}] (already used at "
                        f"{kind}[{seen[route.name]}]); give every one of the {kind} its own name"
                    )
                seen[route.name] = index
        return self

    def route_names(self) -> list[str]:
        """Names of every track and bus, in file order."""
        return [t.name for t in self.tracks] + [b.name for b in self.buses]
