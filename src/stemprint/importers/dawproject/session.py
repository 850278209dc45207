"""The whole project: master, routes, implicit tracks and the session dict (format 1).

- The session rate is that of the media, else :data:`DEFAULT_SAMPLE_RATE`.
- A bus whose track holds clips gets an implicit child track; clip paths are absolute.
- Everything the DAW would play and the session cannot is a finding; nothing is dropped silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

from stemprint.errors import ProjectError
from stemprint.importers.dawproject.automation import _automation, _Params
from stemprint.importers.dawproject.clips import _arrangement, _clips, _Flattener
from stemprint.importers.dawproject.devices import _plugin_details
from stemprint.importers.dawproject.reader import AutoPoint, _bool, _label, _Reader, _Strip
from stemprint.importers.dawproject.structure import (
    _break_cycles,
    _classify,
    _fader_data,
    _fader_params,
    _name_routes,
    _pan_law_finding,
    _strip_data,
    _track_pan_finding,
    _vca_finding,
    _walk_structure,
)

DEFAULT_SAMPLE_RATE = 48000
"""Session rate when no media states one."""


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


def _master_data(
    reader: _Reader, master: _Strip | None, points: dict[str, list[AutoPoint]]
) -> dict[str, Any]:
    if master is None:
        return {}
    ch = master.channel
    data = _fader_data(reader, ch, "master")
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
    _fader_params(params, ch)
    lanes = _automation(reader, params, points, reader.point_units, "master")
    if lanes:
        data["automation"] = lanes
    pan = float(data.get("pan", 0.0))
    if pan != 0.0 or any(lane["param"] == "pan" for lane in lanes):
        _pan_law_finding(reader, "master", pan, "balance", False, True)
    return data


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
