"""Regions: a named part of the timeline rendered as its own package.

Invariants
----------
- A region renders from its start for its length plus the delivery's tail (a fixed tail only);
  a cutdown (``fade_out_seconds``) is exactly the region's length with a linear end fade; a loop
  wraps the tail that rings past its end onto its start, so the file plays back to back like the
  session looping that region.
- A region is pre-rolled from timeline 0 (``RenderExtent.preroll_samples``): what plays before
  it feeds its reverbs, delays and dynamics, so its files are the same samples as that part of
  the full render (tested), never a cold start.
"""

from __future__ import annotations

from dataclasses import dataclass

from stemprint.errors import InputError
from stemprint.graph.outputs import ResolvedDelivery
from stemprint.graph.types import RenderExtent
from stemprint.model.load import LoadedSession


@dataclass(frozen=True)
class Region:
    """A region resolved for rendering.

    Attributes
    ----------
    name
        The region's name.
    start_sample, length_samples
        Where it starts on the timeline and how long it is.
    render_samples
        What is rendered: the region plus the tail, or exactly the region for a cutdown.
    loop
        Wrap the tail that rings past the end onto the start.
    fade_out
        ``(first sample, length)`` of a cutdown's linear end fade, or ``None``.
    """

    name: str
    start_sample: int
    length_samples: int
    render_samples: int
    loop: bool
    fade_out: tuple[int, int] | None

    def extent(self) -> RenderExtent:
        """The render extent, pre-rolled from the session's start: plug-in, reverb and delay
        state at the region's start is what it is in the full render (a warm start)."""
        return RenderExtent(self.start_sample, self.render_samples, None, self.start_sample)


def resolve_region(
    loaded: LoadedSession, name: str, delivery: ResolvedDelivery, rate: int
) -> Region:
    """Resolve a region for rendering; its tail policy, loop and cutdown fade."""
    session = loaded.session
    choices = ", ".join(repr(r.name) for r in session.regions) or "none defined"
    definition = next((r for r in session.regions if r.name == name), None)
    if definition is None:
        raise InputError(f"no region named {name!r}", field="--region", fix=f"regions: {choices}")
    tempo = session.tempo_map()
    start, end = tempo.sample(definition.start), tempo.sample(definition.end)
    if end <= start:
        raise InputError(
            f"region {name!r} ends before it starts", file=str(loaded.path), field="regions"
        )
    if delivery.tail.mode != "fixed":
        raise InputError(
            "regions are rendered with a fixed tail",
            field="delivery.tail",
            fix="use {mode: fixed, seconds: N} with regions",
        )
    length = end - start
    tail = round((delivery.tail.seconds or 0.0) * rate)
    fade = round(definition.fade_out_seconds * rate)
    if definition.loop and (delivery.sample_rate not in (None, rate) or delivery.format == "flac"):
        raise InputError(
            f"loop region {name!r} must be delivered as WAV or AIFF at the session rate",
            field="delivery",
            fix="drop sample_rate / use wav or aiff for loops",
        )
    if fade > length:
        raise InputError(f"region {name!r}: the fade-out is longer than the region")
    # A cutdown (end fade) is exactly the region; a loop wraps its tail; else region + tail.
    render = length if fade else length + tail
    return Region(
        name,
        start,
        length,
        render,
        definition.loop and not fade,
        (length - fade, fade) if fade else None,
    )
