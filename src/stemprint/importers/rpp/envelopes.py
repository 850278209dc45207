"""Track, send, master and take envelopes → session gain and pan lanes.

- Envelopes (``PT time value shape``): shape 1 (square) holds, others ramp. Volume envelopes ramp
  linearly in gain and are densified into dB-linear points (``gain_points_to_db``). In the
  default ``AUTOMODE 0`` (trim/read) the fader is a trim on top of the envelope
  (``gain_db(t) = env_db(t) + fader_db``); in the other modes the envelope alone sets the gain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stemprint.importers.common import SILENT_DB, gain_points_to_db
from stemprint.importers.report import Effect
from stemprint.importers.rpp.context import _arg, _Context, _Route, _Send
from stemprint.importers.rpp.tokens import Chunk

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
