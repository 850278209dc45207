"""REAPER items → clips: takes, sources, fades, loops and take envelopes.

- Positions and lengths (``POSITION``, ``LENGTH``, ``SOFFS``) are seconds; a session sample is
  ``round(seconds × sample_rate)``. ``LOOP 1`` is unrolled: the source plays from ``SOFFS`` to its
  end, then again from its start (assumed), into consecutive clips (at most
  :data:`_MAX_LOOP_SEGMENTS`).
- Item gain is ``itemvol × |takevol|`` (a negative take volume inverts the polarity);
  ``gain_db = 20·log10(g)``.
- Every clip ``file`` is an absolute path; every media path used is in ``report.media``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stemprint.importers.common import gain_to_db
from stemprint.importers.report import Effect
from stemprint.importers.rpp.context import _arg, _Context, _first, _float, _Route, _sub, _text
from stemprint.importers.rpp.envelopes import _Envelope, _envelope, _gain_lane
from stemprint.importers.rpp.tokens import Chunk, Line

_AUDIO_SOURCES = {"WAVE", "FLAC", "MP3", "VORBIS", "OPUS", "AIFF"}
_MAX_LOOP_SEGMENTS = 4096


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
