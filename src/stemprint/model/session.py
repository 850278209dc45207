"""The session data model (format version 1): tracks, clips, buses, the master.

A session is data only: loading it never runs code. Every name here carries its unit
(``gain_db``, ``start_seconds``); the product contract (README, "Pan laws") fixes the pan laws,
send tap points and stem semantics that the engines implement.
"""

from __future__ import annotations

import math
import re
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
LayoutName = Literal["mono", "stereo", "5.1", "7.1"]
FRAME_RATES = ("23.976", "24", "25", "29.97", "29.97df", "30")
MP3_BITRATES_KBPS = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
"""MPEG-1 Layer III bit rates (ISO/IEC 11172-3): anything else is rounded by the encoder."""

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
    lfe: bool = Field(
        False,
        description="Feed only the receiving bus's LFE channel, with the mean of the route's "
        "channels (after its inserts; its fader too unless pre_fader).",
    )
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


class SurroundPan(_Model):
    """How a mono or stereo route is panned into a 5.1 or 7.1 output (``dsp.layouts``)."""

    azimuth_deg: float | None = Field(
        None,
        ge=-180.0,
        le=180.0,
        description="Direction, degrees: 0 front centre, -30 L, 30 R, -110 Ls, 110 Rs; "
        "default: from `pan` (-1..+1 → -30..+30).",
    )
    divergence: float = Field(
        0.0, ge=0.0, le=1.0, description="Spread into L, C and R at constant power (0 = none)."
    )
    use_center: bool = Field(True, description="false: pan across L and R only (no C).")
    width_deg: float = Field(
        60.0, ge=0.0, le=360.0, description="A stereo source's spread between its two sides."
    )


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
    surround: SurroundPan | None = Field(
        None, description="Surround panner, when the route outputs into a 5.1 or 7.1 bus."
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
    """A bus: a group (tracks output to it) or a return (fed by sends), in its layout."""

    layout: LayoutName = Field(
        "stereo", description='Channel layout: mono, stereo, "5.1" (L R C LFE Ls Rs) or "7.1".'
    )


class Master(_Model):
    """The master bus: the sum of every route that outputs to it, then inserts, fader, pan."""

    gain_db: float = Field(0.0, description="Master fader gain in dB.")
    layout: LayoutName = Field("stereo", description="The mix's channel layout.")
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


class NiStemDef(_Model):
    """A Native Instruments Stems file (``.stem.mp4``): the mix and exactly four stems."""

    codec: Literal["alac", "aac"] = Field(
        "alac", description="alac (lossless, default) or aac (256 kb/s; Traktor on Windows)."
    )
    stems: list[str] = Field(
        min_length=4,
        max_length=4,
        description="The four stems of the package, in order (default NI order: Drums, Bass, "
        "Other, Vocals); they must sum to the premaster (returns split).",
    )
    colors: list[str] | None = Field(
        None, description="Four #RRGGBB colours (default: NI's Drums/Bass/Other/Vocals colours)."
    )
    bitrate_kbps: int = Field(256, gt=0, le=512, description="AAC bit rate.")

    @field_validator("colors", mode="after")
    @classmethod
    def _colors(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return value
        if len(value) != 4 or not all(re.fullmatch(r"#[0-9A-Fa-f]{6}", c) for c in value):
            raise ValueError('colors are four "#RRGGBB" values, one per stem')
        return value


class PreviewNormalize(_Model):
    """Loudness matching of a preview, Spotify-style: gain to the target, capped at the ceiling."""

    target_lufs: float = Field(-14.0, description="Integrated loudness to reach (BS.1770).")
    ceiling_dbtp: float = Field(-1.0, description="True peak never above this after the gain.")


class PreviewDef(_Model):
    """An encoded preview of the mix (and optionally of every stem)."""

    format: Literal["mp3", "opus", "aac"] = Field("mp3", description="mp3, opus or aac.")
    bitrate_kbps: int = Field(
        320,
        gt=0,
        le=512,
        description="Bit rate: mp3 one of 32 40 48 56 64 80 96 112 128 160 192 224 256 320; "
        "opus 6-510; aac up to 512.",
    )
    normalize: PreviewNormalize | None = Field(
        None, description="Loudness-match the preview (no limiter: gain capped by true peak)."
    )
    stems: bool = Field(False, description="Also encode every stem.")

    @model_validator(mode="after")
    def _bitrate(self) -> PreviewDef:
        rate = self.bitrate_kbps
        if self.format == "mp3" and rate not in MP3_BITRATES_KBPS:
            raise ValueError(
                f"mp3 has no {rate} kb/s; use one of " + " ".join(str(r) for r in MP3_BITRATES_KBPS)
            )
        if self.format == "opus" and not 6 <= rate <= 510:
            raise ValueError(f"opus takes 6 to 510 kb/s, not {rate}")
        return self


class Delivery(_Model):
    """What the package holds and how it is written (all optional; presets set several)."""

    preset: (
        Literal["mastering", "mixing", "remix", "sync", "multitrack", "performance", "dme"] | None
    ) = Field(None, description="One word that sets the fields below (explicit fields win).")
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
    ni_stem: NiStemDef | None = Field(
        None, description="Also write a Native Instruments Stems file (.stem.mp4)."
    )
    previews: list[PreviewDef] | None = Field(
        None, description="Encoded previews (MP3, Opus, AAC), loudness-matched if asked."
    )
    handoff: list[Literal["dawproject", "rpp"]] | None = Field(
        None,
        description="DAW sessions placing every printed file at 0, unity gain, for the "
        "recipient to open: dawproject, rpp.",
    )
    archive: Literal["zip", "bagit"] | None = Field(
        None, description="Also pack the package: zip (with checksums.sha256) or bagit."
    )
    channel_files: bool | None = Field(
        None,
        description="Also write every multichannel file as one mono file per channel "
        "(channels/<name>.L.wav, .R, .C, .LFE, .Ls, .Rs), as film deliveries ask.",
    )
    file_name: str | None = Field(
        None,
        description="Template for stem file names: {session} {stem} {index} {sample_rate} "
        "{bit_depth} {preset} {tap} {title} {version} {type} {channels} {khz} {bits} {fps}; "
        "a template with {type} names every file (the dme preset's).",
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


class Metadata(_Model):
    """Who and what the delivery is: written into Broadcast WAV (``bext``, ``iXML``) and names."""

    title: str | None = Field(None, description="Title (default: the session name).")
    version: str | None = Field(None, description="Version or episode, e.g. v03 or s02e02.")
    description: str | None = Field(
        None, max_length=256, description="bext Description (256 characters at most)."
    )
    originator: str | None = Field(
        None, max_length=32, description="bext Originator (default: stemprint)."
    )
    originator_reference: str | None = Field(
        None, max_length=32, description="bext OriginatorReference (32 characters at most)."
    )
    project: str | None = Field(None, description="iXML PROJECT.")
    scene: str | None = Field(None, description="iXML SCENE.")
    take: str | None = Field(None, description="iXML TAKE.")
    tape: str | None = Field(None, description="iXML TAPE (reel).")
    note: str | None = Field(None, description="iXML NOTE.")


class Session(_Model):
    """A stemprint session, format version 1."""

    start_timecode: str | None = Field(
        None,
        description='Timecode of timeline 0, "HH:MM:SS:FF" (";" before the frames for drop '
        "frame); written into every Broadcast WAV (bext TimeReference, iXML).",
    )
    frame_rate: float | str | None = Field(
        None,
        description="Frame rate of start_timecode: 23.976, 24, 25, 29.97, 29.97df or 30.",
    )
    metadata: Metadata = Field(default_factory=Metadata)

    @field_validator("frame_rate", mode="after")
    @classmethod
    def _frame_rate(cls, value: float | str | None) -> str | None:
        if value is None:
            return None
        text = f"{value:g}" if isinstance(value, float) else str(value).strip().lower()
        if text not in FRAME_RATES:
            raise ValueError(f"frame_rate {value!r} is not one of {', '.join(FRAME_RATES)}")
        return text

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
