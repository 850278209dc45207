"""Project settings, the tempo map and the assembled session dict (format 1) of an ``.rpp``.

- Positions and lengths are seconds; a session sample is ``round(seconds × sample_rate)``.
- ``SAMPLERATE`` outside 8000–768000 Hz reads as 48000; ``PANLAW`` (a gain, default 1 = 0 dB)
  and ``PANMODE`` are kept on the context for the tracks.
- Tempo changes (``TEMPOENVEX``) are only reported: positions are seconds already, only the grid
  would change.
- Every kept route becomes a track (it has clips) or a bus; the master strip reads the
  ``MASTER_*`` lines, the master envelopes and the master FX chain.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from stemprint.importers.common import MediaResolver, RouteNames, gain_to_db
from stemprint.importers.report import ImportReport
from stemprint.importers.rpp.context import _DEFAULT_PANLAW, _arg, _Context, _Route
from stemprint.importers.rpp.envelopes import _envelope, _strip_lane
from stemprint.importers.rpp.fx import _fx_chain
from stemprint.importers.rpp.tokens import Chunk


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
