"""What a render prints: the delivery (presets, stems, tap points, returns, alternate mixes,
multitracks) resolved into output taps on the compiled graph.

A stem is defined by a set of *tracks* (a bus in a stem definition stands for every track that
outputs into it) and the master inputs it *owns*. Its file is the sum, over the owned master
inputs, of those routes rendered from the stem's tracks only. When a bus or return is fed by
tracks of several stems, it is rendered once per stem from that stem's tracks, in the same pass
(``render.engine`` instances): with linear inserts the stems still sum to the mix; where a split
bus has non-linear inserts (a compressor) the manifest says so.

Presets (sources in ``shared/reference/delivery-specs.md``; README):

==============  ==============================================================================
``mastering``   post-fader stems, returns separate, 24-bit, stem peaks checked against −3 dBFS
``mixing``      wet stems, returns split (each stem carries its share of the reverb)
``remix``       every stem wet and dry, returns split
``sync``        stems + instrumental + a cappella + TV mix (vocal routes found by name)
``multitrack``  every track on its own file (post-fader), no stems
``performance`` each stem alone through the master chain, peaks checked against −3 dBFS
==============  ==============================================================================
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Literal

from stemprint.errors import SessionError
from stemprint.graph.compile import Node, RenderGraph
from stemprint.model.load import LoadedSession
from stemprint.model.session import MASTER, Delivery, StemDef, TailPolicy

OutputRole = Literal["mix", "premaster", "stem", "alt_mix", "track"]
OutputKind = Literal["master_out", "master_in", "contribution", "pre_sum", "track_source", "post"]

PRESETS: dict[str, dict[str, object]] = {
    "mastering": {"tap": "post_fader", "returns": "separate", "bit_depth": "24",
                  "peak_limit_dbfs": -3.0},
    "mixing": {"tap": "post_fader", "returns": "split"},
    "remix": {"tap": "post_fader", "returns": "split", "wet_and_dry": True},
    "sync": {"tap": "post_fader", "returns": "separate"},
    "multitrack": {"multitrack": "post_fader", "stems": False},
    "performance": {"tap": "via_master", "returns": "split", "peak_limit_dbfs": -3.0},
}  # fmt: skip

#: Insert types whose output is linear in their input (superposition holds), so a bus split by
#: stems still sums back exactly. A sidechain compressor keyed from another route is linear in
#: its main input (its gain depends on the key only).
LINEAR_TYPES = frozenset(
    {
        "gain", "invert", "highpass_filter", "lowpass_filter", "high_shelf_filter",
        "low_shelf_filter", "peak_filter", "iir_filter", "reverb", "delay", "convolution",
        "chorus", "phaser", "sample_delay", "resample",
    }
)  # fmt: skip

VOCAL_PATTERN = re.compile(r"vox|vocal|voice|vocs|lead ?v", re.IGNORECASE)


@dataclass(frozen=True)
class ResolvedDelivery:
    """The delivery with the preset applied and every field concrete."""

    preset: str | None
    tap: str
    returns: str
    wet_and_dry: bool
    multitrack: str | None
    stems: bool
    tail: TailPolicy
    format: str
    bit_depth: str
    sample_rate: int | None
    mono_stems: bool
    peak_limit_dbfs: float | None
    file_name: str


@dataclass(frozen=True)
class OutputSpec:
    """One output file of a render, as a tap on the graph.

    Attributes
    ----------
    key
        Unique key: ``mix``, ``premaster``, ``stem:<name>``, ``mix:<name>``, ``track:<name>``.
    role
        ``mix``, ``premaster``, ``stem``, ``alt_mix`` or ``track`` (multitrack).
    kind
        How the engine computes it: ``master_out`` (a master instance's output),
        ``master_in`` (a master instance's input sum), ``contribution`` (owned master inputs of
        a variant), ``pre_sum`` (routes' pre-fader signals), ``post`` (one route's post-fader
        output), ``track_source`` (a track's clips, before its strip).
    tracks
        Active tracks (node keys) of the variant; ``None`` for the full session.
    dry
        Inserts bypassed and sends dropped.
    owned
        ``contribution``: master-input routes (node keys) summed.
    routes
        Node keys printed in (for the manifest) or summed (``pre_sum``, ``post``).
    tap_point
        ``post_fader``, ``pre_fader``, ``dry``, ``via_master`` (stems), or ``master``.
    channels
        File channels.
    nonlinear_splits
        Buses split by this output whose inserts are not linear (the sum will not null).
    """

    key: str
    role: OutputRole
    name: str
    kind: OutputKind
    tracks: frozenset[str] | None = None
    dry: bool = False
    owned: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()
    tap_point: str = "post_fader"
    channels: int = 2
    nonlinear_splits: tuple[str, ...] = ()
    sums_to_premaster: bool = False


@dataclass
class OutputPlan:
    """Every output of a render and the delivery it came from."""

    delivery: ResolvedDelivery
    outputs: list[OutputSpec]
    warnings: list[str] = field(default_factory=list)


def resolve_delivery(delivery: Delivery, tail_seconds: float) -> ResolvedDelivery:
    """Apply the preset; explicit fields win over it."""
    preset = PRESETS.get(delivery.preset or "", {})

    def pick(name: str, default: object) -> object:
        value = getattr(delivery, name)
        return value if value is not None else preset.get(name, default)

    tail = delivery.tail or TailPolicy(seconds=tail_seconds)
    if tail.seconds is None:
        tail = tail.model_copy(update={"seconds": tail_seconds})
    return ResolvedDelivery(
        preset=delivery.preset,
        tap=str(pick("tap", "post_fader")),
        returns=str(pick("returns", "separate")),
        wet_and_dry=bool(pick("wet_and_dry", False)),
        multitrack=pick("multitrack", None),  # type: ignore[arg-type]
        stems=bool(pick("stems", True)),
        tail=tail,
        format=str(pick("format", "wav")),
        bit_depth=str(pick("bit_depth", "24")),
        sample_rate=pick("sample_rate", None),  # type: ignore[arg-type]
        mono_stems=bool(pick("mono_stems", False)),
        peak_limit_dbfs=pick("peak_limit_dbfs", None),  # type: ignore[arg-type]
        file_name=str(pick("file_name", "{stem}")),
    )


class _Routing:
    """Route look-ups on the compiled graph: feeders, returns, pattern matching."""

    def __init__(self, graph: RenderGraph, loaded: LoadedSession) -> None:
        self.graph = graph
        self.loaded = loaded
        self.nodes = graph.by_key
        self.audible_tracks = frozenset(
            n.key for n in graph.nodes if n.kind == "track" and n.audible
        )

    def output_feeders(self, key: str) -> frozenset[str]:
        """Audible tracks whose audio reaches ``key`` through outputs only (not sends)."""
        node = self.nodes[key]
        if node.kind == "track":
            return frozenset({key}) & self.audible_tracks
        found: set[str] = set()
        for edge in node.inputs:
            if edge.kind == "output":
                found |= self.output_feeders(edge.source)
        return frozenset(found)

    def is_return(self, key: str) -> bool:
        """A bus fed by at least one send."""
        return any(e.kind == "send" for e in self.nodes[key].inputs)

    def match(self, pattern: str, where: str) -> list[str]:
        """Node keys of tracks and buses matching a name or pattern (``track:``/``bus:`` ok)."""
        kinds: tuple[str, ...] = ("track", "bus")
        if pattern.startswith(("track:", "bus:")):
            kind, pattern = pattern.split(":", 1)
            kinds = (kind,)
        found = [
            n.key
            for n in self.graph.nodes
            if n.kind in kinds and fnmatch.fnmatchcase(n.name, pattern)
        ]
        if not found:
            names = ", ".join(repr(n.name) for n in self.graph.nodes if n.kind != "master")
            raise SessionError(
                f"{pattern!r} matches no track or bus",
                file=str(self.loaded.path),
                field=where,
                fix=f"use a route name or pattern; routes: {names}",
            )
        return found

    def tracks_of(self, patterns: list[str], where: str) -> frozenset[str]:
        tracks: set[str] = set()
        for pattern in patterns:
            for key in self.match(pattern, where):
                tracks |= self.output_feeders(key)
        return frozenset(tracks)

    def nonlinear_splits(self, tracks: frozenset[str], owned: tuple[str, ...]) -> tuple[str, ...]:
        """Buses on the way to ``owned`` that ``tracks`` would split and that are not linear."""
        found: list[str] = []
        seen: set[str] = set()

        def all_feeders(key: str) -> frozenset[str]:
            node = self.nodes[key]
            if node.kind == "track":
                return frozenset({key}) & self.audible_tracks
            out: set[str] = set()
            for edge in node.inputs:
                out |= all_feeders(edge.source)
            return frozenset(out)

        def visit(key: str) -> None:
            if key in seen:
                return
            seen.add(key)
            node = self.nodes[key]
            feeders = all_feeders(key)
            share = feeders & tracks
            if node.kind != "track" and share and share != feeders:
                if any(s.type not in _linear_types(s) for s in node.inserts):
                    found.append(node.name)
            for edge in node.inputs:
                visit(edge.source)

        for key in owned:
            visit(key)
        return tuple(found)


def _linear_types(spec: object) -> frozenset[str]:
    # A keyed sidechain compressor is linear in its main input.
    if getattr(spec, "type", "") == "sidechain_compressor" and getattr(spec, "sidechain", None):
        return LINEAR_TYPES | {"sidechain_compressor"}
    return LINEAR_TYPES


def plan_outputs(
    loaded: LoadedSession,
    graph: RenderGraph,
    delivery: ResolvedDelivery,
    premaster: str = "auto",
) -> OutputPlan:
    """Resolve the session's delivery into output taps.

    Raises
    ------
    SessionError
        A pattern matching nothing, a track in two stems, a track that reaches the master
        outside every stem (the stems would not sum to the mix), two outputs with one name.
    """
    routing = _Routing(graph, loaded)
    master = graph.master
    warnings: list[str] = []
    outputs: list[OutputSpec] = [
        OutputSpec("mix", "mix", "Mix", "master_out", tap_point="master",
                   routes=tuple(n.key for n in graph.nodes[:-1]))
    ]  # fmt: skip
    master_processes = bool(master.inserts) or master.gain_linear != 1.0
    if premaster == "always" or (premaster == "auto" and master_processes):
        outputs.append(
            OutputSpec("premaster", "premaster", "Mix (pre-master)", "master_in",
                       tap_point="master", routes=tuple(n.key for n in graph.nodes[:-1]))
        )  # fmt: skip
    master_inputs = [e.source for e in master.inputs]

    if delivery.stems:
        stems = _stem_outputs(loaded, graph, routing, delivery, master_inputs, warnings)
        outputs += stems
    for name, tracks in _mixes(loaded, routing, delivery, warnings):
        outputs.append(
            OutputSpec(f"mix:{name}", "alt_mix", name, "master_out", tracks=tracks,
                       routes=tuple(sorted(tracks)), tap_point="master")
        )  # fmt: skip
    if delivery.multitrack:
        nodes = graph.by_key
        for track in loaded.session.tracks:  # session order, as a person reads it
            node = nodes[f"track:{track.name}"]
            if not node.audible:
                continue
            if delivery.multitrack == "dry":
                outputs.append(
                    OutputSpec(f"track:{node.name}", "track", node.name, "track_source",
                               routes=(node.key,), tap_point="dry", channels=node.channels)
                )  # fmt: skip
            else:
                outputs.append(
                    OutputSpec(f"track:{node.name}", "track", node.name, "post",
                               routes=(node.key,), tap_point="post_fader")
                )  # fmt: skip
    seen: dict[str, str] = {}
    for spec in outputs:
        if spec.key in seen:
            raise SessionError(
                f"two outputs are both called {spec.name!r}",
                file=str(loaded.path),
                field="stems/mixes",
                fix="give every stem and mix its own name",
            )
        seen[spec.key] = spec.name
    return OutputPlan(delivery, outputs, warnings)


def _stem_outputs(
    loaded: LoadedSession,
    graph: RenderGraph,
    routing: _Routing,
    delivery: ResolvedDelivery,
    master_inputs: list[str],
    warnings: list[str],
) -> list[OutputSpec]:
    session = loaded.session
    nodes = graph.by_key
    definitions: list[tuple[str, frozenset[str], tuple[str, ...], str, tuple[str, ...]]] = []
    # (name, tracks, owned master inputs, tap point, listed routes)
    stem_defs: list[StemDef] | None
    if session.stems is None and delivery.returns == "split":
        # One stem per route that outputs to the master, returns aside: each carries its share.
        stem_defs = [
            StemDef(name=nodes[k].name, routes=[f"{nodes[k].kind}:{nodes[k].name}"])
            for k in master_inputs
            if not routing.is_return(k)
        ]
    else:
        stem_defs = session.stems
    if stem_defs is None:
        # The contract's default: one stem per route that outputs to the master.
        for stem in graph.stems:
            # The route as it plays: every track that reaches it, through outputs or sends.
            tracks = frozenset(stem.routes) & routing.audible_tracks
            definitions.append((stem.name, tracks, (stem.route,), delivery.tap, (stem.route,)))
    else:
        owner: dict[str, str] = {}
        returns = [k for k in master_inputs if routing.is_return(k)]
        for index, stem_def in enumerate(stem_defs):
            where = f"stems[{index}].routes"
            tracks = routing.tracks_of(stem_def.routes, where)
            listed = tuple(k for p in stem_def.routes for k in routing.match(p, where))
            for track in sorted(tracks):
                if track in owner:
                    raise SessionError(
                        f"track {nodes[track].name!r} is in two stems: {owner[track]!r} and "
                        f"{stem_def.name!r}",
                        file=str(loaded.path),
                        field=where,
                        fix="put every track in one stem only, or the stems would not sum "
                        "to the mix",
                    )
                owner[track] = stem_def.name
            if delivery.returns == "split":
                owned = tuple(master_inputs)
            else:
                owned = tuple(
                    k for k in master_inputs
                    if not routing.is_return(k) and routing.output_feeders(k) & tracks
                )  # fmt: skip
            definitions.append((stem_def.name, tracks, owned, stem_def.tap or delivery.tap, listed))
        reaching: set[str] = set()
        for key in master_inputs:
            if delivery.returns == "split" or not routing.is_return(key):
                reaching |= routing.output_feeders(key)
        missing = sorted(nodes[k].name for k in reaching - set(owner))
        if missing:
            raise SessionError(
                f"tracks reach the master outside every stem: {', '.join(missing)}",
                file=str(loaded.path),
                field="stems",
                fix="add them to a stem (the stems would not sum to the mix otherwise)",
            )
        if delivery.returns == "separate":
            for key in returns:
                tracks = frozenset(k for k in routing.audible_tracks)
                definitions.append((nodes[key].name, tracks, (key,), delivery.tap, (key,)))
    outputs: list[OutputSpec] = []
    for name, tracks, owned, tap, listed in definitions:
        taps = [tap] + (["dry"] if delivery.wet_and_dry and tap != "dry" else [])
        for tap_point in taps:
            suffix = " (dry)" if delivery.wet_and_dry and tap_point == "dry" else ""
            stem_name = name + suffix
            nonlinear = routing.nonlinear_splits(tracks, owned)
            if tap_point in ("post_fader", "dry"):
                spec = OutputSpec(
                    f"stem:{stem_name}", "stem", stem_name, "contribution", tracks=tracks,
                    dry=tap_point == "dry", owned=owned, routes=_routes(graph, tracks, owned),
                    tap_point=tap_point, nonlinear_splits=nonlinear,
                    sums_to_premaster=tap_point == "post_fader" and not nonlinear,
                )  # fmt: skip
            elif tap_point == "pre_fader":
                spec = OutputSpec(
                    f"stem:{stem_name}", "stem", stem_name, "pre_sum", routes=listed,
                    tap_point=tap_point,
                )  # fmt: skip
            else:  # via_master
                spec = OutputSpec(
                    f"stem:{stem_name}", "stem", stem_name, "master_out", tracks=tracks,
                    routes=_routes(graph, tracks, tuple(master_inputs)), tap_point=tap_point,
                )  # fmt: skip
            if nonlinear and tap_point == "post_fader":
                warnings.append(
                    f"stem {stem_name!r} splits {', '.join(nonlinear)}, whose inserts are not "
                    "linear: the stems will not sum exactly to the mix"
                )
            outputs.append(spec)
    return outputs


def _routes(graph: RenderGraph, tracks: frozenset[str], owned: tuple[str, ...]) -> tuple[str, ...]:
    """Every node on the way from ``tracks`` to the owned master inputs, in graph order."""
    nodes = graph.by_key
    keep: set[str] = set()

    def reaches(key: str) -> bool:
        node: Node = nodes[key]
        if node.kind == "track":
            ok = key in tracks
        else:
            ok = any([reaches(e.source) for e in node.inputs])
        if ok:
            keep.add(key)
        return ok

    for key in owned:
        reaches(key)
    return tuple(n.key for n in graph.nodes if n.key in keep and n.key != MASTER)


def _mixes(
    loaded: LoadedSession,
    routing: _Routing,
    delivery: ResolvedDelivery,
    warnings: list[str],
) -> list[tuple[str, frozenset[str]]]:
    session = loaded.session
    mixes: list[tuple[str, frozenset[str]]] = []
    for index, mix in enumerate(session.mixes):
        where = f"mixes[{index}]"
        tracks = routing.audible_tracks
        if mix.solo:
            tracks = routing.tracks_of(mix.solo, f"{where}.solo") & tracks
        if mix.mute:
            tracks = tracks - routing.tracks_of(mix.mute, f"{where}.mute")
        mixes.append((mix.name, frozenset(tracks)))
    if delivery.preset == "sync" and not session.mixes:
        vocal_routes = [
            n.name for n in routing.graph.nodes
            if n.kind != "master" and VOCAL_PATTERN.search(n.name)
        ]  # fmt: skip
        if not vocal_routes:
            warnings.append(
                "sync preset: no route looks like a vocal (vox, vocal, voice): no instrumental "
                "or a cappella mix; declare them under `mixes:`"
            )
            return mixes
        vocals = routing.tracks_of(vocal_routes, "mixes")
        lead = (
            frozenset(
                k for k in vocals if re.search(r"lead|main", routing.nodes[k].name, re.IGNORECASE)
            )
            or vocals
        )
        everything = routing.audible_tracks
        mixes += [
            ("Instrumental", everything - vocals),
            ("A Cappella", vocals),
            ("TV Mix", everything - lead),
        ]
    return mixes


def default_outputs(graph: RenderGraph) -> list[OutputSpec]:
    """The contract's outputs: the mix, the master input, one stem per master input route."""
    audible = frozenset(n.key for n in graph.nodes if n.kind == "track" and n.audible)
    everything = tuple(n.key for n in graph.nodes[:-1])
    outputs = [
        OutputSpec("mix", "mix", "Mix", "master_out", tap_point="master", routes=everything),
        OutputSpec("premaster", "premaster", "Mix (pre-master)", "master_in",
                   tap_point="master", routes=everything),
    ]  # fmt: skip
    for stem in graph.stems:
        tracks = frozenset(stem.routes) & audible
        outputs.append(
            OutputSpec(f"stem:{stem.name}", "stem", stem.name, "contribution", tracks=tracks,
                       owned=(stem.route,), routes=tuple(stem.routes), sums_to_premaster=True)
        )  # fmt: skip
    return outputs
