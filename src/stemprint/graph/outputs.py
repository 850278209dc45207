"""What a render prints: the delivery (presets, stems, tap points, returns, alternate mixes,
multitracks) resolved into output taps on the compiled graph, and what sums to what.

A stem is defined by a set of *tracks* (a bus in a stem definition stands for every track that
outputs into it) and the master inputs it *owns*. Its file is the sum, over the owned master
inputs, of those routes rendered from the stem's tracks only. When a bus or return is fed by
tracks of several stems, it is rendered once per stem from that stem's tracks, in the same pass
(``render.engine`` instances): with linear inserts the stems still sum to the mix; where a split
bus has non-linear inserts (a compressor) the manifest says so.

Sum relations (:class:`SumRelation`, the manifest's ``sums``): the post-fader stems, when every
stem is one, sum to the premaster (exactly, unless a stem splits a bus with non-linear inserts;
against the mix when the master does not process); stems through the master sum to the mix
exactly only when every master insert is linear. Nothing else is promised to sum (pre-fader and
dry stems, multitracks, alternate mixes), and the verification says so.

Presets (the delivery conventions each follows are listed in the README):

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
from dataclasses import dataclass, replace
from typing import Any, Literal

from stemprint.errors import SessionError
from stemprint.graph.types import Node, RenderGraph
from stemprint.model.load import LoadedSession
from stemprint.model.session import Delivery, StemDef, TailPolicy

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
    "dme": {"tap": "post_fader", "returns": "split", "bit_depth": "24",
            "file_name": "{title}_{version}_{type}_{channels}ch_{khz}k_{bits}b_{fps}"},
}  # fmt: skip

DME_STEMS = ("DX", "MX", "FX")
"""The stems a ``dme`` delivery needs (dialogue, music, effects); others may follow."""

ME_MIX = "ME"
"""Name of the ``dme`` preset's M&E: every route but the dialogue, through the master."""

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

VOCAL_PATTERN = re.compile(
    r"vox|vocal|voice|vocs|lead ?v|\bb(?:g|ack(?:ing)?) ?v|\bbvs?\b|choir|harmon",
    re.IGNORECASE,
)
"""Route names that look like a vocal (``Lead Vox``, ``BGV``, ``BVs``, ``Backing Vocals``,
``Choir``, ``Harmonies``): the ``sync`` preset leaves them out of the instrumental."""


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
    channel_files: bool = False
    ni_stem: Any = None
    previews: tuple[Any, ...] = ()
    handoff: tuple[str, ...] = ()
    archive: str | None = None


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
    """A stem of a set that sums exactly to the master's input (manifest role ``stem``)."""
    own_keys: bool = False
    """An alternate mix whose sidechain keys come from its own tracks (``sidechain: mix``)."""


@dataclass(frozen=True)
class SumRelation:
    """Outputs that sum, at unity, to another output of the same render.

    Attributes
    ----------
    name
        What sums (``stems``, ``stems via master``).
    parts
        Output keys summed.
    reference
        Output key of what they sum to.
    exact
        The sum equals the reference to the sample (the null test decides the verdict);
        ``False``: informational (measured and reported, never failing).
    why
        One sentence: why it sums, or why only approximately.
    """

    name: str
    parts: tuple[str, ...]
    reference: str
    exact: bool
    why: str


@dataclass(frozen=True)
class OutputPlan:
    """Every output of a render, what sums to what, and the delivery it came from."""

    delivery: ResolvedDelivery
    outputs: tuple[OutputSpec, ...]
    sums: tuple[SumRelation, ...] = ()
    warnings: tuple[str, ...] = ()


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
        channel_files=bool(pick("channel_files", False)),
        ni_stem=delivery.ni_stem,
        previews=tuple(delivery.previews or ()),
        handoff=tuple(delivery.handoff or ()),
        archive=delivery.archive,
    )


class _Routing:
    """The graph's routing (``graph.routing``) plus what the delivery needs: name patterns,
    and which split buses are not linear."""

    def __init__(self, graph: RenderGraph, loaded: LoadedSession) -> None:
        self.graph = graph
        self.loaded = loaded
        self.nodes = graph.by_key
        self.routing = graph.routing
        self.audible_tracks = graph.audible_tracks

    def output_feeders(self, key: str) -> frozenset[str]:
        """Audible tracks whose audio reaches ``key`` through outputs only (not sends)."""
        return self.routing.tracks_reaching(key, False)

    def is_return(self, key: str) -> bool:
        """A return path: a bus fed by at least one send, or one that only sends feed (a
        group bus that holds nothing but returns)."""
        return self.routing.is_return(key) or (
            self.nodes[key].kind == "bus"
            and not self.output_feeders(key)
            and bool(self.routing.tracks_reaching(key))
        )

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
        found = []
        for key in self.routing.in_order({k for o in owned for k in self.routing.upstream(o)}):
            node = self.nodes[key]
            feeders = self.routing.tracks_reaching(key)
            share = feeders & tracks
            if node.kind != "track" and share and share != feeders and not is_linear(node):
                found.append(node.name)
        return tuple(found)


def is_linear(node: Node) -> bool:
    """Every insert of ``node`` is linear in its input (superposition holds through it).

    A sidechain compressor keyed from another route is linear in its main input.
    """
    return all(
        spec.type in LINEAR_TYPES or (spec.type == "sidechain_compressor" and spec.sidechain)
        for spec in node.inserts
    )


def plan_outputs(
    loaded: LoadedSession,
    graph: RenderGraph,
    delivery: ResolvedDelivery,
    premaster: str = "auto",
) -> OutputPlan:
    """Resolve the session's delivery into output taps and their sum relations.

    Raises
    ------
    SessionError
        A pattern matching nothing, a track in two stems, a track that reaches the master
        outside every stem (the stems would not sum to the mix), two outputs with one name.
    """
    routing = _Routing(graph, loaded)
    warnings: list[str] = []
    everything = tuple(n.key for n in graph.nodes[:-1])
    outputs = [OutputSpec("mix", "mix", "Mix", "master_out", tap_point="master", routes=everything)]
    if premaster == "always" or (premaster == "auto" and _processes(graph.master)):
        outputs.append(
            OutputSpec("premaster", "premaster", "Mix (pre-master)", "master_in",
                       tap_point="master", routes=everything)
        )  # fmt: skip
    stems = _stem_outputs(loaded, graph, routing, delivery, warnings) if delivery.stems else []
    outputs += stems
    mixes = _mixes(loaded, routing, delivery, warnings)
    if delivery.preset == "dme":
        mixes += _dme_mixes(loaded, stems, mixes)
    for name, tracks, own_keys in mixes:
        outputs.append(
            OutputSpec(f"mix:{name}", "alt_mix", name, "master_out", tracks=tracks,
                       routes=tuple(sorted(tracks)), tap_point="master", own_keys=own_keys)
        )  # fmt: skip
    outputs += _multitrack(loaded, graph, delivery)
    _check_unique(loaded, outputs)
    sums = _sum_relations(graph, outputs, stems)
    if delivery.preset == "dme":
        sums += _me_relation(graph, outputs, stems)
    return OutputPlan(delivery, in_master_layout(graph, outputs), sums, tuple(warnings))


def in_master_layout(graph: RenderGraph, outputs: list[OutputSpec]) -> tuple[OutputSpec, ...]:
    """Every output in the master's layout (what the mix and the stems are printed in), but a
    dry multitrack file, which is the track's own source."""
    channels = graph.master.channels
    return tuple(
        o if o.kind == "track_source" or o.channels == channels else replace(o, channels=channels)
        for o in outputs
    )


def _processes(master: Node) -> bool:
    """The master changes its input (inserts, gain or mute, balance, automation)."""
    return (
        bool(master.inserts)
        or master.gain_linear != 1.0
        or master.pan != 0.0
        or bool(master.automation)
    )


def _multitrack(
    loaded: LoadedSession, graph: RenderGraph, delivery: ResolvedDelivery
) -> list[OutputSpec]:
    """Every audible track on its own file, in session order (as a person reads it)."""
    if not delivery.multitrack:
        return []
    outputs = []
    for track in loaded.session.tracks:
        node = graph.by_key[f"track:{track.name}"]
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
    return outputs


def _check_unique(loaded: LoadedSession, outputs: list[OutputSpec]) -> None:
    seen: set[str] = set()
    for spec in outputs:
        if spec.key in seen:
            raise SessionError(
                f"two outputs are both called {spec.name!r}",
                file=str(loaded.path),
                field="stems/mixes",
                fix="give every stem and mix its own name",
            )
        seen.add(spec.key)


def _sum_relations(
    graph: RenderGraph, outputs: list[OutputSpec], stems: list[OutputSpec]
) -> tuple[SumRelation, ...]:
    """What sums to what in this render (module header)."""
    keys = {o.key for o in outputs}
    wet = [s for s in stems if s.tap_point != "dry"]
    if wet and all(s.kind == "contribution" for s in wet):
        parts = tuple(s.key for s in wet)
        nonlinear = sorted({b for s in wet for b in s.nonlinear_splits})
        if "premaster" in keys:
            reference, exact, why = "premaster", True, "post-fader stems sum to the master's input"
        elif not _processes(graph.master):
            reference, exact, why = "mix", True, "post-fader stems sum to the mix (the master "
            "bus does not process)"
        else:
            reference, exact, why = "mix", False, "no premaster was written, so the stems are "
            "compared with the mix through the master bus's processing"
        if nonlinear:
            exact = False
            why = f"the stems split {', '.join(nonlinear)}, whose inserts are not linear"
        return (SumRelation("stems", parts, reference, exact, why),)
    if wet and all(s.tap_point == "via_master" for s in wet):
        linear = is_linear(graph.master)
        why = (
            "each stem went through the master bus alone; its inserts are linear"
            if linear
            else "each stem went through the master bus alone; its processing is not linear, "
            "so the sum differs from the mix"
        )
        parts = tuple(s.key for s in wet)
        return (SumRelation("stems via master", parts, "mix", linear, why),)
    return ()


def _stem_definitions(
    loaded: LoadedSession,
    graph: RenderGraph,
    routing: _Routing,
    delivery: ResolvedDelivery,
) -> list[tuple[str, frozenset[str], tuple[str, ...], str, tuple[str, ...]]]:
    """``(name, tracks, owned master inputs, tap point, listed routes)`` of every stem."""
    session = loaded.session
    nodes = graph.by_key
    master_inputs = [e.source for e in graph.master.inputs]
    stem_defs: list[StemDef] | None = session.stems
    if session.stems is None and delivery.returns == "split":
        # One stem per route that outputs to the master, pure returns aside: each carries its
        # share of them. A bus fed by sends and by outputs is a group too: its own stem.
        stem_defs = [
            StemDef(name=nodes[k].name, routes=[f"{nodes[k].kind}:{nodes[k].name}"])
            for k in master_inputs
            if not routing.is_return(k) or routing.output_feeders(k)
        ]
    if stem_defs is None:
        # The contract's default: one stem per route that outputs to the master, as it plays
        # (every track that reaches it, through outputs or sends).
        return [
            (s.name, frozenset(s.routes) & routing.audible_tracks, (s.route,), delivery.tap,
             (s.route,))
            for s in graph.stems
        ]  # fmt: skip
    definitions = []
    owner: dict[str, str] = {}
    for index, stem_def in enumerate(stem_defs):
        where = f"stems[{index}].routes"
        tracks = routing.tracks_of(stem_def.routes, where)
        listed = tuple(k for p in stem_def.routes for k in routing.match(p, where))
        _claim(loaded, graph, owner, tracks, stem_def.name, where)
        if delivery.returns == "split":
            owned = tuple(master_inputs)
        else:
            owned = tuple(
                k for k in master_inputs
                if not routing.is_return(k) and routing.output_feeders(k) & tracks
            )  # fmt: skip
        definitions.append((stem_def.name, tracks, owned, stem_def.tap or delivery.tap, listed))
    _check_complete(loaded, graph, routing, delivery, owner)
    if delivery.returns == "separate":
        _check_nested_returns(loaded, graph, routing, definitions)
        for key in master_inputs:
            if routing.is_return(key):
                tracks = routing.audible_tracks
                definitions.append((nodes[key].name, tracks, (key,), delivery.tap, (key,)))
    return definitions


def _claim(
    loaded: LoadedSession,
    graph: RenderGraph,
    owner: dict[str, str],
    tracks: frozenset[str],
    stem: str,
    where: str,
) -> None:
    """Give ``tracks`` to ``stem``; a track in two stems is an error."""
    for track in sorted(tracks):
        if track in owner:
            raise SessionError(
                f"track {graph.by_key[track].name!r} is in two stems: {owner[track]!r} and "
                f"{stem!r}",
                file=str(loaded.path),
                field=where,
                fix="put every track in one stem only, or the stems would not sum to the mix",
            )
        owner[track] = stem


def _check_nested_returns(
    loaded: LoadedSession,
    graph: RenderGraph,
    routing: _Routing,
    definitions: list[tuple[str, frozenset[str], tuple[str, ...], str, tuple[str, ...]]],
) -> None:
    """With separate returns, a bus printed in stems must not carry sends from tracks of other
    stems (a return nested inside a group bus): that share would be in no stem."""
    for edge in graph.master.inputs:
        key = edge.source
        owners = [d for d in definitions if key in d[2]]
        if not owners:
            continue
        covered = frozenset().union(*(d[1] for d in owners))
        outside = routing.routing.tracks_reaching(key) - covered
        if outside:
            names = ", ".join(graph.by_key[t].name for t in routing.routing.in_order(outside))
            raise SessionError(
                f"{graph.by_key[key].name!r} (printed in stem "
                f"{', '.join(repr(d[0]) for d in owners)}) also carries sends from {names}, "
                "through a return inside it: with separate returns that share would be in no "
                "stem",
                file=str(loaded.path),
                field="delivery.returns",
                fix="use `returns: split` (every stem carries its share of the returns), or "
                "route that return to the master so it is its own stem",
            )


def _check_complete(
    loaded: LoadedSession,
    graph: RenderGraph,
    routing: _Routing,
    delivery: ResolvedDelivery,
    owner: dict[str, str],
) -> None:
    """Every track that reaches the master (outside the separate returns) is in a stem."""
    reaching: set[str] = set()
    for edge in graph.master.inputs:
        if delivery.returns == "split" or not routing.is_return(edge.source):
            reaching |= routing.output_feeders(edge.source)
    missing = sorted(graph.by_key[k].name for k in reaching - set(owner))
    if missing:
        raise SessionError(
            f"tracks reach the master outside every stem: {', '.join(missing)}",
            file=str(loaded.path),
            field="stems",
            fix="add them to a stem (the stems would not sum to the mix otherwise)",
        )


def _stem_outputs(
    loaded: LoadedSession,
    graph: RenderGraph,
    routing: _Routing,
    delivery: ResolvedDelivery,
    warnings: list[str],
) -> list[OutputSpec]:
    definitions = _stem_definitions(loaded, graph, routing, delivery)
    taps = {d[3] for d in definitions}
    every_post_fader = taps == {"post_fader"}
    master_inputs = tuple(e.source for e in graph.master.inputs)
    outputs: list[OutputSpec] = []
    for name, tracks, owned, tap, listed in definitions:
        for tap_point in [tap] + (["dry"] if delivery.wet_and_dry and tap != "dry" else []):
            stem_name = name + (" (dry)" if delivery.wet_and_dry and tap_point == "dry" else "")
            nonlinear = routing.nonlinear_splits(tracks, owned)
            if tap_point in ("post_fader", "dry"):
                spec = OutputSpec(
                    f"stem:{stem_name}", "stem", stem_name, "contribution", tracks=tracks,
                    dry=tap_point == "dry", owned=owned,
                    routes=graph.routing.path(tracks, owned), tap_point=tap_point,
                    nonlinear_splits=nonlinear,
                    sums_to_premaster=every_post_fader and tap_point == "post_fader"
                    and not nonlinear,
                )  # fmt: skip
            elif tap_point == "pre_fader":
                spec = OutputSpec(f"stem:{stem_name}", "stem", stem_name, "pre_sum",
                                  routes=listed, tap_point=tap_point)  # fmt: skip
            else:  # via_master
                spec = OutputSpec(
                    f"stem:{stem_name}", "stem", stem_name, "master_out", tracks=tracks,
                    routes=graph.routing.path(tracks, master_inputs), tap_point=tap_point,
                )  # fmt: skip
            if nonlinear and tap_point == "post_fader":
                warnings.append(
                    f"stem {stem_name!r} splits {', '.join(nonlinear)}, whose inserts are not "
                    "linear: the stems will not sum exactly to the mix"
                )
            outputs.append(spec)
    return outputs


def _mixes(
    loaded: LoadedSession,
    routing: _Routing,
    delivery: ResolvedDelivery,
    warnings: list[str],
) -> list[tuple[str, frozenset[str], bool]]:
    """``(name, tracks, own sidechain keys)`` of every alternate mix."""
    session = loaded.session
    mixes: list[tuple[str, frozenset[str], bool]] = []
    for index, mix in enumerate(session.mixes):
        where = f"mixes[{index}]"
        tracks = routing.audible_tracks
        if mix.solo:
            tracks = routing.tracks_of(mix.solo, f"{where}.solo") & tracks
        if mix.mute:
            tracks = tracks - routing.tracks_of(mix.mute, f"{where}.mute")
        mixes.append((mix.name, frozenset(tracks), mix.sidechain == "mix"))
    if delivery.preset == "sync" and not session.mixes:
        vocal_routes = [
            n.name for n in routing.graph.nodes
            if n.kind != "master" and VOCAL_PATTERN.search(n.name)
        ]  # fmt: skip
        if not vocal_routes:
            warnings.append(
                "sync preset: no route looks like a vocal (vox, vocal, voice, BGV, BVs, choir): "
                "no instrumental "
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
        # Keys from the full session: the instrumental's music is the main mix's to the
        # sample (editors cut between them), ducking under the vocal included.
        mixes += [
            ("Instrumental", everything - vocals, False),
            ("A Cappella", vocals, False),
            ("TV Mix", everything - lead, False),
        ]
    return mixes


def default_outputs(graph: RenderGraph) -> tuple[OutputSpec, ...]:
    """The contract's outputs: the mix, the master input, one stem per master input route."""
    everything = tuple(n.key for n in graph.nodes[:-1])
    outputs = [
        OutputSpec("mix", "mix", "Mix", "master_out", tap_point="master", routes=everything),
        OutputSpec("premaster", "premaster", "Mix (pre-master)", "master_in",
                   tap_point="master", routes=everything),
    ]  # fmt: skip
    for stem in graph.stems:
        tracks = frozenset(stem.routes) & graph.audible_tracks
        outputs.append(
            OutputSpec(f"stem:{stem.name}", "stem", stem.name, "contribution", tracks=tracks,
                       owned=(stem.route,), routes=stem.routes, sums_to_premaster=True)
        )  # fmt: skip
    return in_master_layout(graph, outputs)


def _dme_mixes(
    loaded: LoadedSession, stems: list[OutputSpec], mixes: list[tuple[str, frozenset[str], bool]]
) -> list[tuple[str, frozenset[str], bool]]:
    """The ``dme`` preset's M&E: every stem's tracks but the dialogue's, keys from the full
    session (so the M&E is the music and effects of the printmaster, to the sample)."""
    names = {s.name for s in stems}
    missing = [n for n in DME_STEMS if n not in names]
    if missing:
        raise SessionError(
            f"the dme delivery needs stems named DX, MX and FX; {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing (stems: "
            f"{', '.join(sorted(names)) or 'none'})",
            file=str(loaded.path),
            field="stems",
            fix="name the dialogue, music and effects buses DX, MX and FX, or define `stems:` "
            "with those names",
        )
    if any(name == ME_MIX for name, _t, _k in mixes):
        return []  # the session defines its own M&E
    tracks = frozenset().union(*(s.tracks or frozenset() for s in stems if s.name != "DX"))
    return [(ME_MIX, frozenset(tracks), False)]


def _me_relation(
    graph: RenderGraph, outputs: list[OutputSpec], stems: list[OutputSpec]
) -> tuple[SumRelation, ...]:
    """M&E = every stem but DX (exact when the master bus leaves its input as it is)."""
    if not any(o.key == f"mix:{ME_MIX}" for o in outputs):
        return ()
    parts = tuple(s.key for s in stems if s.name != "DX" and s.tap_point == "post_fader")
    dialogue = next((s.tracks or frozenset() for s in stems if s.name == "DX"), frozenset())
    shared = [s.name for s in stems if s.name != "DX" and (s.tracks or frozenset()) & dialogue]
    if shared:
        return (
            SumRelation("M&E", parts, f"mix:{ME_MIX}", False,
                        f"{', '.join(shared)} also holds dialogue (a shared return printed on "
                        "its own); split the returns so the M&E is exactly MX + FX"),
        )  # fmt: skip
    if _processes(graph.master):
        return (
            SumRelation("M&E", parts, f"mix:{ME_MIX}", False,
                        "the M&E went through the master bus, which processes it; the stems "
                        "did not"),
        )  # fmt: skip
    return (
        SumRelation("M&E", parts, f"mix:{ME_MIX}", True,
                    "the M&E is every stem but the dialogue, through a master bus that leaves "
                    "its input as it is"),
    )  # fmt: skip
