"""Channel layouts in the graph: each node's layouts, each edge's conversion, what is refused.

Rules (``dsp.layouts`` has the matrices and the panner)
-------------------------------------------------------
- A node's ``layout`` is its own signal's: a track's source (mono or stereo), a bus's or the
  master's declared layout. Its inserts run on that many channels.
- Its ``post_layout`` (after fader and pan): a mono or stereo route outputting into a 5.1/7.1
  bus is panned into that layout by the surround panner (its ``pan``, or ``surround:``); into a
  mono bus it is summed to mono (pan has no meaning there); a surround route stays in its own
  layout; everything else is stereo, as the contract's pan laws make it.
- Every edge converts the tapped signal (``post_layout`` for post-fader taps, ``layout`` for
  pre-fader and pre-FX taps) into the receiving node's layout with ``dsp.layouts.convert``
  (BS.775 fold-down, or placement without invention). An LFE send feeds only the receiver's LFE
  channel. Key edges carry the key as it is (the detector links every channel).
- Refused, with the route, the field and the fix: an insert that is not safe above two channels
  on a surround or multichannel route (pedalboard runs each channel on its own: dynamics would be
  unlinked, and ``reverb`` returns its input unchanged above two channels); a pan on a surround
  route or a non-stereo master; pan automation into a surround bus; a send pan into a bus that
  is not stereo; an LFE send into a bus without an LFE channel.
"""

from __future__ import annotations

from dataclasses import replace

from stemprint.dsp.layouts import (
    SURROUND_LAYOUTS,
    channel_count,
    pan_to_azimuth,
    surround_pan_matrix,
)
from stemprint.graph.types import Edge, Node
from stemprint.model.load import LoadedSession
from stemprint.model.session import Bus, Master, Track

MULTICHANNEL_SAFE = frozenset(
    {
        "gain", "invert", "highpass_filter", "lowpass_filter", "high_shelf_filter",
        "low_shelf_filter", "peak_filter", "ladder_filter", "iir_filter", "delay",
        "sample_delay", "sidechain_compressor", "convolution", "resample",
    }
)  # fmt: skip
"""Insert types that process more than two channels correctly (each channel the same linear
processing, or stemprint's own channel-linked compressor)."""


def resolve_layouts(loaded: LoadedSession, nodes: dict[str, Node]) -> dict[str, Node]:
    """Every node with its layouts and surround panner, every edge with its conversion."""
    strips = _strips(loaded)
    with_layout = {key: _with_layouts(node, nodes, strips) for key, node in nodes.items()}
    for node in with_layout.values():
        _check(loaded, node, strips.get(node.key))
    return {
        key: replace(
            node,
            inputs=tuple(_edge(e, with_layout, node, loaded) for e in node.inputs),
            keys=tuple(_key_edge(e, with_layout) for e in node.keys),
        )
        for key, node in with_layout.items()
    }


def _strips(loaded: LoadedSession) -> dict[str, Track | Bus | Master]:
    session = loaded.session
    found: dict[str, Track | Bus | Master] = {f"track:{t.name}": t for t in session.tracks}
    found.update({f"bus:{b.name}": b for b in session.buses})
    found["master"] = session.master
    return found


def _own_layout(node: Node, strip: Track | Bus | Master | None) -> str:
    if node.kind == "track":
        return "mono" if node.channels == 1 else "stereo"
    return getattr(strip, "layout", "stereo")


def _with_layouts(
    node: Node, nodes: dict[str, Node], strips: dict[str, Track | Bus | Master]
) -> Node:
    strip = strips.get(node.key)
    layout = _own_layout(node, strip)
    target = nodes.get(node.output) if node.output is not None else None
    target_layout = _own_layout(target, strips.get(target.key)) if target else "stereo"
    surround = None
    if node.kind == "master" or layout in SURROUND_LAYOUTS:
        post = layout
    elif target_layout in SURROUND_LAYOUTS:
        post = target_layout
        settings = getattr(strip, "surround", None)
        azimuth = settings.azimuth_deg if settings and settings.azimuth_deg is not None else None
        surround = surround_pan_matrix(
            post,
            channel_count(layout),
            pan_to_azimuth(node.pan) if azimuth is None else azimuth,
            settings.divergence if settings else 0.0,
            settings.use_center if settings else True,
            settings.width_deg if settings else 60.0,
        )
    elif target_layout == "mono":
        post = "mono"
    else:
        post = "stereo"
    return replace(
        node, layout=layout, post_layout=post, surround=surround, channels=channel_count(layout)
    )


def _edge(edge: Edge, nodes: dict[str, Node], target: Node, loaded: LoadedSession) -> Edge:
    source = nodes[edge.source]
    tapped = source.post_layout if edge.tap == "post_fader" else source.layout
    if edge.lfe and "LFE" not in _names(target.layout):
        raise loaded.error(
            f"{source.name!r} has an LFE send to {target.name!r}, whose layout "
            f"({target.layout}) has no LFE channel",
            _location(loaded, source, "sends"),
            fix='send the LFE to a "5.1" or "7.1" bus, or remove `lfe: true`',
        )
    if edge.pan != 0.0 and target.layout != "stereo":
        raise loaded.error(
            f"{source.name!r} pans its send to {target.name!r}, a {target.layout} bus; send "
            "pan is a stereo balance",
            _location(loaded, source, "sends"),
            fix="set the send's pan to 0",
        )
    return replace(edge, source_layout=tapped, target_layout=target.layout)


def _key_edge(edge: Edge, nodes: dict[str, Node]) -> Edge:
    source = nodes[edge.source]
    tapped = source.post_layout if edge.tap == "post_fader" else source.layout
    return replace(edge, source_layout=tapped, target_layout=tapped)


def _names(layout: str) -> tuple[str, ...]:
    from stemprint.dsp.layouts import LAYOUT_CHANNELS

    return LAYOUT_CHANNELS[layout]


def _location(loaded: LoadedSession, node: Node, field: str) -> tuple[str | int, ...]:
    session = loaded.session
    if node.kind == "master":
        return ("master", field)
    routes = session.tracks if node.kind == "track" else session.buses
    index = next(i for i, r in enumerate(routes) if r.name == node.name)
    return ("tracks" if node.kind == "track" else "buses", index, field)


def _check(loaded: LoadedSession, node: Node, strip: Track | Bus | Master | None) -> None:
    if node.channels > 2:
        for index, spec in enumerate(node.inserts):
            if spec.type not in MULTICHANNEL_SAFE:
                raise loaded.error(
                    f"insert {spec.type!r} on {node.kind} {node.name!r} cannot process its "
                    f"{node.layout} layout: pedalboard runs each channel on its own"
                    + (
                        " (reverb returns its input unchanged above two channels)"
                        if spec.type == "reverb"
                        else " (dynamics would not be linked across channels)"
                        if spec.type in _DYNAMICS
                        else ""
                    ),
                    (*_location(loaded, node, "inserts"), index),
                    fix=_alternative(spec.type),
                )
    surround_pan = node.layout in SURROUND_LAYOUTS or (
        node.kind == "master" and node.layout != "stereo"
    )
    if surround_pan and node.pan != 0.0:
        raise loaded.error(
            f"{node.kind} {node.name!r} is {node.layout}: pan has no meaning there",
            _location(loaded, node, "pan"),
            fix="set pan to 0; pan the sources into the bus (pan or surround:)",
        )
    if node.surround is not None and "pan" in node.automation:
        raise loaded.error(
            f"{node.name!r} automates its pan into a {node.post_layout} bus, which the surround "
            "panner does not follow yet",
            _location(loaded, node, "automation"),
            fix="set a fixed pan or surround azimuth, or print the move in the DAW",
        )


_DYNAMICS = frozenset({"compressor", "limiter", "noise_gate", "expander", "brickwall_limiter"})


def _alternative(kind: str) -> str:
    if kind in _DYNAMICS:
        return (
            "use `sidechain_compressor` (stemprint's own, linked across every channel), or "
            "move the insert to the mono or stereo routes that feed this bus"
        )
    if kind == "reverb":
        return (
            "put the reverb on a stereo return and send to it (a stereo return folds into "
            "the 5.1 bus on L and R), or use `convolution` with an impulse response"
        )
    return "inserts that work above two channels: " + ", ".join(sorted(MULTICHANNEL_SAFE))
