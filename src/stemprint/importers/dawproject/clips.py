"""The arrangement: clips, nested clips, warps, loops and fades flattened into content.

- Every position is converted to seconds through the tempo map before it is written; nested
  clips are flattened into plain clips, loops unrolled, so the session never needs a grid.
- Loop iteration ``k`` of a clip looping ``[Ls, Le)``: content offset ``offset + k·(Le − Ls)``;
  at most :data:`MAX_LOOP_ITERATIONS` repeats of one clip are unrolled.
- A warp map is an identity (plain placement) when each segment's content span equals its
  project-time span within a relative tolerance of :data:`IDENTITY_REL_TOL`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element

from stemprint.importers.dawproject.reader import (
    _EPS,
    AutoPoint,
    Content,
    Piece,
    _bool,
    _Reader,
    _Strip,
)
from stemprint.importers.dawproject.time import Ctx

IDENTITY_REL_TOL = 1e-5
"""Relative tolerance of the identity-warp test (Bitwig writes float32-rounded positions)."""

MAX_LOOP_ITERATIONS = 4096
"""Cap on the unrolled repeats of one looped clip."""


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
