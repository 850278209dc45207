"""One import's state (``_Reader``), the per-channel ``_Strip``, flattened content and helpers.

- Flattened content is in project seconds: a :class:`Piece` is one media file at natural speed,
  an :class:`AutoPoint` one automation point whose interpolation leads to the next.
- Pieces and points shorter than ``_EPS`` (1 ns) are rounding residue; a windowed piece keeps
  its fades only on uncut edges.
- A non-numeric attribute is a :class:`~stemprint.errors.ProjectError` naming the element and
  attribute; booleans are ``true`` / ``1`` (any case).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from xml.etree.ElementTree import Element

from stemprint.errors import ProjectError
from stemprint.importers.common import MediaResolver, RouteNames
from stemprint.importers.dawproject.archive import ProjectArchive
from stemprint.importers.dawproject.time import DEFAULT_TEMPO_BPM, TempoClock
from stemprint.importers.report import Effect, ImportReport

_EPS = 1e-9  # seconds: shorter pieces are rounding residue


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
