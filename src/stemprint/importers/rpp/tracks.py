"""REAPER tracks → routes: the folder tree, receives, main outputs, cycles and pan laws.

- ``<TRACK`` chunks form one flat list; ``ISBUS state delta`` adds ``delta`` to the folder depth
  after the track (``1 1`` opens a folder, ``2 -n`` closes ``n``). A folder parent is a bus; so is
  every track that receives. A bus with items of its own gets an implicit child track of the same
  name (``FOLDER_WITH_CLIPS``).
- ``MAINSEND 1`` feeds the parent folder (the master at the top level). ``MAINSEND 0`` feeds only
  the track's sends: ``output: null`` in the session.
- ``AUXRECV src mode vol pan mute mono phase srcch dstch …`` on a track is a send *from* track
  ``src``: mode 0 post-fader, 1 pre-FX (``pre_inserts``), 2/3 pre-fader; ``level_db =
  20·log10(vol)``; ``pan`` a balance.
- ``VOLPAN vol pan``: ``gain_db = 20·log10(vol)``.
- Pan law: ``PANLAW`` (project) or ``VOLPAN`` field 3 (track, −1 = project) is a gain:
  1 (0 dB) → ``balance``; √½ (−3 dB) → ``constant_power``; others the nearest, reported.
"""

from __future__ import annotations

import math

from stemprint.importers.common import gain_to_db
from stemprint.importers.rpp.context import MASTER, _arg, _Context, _Route, _Send, _text
from stemprint.importers.rpp.envelopes import _send_envelope, _track_envelopes
from stemprint.importers.rpp.fx import _fx_chain
from stemprint.importers.rpp.items import _read_item
from stemprint.importers.rpp.tokens import Chunk, Line

_MINUS_3_DB = math.sqrt(0.5)


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
