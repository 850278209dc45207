"""Compile a session into a frozen render graph: nodes in topological order, mute and solo
resolved, insert latencies probed and compensated, the default stems.

Invariants
----------
- :func:`compile_session` returns a complete, immutable :class:`~stemprint.graph.types.
  RenderGraph`; nothing after it changes a node, an edge or the graph.
- Vocabulary: the *session* has tracks, buses and the master; the *graph* has nodes (one per
  route, plus the master) and edges (an output, a send or a sidechain key from one node into
  another).
- A routing cycle (through outputs, sends or sidechain keys) is an error that prints it.
- Solo is solo-in-place (after Ardour): when any route is soloed, every route that is neither
  soloed, nor downstream of a soloed route (its group bus, its reverb return), nor upstream of
  one (the tracks of a soloed bus) is implicitly muted. An explicit mute always wins; a muted
  route mutes its outputs and all its sends.
- Length: the end of the last audible clip plus the session's ``tail_seconds``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from stemprint.dsp.automation import AutomationLane
from stemprint.dsp.inserts import (
    InsertSpec,
    builtin_parameters,
    builtin_types,
    validate_insert,
)
from stemprint.errors import InputError, SessionError
from stemprint.graph.clips import plan_clips
from stemprint.graph.latency import compensate, probe_chains
from stemprint.graph.layouts import resolve_layouts
from stemprint.graph.routing import Routing
from stemprint.graph.types import Edge, Node, RenderGraph, Stem, TapPoint
from stemprint.model.load import LoadedSession
from stemprint.model.session import MASTER, Bus, Insert, Master, Track
from stemprint.model.timecode import session_timecode
from stemprint.units import db_to_linear


def compile_session(loaded: LoadedSession, allow_plugins: bool = False) -> RenderGraph:
    """Compile a validated session into a frozen :class:`RenderGraph`.

    Checks every audio file and insert, orders the graph (a routing cycle is an error that
    prints it), resolves mute and solo, probes every insert chain's latency and compensates it,
    and sizes the default render.

    Raises
    ------
    SessionError, AudioFileError, InputError
        With the file, field and fix.
    """
    session = loaded.session
    session_timecode(session, str(loaded.path))  # a bad start_timecode is an error here
    plans, warnings = plan_clips(loaded)
    nodes = _route_nodes(loaded, plans, allow_plugins)
    keys = _sidechains(nodes)
    nodes = {k: replace(n, inputs=_inputs(loaded, k), keys=keys[k]) for k, n in nodes.items()}
    nodes = resolve_layouts(loaded, nodes)
    order = _topological_order(nodes, str(loaded.path))
    audible = _audible(loaded, nodes)
    ordered = [replace(nodes[key], audible=audible.get(key, True)) for key in order]
    final = compensate(ordered, probe_chains(ordered, session.sample_rate))
    end = max(
        (c.end_sample for n in final if n.kind == "track" and n.audible for c in n.clips),
        default=0,
    )
    tail = round(session.tail_seconds * session.sample_rate)
    if end + tail <= 0:
        raise SessionError(
            "nothing to render: no audible clip and no tail",
            file=str(loaded.path),
            fix="add clips to an unmuted track, or set tail_seconds",
        )
    warnings += [
        f"track {n.name!r} has no clips: it renders silence"
        for n in final
        if n.kind == "track" and not n.clips
    ]
    return RenderGraph(
        sample_rate=session.sample_rate,
        nodes=final,
        stems=_default_stems(loaded, final),
        end_samples=end,
        tail_samples=tail,
        warnings=tuple(warnings),
    )


def _strips(loaded: LoadedSession) -> list[tuple[str, int, Track | Bus]]:
    """Every route of the session, tracks then buses, with its location in the file."""
    session = loaded.session
    return [("tracks", i, t) for i, t in enumerate(session.tracks)] + [
        ("buses", i, b) for i, b in enumerate(session.buses)
    ]


def _route_nodes(
    loaded: LoadedSession, plans: Mapping[str, list[Any]], allow_plugins: bool
) -> dict[str, Node]:
    """One node per track and bus, and the master; no edges yet."""
    session = loaded.session
    tempo = session.tempo_map()
    nodes: dict[str, Node] = {}
    for kind, index, route in _strips(loaded):
        clips = tuple(plans.get(route.name, [])) if kind == "tracks" else ()
        channels = max((c.info.channels for c in clips), default=1) if kind == "tracks" else 2
        key = route_key(kind, route.name)
        nodes[key] = Node(
            key=key,
            name=route.name,
            kind="track" if kind == "tracks" else "bus",
            audible=True,
            inserts=_inserts(loaded, (kind, index), route.name, route.inserts, allow_plugins),
            gain_linear=db_to_linear(route.gain_db),
            pan=route.pan,
            invert_polarity=route.invert_polarity,
            channels=channels,
            output=bus_key(route.output) if route.output is not None else None,
            clips=clips,
            automation=_automation(loaded, (kind, index), route, tempo),
            pan_law=route.pan_law,
        )
    nodes[MASTER] = Node(
        key=MASTER,
        name=MASTER,
        kind="master",
        audible=True,
        inserts=_inserts(loaded, ("master",), MASTER, session.master.inserts, allow_plugins),
        gain_linear=0.0 if session.master.mute else db_to_linear(session.master.gain_db),
        pan=session.master.pan,
        invert_polarity=False,
        channels=2,
        output=None,
        # A muted master is silent whatever its automation says (validated all the same).
        automation=_automation(loaded, ("master",), session.master, tempo)
        if not session.master.mute
        else EMPTY_LANES,
    )
    return nodes


EMPTY_LANES: Mapping[str, Any] = MappingProxyType({})


def _inputs(loaded: LoadedSession, key: str) -> tuple[Edge, ...]:
    """The edges summed at node ``key``: outputs into it, then sends, in session order."""
    edges: list[Edge] = []
    for kind, _index, route in _strips(loaded):
        source = route_key(kind, route.name)
        if route.output is not None and bus_key(route.output) == key:
            edges.append(Edge(source, "post_fader", 1.0, "output"))
        for send in route.sends:
            if bus_key(send.to) == key:
                tap: TapPoint = (
                    "pre_inserts"
                    if send.pre_inserts
                    else "pre_fader"
                    if send.pre_fader
                    else "post_fader"
                )
                gain = db_to_linear(send.level_db) * (-1.0 if send.invert_polarity else 1.0)
                edges.append(
                    Edge(source, tap, gain, "send", target=send.to, pan=send.pan, lfe=send.lfe)
                )
    return tuple(edges)


def _audible(loaded: LoadedSession, nodes: dict[str, Node]) -> dict[str, bool]:
    """Mute and solo-in-place (module header), by node key (the master is always audible)."""
    strips = {route_key(kind, r.name): r for kind, _i, r in _strips(loaded)}
    soloed = [key for key, r in strips.items() if r.solo]
    keep: set[str] | None = None
    if soloed:
        routing = Routing(list(nodes.values()))
        keep = set()
        for key in soloed:
            keep |= routing.upstream(key) | routing.downstream(key)
    return {key: not r.mute and (keep is None or key in keep) for key, r in strips.items()}


def _default_stems(loaded: LoadedSession, nodes: tuple[Node, ...]) -> tuple[Stem, ...]:
    """The contract's default stems: one per route that outputs to the master, session order."""
    routing = Routing(nodes)
    stems: list[Stem] = []
    names: dict[str, str] = {}
    for kind, _index, route in _strips(loaded):
        key = route_key(kind, route.name)
        if route.output is None or bus_key(route.output) != MASTER:
            continue
        if route.name in names:
            raise SessionError(
                f"track {route.name!r} and bus {route.name!r} both output to the master, so "
                "their stems would share a name",
                file=str(loaded.path),
                field="tracks/buses name",
                fix="rename one of them",
            )
        names[route.name] = key
        stems.append(Stem(route.name, key, tuple(routing.in_order(routing.upstream(key)))))
    return tuple(stems)


def _automation(
    loaded: LoadedSession, loc: tuple[str | int, ...], route: Track | Bus | Master, tempo: Any
) -> Mapping[str, Any]:
    """Resolve a strip's automation lanes to timeline samples."""
    lanes: dict[str, Any] = {}
    is_master = isinstance(route, Master)
    sends = set() if isinstance(route, Master) else {s.to for s in route.sends}
    for index, lane in enumerate(route.automation):
        where = (*loc, "automation", index)
        if lane.param in lanes:
            raise loaded.error(f"two lanes automate {lane.param!r}", where, fix="merge them")
        if is_master and lane.param not in ("gain_db", "pan", "mute"):
            raise loaded.error(
                f"the master cannot automate {lane.param!r}",
                (*where, "param"),
                fix="automate the master's gain_db, pan or mute",
            )
        if lane.param.startswith("insert.") and not isinstance(route, Master):
            _check_insert_param(loaded, where, route, lane.param)
        if lane.param.startswith("send:") and lane.param[5:] not in sends:
            raise loaded.error(
                f"{getattr(route, 'name', MASTER)!r} has no send to {lane.param[5:]!r}",
                (*where, "param"),
                fix="automate one of its sends: "
                + (", ".join(f"send:{s}" for s in sorted(sends)) or "(it has none)"),
            )
        interpolation = "hold" if lane.param == "mute" else lane.interpolation
        try:
            points = [(tempo.sample(position), float(value)) for position, value in lane.points]
            lanes[lane.param] = AutomationLane(points, interpolation)
        except (InputError, ValueError) as exc:
            message = exc.message if isinstance(exc, InputError) else str(exc)
            raise loaded.error(
                message, (*where, "points"), fix="points go in time order, values finite"
            ) from None
        if lane.param == "mute" and any(v not in (0.0, 1.0) for _, v in points):
            raise loaded.error("mute points are 0 or 1", (*where, "points"))
        if lane.param == "pan" and any(not -1.0 <= v <= 1.0 for _, v in points):
            raise loaded.error("pan points go from -1 to 1", (*where, "points"))
    return MappingProxyType(lanes)


def _check_insert_param(
    loaded: LoadedSession, where: tuple[str | int, ...], route: Track | Bus, param: str
) -> None:
    parts = param.split(".")
    fix = "write insert.<index>.<parameter>, e.g. insert.0.cutoff_frequency_hz"
    if len(parts) != 3 or not parts[1].isdigit():
        raise loaded.error(f"bad insert automation {param!r}", (*where, "param"), fix=fix)
    index, name = int(parts[1]), parts[2]
    if index >= len(route.inserts):
        raise loaded.error(f"{route.name!r} has no insert {index}", (*where, "param"), fix=fix)
    kind = route.inserts[index].type
    if kind not in builtin_types():
        raise loaded.error(
            f"only pedalboard built-ins can be automated ({kind} is not one)", (*where, "param")
        )
    valid = builtin_parameters(kind)
    if name not in valid:
        raise loaded.error(
            f"{kind} has no parameter {name!r}",
            (*where, "param"),
            fix="valid parameters: " + ", ".join(valid),
        )


def route_key(kind: str, name: str) -> str:
    """Node key of a track (``kind`` ``tracks``) or a bus (``buses``)."""
    return f"{'track' if kind == 'tracks' else 'bus'}:{name}"


def bus_key(name: str) -> str:
    """Node key of an ``output`` / send target: a bus, or the master."""
    return MASTER if name == MASTER else f"bus:{name}"


def _inserts(
    loaded: LoadedSession,
    loc: tuple[str | int, ...],
    route_name: str,
    inserts: Iterable[Insert],
    allow_plugins: bool,
) -> tuple[InsertSpec, ...]:
    specs = []
    for i, insert in enumerate(inserts):
        where = (
            f"{loaded.where((*loc, 'inserts', i))}: "
            f"{'.'.join(str(p) if isinstance(p, str) else f'[{p}]' for p in loc)}"
            f".inserts[{i}] ({route_name!r}, {insert.type})"
        ).replace(".[", "[")
        specs.append(
            validate_insert(insert.type, insert.params, where, loaded.base_dir, allow_plugins)
        )
    return tuple(specs)


def _sidechains(nodes: dict[str, Node]) -> dict[str, tuple[Edge, ...]]:
    """A key edge for every insert that names a ``sidechain:`` route, by receiving node."""
    keys: dict[str, list[Edge]] = {key: [] for key in nodes}
    for node in nodes.values():
        for index, spec in enumerate(node.inserts):
            name = spec.sidechain
            if name is None:
                continue
            if name.startswith(("track:", "bus:")) and name in nodes:
                candidates = [name]
            else:
                candidates = [k for k in (f"track:{name}", f"bus:{name}") if k in nodes]
            if not candidates:
                raise SessionError(
                    f"sidechain key route {name!r} does not exist",
                    field=spec.where,
                    fix="name a track or a bus of this session",
                )
            if len(candidates) > 1:
                raise SessionError(
                    f"sidechain {name!r} names both a track and a bus",
                    field=spec.where,
                    fix=f"write `track:{name}` or `bus:{name}`",
                )
            if candidates[0] == node.key:
                raise SessionError(
                    "a route cannot key its own sidechain",
                    field=spec.where,
                    fix="remove `sidechain:` to compress from the route's own signal",
                )
            tap: TapPoint = "pre_fader" if spec.sidechain_pre_fader else "post_fader"
            keys[node.key].append(Edge(candidates[0], tap, 1.0, "key", insert_index=index))
    return {key: tuple(edges) for key, edges in keys.items()}


def _topological_order(nodes: dict[str, Node], file: str | None = None) -> list[str]:
    """Depth-first order (sources first, master last); a cycle raises and prints its path."""
    feeds: dict[str, list[str]] = {name: [] for name in nodes}
    for name, node in nodes.items():
        for edge in [*node.inputs, *node.keys]:
            feeds[edge.source].append(name)
    state: dict[str, int] = {}  # 1 visiting, 2 done
    order: list[str] = []
    stack_path: list[str] = []

    def visit(name: str) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = [nodes[k].name for k in stack_path[stack_path.index(name) :] + [name]]
            raise SessionError(
                "routing cycle: " + " → ".join(cycle),
                file=file,
                field="buses",
                fix="a bus cannot feed, directly or through sends or sidechain keys, a route "
                "that feeds it; break the cycle by changing an `output`, a send or a `sidechain`",
            )
        state[name] = 1
        stack_path.append(name)
        for downstream in feeds[name]:
            visit(downstream)
        stack_path.pop()
        state[name] = 2
        order.append(name)

    for name in nodes:
        visit(name)
    order.reverse()
    # The master has no outputs, so it can land anywhere among the sinks: put it last.
    order.remove(MASTER)
    order.append(MASTER)
    return order
