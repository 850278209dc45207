"""REAPER project (``.rpp``) → stemprint session data (format 1) and import findings.

Model read
----------
- ``<TRACK`` chunks form one flat list; ``ISBUS state delta`` adds ``delta`` to the folder depth
  after the track (``1 1`` opens a folder, ``2 -n`` closes ``n``). A folder parent is a bus; so is
  every track that receives. A bus with items of its own gets an implicit child track of the same
  name (``FOLDER_WITH_CLIPS``).
- ``MAINSEND 1`` feeds the parent folder (the master at the top level). ``MAINSEND 0`` feeds only
  the track's sends: ``output: null`` in the session.
- ``AUXRECV src mode vol pan mute mono phase srcch dstch …`` on a track is a send *from* track
  ``src``: mode 0 post-fader, 1 pre-FX (``pre_inserts``), 2/3 pre-fader; ``level_db =
  20·log10(vol)``; ``pan`` a balance.
- Gains are linear factors: ``gain_db = 20·log10(g)``; ``VOLPAN vol pan``; item gain is
  ``itemvol × |takevol|`` (a negative take volume inverts the polarity).
- Positions and lengths (``POSITION``, ``LENGTH``, ``SOFFS``) are seconds; a session sample is
  ``round(seconds × sample_rate)``. ``LOOP 1`` is unrolled: the source plays from ``SOFFS`` to its
  end, then again from its start (assumed), into consecutive clips.
- Envelopes (``PT time value shape``): shape 1 (square) holds, others ramp. Volume envelopes ramp
  linearly in gain and are densified into dB-linear points (``gain_points_to_db``). In the
  default ``AUTOMODE 0`` (trim/read) the fader is a trim on top of the envelope
  (``gain_db(t) = env_db(t) + fader_db``); in the other modes the envelope alone sets the gain.
- Pan law: ``PANLAW`` (project) or ``VOLPAN`` field 3 (track, −1 = project) is a gain:
  1 (0 dB) → ``balance``; √½ (−3 dB) → ``constant_power``; others the nearest, reported.

Invariants
----------
- Every clip ``file`` is an absolute path; every media path used is in ``report.media``.
- Nothing REAPER would play is left out without a finding whose effect is ``dropped``.
- A damaged project raises :class:`~stemprint.errors.ProjectError` with the file and line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from stemprint.errors import ProjectError
from stemprint.importers.common import (
    SILENT_DB,
    MediaResolver,
    RouteNames,
    gain_points_to_db,
    gain_to_db,
)
from stemprint.importers.report import Effect, ImportReport
from stemprint.importers.rpp_tokens import Chunk, Line, parse_project, read_project_text

MASTER = "master"
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_AUDIO_SOURCES = {"WAVE", "FLAC", "MP3", "VORBIS", "OPUS", "AIFF"}
_MAX_LOOP_SEGMENTS = 4096
_DEFAULT_PANLAW = 1.0  # REAPER projects without a PANLAW line: +0 dB (assumed)
_MINUS_3_DB = math.sqrt(0.5)


# -- small parsing helpers ----------------------------------------------------------------------


def _float(text: str, line: Line | None, file: str) -> float:
    """A number token; ``-1:U`` style suffixes are dropped; garbage is a ProjectError."""
    try:
        value = float(text)
    except ValueError:
        match = _NUMBER.match(text)
        if match is None:
            raise ProjectError(
                f"expected a number, found {text!r}",
                file=file,
                field=f"{line.key}" if line is not None else None,
                line=line.line if line is not None else None,
                fix="the project is damaged: open it in REAPER and save it again",
            ) from None
        value = float(match.group(0))
    if not math.isfinite(value):
        raise ProjectError(
            f"expected a finite number, found {text!r}",
            file=file,
            line=line.line if line is not None else None,
            fix="the project is damaged: open it in REAPER and save it again",
        )
    return value


def _arg(line: Line | None, index: int, default: float, file: str) -> float:
    """Argument ``index`` of ``line`` as a number (``default`` when absent)."""
    if line is None or len(line.tokens) <= index + 1:
        return default
    return _float(line.tokens[index + 1], line, file)


def _text(line: Line | None, index: int = 0, default: str = "") -> str:
    if line is None or len(line.tokens) <= index + 1:
        return default
    return line.tokens[index + 1]


def _first(children: list[Line | Chunk], key: str) -> Line | None:
    for child in children:
        if isinstance(child, Line) and child.tokens[0] == key:
            return child
    return None


def _sub(children: list[Line | Chunk], tag: str) -> Chunk | None:
    for child in children:
        if isinstance(child, Chunk) and child.tag == tag:
            return child
    return None


# -- data gathered per REAPER track -----------------------------------------------------------


@dataclass
class _Send:
    target: int
    level_db: float
    pan: float = 0.0
    pre_fader: bool = False
    pre_inserts: bool = False
    invert: bool = False
    lane: list[tuple[float, float]] | None = None  # dB points (seconds, gain_db)
    lane_interpolation: str = "linear"


@dataclass
class _Route:
    index: int
    label: str  # the REAPER name for findings ("Track 3" when empty)
    depth_delta: int = 0
    parent: int | None = None
    children: list[int] = field(default_factory=list)
    mainsend: bool = True
    gain_db: float = 0.0
    pan: float = 0.0
    pan_law: str = "balance"
    mute: bool = False
    invert: bool = False
    inserts: list[dict[str, Any]] = field(default_factory=list)
    lanes: dict[str, dict[str, Any]] = field(default_factory=dict)
    clips: list[dict[str, Any]] = field(default_factory=list)
    channels: set[int] = field(default_factory=set)
    sends: list[_Send] = field(default_factory=list)
    output: int | str | None = MASTER  # route index, "master", or None (feeds nothing)
    pan_note: str = ""
    bus: bool = False
    name: str = ""
    child_name: str = ""


@dataclass
class _Context:
    file: str
    project_dir: Path
    report: ImportReport
    plugin_map: Mapping[str, str]
    media: MediaResolver | None = None
    sample_rate: int = 48000
    pan_law_gain: float = _DEFAULT_PANLAW
    pan_mode: int = 3
    infos: dict[Path, Any] = field(default_factory=dict)
    found: dict[str, Path] = field(default_factory=dict)

    def add(self, code: str, where: str, effect: Effect, message: str, action: str) -> None:
        self.report.add(code, where, effect, message, action)


# -- entry point -------------------------------------------------------------------------------


def read_rpp(
    path: Path,
    report: ImportReport,
    *,
    media_root: Path | None = None,
    plugin_map: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Read a REAPER project into stemprint session data (clip paths absolute).

    Parameters
    ----------
    path
        The ``.rpp`` (or ``.rpp-bak``) file.
    report
        Receives the findings, the application, the facts and the media used.
    media_root
        A folder searched by basename for media not found at its recorded path.
    plugin_map
        VST3 plug-in name or class ID → ``.vst3`` path.

    Returns
    -------
    dict
        Session data of format 1.

    Raises
    ------
    ProjectError
        The file is unreadable, not a project, truncated or damaged.
    """
    text = read_project_text(path)
    root = parse_project(text, str(path))
    ctx = _Context(str(path), path.parent.resolve(), report, dict(plugin_map or {}))
    report.application = "REAPER " + (root.args[1] if len(root.args) > 1 else "(version unknown)")
    settings = _project_settings(root, ctx, media_root)
    tracks = root.chunks("TRACK")
    routes = [_read_track(chunk, index, ctx) for index, chunk in enumerate(tracks)]
    _folders(routes, ctx)
    for index, chunk in enumerate(tracks):
        _receives(chunk, index, routes, ctx)
    for route in routes:
        _main_output(route, routes, ctx)
    _break_cycles(routes, ctx)
    kept = _prune(routes, ctx)
    _pan_findings(kept, ctx)
    session = _assemble(kept, routes, ctx, settings)
    session["master"] = _master(root, ctx)
    _facts(session, report)
    return session


def _facts(session: dict[str, Any], report: ImportReport) -> None:
    routes = session["tracks"] + session["buses"]
    report.facts = {
        "tracks": len(session["tracks"]),
        "buses": len(session["buses"]),
        "clips": sum(len(t["clips"]) for t in session["tracks"]),
        "sends": sum(len(r.get("sends", ())) for r in routes),
        "inserts": sum(len(r.get("inserts", ())) for r in routes)
        + len(session["master"]["inserts"]),
    }


# -- project settings ----------------------------------------------------------------------------


def _project_settings(root: Chunk, ctx: _Context, media_root: Path | None) -> dict[str, Any]:
    """Sample rate, tempo, pan law and mode, record paths; findings for project-wide flags."""
    rate_line = root.first("SAMPLERATE")
    rate = int(_arg(rate_line, 0, 0.0, ctx.file))
    ctx.sample_rate = rate if 8000 <= rate <= 768000 else 48000
    tempo_line = root.first("TEMPO")
    tempo = _arg(tempo_line, 0, 120.0, ctx.file)
    numerator = int(_arg(tempo_line, 1, 4.0, ctx.file))
    denominator = int(_arg(tempo_line, 2, 4.0, ctx.file))
    if denominator not in (1, 2, 4, 8, 16, 32, 64) or not 1 <= numerator <= 128:
        numerator, denominator = 4, 4
    law_line = root.first("PANLAW")
    ctx.pan_law_gain = _arg(law_line, 0, _DEFAULT_PANLAW, ctx.file)
    ctx.pan_mode = int(_arg(root.first("PANMODE"), 0, 3.0, ctx.file))
    if _arg(root.first("FEEDBACK"), 0, 0.0, ctx.file) != 0:
        ctx.add(
            "FEEDBACK_ROUTING",
            "project",
            "none",
            "the project allows feedback routing",
            "routes are read as a tree; a send that closes a loop is reported and left out",
        )
    if _arg(root.first("ITEMMIX"), 0, 0.0, ctx.file) not in (0.0, 1.0):
        ctx.add(
            "UNSUPPORTED_ELEMENT",
            "project",
            "approximate",
            "overlapping items do not mix (ITEMMIX: later items replace earlier ones)",
            "overlapping clips are summed",
        )
    folders: list[Path] = []
    record = root.first("RECORD_PATH")
    for recorded in record.args if record is not None else []:
        if recorded:
            folders.append(ctx.project_dir / PurePosixPath(recorded.replace("\\", "/")))
    ctx.media = MediaResolver(ctx.project_dir, ctx.report, folders, media_root)
    _tempo_map(root, ctx, tempo)
    return {
        "tempo_bpm": tempo if tempo > 0 else 120.0,
        "time_signature": f"{numerator}/{denominator}",
    }


def _tempo_map(root: Chunk, ctx: _Context, tempo: float) -> None:
    """Report tempo changes: positions are seconds already, only the grid would change."""
    chunk = root.chunk("TEMPOENVEX")
    if chunk is None:
        return
    points = [
        (_arg(p, 0, 0.0, ctx.file), _arg(p, 1, tempo, ctx.file), int(_arg(p, 2, 1.0, ctx.file)))
        for p in chunk.lines("PT")
    ]
    if len({bpm for _t, bpm, _s in points} | {tempo}) <= 1:
        return
    ramps = any(
        shape == 0 and b1 != b0
        for (_t0, b0, shape), (_t1, b1, _s1) in zip(points, points[1:], strict=False)
    )
    code = "TEMPO_RAMP" if ramps else "UNSUPPORTED_ELEMENT"
    ctx.add(
        code,
        "project",
        "none",
        f"the tempo changes ({len(points)} tempo points"
        + (", with linear ramps)" if ramps else ")"),
        f"positions are seconds and come across exactly; the grid keeps {tempo:g} bpm",
    )


# -- tracks --------------------------------------------------------------------------------------


def _read_track(chunk: Chunk, index: int, ctx: _Context) -> _Route:
    """One TRACK chunk: strip settings, clips, inserts, automation (receives come later)."""
    name = _text(chunk.first("NAME"))
    route = _Route(index=index, label=" ".join(name.split()) or f"Track {index + 1}")
    where = route.label
    volpan = chunk.first("VOLPAN")
    route.gain_db = gain_to_db(_arg(volpan, 0, 1.0, ctx.file))
    route.pan = max(-1.0, min(1.0, _arg(volpan, 1, 0.0, ctx.file)))
    _track_pan_law(route, chunk, volpan, ctx)
    mutesolo = chunk.first("MUTESOLO")
    route.mute = _arg(mutesolo, 0, 0.0, ctx.file) != 0
    if _arg(mutesolo, 1, 0.0, ctx.file) != 0:
        ctx.add(
            "SOLO_IGNORED",
            where,
            "none",
            "the track is soloed in the project",
            "rendered as if nothing were soloed (solo: false)",
        )
    route.invert = _arg(chunk.first("IPHASE"), 0, 0.0, ctx.file) != 0
    isbus = chunk.first("ISBUS")
    route.depth_delta = int(_arg(isbus, 1, 0.0, ctx.file))
    mainsend = chunk.first("MAINSEND")
    route.mainsend = _arg(mainsend, 0, 1.0, ctx.file) != 0
    if route.mainsend and _arg(mainsend, 1, 0.0, ctx.file) != 0:
        ctx.add(
            "MULTICHANNEL_ROUTING",
            where,
            "approximate",
            "the track feeds its parent from channel offset "
            f"{int(_arg(mainsend, 1, 0.0, ctx.file))}",
            "fed to the parent's channels 1/2",
        )
    for hwout in chunk.lines("HWOUT"):
        ctx.add(
            "HARDWARE_OUTPUT",
            where,
            "none",
            f"a hardware output (channel {_text(hwout, 0)})",
            "left out: not part of the mix",
        )
    if chunk.chunk("FREEZE") is not None:
        ctx.add(
            "FROZEN_TRACK",
            where,
            "none",
            "a frozen track",
            "its rendered (frozen) items are imported; the original FX and items are not",
        )
    fx_on = _arg(chunk.first("FX"), 0, 1.0, ctx.file) != 0
    fxchain = chunk.chunk("FXCHAIN")
    if fxchain is not None:
        route.inserts = _fx_chain(fxchain, where, fx_on, ctx)
    automode = int(_arg(chunk.first("AUTOMODE"), 0, 0.0, ctx.file))
    _track_envelopes(route, chunk, automode, ctx)
    for number, item in enumerate(chunk.chunks("ITEM"), start=1):
        _read_item(route, item, f"{where} › item {number}", ctx)
    _clip_polarity(route, ctx)
    return route


def _law_name(gain: float) -> tuple[str, bool]:
    """The session pan law nearest REAPER's law gain, and whether it is exact."""
    if gain <= 0:
        return "balance", False
    law_db = 20.0 * math.log10(gain)
    if abs(law_db) < 0.01:
        return "balance", True
    if abs(gain - _MINUS_3_DB) < 1e-3:
        return "constant_power", True
    return ("balance" if law_db > -1.5 else "constant_power"), False


def _track_pan_law(route: _Route, chunk: Chunk, volpan: Line | None, ctx: _Context) -> None:
    track_law = _arg(volpan, 2, -1.0, ctx.file)
    gain = track_law if track_law >= 0 else ctx.pan_law_gain
    law, exact = _law_name(gain)
    mode = int(_arg(chunk.first("PANMODE"), 0, -1.0, ctx.file))
    mode = ctx.pan_mode if mode < 0 else mode
    route.pan_law = law
    law_db = f"{20 * math.log10(gain):+.2f} dB" if gain > 0 else "-inf dB"
    route.pan_note = f"REAPER pan law {law_db}, pan mode {mode}, read as {law!r}"
    if not exact:
        route.pan_note += " (nearest law)"
    if mode not in (3,):
        route.pan_note += f"; pan mode {mode} is rendered as stereo balance / mono pan"


def _clip_polarity(route: _Route, ctx: _Context) -> None:
    """Negative take volumes: moved to the track when every clip has it, else reported."""
    inverted = [c for c in route.clips if c.pop("_invert", False)]
    if not inverted:
        return
    if len(inverted) == len(route.clips):
        route.invert = not route.invert
        ctx.add(
            "POLARITY_PER_CLIP",
            route.label,
            "none",
            "every item of the track has its polarity inverted (negative take volume)",
            "the track's polarity is inverted instead (exact)",
        )
        return
    ctx.add(
        "POLARITY_PER_CLIP",
        route.label,
        "approximate",
        f"{len(inverted)} of {len(route.clips)} clips have an inverted polarity",
        "rendered without the inversion; bounce those items in REAPER",
    )


def _folders(routes: list[_Route], ctx: _Context) -> None:
    """Parents from ISBUS depth deltas (a flat list in file order)."""
    stack: list[int] = []
    for route in routes:
        route.parent = stack[-1] if stack else None
        if route.parent is not None:
            routes[route.parent].children.append(route.index)
        if route.depth_delta > 0:
            stack.extend([route.index] * route.depth_delta)
        elif route.depth_delta < 0:
            if -route.depth_delta > len(stack):
                ctx.add(
                    "UNSUPPORTED_ELEMENT",
                    route.label,
                    "none",
                    "the folder structure closes more folders than are open",
                    "the extra folder ends are ignored",
                )
            del stack[len(stack) + route.depth_delta :]
    for route in routes:
        route.output = route.parent if route.parent is not None else MASTER


# -- receives and the main output ---------------------------------------------------------------


def _receives(chunk: Chunk, index: int, routes: list[_Route], ctx: _Context) -> None:
    """AUXRECV lines of the receiving track → sends on their source tracks."""
    current: _Send | None = None
    current_where = ""
    automode = int(_arg(chunk.first("AUTOMODE"), 0, 0.0, ctx.file))
    for child in chunk.children:
        if isinstance(child, Line) and child.tokens[0] == "AUXRECV":
            current, current_where = _receive(child, index, routes, ctx)
        elif isinstance(child, Chunk) and child.tag in ("AUXVOLENV", "AUXPANENV", "AUXMUTEENV"):
            if current is not None:
                _send_envelope(child, current, current_where, automode, ctx)


def _receive(
    line: Line, index: int, routes: list[_Route], ctx: _Context
) -> tuple[_Send | None, str]:
    f = ctx.file
    source = int(_arg(line, 0, -1.0, f))
    receiver = routes[index].label
    if not 0 <= source < len(routes) or source == index:
        ctx.add(
            "SEND_UNSUPPORTED",
            receiver,
            "none",
            f"a receive from track {source + 1}, which does not exist",
            "left out",
        )
        return None, ""
    where = f"{routes[source].label} › send to {receiver}"
    mode = int(_arg(line, 1, 0.0, f))
    vol = _arg(line, 2, 1.0, f)
    send = _Send(index, gain_to_db(abs(vol)), max(-1.0, min(1.0, _arg(line, 3, 0.0, f))))
    send.pre_inserts = mode == 1
    send.pre_fader = mode in (1, 2, 3)
    if _arg(line, 4, 0.0, f) != 0:
        ctx.add("SEND_UNSUPPORTED", where, "none", "the send is muted", "left out (silent)")
        return None, where
    if not _send_channels(line, where, ctx):
        return None, where
    if _arg(line, 5, 0.0, f) != 0:
        ctx.add(
            "MULTICHANNEL_ROUTING", where, "approximate", "the send sums to mono", "sent in stereo"
        )
    send.invert = (_arg(line, 6, 0.0, f) != 0) != (vol < 0)
    routes[source].sends.append(send)
    return send, where


def _send_channels(line: Line, where: str, ctx: _Context) -> bool:
    """Whether a receive's audio channels can be rendered (findings otherwise)."""
    source_channels = int(_arg(line, 7, 0.0, ctx.file))
    dest_channels = int(_arg(line, 8, 0.0, ctx.file))
    if source_channels < 0:
        return False  # MIDI-only send: no audio
    if source_channels & 1024:
        ctx.add(
            "MULTICHANNEL_ROUTING",
            where,
            "approximate",
            f"the send takes mono channel {(source_channels & 1023) + 1} of its source",
            "the source's stereo signal is sent",
        )
    elif source_channels != 0:
        ctx.add(
            "MULTICHANNEL_ROUTING",
            where,
            "dropped",
            f"the send takes source channels {source_channels + 1}/{source_channels + 2}",
            "left out: stemprint routes stereo pairs 1/2 only",
        )
        return False
    if dest_channels & 1023:
        ctx.add(
            "MULTICHANNEL_ROUTING",
            where,
            "dropped",
            f"the send feeds destination channels {(dest_channels & 1023) + 1} and up "
            "(usually a sidechain key)",
            "left out: stemprint routes channels 1/2 only",
        )
        return False
    return True


def _main_output(route: _Route, routes: list[_Route], ctx: _Context) -> None:
    """``MAINSEND 0``: the track feeds only its sends (``output: null``), exactly as REAPER."""
    if not route.mainsend:
        route.output = None


def _break_cycles(routes: list[_Route], ctx: _Context) -> None:
    """Drop sends that close a loop (REAPER allows them with FEEDBACK 1; stemprint cannot)."""

    def reaches(start: int, goal: int) -> bool:
        seen: set[int] = set()
        stack = [start]
        while stack:
            node = stack.pop()
            if node == goal:
                return True
            if node in seen:
                continue
            seen.add(node)
            out = routes[node].output
            if isinstance(out, int):
                stack.append(out)
            stack.extend(s.target for s in routes[node].sends)
        return False

    for route in routes:
        for send in list(route.sends):
            if reaches(send.target, route.index):
                route.sends.remove(send)
                ctx.add(
                    "FEEDBACK_ROUTING",
                    f"{route.label} › send to {routes[send.target].label}",
                    "dropped",
                    "the send closes a feedback loop",
                    "left out",
                )


def _prune(routes: list[_Route], ctx: _Context) -> list[_Route]:
    """Routes that carry audio to the master; the rest are dropped with a finding."""
    live = {r.index for r in routes if r.clips}
    changed = True
    while changed:
        changed = False
        for r in routes:
            if r.index not in live and any(_feeds(routes[x], r.index) for x in live):
                live.add(r.index)
                changed = True
    reach: dict[int, bool] = {}

    def reaches_master(index: int, trail: frozenset[int]) -> bool:
        if index in reach:
            return reach[index]
        r = routes[index]
        targets = [s.target for s in r.sends]
        if isinstance(r.output, int):
            targets.append(r.output)
        ok = r.output == MASTER or any(
            t not in trail and reaches_master(t, trail | {t}) for t in targets
        )
        reach[index] = ok
        return ok

    kept: list[_Route] = []
    for r in routes:
        if r.index in live and reaches_master(r.index, frozenset({r.index})):
            kept.append(r)
            continue
        why = "it has no audio of its own and nothing audible feeds it"
        if r.index in live:
            why = "its audio reaches no output (MAINSEND 0 without sends)"
        ctx.add(
            "EMPTY_TRACK",
            r.label,
            "none",
            f"the track is not imported: {why}",
            "left out (nothing audible is lost)",
        )
    kept_ids = {r.index for r in kept}
    for r in kept:
        r.sends = [s for s in r.sends if s.target in kept_ids]
    for r in kept:
        r.bus = any(_feeds(k, r.index) for k in kept if k is not r)
    return kept


def _feeds(route: _Route, target: int) -> bool:
    """Whether ``route`` outputs or sends to route ``target``."""
    return route.output == target or any(s.target == target for s in route.sends)


def _pan_findings(kept: list[_Route], ctx: _Context) -> None:
    """PAN_LAW_ASSUMED: once for the project, and per route where the law changes the level."""
    law, _exact = _law_name(ctx.pan_law_gain)
    ctx.add(
        "PAN_LAW_ASSUMED",
        "project",
        "none",
        f"REAPER's pan formulas are not documented; project pan law "
        f"{ctx.pan_law_gain:g} (gain) and pan mode {ctx.pan_mode} are read as {law!r}",
        "each route states its law; check a REAPER render of one panned mono track",
    )
    for r in kept:
        mono = bool(r.clips) and r.channels == {1}
        panned = r.pan != 0.0 or "pan" in r.lanes
        unknown = bool(r.clips) and not r.channels
        if mono or panned or unknown:
            what = "mono source" if mono else "off-centre pan" if panned else "unknown channels"
            ctx.add(
                "PAN_LAW_ASSUMED",
                r.label,
                "approximate",
                f"{what}: {r.pan_note}",
                f"rendered with pan_law {r.pan_law!r}",
            )
        for send in r.sends:
            if send.pan != 0.0:
                ctx.add(
                    "PAN_LAW_ASSUMED",
                    f"{r.label} › send",
                    "approximate",
                    f"send pan {send.pan:+.3f} read as a balance",
                    "send pan set",
                )


# -- plug-ins ------------------------------------------------------------------------------------

_PLUGIN_TAGS = {"VST", "JS", "CLAP", "AU", "LV2", "DX", "VIDEO_EFFECT", "CONTAINER"}
_LABEL = re.compile(r"^(?P<format>[A-Za-z0-9]+i?):\s*(?P<name>.*?)(?:\s*\((?P<vendor>[^()]*)\))?$")


@dataclass
class _Slot:
    chunk: Chunk
    bypass: bool = False
    offline: bool = False
    wet: float = 1.0
    automated: bool = False


def _slots(fxchain: Chunk, ctx: _Context) -> list[_Slot]:
    """Plug-in chunks of an FX chain with the BYPASS / WET / PARMENV lines around them."""
    slots: list[_Slot] = []
    pending: tuple[bool, bool] = (False, False)
    for child in fxchain.children:
        if isinstance(child, Line):
            if child.tokens[0] == "BYPASS":
                pending = (_arg(child, 0, 0.0, ctx.file) != 0, _arg(child, 1, 0.0, ctx.file) != 0)
            elif child.tokens[0] == "WET" and slots:
                slots[-1].wet = _arg(child, 0, 1.0, ctx.file)
        elif child.tag in _PLUGIN_TAGS:
            slots.append(_Slot(child, *pending))
            pending = (False, False)
        elif child.tag == "PARMENV" and slots:
            slots[-1].automated = slots[-1].automated or _active(child, ctx)
    return slots


def _identity(chunk: Chunk) -> dict[str, str]:
    """Format, name, vendor, id and state summary of one plug-in chunk."""
    label = chunk.args[0] if chunk.args else chunk.tag
    match = _LABEL.match(label)
    kind, name, vendor = chunk.tag, label, ""
    if match is not None and chunk.tag in ("VST", "CLAP", "AU", "LV2", "DX"):
        kind, name, vendor = match["format"], match["name"], match["vendor"] or ""
    ident = ""
    joined = " ".join(chunk.args[1:])
    fuid = re.search(r"\{([0-9A-Fa-f]{32})\}", joined)
    if fuid is not None:
        ident = fuid.group(1).upper()
    elif chunk.tag == "VST" and len(chunk.args) > 4:
        ident = chunk.args[4]
    elif chunk.tag == "JS":
        ident = label
    elif len(chunk.args) > 1:
        ident = chunk.args[1]
    state = "".join(
        c.tokens[0] for c in chunk.children if isinstance(c, Line) and len(c.tokens) == 1
    )
    try:
        raw = base64.b64decode(state, validate=False)
    except (binascii.Error, ValueError):
        raw = state.encode()
    digest = hashlib.sha256(raw).hexdigest()[:16]
    file_name = chunk.args[1] if chunk.tag == "VST" and len(chunk.args) > 1 else ""
    return {
        "format": kind,
        "name": name,
        "vendor": vendor,
        "id": ident,
        "file": file_name,
        "state": f"{len(raw)} bytes, sha256 {digest}…",
    }


def _fx_chain(fxchain: Chunk, where: str, fx_on: bool, ctx: _Context) -> list[dict[str, Any]]:
    """Inserts of an FX chain: mapped VST3 plug-ins; every other slot is reported."""
    inserts: list[dict[str, Any]] = []
    for number, slot in enumerate(_slots(fxchain, ctx), start=1):
        ident = _identity(slot.chunk)
        at = f"{where} › insert {number}"
        desc = (
            f"{ident['format']} {ident['name']!r}"
            + (f" by {ident['vendor']}" if ident["vendor"] else "")
            + (f", id {ident['id']}" if ident["id"] else "")
            + f", state {ident['state']}"
        )
        if slot.bypass or slot.offline or not fx_on:
            state = "offline" if slot.offline else "bypassed"
            ctx.add("DEVICE_BYPASSED", at, "none", f"{desc} is {state}", "skipped, as REAPER does")
            continue
        path = _mapped(ident, ctx) if ident["format"] == "VST3" else None
        if path is None:
            role = "an instrument" if ident["format"].endswith("i") else "an effect"
            why = (
                "not in the plug-in map"
                if ident["format"] == "VST3"
                else f"{ident['format']} plug-ins cannot run here"
            )
            ctx.add(
                "PLUGIN_UNAVAILABLE",
                at,
                "dropped",
                f"{desc} ({role}): {why}",
                "rendered without it; map a VST3 with --plugin-map, or print the effect in REAPER",
            )
            continue
        inserts.append({"type": "vst3", "path": path})
        ctx.add(
            "PLUGIN_MAPPED",
            at,
            "approximate",
            f"{desc} mapped to {path}",
            "rendered with --allow-plugins at its default state: REAPER's plug-in state is "
            "not carried across",
        )
        if slot.wet != 1.0:
            ctx.add(
                "PLUGIN_MAPPED",
                at,
                "approximate",
                f"the plug-in's wet/dry mix is {slot.wet:g}",
                "rendered 100 % wet",
            )
        if slot.automated:
            ctx.add(
                "AUTOMATION_UNSUPPORTED",
                at,
                "approximate",
                "the plug-in's parameters are automated",
                "rendered without the automation",
            )
    return inserts


def _mapped(ident: dict[str, str], ctx: _Context) -> str | None:
    label = f"VST3: {ident['name']}" + (f" ({ident['vendor']})" if ident["vendor"] else "")
    for key in (ident["id"], "{" + ident["id"] + "}", ident["name"], label, ident["file"]):
        if key and key in ctx.plugin_map:
            return str(ctx.plugin_map[key])
    lowered = {k.lower(): v for k, v in ctx.plugin_map.items()}
    for key in (ident["id"], ident["name"]):
        if key and key.lower() in lowered:
            return str(lowered[key.lower()])
    return None


# -- envelopes -----------------------------------------------------------------------------------


@dataclass
class _Envelope:
    points: list[tuple[float, float]]  # (seconds, raw value), time order, t >= 0
    interpolation: str
    curved: bool
    fader_scaled: bool


def _active(chunk: Chunk, ctx: _Context) -> bool:
    """An envelope plays unless ``ACT 0``, and only when it has points."""
    act = chunk.first("ACT")
    return (act is None or _arg(act, 0, 1.0, ctx.file) != 0) and chunk.first("PT") is not None


def _envelope(chunk: Chunk, where: str, ctx: _Context) -> _Envelope | None:
    """The points of an active envelope (square segments become jumps), or ``None``."""
    if not _active(chunk, ctx):
        return None
    if chunk.first("POOLEDENVINST") is not None:
        ctx.add(
            "AUTOMATION_UNSUPPORTED",
            where,
            "approximate",
            f"{chunk.tag} holds automation items",
            "automation items are left out",
        )
    raw: list[tuple[float, float, int]] = []
    for line in chunk.lines("PT"):
        raw.append(
            (
                _arg(line, 0, 0.0, ctx.file),
                _arg(line, 1, 0.0, ctx.file),
                int(_arg(line, 2, 0.0, ctx.file)),
            )
        )
    raw.sort(key=lambda p: p[0])
    shapes = {s for _t, _v, s in raw[:-1]}
    hold = shapes <= {1} and len(raw) > 1
    points: list[tuple[float, float]] = []
    for k, (t, v, shape) in enumerate(raw):
        points.append((t, v))
        if not hold and shape == 1 and k + 1 < len(raw):
            points.append((raw[k + 1][0], v))  # a square step: jump at the next point
    return _Envelope(
        points=_clip_start(points, hold),
        interpolation="hold" if hold else "linear",
        curved=bool(shapes - {0, 1}),
        fader_scaled=_arg(chunk.first("VOLTYPE"), 0, 0.0, ctx.file) == 1,
    )


def _clip_start(points: list[tuple[float, float]], hold: bool) -> list[tuple[float, float]]:
    """Points at t < 0 replaced by the envelope's value at 0 (sessions start at 0)."""
    if not points or points[0][0] >= 0:
        return points
    before = [p for p in points if p[0] < 0]
    after = [p for p in points if p[0] >= 0]
    t0, v0 = before[-1]
    value = v0
    if after and not hold and after[0][0] > t0:
        t1, v1 = after[0]
        value = v0 + (v1 - v0) * (-t0) / (t1 - t0)
    return [(0.0, value), *after]


def _gain_lane(env: _Envelope, where: str, offset_db: float, ctx: _Context) -> list[list[float]]:
    """Gain-linear envelope points → dB points (+ ``offset_db``), densified."""
    points, densified = gain_points_to_db(
        [(t, max(v, 0.0)) for t, v in env.points], env.interpolation
    )
    if densified:
        ctx.add(
            "AUTOMATION_DENSIFIED",
            where,
            "none",
            "a volume envelope ramps linearly in gain",
            f"resampled into {len(points)} dB-linear points (within 0.05 dB)",
        )
    if env.curved:
        ctx.add(
            "AUTOMATION_DENSIFIED",
            where,
            "approximate",
            "the envelope has curved segments (slow/fast start or end, bezier)",
            "rendered as linear ramps",
        )
    return [[t, max(db + offset_db, SILENT_DB)] for t, db in points]


def _track_envelopes(route: _Route, chunk: Chunk, automode: int, ctx: _Context) -> None:
    """VOLENV2 / PANENV2 / MUTEENV → lanes; other active track envelopes are reported."""
    trim = automode == 0  # trim/read: the fader is an offset on top of the envelope
    for env_chunk in chunk.children:
        if (
            not isinstance(env_chunk, Chunk)
            or not env_chunk.tag.endswith(("ENV", "ENV2", "ENV3"))
            or env_chunk.tag.startswith("AUX")
        ):
            continue
        where = f"{route.label} › {env_chunk.tag}"
        env = _envelope(env_chunk, where, ctx)
        if env is None:
            continue
        lane = _strip_lane(env_chunk.tag, env, route, trim, where, ctx)
        if lane is not None:
            route.lanes[lane["param"]] = lane


def _strip_lane(
    tag: str, env: _Envelope, route: _Route, trim: bool, where: str, ctx: _Context
) -> dict[str, Any] | None:
    """One strip envelope as a session lane (gain_db, pan or mute), or ``None`` + finding."""
    if tag in ("VOLENV2", "MASTERVOLENV2"):
        if env.fader_scaled:
            ctx.add(
                "AUTOMATION_UNSUPPORTED",
                where,
                "approximate",
                "a fader-scaled volume envelope (VOLTYPE 1): its curve is not known here",
                "left out; the static fader level is used",
            )
            return None
        offset = route.gain_db if trim else 0.0
        return {
            "param": "gain_db",
            "interpolation": env.interpolation,
            "points": _gain_lane(env, where, offset, ctx),
        }
    if tag in ("PANENV2", "MASTERPANENV2"):
        offset = route.pan if trim else 0.0
        if env.curved:
            ctx.add(
                "AUTOMATION_DENSIFIED",
                where,
                "approximate",
                "the pan envelope has curved segments",
                "rendered as linear ramps",
            )
        return {
            "param": "pan",
            "interpolation": env.interpolation,
            "points": [[t, max(-1.0, min(1.0, v + offset))] for t, v in env.points],
        }
    if tag in ("MUTEENV", "MASTERMUTEENV"):
        return {
            "param": "mute",
            "interpolation": "hold",
            "points": [[t, 1.0 if v >= 0.5 else 0.0] for t, v in env.points],
        }
    effect: Effect = (
        "none" if tag == "MASTERPLAYSPEEDENV" and len(env.points) < 2 else ("approximate")
    )
    code = "TIME_STRETCH" if tag == "MASTERPLAYSPEEDENV" else "AUTOMATION_UNSUPPORTED"
    ctx.add(code, where, effect, f"an active {tag} envelope", "left out")
    return None


def _send_envelope(chunk: Chunk, send: _Send, where: str, automode: int, ctx: _Context) -> None:
    env = _envelope(chunk, f"{where} › {chunk.tag}", ctx)
    if env is None:
        return
    if chunk.tag != "AUXVOLENV":
        ctx.add(
            "AUTOMATION_UNSUPPORTED",
            f"{where} › {chunk.tag}",
            "approximate",
            f"the send's {'pan' if chunk.tag == 'AUXPANENV' else 'mute'} is automated",
            "left out",
        )
        return
    if env.fader_scaled:
        ctx.add(
            "AUTOMATION_UNSUPPORTED",
            f"{where} › {chunk.tag}",
            "approximate",
            "a fader-scaled send volume envelope (VOLTYPE 1)",
            "left out; static level used",
        )
        return
    offset = send.level_db if automode == 0 else 0.0
    points = _gain_lane(env, f"{where} › {chunk.tag}", offset, ctx)
    send.lane = [(t, v) for t, v in points]
    send.lane_interpolation = env.interpolation


# -- items ---------------------------------------------------------------------------------------


@dataclass
class _Take:
    children: list[Line | Chunk]
    null: bool = False
    volpan: tuple[float, float] = (0.0, 1.0)  # (pan, volume)


def _takes(item: Chunk, ctx: _Context) -> tuple[list[_Take], int]:
    """The item's takes (take 0 shares the item's own lines) and the active take's index."""
    takes = [_Take([])]
    active = 0
    for child in item.children:
        if isinstance(child, Line) and child.tokens[0] == "TAKE":
            takes.append(_Take([child], null="NULL" in child.tokens[1:]))
            if "SEL" in child.tokens[1:]:
                active = len(takes) - 1
        else:
            takes[-1].children.append(child)
    volpan = item.first("VOLPAN")
    takes[0].volpan = (_arg(volpan, 1, 0.0, ctx.file), _arg(volpan, 2, 1.0, ctx.file))
    for take in takes[1:]:
        line = _first(take.children, "TAKEVOLPAN")
        take.volpan = (_arg(line, 0, 0.0, ctx.file), _arg(line, 1, 1.0, ctx.file))
    return takes, active


@dataclass
class _Source:
    kind: str
    file: str = ""
    start_seconds: float = 0.0  # SECTION start inside the file
    length_seconds: float | None = None  # SECTION length
    reverse: bool = False


def _source(take: _Take, ctx: _Context) -> _Source | None:
    chunk = _sub(take.children, "SOURCE")
    if chunk is None:
        return None
    found = _Source(chunk.args[0] if chunk.args else "")
    depth = 0
    while found.kind == "SECTION" and depth < 8:
        found.start_seconds += _arg(chunk.first("STARTPOS"), 0, 0.0, ctx.file)
        length = chunk.first("LENGTH")
        if length is not None:
            found.length_seconds = _arg(length, 0, 0.0, ctx.file)
        found.reverse = found.reverse != (int(_arg(chunk.first("MODE"), 0, 0.0, ctx.file)) & 2 != 0)
        inner = chunk.chunk("SOURCE")
        if inner is None:
            return found
        chunk, found.kind, depth = inner, inner.args[0] if inner.args else "", depth + 1
    found.file = _text(chunk.first("FILE"))
    return found


def _read_item(route: _Route, item: Chunk, where: str, ctx: _Context) -> None:
    """One ITEM → clips on ``route`` (several when a loop is unrolled), or findings."""
    if _arg(item.first("MUTE"), 0, 0.0, ctx.file) != 0:
        ctx.add("CLIP_MUTED", where, "none", "the item is muted", "left out, as REAPER does")
        return
    takes, active = _takes(item, ctx)
    take = takes[active]
    if take.null:
        return  # an empty take plays nothing
    for chunk in take.children:
        if isinstance(chunk, Chunk) and chunk.tag == "TAKEFX":
            ctx.add(
                "TAKE_FX",
                where,
                "dropped",
                "the take has effects (take FX)",
                "rendered without them; apply them in REAPER (glue or render the item)",
            )
    source = _source(take, ctx)
    if source is None or source.kind == "EMPTY":
        return
    if not _renderable(source, take, where, ctx):
        return
    path = ctx.media.resolve(source.file, where) if ctx.media else None
    if path is None:
        return
    info = _info(path, where, ctx)
    if info is None:
        return
    clips = _item_clips(item, take, source, info, where, ctx)
    if not clips:
        return
    key = str(path)
    if key not in ctx.report.media:
        ctx.report.media.append(key)
    route.channels.add(1 if info.channels == 1 else 2)
    for clip in clips:
        clip["file"] = key
    route.clips.extend(clips)


def _renderable(source: _Source, take: _Take, where: str, ctx: _Context) -> bool:
    """Whether the active take's source and playback can be rendered (findings otherwise)."""
    kind = source.kind
    if kind in ("MIDI", "MIDIPOOL"):
        ctx.add(
            "MIDI_TRACK",
            where,
            "dropped",
            "a MIDI item",
            "left out; freeze or render the track to audio in REAPER, then import again",
        )
        return False
    if kind not in _AUDIO_SOURCES:
        ctx.add(
            "UNSUPPORTED_ELEMENT",
            where,
            "dropped",
            f"a {kind or 'unknown'} source stemprint cannot read",
            "left out; render the item to WAV in REAPER",
        )
        return False
    playrate = _first(take.children, "PLAYRATE")
    rate = _arg(playrate, 0, 1.0, ctx.file)
    pitch = _arg(playrate, 2, 0.0, ctx.file)
    if rate != 1.0:
        ctx.add(
            "TIME_STRETCH",
            where,
            "dropped",
            f"the item plays at rate {rate:g}",
            "left out; render the item in REAPER (glue) and import again",
        )
        return False
    if pitch != 0.0:
        ctx.add(
            "PITCH_SHIFT",
            where,
            "dropped",
            f"the item is pitch-shifted by {pitch:g} st",
            "left out; render the item in REAPER (glue) and import again",
        )
        return False
    for line in (c for c in take.children if isinstance(c, Line) and c.tokens[0] == "SM"):
        values = [t for t in line.tokens[1:] if t != "+"]
        pairs = list(zip(values[0::2], values[1::2], strict=False))
        if any(_float(a, line, ctx.file) != _float(b, line, ctx.file) for a, b in pairs):
            ctx.add(
                "TIME_STRETCH",
                where,
                "dropped",
                "the item has stretch markers",
                "left out; render the item in REAPER (glue) and import again",
            )
            return False
    chanmode = int(_arg(_first(take.children, "CHANMODE"), 0, 0.0, ctx.file))
    if chanmode != 0:
        names = {1: "reversed stereo", 2: "mono downmix", 3: "left only", 4: "right only"}
        ctx.add(
            "POLARITY_PER_CLIP",
            where,
            "approximate",
            f"the take's channel mode is {names.get(chanmode, str(chanmode))}",
            "rendered with its channels as they are in the file",
        )
    return True


def _info(path: Path, where: str, ctx: _Context) -> Any:
    """``soundfile.info`` of a media file (cached), or ``None`` + finding."""
    if path in ctx.infos:
        return ctx.infos[path]
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as exc:
        ctx.add(
            "UNSUPPORTED_ELEMENT",
            where,
            "dropped",
            f"media {path} cannot be read: {exc}",
            "left out; convert it to WAV",
        )
        info = None
    if info is not None and (info.channels > 2 or info.frames <= 0):
        ctx.add(
            "MULTICHANNEL_ROUTING",
            where,
            "dropped",
            f"media {path} has {info.channels} channels and {info.frames} frames",
            "left out; stemprint renders mono and stereo files",
        )
        info = None
    if info is not None and info.samplerate != ctx.sample_rate:
        ctx.add(
            "SAMPLE_RATE_CONVERTED",
            where,
            "none",
            f"media {path.name} is {info.samplerate} Hz, the project {ctx.sample_rate} Hz",
            "resampled when rendered (soxr, very high quality)",
        )
    ctx.infos[path] = info
    return info


_FADE_SHAPES = {
    1: "equal_power",
    2: "exponential",
    3: "equal_power",
    4: "exponential",
    5: "equal_power",
    6: "equal_power",
    7: "linear",
}


def _fade(line: Line | None, where: str, ctx: _Context) -> tuple[float, str]:
    """FADEIN/FADEOUT ``shape? length autolength shape dir curve`` → (seconds, shape)."""
    length = max(_arg(line, 1, 0.0, ctx.file), 0.0)
    auto = max(_arg(line, 2, 0.0, ctx.file), 0.0)
    seconds = auto if auto > 0 else length
    shape = int(_arg(line, 3, 0.0, ctx.file))
    curve = _arg(line, 5, 0.0, ctx.file)
    if seconds <= 0:
        return 0.0, "linear"
    if shape == 0 and curve == 0:
        return seconds, "linear"
    name = _FADE_SHAPES.get(shape, "linear")
    assert line is not None
    ctx.add(
        "FADE_SHAPE_APPROXIMATED",
        where,
        "approximate",
        f"{line.tokens[0]} shape {shape} (curve {curve:g})",
        f"rendered as {name}",
    )
    return seconds, name


@dataclass
class _Placement:
    """One clip's samples: timeline start, file offset (file frames), length (session)."""

    start: int
    offset: int
    length: int
    item_time: int  # session samples since the item start


def _placements(
    item: Chunk, take: _Take, source: _Source, info: Any, where: str, ctx: _Context
) -> list[_Placement]:
    """Where the item's material lands: one placement, or one per loop pass."""
    f, rate, sr = ctx.file, ctx.sample_rate, info.samplerate
    position = _arg(item.first("POSITION"), 0, 0.0, f)
    total = round(_arg(item.first("LENGTH"), 0, 0.0, f) * rate)
    soffs = _arg(_first(take.children, "SOFFS"), 0, 0.0, f)
    w0 = min(round(source.start_seconds * sr), info.frames)
    w1 = info.frames
    if source.length_seconds is not None and source.length_seconds > 0:
        w1 = min(w1, w0 + round(source.length_seconds * sr))
    start, skip = round(position * rate), 0
    if start < 0:
        skip, start = -start, 0
    if w1 <= w0 or total - skip <= 0:
        return []
    looped = _arg(item.first("LOOP"), 0, 0.0, f) != 0
    if not looped:
        offset = round(soffs * sr) + round(skip * sr / rate)
        lead = 0
        if offset < 0:  # the item starts before its source: silence first
            lead, offset = round(-offset * rate / sr), 0
        available = math.floor((w1 - w0 - offset) * rate / sr)
        length = min(total - skip - lead, available)
        if length <= 0:
            return []
        return [_Placement(start + lead, w0 + offset, length, skip + lead)]
    return _loop_placements(start, skip, total, soffs, (w0, w1), sr, where, ctx)


def _loop_placements(
    start: int,
    skip: int,
    total: int,
    soffs: float,
    window: tuple[int, int],
    sr: int,
    where: str,
    ctx: _Context,
) -> list[_Placement]:
    """A looped item: the window from SOFFS to its end, then again from its start."""
    rate = ctx.sample_rate
    w0, w1 = window
    width = w1 - w0
    phase = (round(soffs * sr) + round(skip * sr / rate)) % width
    out: list[_Placement] = []
    done = skip
    while done < total and len(out) < _MAX_LOOP_SEGMENTS:
        available = math.floor((width - phase) * rate / sr)
        length = min(total - done, available)
        if length <= 0:
            break
        out.append(_Placement(start + done - skip, w0 + phase, length, done))
        done += length
        phase = 0
    if done < total:
        ctx.add(
            "LOOP_UNROLLED",
            where,
            "dropped",
            f"the loop repeats more than {_MAX_LOOP_SEGMENTS} times",
            f"the first {_MAX_LOOP_SEGMENTS} passes are rendered",
        )
    if len(out) > 1:
        effect: Effect = "none" if soffs == 0 else "approximate"
        ctx.add(
            "LOOP_UNROLLED",
            where,
            effect,
            f"a looped item ({len(out)} passes of its source)",
            "unrolled into consecutive clips"
            + (
                ""
                if soffs == 0
                else "; assumed: the first pass starts at the take offset, "
                "later passes at the source start"
            ),
        )
    return out


def _item_clips(
    item: Chunk, take: _Take, source: _Source, info: Any, where: str, ctx: _Context
) -> list[dict[str, Any]]:
    """The clips of one item with gain, fades, polarity and take envelope."""
    f, rate = ctx.file, ctx.sample_rate
    itemvol = _arg(item.first("VOLPAN"), 0, 1.0, f)
    take_pan, takevol = take.volpan
    gain = itemvol * takevol
    if gain == 0:
        return []
    if take_pan != 0:
        ctx.add(
            "TAKE_PAN",
            where,
            "approximate",
            f"the take is panned {take_pan:+.3f}",
            "rendered unpanned (the track pan still applies)",
        )
    if source.reverse:
        ctx.add(
            "UNSUPPORTED_ELEMENT",
            where,
            "approximate",
            "a reversed take (section MODE): the take offset is read from the file start",
            "rendered reversed",
        )
    placements = _placements(item, take, source, info, where, ctx)
    if not placements:
        return []
    fade_in, in_shape = _fade(item.first("FADEIN"), where, ctx)
    fade_out, out_shape = _fade(item.first("FADEOUT"), where, ctx)
    envelope = _take_envelope(take, where, ctx)
    clips: list[dict[str, Any]] = []
    for k, place in enumerate(placements):
        clip: dict[str, Any] = {
            "file": "",
            "start_seconds": place.start / rate,
            "offset_seconds": place.offset / info.samplerate,
            "duration_seconds": place.length / rate,
            "gain_db": gain_to_db(abs(gain)),
        }
        if source.reverse:
            clip["reverse"] = True
        first, last = k == 0, k == len(placements) - 1
        _clip_fades(
            clip,
            place.length,
            fade_in if first else 0.0,
            fade_out if last else 0.0,
            (in_shape, out_shape),
            where,
            ctx,
        )
        if envelope:
            clip["gain_envelope"] = _slice(envelope, place.item_time / rate, place.length / rate)
        if gain < 0:
            clip["_invert"] = True
        clips.append(clip)
    return clips


def _clip_fades(
    clip: dict[str, Any],
    length: int,
    fade_in: float,
    fade_out: float,
    shapes: tuple[str, str],
    where: str,
    ctx: _Context,
) -> None:
    rate = ctx.sample_rate
    n_in, n_out = round(fade_in * rate), round(fade_out * rate)
    if n_in + n_out > length:
        scale = length / (n_in + n_out)
        n_in, n_out = math.floor(n_in * scale), math.floor(n_out * scale)
        ctx.add(
            "FADE_SHAPE_APPROXIMATED",
            where,
            "approximate",
            "the fades are longer than the clip",
            "shortened in proportion to fit",
        )
    if n_in:
        clip["fade_in_seconds"] = n_in / rate
        clip["fade_in_shape"] = shapes[0]
    if n_out:
        clip["fade_out_seconds"] = n_out / rate
        clip["fade_out_shape"] = shapes[1]


def _take_envelope(take: _Take, where: str, ctx: _Context) -> list[tuple[float, float]]:
    """The active take's VOLENV as dB points over item time; other take envelopes reported."""
    points: list[tuple[float, float]] = []
    for chunk in take.children:
        if not isinstance(chunk, Chunk) or not chunk.tag.endswith("ENV"):
            continue
        env = _envelope(chunk, f"{where} › {chunk.tag}", ctx)
        if env is None:
            continue
        if chunk.tag != "VOLENV" or env.fader_scaled:
            ctx.add(
                "AUTOMATION_UNSUPPORTED",
                f"{where} › {chunk.tag}",
                "approximate",
                f"an active take envelope {chunk.tag}"
                + (" (fader-scaled)" if env.fader_scaled else ""),
                "left out",
            )
            continue
        if env.interpolation == "hold":  # clip envelopes ramp: steps become jumps
            stepped = [env.points[0]]
            for t, v in env.points[1:]:
                stepped.extend([(t, stepped[-1][1]), (t, v)])
            env = _Envelope(stepped, "linear", env.curved, False)
        lane = _gain_lane(env, f"{where} › take volume", 0.0, ctx)
        points = [(t, v) for t, v in lane]
    return points


def _slice(points: list[tuple[float, float]], t0: float, length: float) -> list[list[float]]:
    """A dB-linear envelope cut to ``[t0, t0 + length]`` and shifted to start at 0."""

    def value_at(t: float) -> float:
        if t <= points[0][0]:
            return points[0][1]
        for (ta, va), (tb, vb) in zip(points, points[1:], strict=False):
            if ta <= t <= tb:
                return va if tb == ta else va + (vb - va) * (t - ta) / (tb - ta)
        return points[-1][1]

    t1 = t0 + length
    inside = [[t - t0, v] for t, v in points if t0 < t < t1]
    return [[0.0, value_at(t0)], *inside, [length, value_at(t1)]]


# -- the session ---------------------------------------------------------------------------------


def _assemble(
    kept: list[_Route], routes: list[_Route], ctx: _Context, settings: dict[str, Any]
) -> dict[str, Any]:
    """Name the kept routes and write tracks and buses (implicit child tracks for folders)."""
    track_names = RouteNames(ctx.report, "track")
    bus_names = RouteNames(ctx.report, "bus")
    for r in kept:
        r.name = (bus_names if r.bus else track_names).take(r.label, f"Track {r.index + 1}")
        if r.bus and r.clips:
            r.child_name = track_names.take(r.name, r.name)
    tracks: list[dict[str, Any]] = []
    buses: list[dict[str, Any]] = []
    for r in kept:
        strip = _strip(r, routes)
        if not r.bus:
            strip["clips"] = r.clips
            tracks.append(strip)
            continue
        buses.append(strip)
        if r.clips:
            ctx.add(
                "FOLDER_WITH_CLIPS",
                r.label,
                "none",
                f"the folder or receiving track has {len(r.clips)} clips of its own",
                f"an implicit track {r.child_name!r} holds them and feeds the bus",
            )
            tracks.append(
                {"name": r.child_name, "clips": r.clips, "output": r.name, "pan_law": "balance"}
            )
    return {
        "stemprint": 1,
        "name": Path(ctx.file).stem or "Untitled",
        "sample_rate": ctx.sample_rate,
        **settings,
        "tracks": tracks,
        "buses": buses,
    }


def _strip(r: _Route, routes: list[_Route]) -> dict[str, Any]:
    out = r.output
    strip: dict[str, Any] = {
        "name": r.name,
        "gain_db": r.gain_db,
        "pan": r.pan,
        "pan_law": r.pan_law,
        "mute": r.mute,
        "solo": False,
        "invert_polarity": r.invert,
        "inserts": r.inserts,
        "output": routes[out].name if isinstance(out, int) else out,
        "sends": [],
        "automation": list(r.lanes.values()),
    }
    merged: dict[tuple[str, bool, bool, float, bool], dict[str, Any]] = {}
    for send in r.sends:
        target = routes[send.target].name
        key = (target, send.pre_fader, send.pre_inserts, send.pan, send.invert)
        if key in merged and send.lane is None:
            # Two identical taps to one bus: their gains add.
            total = 10 ** (merged[key]["level_db"] / 20) + 10 ** (send.level_db / 20)
            merged[key]["level_db"] = gain_to_db(total)
            continue
        if any(s["to"] == target for s in strip["sends"]):
            continue  # a second, different send to the same bus: reported below
        entry: dict[str, Any] = {
            "to": target,
            "level_db": send.level_db,
            "pre_fader": send.pre_fader,
            "pan": send.pan,
        }
        if send.pre_inserts:
            entry["pre_inserts"] = True
        if send.invert:
            entry["invert_polarity"] = True
        merged[key] = entry
        strip["sends"].append(entry)
        if send.lane is not None:
            strip["automation"].append(
                {
                    "param": f"send:{target}",
                    "interpolation": send.lane_interpolation,
                    "points": [list(p) for p in send.lane],
                }
            )
    return strip


def _master(root: Chunk, ctx: _Context) -> dict[str, Any]:
    """MASTER_VOLUME, MASTERMUTESOLO, MASTERFXLIST and master envelopes."""
    volume = root.first("MASTER_VOLUME")
    master = _Route(index=-1, label="master")
    master.gain_db = gain_to_db(_arg(volume, 0, 1.0, ctx.file))
    master.pan = max(-1.0, min(1.0, _arg(volume, 1, 0.0, ctx.file)))
    flags = int(_arg(root.first("MASTERMUTESOLO"), 0, 0.0, ctx.file))
    if flags & 4:
        ctx.add(
            "UNSUPPORTED_ELEMENT",
            "master",
            "approximate",
            "the master is set to mono",
            "rendered in stereo",
        )
    if master.pan != 0:
        ctx.add(
            "PAN_LAW_ASSUMED",
            "master",
            "approximate",
            f"the master is panned {master.pan:+.3f}",
            "read as a stereo balance",
        )
    fx = root.chunk("MASTERFXLIST")
    fx_on = _arg(root.first("MASTER_FX"), 0, 1.0, ctx.file) != 0
    inserts = _fx_chain(fx, "master", fx_on, ctx) if fx is not None else []
    automode = int(_arg(root.first("MASTERAUTOMODE"), 0, 0.0, ctx.file))
    lanes: list[dict[str, Any]] = []
    for chunk in root.children:
        if (
            isinstance(chunk, Chunk)
            and chunk.tag.startswith("MASTER")
            and (chunk.tag.endswith(("ENV", "ENV2")))
        ):
            env = _envelope(chunk, f"master › {chunk.tag}", ctx)
            if env is not None:
                lane = _strip_lane(
                    chunk.tag, env, master, automode == 0, f"master › {chunk.tag}", ctx
                )
                if lane is not None:
                    lanes.append(lane)
    return {
        "gain_db": master.gain_db,
        "pan": master.pan,
        "mute": bool(flags & 1),
        "inserts": inserts,
        "automation": lanes,
    }
