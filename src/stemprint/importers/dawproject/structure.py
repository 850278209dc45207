"""The structure: tracks and channels → strips, their kind, routing, sends and strip data.

- Routing follows ``destination`` IDREFs (never the nesting, which only supplies a default):
  the project master is the first top-level ``master``-role channel without a destination; any
  other channel that is a destination, or has role ``master`` (a group), ``submix`` or
  ``effect``, is a bus. A bus whose track holds clips gets an implicit child track.
- A send or output that would close a routing cycle is reported and left out.
"""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element

from stemprint.importers.common import RouteNames
from stemprint.importers.dawproject.automation import _Params
from stemprint.importers.dawproject.devices import _devices
from stemprint.importers.dawproject.params import _pan_value, _volume_db
from stemprint.importers.dawproject.reader import _bool, _Reader, _Strip
from stemprint.importers.report import Effect

_BUS_ROLES = ("master", "submix", "effect")


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
    data: dict[str, Any] = {"name": s.route, **_fader_data(reader, ch, s.name)}
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
    _fader_params(params, ch)
    data["output"] = _output(reader, s, by_cid, master)
    return data


def _fader_data(reader: _Reader, ch: Element, where: str) -> dict[str, Any]:
    """A channel's inserts, fader and pan (each only when not the default), read in that
    order (the import report's findings follow it)."""
    data: dict[str, Any] = {}
    inserts, _instruments = _devices(reader, ch, where)
    gain_db = _volume_db(reader, ch.find("Volume"), where)
    pan = _pan_value(ch.find("Pan"))
    if inserts:
        data["inserts"] = inserts
    if gain_db != 0.0:
        data["gain_db"] = gain_db
    if pan != 0.0:
        data["pan"] = pan
    return data


def _fader_params(params: _Params, ch: Element) -> None:
    """The automatable fader parameters of a channel: volume, pan, mute."""
    params.add(ch.find("Volume"), "gain_db")
    params.add(ch.find("Pan"), "pan")
    params.add(ch.find("Mute"), "mute")


def _name_routes(reader: _Reader, strips: list[_Strip]) -> None:
    tracks, buses = RouteNames(reader.report, "track"), RouteNames(reader.report, "bus")
    for s in strips:
        if s.kind == "track":
            s.route = tracks.take(s.name, "Track")
        elif s.kind == "bus":
            s.route = buses.take(s.name, "Bus")
    reader.track_names = tracks


def _track_pan_finding(reader: _Reader, s: _Strip, data: dict[str, Any]) -> None:
    mono = bool(s.content_flat.pieces) and all(p.channels == 1 for p in s.content_flat.pieces)
    automated = any(lane["param"] == "pan" for lane in data.get("automation", []))
    _pan_law_finding(reader, s.name, data.get("pan", 0.0), data["pan_law"], mono, automated)


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
