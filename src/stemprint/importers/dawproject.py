"""DAWproject 1.0 (``.dawproject``) → stemprint session data and an import report.

Invariants
----------
- The container is read only through :mod:`stemprint.importers.dawproject_zip` (checked member
  names and sizes, ``defusedxml``); embedded media and plug-in states are extracted under names
  made there. The result is plain session data (format 1) with absolute clip paths.
- Routing follows ``destination`` IDREFs (never the nesting, which only supplies a default):
  the project master is the first top-level ``master``-role channel without a destination; any
  other channel that is a destination, or has role ``master`` (a group), ``submix`` or
  ``effect``, is a bus. A bus whose track holds clips gets an implicit child track.
- Every position is converted to seconds through the tempo map before it is written; nested
  clips are flattened into plain clips, loops unrolled, so the session never needs a grid.
- Everything the DAW would play and the session cannot is a finding; nothing is dropped silently.

Formulas
--------
- Volume ``unit="linear"``: ``gain_db = 20·log10(v)``; ``decibel``: ``gain_db = v``.
- Pan ``normalized`` ``v ∈ [0, 1]``: ``pan = 2·v − 1`` (else ``−1 + 2·(v − min)/(max − min)``).
- Tempo, constant segment: ``t = t0 + 60·(b − b0)/bpm``. Linear ramp from ``bpm0`` at ``b0`` to
  ``bpm1`` at ``b1`` (linear in beats): ``bpm(b) = bpm0 + k·(b − b0)``, ``k = (bpm1 −
  bpm0)/(b1 − b0)``, and ``t = t0 + (60/k)·ln(bpm(b)/bpm0)`` (the whole segment:
  ``60·Δb/(bpm1 − bpm0)·ln(bpm1/bpm0)``); inverse ``b = b0 + (bpm0·e^{k·(t − t0)/60} −
  bpm0)/k``.
- A content timeline in unit ``u`` anchored so that content time ``c0`` sounds at project time
  ``S``: ``offset = (S if u is seconds else beats(S)) − c0``; content time ``c`` sounds at
  ``c + offset`` (seconds), or at ``seconds(c + offset)`` (beats).
- Loop iteration ``k`` of a clip looping ``[Ls, Le)``: content offset ``offset + k·(Le − Ls)``.
- A warp map is an identity (plain placement) when each segment's content span equals its
  project-time span within a relative tolerance of :data:`IDENTITY_REL_TOL`.
- EQ frequency ``unit="semitones"`` (MIDI note scale): ``Hz = 440·2^((st − 69)/12)``.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any
from xml.etree.ElementTree import Element

from stemprint.errors import ProjectError
from stemprint.importers.common import (
    SILENT_DB,
    MediaResolver,
    RouteNames,
    gain_points_to_db,
    gain_to_db,
)
from stemprint.importers.dawproject_zip import ProjectArchive
from stemprint.importers.report import Effect, ImportReport

DEFAULT_TEMPO_BPM = 120.0
"""Tempo when the project has none."""

DEFAULT_SAMPLE_RATE = 48000
"""Session rate when no media states one."""

IDENTITY_REL_TOL = 1e-5
"""Relative tolerance of the identity-warp test (Bitwig writes float32-rounded positions)."""

MAX_LOOP_ITERATIONS = 4096
"""Cap on the unrolled repeats of one looped clip."""

_EPS = 1e-9  # seconds: shorter pieces are rounding residue
_PLUGIN_TAGS = ("Vst2Plugin", "Vst3Plugin", "ClapPlugin", "AuPlugin", "BuiltinDevice", "Device")
_BUILTIN_TAGS = ("Equalizer", "Compressor", "Limiter", "NoiseGate")
_BUS_ROLES = ("master", "submix", "effect")


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


# -- flattened content ---------------------------------------------------------------------------


@dataclass
class Piece:
    """A stretch of one media file at natural speed on the project timeline (seconds)."""

    file: Path
    start: float
    offset: float
    duration: float
    channels: int
    file_seconds: float
    fade_in: float = 0.0
    fade_out: float = 0.0
    fade_in_shape: str = "linear"
    fade_out_shape: str = "linear"

    @property
    def end(self) -> float:
        """Project seconds where the piece stops."""
        return self.start + self.duration

    def window(self, lo: float, hi: float) -> Piece | None:
        """The part inside ``[lo, hi)`` (fades kept only on uncut edges), or ``None``."""
        start, end = max(self.start, lo), min(self.end, hi)
        if end - start <= _EPS:
            return None
        cut_in, cut_out = start > self.start + _EPS, end < self.end - _EPS
        return replace(
            self,
            start=start,
            offset=self.offset + (start - self.start),
            duration=end - start,
            fade_in=0.0 if cut_in else self.fade_in,
            fade_out=0.0 if cut_out else self.fade_out,
        )


@dataclass
class AutoPoint:
    """One automation point on the project timeline: the interpolation leads to the next."""

    seconds: float
    value: float
    linear: bool


@dataclass
class Content:
    """What a timeline holds after flattening: audio pieces, automation, note counts."""

    pieces: list[Piece] = field(default_factory=list)
    points: dict[str, list[AutoPoint]] = field(default_factory=dict)
    notes: int = 0

    def extend(self, other: Content) -> None:
        """Add ``other``'s pieces, points and notes."""
        self.pieces.extend(other.pieces)
        for target, points in other.points.items():
            self.points.setdefault(target, []).extend(points)
        self.notes += other.notes

    def windowed(self, lo: float, hi: float) -> Content:
        """Only what lies inside ``[lo, hi)``."""
        pieces = [p for p in (q.window(lo, hi) for q in self.pieces) if p is not None]
        points = {
            t: [p for p in pts if lo - _EPS <= p.seconds < hi] for t, pts in self.points.items()
        }
        return Content(pieces, {t: p for t, p in points.items() if p}, self.notes)


# -- attribute helpers -------------------------------------------------------------------------


def _label(elem: Element) -> str:
    ident = elem.get("id") or elem.get("name")
    return f"{elem.tag}[{ident}]" if ident else elem.tag


def _float(elem: Element, attr: str, default: float | None, file: str) -> float | None:
    text = elem.get(attr)
    if text is None:
        return default
    try:
        return float(text)
    except ValueError:
        raise ProjectError(
            f"{attr}={text!r} is not a number",
            file=file,
            field=f"{_label(elem)}@{attr}",
            fix="export the project again from the DAW; the file is damaged",
        ) from None


def _bool(elem: Element | None, attr: str, default: bool) -> bool:
    if elem is None:
        return default
    text = elem.get(attr)
    if text is None:
        return default
    return text.strip().lower() in ("true", "1")


def semitones_to_hz(semitones: float) -> float:
    """MIDI-note-scale frequency → Hz: ``440·2^((st − 69)/12)``."""
    return 440.0 * 2.0 ** ((semitones - 69.0) / 12.0)


# -- the reader --------------------------------------------------------------------------------


@dataclass
class _Strip:
    """One mixer channel and what the structure says about it."""

    channel: Element
    cid: str
    name: str
    role: str
    destination: str | None
    group: str | None  # channel id of the enclosing group bus (nesting default)
    track_ids: list[str]
    content: set[str]
    active: bool
    top_level: bool
    kind: str = "track"  # track | bus | master | vca | inactive
    route: str = ""  # session name
    content_flat: Content = field(default_factory=Content)
    clip_count: int = 0


class _Reader:
    """Holds one import's state; :func:`read_dawproject` drives it."""

    def __init__(
        self,
        path: Path,
        report: ImportReport,
        archive: ProjectArchive,
        extract_dir: Path,
        media_root: Path | None,
        plugin_map: Mapping[str, str] | None,
    ) -> None:
        self.path = path
        self.file = str(path)
        self.report = report
        self.archive = archive
        self.extract_dir = extract_dir
        self.plugin_map = dict(plugin_map or {})
        self.resolver = MediaResolver(path.parent, report, media_root=media_root)
        self.by_id: dict[str, Element] = {}
        self.clock = TempoClock([(0.0, DEFAULT_TEMPO_BPM, False)])
        self.quiet = 0  # > 0 while a loop repeat re-reads content: findings once only
        self.where = "project"
        self.media: dict[str, tuple[Path, float, int] | None] = {}
        self.rates: Counter[int] = Counter()
        self.file_rates: dict[Path, int] = {}
        self.point_units: dict[str, str] = {}
        self.track_names = RouteNames(report, "track")

    # findings -----------------------------------------------------------------------------

    def add(self, code: str, where: str, effect: Effect, message: str, action: str) -> None:
        """Add a finding unless a loop repeat is being read."""
        if not self.quiet:
            self.report.add(code, where, effect, message, action)

    def num(self, elem: Element, attr: str, default: float) -> float:
        """A numeric attribute (``default`` when absent); damaged numbers are errors."""
        value = _float(elem, attr, default, self.file)
        assert value is not None
        return value

    def opt(self, elem: Element, attr: str) -> float | None:
        """A numeric attribute or ``None``."""
        return _float(elem, attr, None, self.file)

    # transport ------------------------------------------------------------------------------

    def read_transport(self, root: Element) -> tuple[float, str]:
        """Base tempo, time signature text; builds the tempo clock."""
        tempo = root.find("Transport/Tempo")
        bpm = self.num(tempo, "value", DEFAULT_TEMPO_BPM) if tempo is not None else 120.0
        if not math.isfinite(bpm) or bpm <= 0:
            raise ProjectError(
                f"tempo {bpm} is not a positive number",
                file=self.file,
                field="Transport/Tempo@value",
                fix="set a tempo in the DAW and export again",
            )
        signature = root.find("Transport/TimeSignature")
        num, den = 4, 4
        if signature is not None:
            num = int(self.num(signature, "numerator", 4))
            den = int(self.num(signature, "denominator", 4))
        self.clock = TempoClock([(0.0, bpm, False)])
        automation = root.find("Arrangement/TempoAutomation")
        if automation is not None:
            self.read_tempo_automation(automation, bpm)
        if root.find("Arrangement/TimeSignatureAutomation") is not None:
            self.add(
                "TEMPO_CHANGES",
                "project",
                "none",
                "time signature changes",
                "positions are converted to seconds; the session grid keeps the first meter",
            )
        return bpm, f"{num}/{den}"

    def read_tempo_automation(self, automation: Element, bpm: float) -> None:
        """Build the clock from ``TempoAutomation`` points (hold steps, linear ramps)."""
        unit = automation.get("timeUnit", "beats")
        points: list[tuple[float, float, bool]] = []
        for point in automation.findall("RealPoint"):
            time = self.num(point, "time", 0.0)
            value = self.num(point, "value", bpm)
            if not math.isfinite(value) or value <= 0:
                continue
            points.append((time, value, point.get("interpolation", "hold") == "linear"))
        if not points:
            return
        points.sort(key=lambda p: p[0])
        if unit == "seconds":
            points = self._tempo_seconds_to_beats(points)
        self.clock = TempoClock(points)
        if self.clock.ramps:
            self.add(
                "TEMPO_RAMP",
                "project",
                "approximate",
                "linear tempo ramps, taken as linear in beats (which axis a DAW ramps on is "
                "unverified)",
                "every position converted to seconds exactly; the session grid keeps the "
                f"first tempo ({points[0][1]:g} bpm)",
            )
        elif self.clock.changes:
            self.add(
                "TEMPO_CHANGES",
                "project",
                "none",
                "tempo changes",
                "every position converted to seconds exactly; the session grid keeps the "
                f"first tempo ({points[0][1]:g} bpm)",
            )

    def _tempo_seconds_to_beats(
        self, points: list[tuple[float, float, bool]]
    ) -> list[tuple[float, float, bool]]:
        """Tempo points timed in seconds → beats (steps; a ramp there is approximated)."""
        out: list[tuple[float, float, bool]] = []
        beat, last_s, last_bpm = 0.0, 0.0, points[0][1]
        for seconds, bpm, ramp in points:
            beat += (seconds - last_s) * last_bpm / 60.0
            out.append((beat, bpm, False))
            last_s, last_bpm = seconds, bpm
            if ramp:
                self.add(
                    "TEMPO_RAMP",
                    "project",
                    "approximate",
                    "a tempo ramp timed in seconds",
                    "read as a tempo step at its start",
                )
        return out

    # media ----------------------------------------------------------------------------------

    def media_file(self, file_elem: Element, audio: Element) -> tuple[Path, float, int] | None:
        """The file an ``Audio`` element plays: (absolute path, seconds, channels), once each."""
        recorded = file_elem.get("path", "")
        external = _bool(file_elem, "external", False)
        key = f"{external}:{recorded}"
        if key not in self.media:
            self.media[key] = self._find_media(recorded, external, audio)
        return self.media[key]

    def _find_media(
        self, recorded: str, external: bool, audio: Element
    ) -> tuple[Path, float, int] | None:
        path: Path | None
        if external:
            path = self.resolver.resolve(recorded, self.where)
        else:
            member = self.archive.member(recorded)
            if member is not None:
                path = self.archive.extract(member, self.extract_dir, "media")
            else:  # an embedded file that is not embedded: look for it by name only
                name = PurePosixPath(recorded.replace("\\", "/")).name
                path = self.resolver.resolve(name, self.where)
        stated_rate = int(self.num(audio, "sampleRate", 0.0))
        if path is None:
            if stated_rate > 0:
                self.rates[stated_rate] += 1
            return None
        import soundfile

        try:
            info = soundfile.info(str(path))
            seconds, channels, rate = info.frames / info.samplerate, info.channels, info.samplerate
        except (RuntimeError, OSError, soundfile.LibsndfileError):
            seconds = self.num(audio, "duration", 0.0)
            channels, rate = int(self.num(audio, "channels", 2.0)), stated_rate
        if rate > 0:
            self.rates[rate] += 1
            self.file_rates[path] = rate
        return path, seconds, channels

    # ids ------------------------------------------------------------------------------------

    def index_ids(self, root: Element) -> None:
        """Every element with an ``id``, for IDREFs."""
        for elem in root.iter():
            ident = elem.get("id")
            if ident is not None:
                self.by_id.setdefault(ident, elem)


# -- structure ---------------------------------------------------------------------------------


def _walk_structure(reader: _Reader, structure: Element | None) -> list[_Strip]:
    strips: list[_Strip] = []
    if structure is None:
        return strips
    for child in structure:
        if child.tag == "Track":
            _walk_track(reader, child, None, True, True, strips)
        elif child.tag == "Channel":
            strips.append(
                _strip(child, child.get("name") or "Channel", [], set(), None, True, True)
            )
    return strips


def _strip(
    channel: Element,
    name: str,
    track_ids: list[str],
    content: set[str],
    group: str | None,
    active: bool,
    top_level: bool,
) -> _Strip:
    return _Strip(
        channel=channel,
        cid=channel.get("id") or f"anon-{id(channel)}",
        name=name,
        role=channel.get("role", "regular"),
        destination=channel.get("destination"),
        group=group,
        track_ids=track_ids,
        content=content,
        active=active,
        top_level=top_level,
    )


def _group_channel(track: Element) -> Element | None:
    """A folder's bus channel: its own master/submix Channel, or a child Track's (2 layouts)."""
    own = track.find("Channel")
    if own is not None and own.get("role") in ("master", "submix"):
        return own
    if own is None:
        for child in track.findall("Track"):
            channel = child.find("Channel")
            kinds = set((child.get("contentType") or "").split())
            if channel is not None and channel.get("role") in ("master", "submix"):
                if "tracks" not in kinds:
                    return channel
    return None


def _walk_track(
    reader: _Reader,
    track: Element,
    group: str | None,
    active: bool,
    top_level: bool,
    strips: list[_Strip],
) -> None:
    name = track.get("name") or "Track"
    here_active = active and _bool(track, "loaded", True)
    content = set((track.get("contentType") or "").split())
    tid = track.get("id")
    if not _bool(track, "loaded", True) and active:
        reader.add(
            "INACTIVE_TRACK",
            name,
            "none",
            "the track is deactivated in the DAW (with any tracks inside it)",
            "left out, as the DAW plays it",
        )
    folder_bus = _group_channel(track) if "tracks" in content else None
    channel = track.find("Channel")
    inner_group = folder_bus.get("id") if folder_bus is not None else group
    bus_child: Element | None = None
    if channel is not None:
        ids = [tid] if tid else []
        strips.append(_strip(channel, name, ids, content, group, here_active, top_level))
    elif folder_bus is not None:  # layout 2: the bus sits on a child track, named after the folder
        bus_child = next(c for c in track.findall("Track") if c.find("Channel") is folder_bus)
        ids = [i for i in (tid, bus_child.get("id")) if i]
        strips.append(_strip(folder_bus, name, ids, content, group, here_active, top_level))
    for child in track.findall("Track"):
        if child is not bus_child:
            _walk_track(reader, child, inner_group, here_active, False, strips)


def _classify(reader: _Reader, strips: list[_Strip]) -> _Strip | None:
    """Set each strip's kind; returns the project master strip (or ``None``)."""
    masters = [s for s in strips if s.role == "master" and not s.destination and s.active]
    ranked = sorted(masters, key=lambda s: (not s.top_level, "tracks" in s.content))
    master = ranked[0] if ranked else None
    receivers = {s.destination for s in strips if s.destination}
    for s in strips:
        for send in s.channel.findall("Sends/Send"):
            target = send.get("destination")
            if target and target != s.cid and _bool(send.find("Enable"), "value", True):
                receivers.add(target)
    for s in strips:
        if not s.active:
            s.kind = "inactive"
        elif s is master:
            s.kind = "master"
        elif s.role == "vca":
            s.kind = "vca"
        elif s.role in _BUS_ROLES or s.cid in receivers:
            s.kind = "bus"
        else:
            s.kind = "track"
    return master


# -- arrangement: flattening clips, warps, audio and points --------------------------------------

_TIMELINE_TAGS = (
    "Lanes",
    "Clips",
    "Warps",
    "Audio",
    "Points",
    "Notes",
    "Video",
    "Timeline",
    "ClipSlot",
    "Markers",
    "markers",
)


class _Flattener:
    """Turns nested timelines into :class:`Content` on the project timeline."""

    def __init__(self, reader: _Reader) -> None:
        self.r = reader
        self.depth = 0
        self.clip_no: Counter[str] = Counter()
        self.track = "project"
        self.point_units: dict[str, str] = {}

    def unit_ctx(self, elem: Element, ctx: Ctx) -> Ctx:
        """``ctx`` re-expressed in ``elem``'s own ``timeUnit`` (same origin)."""
        unit = elem.get("timeUnit")
        if unit is None or unit == ctx.unit:
            return ctx
        return ctx.anchored(unit, ctx.seconds(0.0), 0.0)

    def content(self, elem: Element, ctx: Ctx) -> Content:
        """Flatten any timeline element."""
        ctx = self.unit_ctx(elem, ctx)
        tag = elem.tag
        if tag == "Clips":
            out = Content()
            for clip in elem.findall("Clip"):
                out.extend(self.clip(clip, ctx))
            return out
        if tag == "Lanes":
            out = Content()
            for child in elem:
                out.extend(self.content(child, ctx))
            return out
        handlers: dict[str, Callable[[Element, Ctx], Content]] = {
            "Warps": self.warps,
            "Audio": self.audio,
            "Points": self.points,
        }
        if tag in handlers:
            return handlers[tag](elem, ctx)
        if tag == "Notes":
            return Content(notes=0 if self.r.quiet else 1)
        if tag == "Video":
            self.r.add(
                "UNSUPPORTED_ELEMENT",
                self.r.where,
                "dropped",
                "a video clip (its sound too)",
                "left out; bounce its audio to a clip in the DAW",
            )
        return Content()

    # clips ----------------------------------------------------------------------------------

    def clip(self, clip: Element, ctx: Ctx) -> Content:
        """One clip: a window (and loop) over its content, with fades."""
        saved = self.r.where
        if self.depth == 0:
            self.clip_no[self.track] += 1
            self.r.where = f"{self.track} › clip {self.clip_no[self.track]}"
        try:
            return self._clip(clip, ctx)
        finally:
            self.r.where = saved

    def _clip(self, clip: Element, ctx: Ctx) -> Content:
        r = self.r
        if not _bool(clip, "enable", True):
            r.add(
                "CLIP_MUTED",
                r.where,
                "none",
                "the clip is disabled (muted)",
                "left out, as the DAW plays it",
            )
            return Content()
        time = r.num(clip, "time", 0.0)
        duration = r.opt(clip, "duration")
        play_start = r.num(clip, "playStart", 0.0)
        play_stop = r.opt(clip, "playStop")
        start_s = ctx.seconds(time)
        end_s = ctx.seconds(time + duration) if duration is not None else math.inf
        cctx = ctx.anchored(clip.get("contentTimeUnit", ctx.unit), start_s, play_start)
        if play_stop is not None and duration is None:
            end_s = cctx.seconds(play_stop)
        body = self._body(clip)
        if body is None:
            return Content()
        fades = self._fades(clip, ctx, start_s, end_s)
        lo, hi = fades.lo, fades.hi
        loop = self._loop(clip, play_start, hi)
        self.depth += 1
        try:
            if loop is None:
                if play_stop is not None:
                    hi = min(hi, cctx.seconds(play_stop) + (fades.hi - end_s))
                content = self.content(body, cctx).windowed(lo, hi)
            else:
                content = self._looped(body, cctx, play_start, loop, lo, hi)
        finally:
            self.depth -= 1
        fades.apply(self, content, lo, hi)
        return content

    def _body(self, clip: Element) -> Element | None:
        ref = clip.get("reference")
        if ref is not None:
            return self.r.by_id.get(ref)
        return next((c for c in clip if c.tag in _TIMELINE_TAGS), None)

    def _loop(self, clip: Element, play_start: float, hi: float) -> tuple[float, float] | None:
        ls, le = self.r.opt(clip, "loopStart"), self.r.opt(clip, "loopEnd")
        if ls is None or le is None or le - ls <= 0 or play_start >= le or not math.isfinite(hi):
            return None
        return ls, le

    def _looped(
        self,
        body: Element,
        cctx: Ctx,
        play_start: float,
        loop: tuple[float, float],
        lo: float,
        hi: float,
    ) -> Content:
        ls, le = loop
        out = Content()
        k = 0
        while True:
            ictx = cctx.shifted(k * (le - ls))
            seg_lo = lo if k == 0 else ictx.seconds(ls)
            seg_hi = min(ictx.seconds(le), hi)
            if seg_lo >= hi - _EPS:
                break
            if k >= MAX_LOOP_ITERATIONS:
                self.r.add(
                    "LOOP_UNROLLED",
                    self.r.where,
                    "dropped",
                    f"the loop repeats more than {MAX_LOOP_ITERATIONS} times",
                    f"only the first {MAX_LOOP_ITERATIONS} repeats are rendered",
                )
                break
            self.r.quiet += 1 if k else 0
            try:
                out.extend(self.content(body, ictx).windowed(seg_lo, seg_hi))
            finally:
                self.r.quiet -= 1 if k else 0
            k += 1
        if k > 1 and out.pieces:
            self.r.add(
                "LOOP_UNROLLED",
                self.r.where,
                "none",
                f"a looped clip ({k} passes of its loop)",
                "unrolled into consecutive clips",
            )
        return out

    def _fades(self, clip: Element, ctx: Ctx, start_s: float, end_s: float) -> _Fades:
        unit = clip.get("fadeTimeUnit", ctx.unit)
        fade_in = self.r.num(clip, "fadeInTime", 0.0)
        fade_out = self.r.num(clip, "fadeOutTime", 0.0)
        fades = _Fades(lo=start_s, hi=end_s)
        if fade_in > 0:
            fades.fade_in = ctx.span_seconds(start_s, fade_in, unit)
        elif fade_in < 0:
            fades.fade_in = -ctx.span_seconds(start_s, fade_in, unit)
            fades.lo = start_s - fades.fade_in
            fades.in_shape = "equal_power"
        if math.isfinite(end_s) and fade_out > 0:
            fades.fade_out = -ctx.span_seconds(end_s, -fade_out, unit)
        elif math.isfinite(end_s) and fade_out < 0:
            fades.fade_out = ctx.span_seconds(end_s, -fade_out, unit)
            fades.hi = end_s + fades.fade_out
            fades.out_shape = "equal_power"
        return fades

    # warps, audio, points ---------------------------------------------------------------------

    def warps(self, elem: Element, ctx: Ctx) -> Content:
        """A warp map: an identity is plain placement; anything else is a time-stretch."""
        content_unit = elem.get("contentTimeUnit", "seconds")
        warps = [
            (self.r.num(w, "time", 0.0), self.r.num(w, "contentTime", 0.0))
            for w in elem.findall("Warp")
        ]
        body = next((c for c in elem if c.tag in _TIMELINE_TAGS), None)
        if body is None:
            return Content()
        w0, c0 = warps[0] if warps else (0.0, 0.0)
        inner = ctx.anchored(content_unit, ctx.seconds(w0), c0)
        ratio = self._stretch_ratio(ctx, warps, content_unit)
        if ratio is None:
            return self.content(body, inner)
        self.r.quiet += 1  # still look for the media, to name it if it is missing
        try:
            self.content(body, inner)
        finally:
            self.r.quiet -= 1
        algorithm = next((c.get("algorithm") for c in elem.iter("Audio")), None)
        self.r.add(
            "TIME_STRETCH",
            self.r.where,
            "dropped",
            f"warped audio plays at {ratio:.5g}× its speed (algorithm {algorithm or 'unnamed'})",
            "left out: stemprint does not time-stretch; bounce or consolidate the clip in the "
            "DAW and export again",
        )
        return Content()

    def _stretch_ratio(
        self, ctx: Ctx, warps: list[tuple[float, float]], content_unit: str
    ) -> float | None:
        """``None`` for an identity warp map, else its overall speed (content/project)."""
        spans = []
        for (w0, c0), (w1, c1) in zip(warps, warps[1:], strict=False):
            s0, s1 = ctx.seconds(w0), ctx.seconds(w1)
            if content_unit == "seconds":
                spans.append((s1 - s0, c1 - c0))
            else:
                clock = ctx.clock
                spans.append((clock.beats(s1) - clock.beats(s0), c1 - c0))
        for project, content in spans:
            scale = max(abs(project), abs(content), 1e-12)
            if abs(project - content) > IDENTITY_REL_TOL * scale:
                total_p = sum(p for p, _ in spans)
                total_c = sum(c for _, c in spans)
                return total_c / total_p if total_p else math.inf
        return None

    def audio(self, elem: Element, ctx: Ctx) -> Content:
        """An audio file: natural speed, its second 0 at the timeline's origin."""
        file_elem = elem.find("File")
        if file_elem is None:
            return Content()
        found = self.r.media_file(file_elem, elem)
        if found is None:
            return Content()
        path, seconds, channels = found
        return Content([Piece(path, ctx.seconds(0.0), 0.0, seconds, channels, seconds)])

    def points(self, elem: Element, ctx: Ctx) -> Content:
        """Automation points of one parameter, on the project timeline."""
        target = elem.find("Target")
        param = target.get("parameter") if target is not None else None
        if param is None:
            return Content()  # note expressions: they belong to MIDI, reported with it
        if elem.get("unit"):
            self.point_units[param] = elem.get("unit", "")
        points: list[AutoPoint] = []
        for point in elem:
            if point.tag not in ("RealPoint", "BoolPoint", "IntegerPoint", "EnumPoint"):
                continue
            seconds = ctx.seconds(self.r.num(point, "time", 0.0))
            if point.tag == "BoolPoint":
                value = 1.0 if _bool(point, "value", False) else 0.0
            else:
                value = self.r.num(point, "value", 0.0)
            points.append(AutoPoint(seconds, value, point.get("interpolation") == "linear"))
        return Content(points={param: points})


@dataclass
class _Fades:
    """One clip's fades and its window (widened by crossfades)."""

    lo: float
    hi: float
    fade_in: float = 0.0
    fade_out: float = 0.0
    in_shape: str = "linear"
    out_shape: str = "linear"

    def apply(self, flat: _Flattener, content: Content, lo: float, hi: float) -> None:
        """Put the fades on the pieces at the window's edges."""
        r = flat.r
        if self.fade_in <= 0 and self.fade_out <= 0:
            return
        if "equal_power" in (self.in_shape, self.out_shape):
            r.add(
                "CROSSFADE",
                r.where,
                "approximate",
                "an overlap crossfade (negative fade time); the file stores no curve",
                "the clip is extended by the fade and faded equal-power",
            )
        if "linear" in (
            self.in_shape if self.fade_in else "",
            self.out_shape if self.fade_out else "",
        ):
            r.add(
                "FADE_SHAPE_APPROXIMATED",
                r.where,
                "approximate",
                "a clip fade; DAWproject stores no fade curve",
                "rendered as a linear fade",
            )
        for piece in content.pieces:
            if self.fade_in > 0 and abs(piece.start - lo) <= 1e-7:
                piece.fade_in, piece.fade_in_shape = self.fade_in, self.in_shape
            if self.fade_out > 0 and abs(piece.end - hi) <= 1e-7:
                piece.fade_out, piece.fade_out_shape = self.fade_out, self.out_shape
            if piece.fade_in + piece.fade_out > piece.duration:
                scale = piece.duration / (piece.fade_in + piece.fade_out)
                piece.fade_in *= scale
                piece.fade_out *= scale
                r.add(
                    "FADE_SHAPE_APPROXIMATED",
                    r.where,
                    "approximate",
                    "fades longer than the (unrolled) clip piece they fall on",
                    "shortened to fit the piece",
                )


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


# -- devices -------------------------------------------------------------------------------------


def _devices(
    reader: _Reader, channel: Element, where: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """The insert chain and the names of instruments (MIDI, reported by the caller)."""
    inserts: list[dict[str, Any]] = []
    instruments: list[str] = []
    devices = channel.find("Devices")
    for n, dev in enumerate(devices if devices is not None else [], 1):
        w = f"{where} › insert {n}"
        name = dev.get("deviceName") or dev.get("name") or dev.tag
        role = dev.get("deviceRole", "audioFX")
        if not _bool(dev.find("Enabled"), "value", True) or not _bool(dev, "loaded", True):
            reader.add(
                "DEVICE_BYPASSED",
                w,
                "none",
                f"{dev.tag} {name!r} is bypassed or not loaded in the DAW",
                "left out, as the DAW plays it",
            )
            continue
        if role == "instrument":
            instruments.append(f"{dev.tag} {name!r}")
            continue
        if role in ("noteFX", "analyzer"):
            continue  # no effect on the audio
        if dev.tag == "Vst3Plugin":
            inserts.extend(_vst3(reader, dev, name, w))
        elif dev.tag in _BUILTIN_TAGS:
            inserts.extend(_builtin(reader, dev, name, w))
        else:
            _unavailable(reader, dev, name, w)
    return inserts, instruments


def _plugin_details(reader: _Reader, dev: Element, name: str) -> str:
    vendor = dev.get("deviceVendor") or "unknown vendor"
    text = f"{dev.tag} {name!r} ({vendor}, id {dev.get('deviceID') or 'none'})"
    state = dev.find("State")
    if state is not None:
        member = reader.archive.member(state.get("path", ""))
        digest = reader.archive.sha256(member) if member else "not in the archive"
        text += f", state {state.get('path')} (SHA-256 {digest})"
    return text


def _unavailable(reader: _Reader, dev: Element, name: str, where: str) -> None:
    why = {
        "Vst2Plugin": "VST2 plug-ins cannot be hosted here",
        "ClapPlugin": "CLAP plug-ins cannot be hosted here",
        "AuPlugin": "Audio Units cannot be hosted here",
    }.get(dev.tag, "a DAW's own device has no equivalent here")
    reader.add(
        "PLUGIN_UNAVAILABLE",
        where,
        "dropped",
        f"{_plugin_details(reader, dev, name)}: {why}",
        "left out; render the effect into the audio in the DAW (bounce) and export again",
    )


def _vst3(reader: _Reader, dev: Element, name: str, where: str) -> list[dict[str, Any]]:
    keys = [k for k in (dev.get("deviceID"), dev.get("deviceName"), dev.get("name")) if k]
    binary = next((reader.plugin_map[k] for k in keys if k in reader.plugin_map), None)
    if binary is None:
        reader.add(
            "PLUGIN_UNAVAILABLE",
            where,
            "dropped",
            f"{_plugin_details(reader, dev, name)}: no binary for it in the plug-in map",
            "left out; pass --plugin-map FILE naming its .vst3 to render it",
        )
        return []
    insert: dict[str, Any] = {"type": "vst3", "path": str(Path(binary).expanduser())}
    state = dev.find("State")
    member = reader.archive.member(state.get("path", "")) if state is not None else None
    if member is not None:
        insert["preset"] = str(reader.archive.extract(member, reader.extract_dir, "plugins"))
    reader.add(
        "PLUGIN_MAPPED",
        where,
        "approximate",
        f"VST3 {name!r} mapped to {binary}"
        + ("" if member else " (no state stored: the plug-in's defaults)"),
        "hosted from the map with its stored state; renders need --allow-plugins",
    )
    return [insert]


def _builtin(reader: _Reader, dev: Element, name: str, where: str) -> list[dict[str, Any]]:
    mapper = {
        "Equalizer": _equalizer,
        "Compressor": _compressor,
        "Limiter": _limiter,
        "NoiseGate": _noise_gate,
    }[dev.tag]
    inserts, notes = mapper(reader, dev)
    in_gain = _to_db(*_param_value(reader, dev.find("InputGain"), 0.0))
    out_gain = _to_db(*_param_value(reader, dev.find("OutputGain"), 0.0))
    if dev.find("InputGain") is not None and in_gain != 0.0:
        inserts.insert(0, {"type": "gain", "gain_db": in_gain})
    if dev.find("OutputGain") is not None and out_gain != 0.0:
        inserts.append({"type": "gain", "gain_db": out_gain})
    kinds = ", ".join(i["type"] for i in inserts) or "nothing"
    reader.add(
        "BUILTIN_DEVICE_APPROXIMATED",
        where,
        "approximate",
        f"{dev.tag} {name!r} is the DAW's own processor" + (f" ({notes})" if notes else ""),
        f"stood in for by pedalboard built-ins: {kinds}",
    )
    return inserts


_EQ_TYPES = {
    "bell": "peak_filter",
    "lowShelf": "low_shelf_filter",
    "highShelf": "high_shelf_filter",
    "highPass": "highpass_filter",
    "lowPass": "lowpass_filter",
    "notch": "peak_filter",
}


def _equalizer(reader: _Reader, dev: Element) -> tuple[list[dict[str, Any]], str]:
    inserts: list[dict[str, Any]] = []
    notes: list[str] = []
    for band in dev.findall("Band"):
        if not _bool(band.find("Enabled"), "value", True):
            continue
        kind = band.get("type", "bell")
        hz = _to_hz(*_param_value(reader, band.find("Freq"), 1000.0))
        gain_db = _to_db(*_param_value(reader, band.find("Gain"), 0.0))
        q = _param_value(reader, band.find("Q"), 0.7071)[0]
        order = band.get("order")
        if kind in ("highPass", "lowPass"):
            inserts.append({"type": _EQ_TYPES[kind], "cutoff_frequency_hz": hz})
            notes.append(f"{kind} order {order or '?'} as a first-order filter")
        elif kind == "bandPass":
            inserts.append({"type": "highpass_filter", "cutoff_frequency_hz": hz})
            inserts.append({"type": "lowpass_filter", "cutoff_frequency_hz": hz})
            notes.append("bandPass as a first-order high-pass and low-pass pair")
        elif kind in _EQ_TYPES:
            if kind == "notch":
                gain_db = -60.0
                notes.append("notch as a −60 dB bell")
            inserts.append(
                {
                    "type": _EQ_TYPES[kind],
                    "cutoff_frequency_hz": hz,
                    "gain_db": gain_db,
                    "q": q if q > 0 else 0.7071,
                }
            )
        else:
            notes.append(f"band type {kind!r} left out")
    return inserts, "; ".join(notes)


def _dynamics_params(reader: _Reader, dev: Element) -> dict[str, float]:
    params: dict[str, float] = {}
    threshold, unit = _param_value(reader, dev.find("Threshold"), 0.0)
    if dev.find("Threshold") is not None:
        params["threshold_db"] = _to_db(threshold, unit)
    for tag, key in (("Attack", "attack_ms"), ("Release", "release_ms")):
        if dev.find(tag) is not None:
            params[key] = _to_ms(*_param_value(reader, dev.find(tag), 0.0))
    ratio, _unit = _param_value(reader, dev.find("Ratio"), 1.0)
    if dev.find("Ratio") is not None and ratio >= 1.0 and math.isfinite(ratio):
        params["ratio"] = ratio
    return params


def _compressor(reader: _Reader, dev: Element) -> tuple[list[dict[str, Any]], str]:
    params = _dynamics_params(reader, dev)
    auto = _bool(dev.find("AutoMakeup"), "value", False)
    return [{"type": "compressor", **params}], "auto make-up left out" if auto else ""


def _limiter(reader: _Reader, dev: Element) -> tuple[list[dict[str, Any]], str]:
    params = _dynamics_params(reader, dev)
    params.pop("attack_ms", None)
    params.pop("ratio", None)
    return [{"type": "limiter", **params}], "its attack is not adjustable here"


def _noise_gate(reader: _Reader, dev: Element) -> tuple[list[dict[str, Any]], str]:
    params = _dynamics_params(reader, dev)
    note = "its range is not adjustable here" if dev.find("Range") is not None else ""
    return [{"type": "noise_gate", **params}], note


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


# -- routing and strips --------------------------------------------------------------------------


def _output(
    reader: _Reader, s: _Strip, by_cid: dict[str, _Strip], master: _Strip | None
) -> str | None:
    """The session output of a strip (``None``: it feeds a deactivated channel)."""
    dest = s.destination or s.group
    target = by_cid.get(dest) if dest else None
    if dest is None or target is master or target is s:
        return "master"
    if target is None:
        reader.add(
            "HARDWARE_OUTPUT",
            s.name,
            "approximate",
            f"the output {dest!r} is not a channel of the project",
            "routed to the master",
        )
        return "master"
    if target.kind == "bus":
        return target.route
    if target.kind == "inactive":
        reader.add(
            "INACTIVE_TRACK",
            s.name,
            "none",
            f"it feeds {target.name!r}, which is deactivated",
            "left out (silent in the DAW)",
        )
        return None
    reader.add(
        "VCA" if target.kind == "vca" else "UNSUPPORTED_ELEMENT",
        s.name,
        "approximate",
        f"it outputs into {target.name!r} ({target.kind})",
        "routed to the master",
    )
    return "master"


def _sends(
    reader: _Reader, s: _Strip, by_cid: dict[str, _Strip], params: _Params
) -> list[dict[str, Any]]:
    sends: list[dict[str, Any]] = []
    for n, send in enumerate(s.channel.findall("Sends/Send"), 1):
        where = f"{s.name} › send {n}"
        target = by_cid.get(send.get("destination") or "")
        enabled = _bool(send.find("Enable"), "value", True)
        if not enabled or target is s:
            effect: Effect = "none" if not enabled else "dropped"
            code = "SEND_UNSUPPORTED" if not enabled else "FEEDBACK_ROUTING"
            what = "a disabled send" if not enabled else "an enabled send to itself"
            reader.add(code, where, effect, what, "left out")
            continue
        if target is None or target.kind != "bus":
            kind = "nothing" if target is None else f"{target.name!r} ({target.kind})"
            silent = target is not None and target.kind == "inactive"
            reader.add(
                "SEND_UNSUPPORTED",
                where,
                "none" if silent else "dropped",
                f"a send to {kind}",
                "left out",
            )
            continue
        sends.append(_send_data(reader, send, target.route, where, params))
    return sends


def _send_data(
    reader: _Reader, send: Element, bus: str, where: str, params: _Params
) -> dict[str, Any]:
    data: dict[str, Any] = {"to": bus, "level_db": _volume_db(reader, send.find("Volume"), where)}
    if send.get("type") == "pre":
        data["pre_fader"] = True
    pan = _pan_value(send.find("Pan"))
    if pan != 0.0:
        data["pan"] = pan
        reader.add(
            "PAN_LAW_ASSUMED",
            where,
            "approximate",
            f"send pan {pan:+.3f}; DAWproject stores no pan law",
            "applied as a balance (the far side attenuated, 0 dB centre)",
        )
    params.add(send.find("Volume"), f"send:{bus}")
    params.add(send.find("Pan"), "send_pan")
    params.add(send.find("Enable"), "send_enable")
    return data


def _pan_law_finding(
    reader: _Reader, where: str, pan: float, law: str, mono: bool, automated: bool
) -> None:
    if not (mono or pan != 0.0 or automated):
        return
    what = "mono sources" if mono else "stereo signal"
    reader.add(
        "PAN_LAW_ASSUMED",
        where,
        "approximate",
        f"DAWproject stores no pan law (pan {pan:+.3f}, {what})",
        f"assumed {law}: "
        + (
            "a mono source on both sides at unity, then a balance"
            if law == "balance"
            else "constant power, −3 dB centre"
        ),
    )


def _strip_data(
    reader: _Reader,
    s: _Strip,
    by_cid: dict[str, _Strip],
    master: _Strip | None,
    params: _Params,
) -> dict[str, Any]:
    """Fader, pan, mute, inserts, sends and output of one track or bus."""
    ch = s.channel
    data: dict[str, Any] = {"name": s.route}
    inserts, _instruments = _devices(reader, ch, s.name)
    gain_db = _volume_db(reader, ch.find("Volume"), s.name)
    pan = _pan_value(ch.find("Pan"))
    if inserts:
        data["inserts"] = inserts
    if gain_db != 0.0:
        data["gain_db"] = gain_db
    if pan != 0.0:
        data["pan"] = pan
    data["pan_law"] = "constant_power" if ch.get("audioChannels") == "1" else "balance"
    if _bool(ch.find("Mute"), "value", False):
        data["mute"] = True
    if _bool(ch, "solo", False):
        reader.add(
            "SOLO_IGNORED",
            s.name,
            "none",
            "the channel is soloed",
            "rendered as if nothing were soloed",
        )
    sends = _sends(reader, s, by_cid, params)
    if sends:
        data["sends"] = sends
    params.add(ch.find("Volume"), "gain_db")
    params.add(ch.find("Pan"), "pan")
    params.add(ch.find("Mute"), "mute")
    data["output"] = _output(reader, s, by_cid, master)
    return data


# -- the whole project ---------------------------------------------------------------------------


def _arrangement(reader: _Reader, flat: _Flattener, root: Element, strips: list[_Strip]) -> None:
    """Flatten the arrangement; each strip gets the content of its tracks' lanes."""
    by_track: dict[str, _Strip] = {}
    for s in strips:
        for tid in [*s.track_ids, s.cid]:
            by_track.setdefault(tid, s)
    lanes = root.find("Arrangement/Lanes")
    if lanes is None:
        return
    stray = Content()

    def walk(elem: Element, ctx: Ctx, owner: _Strip | None) -> None:
        ctx = flat.unit_ctx(elem, ctx)
        for child in elem:
            strip = by_track.get(child.get("track") or "", owner)
            if child.tag == "Lanes":
                walk(child, ctx, strip)
                continue
            flat.track = strip.name if strip else "project"
            reader.where = flat.track
            (strip.content_flat if strip else stray).extend(flat.content(child, ctx))

    walk(lanes, Ctx(lanes.get("timeUnit", "beats"), 0.0, reader.clock), None)
    for s in strips:
        s.clip_count = flat.clip_no[s.name]
    if stray.pieces:
        reader.add(
            "UNSUPPORTED_ELEMENT",
            "project",
            "dropped",
            "audio on a lane that belongs to no track",
            "left out",
        )
    reader.point_units = flat.point_units


def _scenes(reader: _Reader, root: Element) -> None:
    scenes = root.findall("Scenes/Scene")
    if not scenes:
        return
    slots = [slot for scene in scenes for slot in scene.iter("ClipSlot")]
    filled = sum(1 for slot in slots if slot.find("Clip") is not None)
    reader.add(
        "CLIP_LAUNCHER",
        "project",
        "dropped" if filled else "none",
        f"{len(scenes)} clip launcher scenes, {filled} slots holding clips",
        "left out: only the arrangement is rendered; record the launcher into the "
        "arrangement in the DAW"
        if filled
        else "nothing to render in them",
    )


def _midi(reader: _Reader, strips: list[_Strip]) -> None:
    """Report note content and instruments; a track left with no audio is no route."""
    for s in strips:
        if s.kind not in ("track", "bus"):
            continue
        instruments = [
            d.get("deviceName") or d.tag
            for d in (s.channel.find("Devices") or [])
            if d.get("deviceRole") == "instrument" and _bool(d.find("Enabled"), "value", True)
        ]
        notes, audio = s.content_flat.notes, bool(s.content_flat.pieces)
        note_track = "notes" in s.content and "audio" not in s.content
        if not (notes or instruments or (note_track and not audio and s.kind == "track")):
            continue
        sounding = bool(notes or instruments)
        what = (
            ", ".join(
                filter(
                    None,
                    [
                        f"{notes} note clip(s)" if notes else "",
                        f"instrument {', '.join(instruments)}" if instruments else "",
                    ],
                )
            )
            or "an empty note track"
        )
        for device in s.channel.findall("Devices/*"):
            if device.get("deviceRole") == "instrument" and _bool(
                device.find("Enabled"), "value", True
            ):
                name = device.get("deviceName") or device.tag
                reader.add(
                    "PLUGIN_UNAVAILABLE",
                    s.name,
                    "dropped",
                    f"{_plugin_details(reader, device, name)}: an instrument (plays MIDI)",
                    "left out with its track; freeze or bounce it in the DAW",
                )
        reader.add(
            "MIDI_TRACK",
            s.name,
            "dropped" if sounding else "none",
            f"MIDI: {what}",
            "left out; freeze or bounce the track to audio in the DAW and export again",
        )
        if s.kind == "track" and not audio:
            s.kind = "midi"


def _name_routes(reader: _Reader, strips: list[_Strip]) -> None:
    tracks, buses = RouteNames(reader.report, "track"), RouteNames(reader.report, "bus")
    for s in strips:
        if s.kind == "track":
            s.route = tracks.take(s.name, "Track")
        elif s.kind == "bus":
            s.route = buses.take(s.name, "Bus")
    reader.track_names = tracks


def _clips(reader: _Reader, s: _Strip, rate: int) -> list[dict[str, Any]]:
    clips: list[dict[str, Any]] = []
    half = 0.5 / rate
    for piece in sorted(s.content_flat.pieces, key=lambda p: p.start):
        part = piece.window(0.0, math.inf)
        if part is None or part.duration < half:
            continue
        clip: dict[str, Any] = {"file": str(part.file), "start_seconds": part.start}
        if part.offset > 0:
            clip["offset_seconds"] = part.offset
        if part.offset + part.duration < part.file_seconds - half:
            clip["duration_seconds"] = part.duration
        for key, value, shape in (
            ("fade_in", part.fade_in, part.fade_in_shape),
            ("fade_out", part.fade_out, part.fade_out_shape),
        ):
            if value > 0:
                clip[f"{key}_seconds"] = (
                    max(value - 1.0 / rate, 0.0) if value >= part.duration else value
                )
                if shape != "linear":
                    clip[f"{key}_shape"] = shape
        clips.append(clip)
        if str(part.file) not in reader.report.media:
            reader.report.media.append(str(part.file))
    return clips


def _track_pan_finding(reader: _Reader, s: _Strip, data: dict[str, Any]) -> None:
    mono = bool(s.content_flat.pieces) and all(p.channels == 1 for p in s.content_flat.pieces)
    automated = any(lane["param"] == "pan" for lane in data.get("automation", []))
    _pan_law_finding(reader, s.name, data.get("pan", 0.0), data["pan_law"], mono, automated)


def _master_data(
    reader: _Reader, master: _Strip | None, points: dict[str, list[AutoPoint]]
) -> dict[str, Any]:
    if master is None:
        return {}
    ch = master.channel
    data: dict[str, Any] = {}
    inserts, _instruments = _devices(reader, ch, "master")
    gain_db = _volume_db(reader, ch.find("Volume"), "master")
    pan = _pan_value(ch.find("Pan"))
    if inserts:
        data["inserts"] = inserts
    if gain_db != 0.0:
        data["gain_db"] = gain_db
    if pan != 0.0:
        data["pan"] = pan
    if _bool(ch.find("Mute"), "value", False):
        data["mute"] = True
    for n, _send in enumerate(ch.findall("Sends/Send"), 1):
        if _bool(_send.find("Enable"), "value", True):
            reader.add(
                "SEND_UNSUPPORTED",
                f"master › send {n}",
                "dropped",
                "a send from the master",
                "left out",
            )
    params = _Params()
    params.add(ch.find("Volume"), "gain_db")
    params.add(ch.find("Pan"), "pan")
    params.add(ch.find("Mute"), "mute")
    lanes = _automation(reader, params, points, reader.point_units, "master")
    if lanes:
        data["automation"] = lanes
    if pan != 0.0 or any(lane["param"] == "pan" for lane in lanes):
        _pan_law_finding(reader, "master", pan, "balance", False, True)
    return data


def _break_cycles(reader: _Reader, buses: list[dict[str, Any]]) -> None:
    """Cut any feedback loop among buses (outputs and sends) at the edge that closes it."""
    by_name = {b["name"]: b for b in buses}

    def edges(bus: dict[str, Any]) -> list[tuple[str, Any]]:
        found = [("output", bus["output"])] if bus.get("output") in by_name else []
        return found + [("send", s) for s in bus.get("sends", []) if s["to"] in by_name]

    state: dict[str, int] = {}

    def visit(name: str) -> None:
        state[name] = 1
        bus = by_name[name]
        for kind, edge in edges(bus):
            target = edge if kind == "output" else edge["to"]
            if state.get(target) == 1:
                reader.add(
                    "FEEDBACK_ROUTING",
                    name,
                    "dropped" if kind == "send" else "approximate",
                    f"its {kind} to {target!r} closes a feedback loop",
                    "left out" if kind == "send" else "routed to the master",
                )
                if kind == "output":
                    bus["output"] = "master"
                else:
                    bus["sends"].remove(edge)
            elif state.get(target) is None:
                visit(target)
        state[name] = 2

    for name in by_name:
        if name not in state:
            visit(name)


def _routes(
    reader: _Reader,
    strips: list[_Strip],
    master: _Strip | None,
    rate: int,
    points: dict[str, list[AutoPoint]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    by_cid = {s.cid: s for s in strips}
    tracks: list[dict[str, Any]] = []
    buses: list[dict[str, Any]] = []
    for s in strips:
        if s.kind == "vca":
            _vca_finding(reader, s)
        if s.kind not in ("track", "bus"):
            continue
        params = _Params()
        data = _strip_data(reader, s, by_cid, master, params)
        lanes = _automation(reader, params, points, reader.point_units, s.name)
        if lanes:
            data["automation"] = lanes
        if data["output"] is None:
            continue
        if s.kind == "track":
            data["clips"] = _clips(reader, s, rate)
            _track_pan_finding(reader, s, data)
            tracks.append(data)
            continue
        buses.append(data)
        if data.get("pan", 0.0) != 0.0 or any(a["param"] == "pan" for a in lanes):
            _pan_law_finding(reader, s.name, data.get("pan", 0.0), "balance", False, True)
        if s.content_flat.pieces:
            tracks.append(_implicit_track(reader, s, rate))
    if master is not None and master.content_flat.pieces:
        tracks.append(_implicit_track(reader, master, rate))
    _break_cycles(reader, buses)
    return tracks, buses


def _implicit_track(reader: _Reader, s: _Strip, rate: int) -> dict[str, Any]:
    output = s.route if s.kind == "bus" else "master"
    name = reader.track_names.take(s.name, "Track")
    reader.add(
        "FOLDER_WITH_CLIPS",
        s.name,
        "none",
        "a group, return or master with clips of its own",
        f"the clips go on a track {name!r} feeding it",
    )
    data: dict[str, Any] = {
        "name": name,
        "clips": _clips(reader, s, rate),
        "output": output,
        "pan_law": "balance",
    }
    mono = all(p.channels == 1 for p in s.content_flat.pieces)
    _pan_law_finding(reader, name, 0.0, "balance", mono, False)
    return data


def _vca_finding(reader: _Reader, s: _Strip) -> None:
    ch = s.channel
    gain_db = _volume_db(reader, ch.find("Volume"), s.name)
    muted = _bool(ch.find("Mute"), "value", False)
    effect: Effect = "approximate" if gain_db != 0.0 or muted else "none"
    reader.add(
        "VCA",
        s.name,
        effect,
        f"a VCA fader ({gain_db:+.2f} dB" + (", muted)" if muted else ")"),
        "left out: the channels it controls play at their own fader levels",
    )


def _session_name(path: Path, meta: Element | None) -> str:
    title = (meta.findtext("Title") or "").strip() if meta is not None else ""
    return title or path.stem or "Untitled"


def _read(reader: _Reader, root: Element, meta: Element | None) -> dict[str, Any]:
    if root.tag != "Project":
        raise ProjectError(
            f"project.xml has the root element <{root.tag}>, not <Project>",
            file=reader.file,
            field="project.xml",
            fix="give a .dawproject exported by a DAW",
        )
    app = root.find("Application")
    if app is not None:
        reader.report.application = f"{app.get('name', '')} {app.get('version', '')}".strip()
    reader.index_ids(root)
    bpm, signature = reader.read_transport(root)
    strips = _walk_structure(reader, root.find("Structure"))
    master = _classify(reader, strips)
    _arrangement(reader, _Flattener(reader), root, strips)
    _scenes(reader, root)
    _midi(reader, strips)
    _name_routes(reader, strips)
    points: dict[str, list[AutoPoint]] = {}
    for s in strips:
        for pid, pts in s.content_flat.points.items():
            points.setdefault(pid, []).extend(pts)
    rate = reader.rates.most_common(1)[0][0] if reader.rates else DEFAULT_SAMPLE_RATE
    tracks, buses = _routes(reader, strips, master, rate, points)
    master_data = _master_data(reader, master, points)
    _leftover_points(reader, points)
    _rate_findings(reader, rate)
    reader.report.facts = {
        "tracks": len(tracks),
        "buses": len(buses),
        "clips": sum(len(t["clips"]) for t in tracks),
        "sends": sum(len(r.get("sends", [])) for r in [*tracks, *buses]),
        "inserts": sum(len(r.get("inserts", [])) for r in [*tracks, *buses, master_data]),
    }
    return {
        "stemprint": 1,
        "name": _session_name(reader.path, meta),
        "sample_rate": rate,
        "tempo_bpm": reader.clock.first_bpm if reader.clock.changes else bpm,
        "time_signature": signature,
        "tracks": tracks,
        "buses": buses,
        "master": master_data,
    }


def _leftover_points(reader: _Reader, points: dict[str, list[AutoPoint]]) -> None:
    for pid in points:
        target = reader.by_id.get(pid)
        label = _label(target) if target is not None else pid
        reader.add(
            "AUTOMATION_UNSUPPORTED",
            "project",
            "approximate",
            f"automation of {label}, which stemprint does not render",
            "left out; the parameter keeps its value",
        )


def _rate_findings(reader: _Reader, rate: int) -> None:
    for path, file_rate in reader.file_rates.items():
        if file_rate != rate and str(path) in reader.report.media:
            reader.add(
                "SAMPLE_RATE_CONVERTED",
                path.name,
                "none",
                f"{file_rate} Hz media in a {rate} Hz session",
                "resampled when rendered (soxr, very high quality)",
            )


def read_dawproject(
    path: Path,
    report: ImportReport,
    *,
    extract_dir: Path,
    media_root: Path | None = None,
    plugin_map: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Read a ``.dawproject`` into stemprint session data (clip paths absolute).

    Parameters
    ----------
    path
        The ``.dawproject`` (ZIP) file.
    report
        Receives the findings, the application, the facts and the media used.
    extract_dir
        Where embedded media and plug-in states are copied (names made by stemprint).
    media_root
        Searched by basename for media not found where the project says.
    plugin_map
        VST3 ``deviceID`` or ``deviceName`` → ``.vst3`` binary.

    Returns
    -------
    dict
        Session data of format 1.

    Raises
    ------
    ProjectError
        The file is not a DAWproject, is damaged, or is hostile.
    """
    with ProjectArchive(path) as archive:
        root = archive.read_xml("project.xml")
        assert root is not None
        meta = archive.read_xml("metadata.xml", required=False)
        reader = _Reader(path, report, archive, extract_dir, media_root, plugin_map)
        return _read(reader, root, meta)
