"""Compile a session into a render graph: nodes in topological order, edges with latency
compensation, and the taps that become output files.

Vocabulary: the *session* has tracks, buses and the master; the *graph* has nodes (one per
route, plus the master) and edges (an output or a send from one node into another).

Latency compensation (plug-in delay compensation): each node's input is the sum of its edges;
every edge is delayed so that all of them arrive with the latency of the latest one, and the
node's output latency is that plus its insert chain's latency. Every output file is a tap with a
known latency; the writer drops that many samples from the tap's start, so a transient at sample
N of a source lands at sample N of every file it reaches.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from stemprint.dsp.inserts import InsertSpec, validate_insert
from stemprint.dsp.strip import db_to_linear
from stemprint.errors import SessionError
from stemprint.model.load import LoadedSession
from stemprint.model.session import MASTER, Bus, Insert, Track
from stemprint.render.sources import ClipPlan, plan_clips

NodeKind = Literal["track", "bus", "master"]
TapPoint = Literal["pre_fader", "post_fader"]


@dataclass
class Edge:
    """Audio flowing from one node's tap into another node's input.

    Attributes
    ----------
    source
        Key of the sending node.
    tap
        ``post_fader`` (outputs and post-fader sends) or ``pre_fader`` (pre-fader sends).
    gain_linear
        Send level (1.0 for outputs).
    kind
        ``output``, ``send``, or ``key`` (a sidechain key: an ordering edge whose audio goes to
        one insert's detector, not into the sum).
    delay_samples
        Compensation delay applied to this edge (set by :func:`compensate_latency`).
    """

    source: str
    tap: TapPoint
    gain_linear: float
    kind: Literal["output", "send", "key"]
    delay_samples: int = 0
    insert_index: int | None = None
    """For a sidechain key: the index of the keyed insert in the receiving node's chain."""
    target: str = ""
    """For a send: the receiving bus's name (for send-level automation)."""


@dataclass
class Node:
    """One route of the session in the render graph.

    Attributes
    ----------
    key
        Unique node key: ``track:<name>``, ``bus:<name>`` or ``master`` (a track and a bus may
        share a name, as a ``Bass`` track feeding a ``Bass`` bus).
    name
        Route name (``master`` for the master).
    kind
        ``track``, ``bus`` or ``master``.
    audible
        False when muted, or implicitly muted by another route's solo; an inaudible node
        contributes nothing and is not processed.
    inserts
        Validated insert chain, in order.
    gain_linear, pan
        Fader and pan.
    channels
        Input channels (tracks: 1 if every clip is mono, else 2; buses: 2).
    inputs
        Edges summed at this node's input.
    keys
        Sidechain key edges into this node's inserts.
    output
        Name of the node this one outputs to (``None`` for the master).
    clips
        Clip plans (tracks only).
    input_latency_samples, latency_samples
        Latency at the input sum and at the output, relative to the timeline.
    """

    key: str
    name: str
    kind: NodeKind
    audible: bool
    inserts: list[InsertSpec]
    gain_linear: float
    pan: float
    invert_polarity: bool
    channels: int
    output: str | None
    inputs: list[Edge] = field(default_factory=list)
    keys: list[Edge] = field(default_factory=list)
    clips: list[ClipPlan] = field(default_factory=list)
    chain_latency_samples: int = 0
    input_latency_samples: int = 0
    latency_samples: int = 0
    automation: dict[str, Any] = field(default_factory=dict)
    """Automation lanes (``dsp.automation.AutomationLane``) by param: gain_db, pan, mute,
    send:<bus>; positions already in timeline samples."""


@dataclass
class Stem:
    """A default stem: the post-fader output of one route that outputs to the master."""

    name: str
    route: str
    """Key of the route printed to this stem."""
    routes: list[str]
    """Keys of every route whose audio reaches this stem (the route and what feeds it)."""


@dataclass
class RenderGraph:
    """The compiled session, ready for the streaming engine.

    Attributes
    ----------
    nodes
        Every node in processing (topological) order; the master last.
    stems
        The default stems, in session order.
    length_samples
        Output length: end of the last audible clip plus the tail.
    warnings
        Things the user should know (resampled files, silent routes).
    """

    sample_rate: int
    nodes: list[Node]
    stems: list[Stem]
    length_samples: int
    tail_samples: int
    warnings: list[str]

    @property
    def by_key(self) -> dict[str, Node]:
        """Nodes by key."""
        return {n.key: n for n in self.nodes}

    @property
    def master(self) -> Node:
        """The master node."""
        return self.nodes[-1]


def compile_session(loaded: LoadedSession, allow_plugins: bool = False) -> RenderGraph:
    """Compile a validated session into a :class:`RenderGraph`.

    Checks every audio file and insert, orders the graph (a routing cycle is an error that
    prints it), resolves mute and solo, and sizes the render.

    Raises
    ------
    SessionError, AudioFileError, InputError
        With the file, field and fix.
    """
    session = loaded.session
    plans, warnings = plan_clips(loaded)
    routes: list[tuple[str, int, Track | Bus]] = [
        ("tracks", i, t) for i, t in enumerate(session.tracks)
    ] + [("buses", i, b) for i, b in enumerate(session.buses)]

    nodes: dict[str, Node] = {}
    for kind, index, route in routes:
        specs = _inserts(loaded, (kind, index), route.name, route.inserts, allow_plugins)
        clips = plans.get(route.name, []) if kind == "tracks" else []
        channels = max((c.info.channels for c in clips), default=1) if kind == "tracks" else 2
        nodes[route_key(kind, route.name)] = Node(
            key=route_key(kind, route.name),
            name=route.name,
            kind="track" if kind == "tracks" else "bus",
            audible=True,
            inserts=specs,
            gain_linear=db_to_linear(route.gain_db),
            pan=route.pan,
            invert_polarity=route.invert_polarity,
            channels=channels,
            output=bus_key(route.output),
            clips=clips,
        )
    tempo = session.tempo_map()
    for kind, index, route in routes:
        nodes[route_key(kind, route.name)].automation = _automation(
            loaded, (kind, index), route, tempo
        )
    master_specs = _inserts(loaded, ("master",), MASTER, session.master.inserts, allow_plugins)
    nodes[MASTER] = Node(
        key=MASTER,
        name=MASTER,
        kind="master",
        audible=True,
        inserts=master_specs,
        gain_linear=db_to_linear(session.master.gain_db),
        pan=0.0,
        invert_polarity=False,
        channels=2,
        output=None,
    )
    for kind, _index, route in routes:
        source = route_key(kind, route.name)
        nodes[bus_key(route.output)].inputs.append(Edge(source, "post_fader", 1.0, "output"))
        for send in route.sends:
            tap: TapPoint = "pre_fader" if send.pre_fader else "post_fader"
            edge = Edge(source, tap, db_to_linear(send.level_db), "send", target=send.to)
            nodes[bus_key(send.to)].inputs.append(edge)

    _sidechains(loaded, nodes)
    order = _topological_order(nodes, str(loaded.path))
    _resolve_mute_solo(loaded, nodes)
    ordered = [nodes[key] for key in order]

    audible_clips = [c for n in ordered if n.kind == "track" and n.audible for c in n.clips]
    rate = session.sample_rate
    tail = round(session.tail_seconds * rate)
    end = max((c.end_sample for c in audible_clips), default=0)
    length = end + tail
    if length <= 0:
        raise SessionError(
            "nothing to render: no audible clip and no tail",
            file=str(loaded.path),
            fix="add clips to an unmuted track, or set tail_seconds",
        )
    for node in ordered:
        if node.kind == "track" and not node.clips:
            warnings.append(f"track {node.name!r} has no clips: it renders silence")

    stems = [
        Stem(name=n.name, route=n.key, routes=_feeders(nodes, n.key))
        for n in ordered
        if n.output == MASTER
    ]
    names: dict[str, str] = {}
    for stem in stems:
        if stem.name in names:
            raise SessionError(
                f"track {stem.name!r} and bus {stem.name!r} both output to the master, so their "
                "stems would share a name",
                file=str(loaded.path),
                field="tracks/buses name",
                fix="rename one of them",
            )
        names[stem.name] = stem.route
    # Keep the stems in session order (tracks then buses), as a person reads the session.
    position = {
        key: i
        for i, key in enumerate(
            [route_key("tracks", t.name) for t in session.tracks]
            + [route_key("buses", b.name) for b in session.buses]
        )
    }
    stems.sort(key=lambda s: position[s.route])
    return RenderGraph(
        sample_rate=rate,
        nodes=ordered,
        stems=stems,
        length_samples=length,
        tail_samples=tail,
        warnings=warnings,
    )


def _automation(
    loaded: LoadedSession, loc: tuple[str | int, ...], route: Track | Bus, tempo: Any
) -> dict[str, Any]:
    """Resolve a strip's automation lanes to timeline samples."""
    from stemprint.dsp.automation import AutomationLane
    from stemprint.errors import InputError

    lanes: dict[str, Any] = {}
    sends = {s.to for s in route.sends}
    for index, lane in enumerate(route.automation):
        where = (*loc, "automation", index)
        if lane.param in lanes:
            raise loaded.error(f"two lanes automate {lane.param!r}", where, fix="merge them")
        if lane.param.startswith("insert."):
            _check_insert_param(loaded, where, route, lane.param)
        if lane.param.startswith("send:") and lane.param[5:] not in sends:
            raise loaded.error(
                f"{route.name!r} has no send to {lane.param[5:]!r}",
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
    return lanes


def _check_insert_param(
    loaded: LoadedSession, where: tuple[str | int, ...], route: Track | Bus, param: str
) -> None:
    from stemprint.dsp.inserts import builtin_parameters, builtin_types

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
) -> list[InsertSpec]:
    specs = []
    for i, insert in enumerate(inserts):
        line = loaded.line_of((*loc, "inserts", i))
        where = (
            f"{loaded.path}:{line or '?'}: "
            f"{'.'.join(str(p) if isinstance(p, str) else f'[{p}]' for p in loc)}"
            f".inserts[{i}] ({route_name!r}, {insert.type})"
        ).replace(".[", "[")
        specs.append(
            validate_insert(insert.type, insert.params, where, loaded.base_dir, allow_plugins)
        )
    return specs


def _sidechains(loaded: LoadedSession, nodes: dict[str, Node]) -> None:
    """Add a key edge for every insert that names a ``sidechain:`` route."""
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
            node.keys.append(Edge(candidates[0], tap, 1.0, "key", insert_index=index))


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


def _feeders(nodes: dict[str, Node], name: str) -> list[str]:
    """Key ``name`` and the keys of every route whose audio reaches it (outputs or sends)."""
    seen: list[str] = []
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.append(current)
        todo.extend(e.source for e in nodes[current].inputs)
    return seen


def _downstream(nodes: dict[str, Node], name: str) -> set[str]:
    out: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        for other in nodes.values():
            if other.key not in out and any(e.source == current for e in other.inputs):
                out.add(other.key)
                todo.append(other.key)
    return out


def _resolve_mute_solo(loaded: LoadedSession, nodes: dict[str, Node]) -> None:
    """Apply mute and solo-in-place.

    Solo follows Ardour's solo-in-place: when any route is soloed, every route that is neither
    soloed, nor fed by a soloed route (its group bus, its reverb return), nor feeding a soloed
    route (the tracks of a soloed bus) is implicitly muted. An explicit mute always wins. A muted
    route mutes its outputs and all its sends, pre-fader ones included.
    """
    session = loaded.session
    strips = {route_key("tracks", t.name): t for t in session.tracks} | {
        route_key("buses", b.name): b for b in session.buses
    }
    soloed = [name for name, r in strips.items() if r.solo]
    keep: set[str] | None = None
    if soloed:
        keep = set(soloed)
        for name in soloed:
            keep |= _downstream(nodes, name)
            keep |= set(_feeders(nodes, name))
    for name, route in strips.items():
        node = nodes[name]
        node.audible = not route.mute and (keep is None or name in keep)


def compensate_latency(
    graph: RenderGraph,
    chain_latency: dict[str, int],
    insert_input_latency: dict[str, dict[int, int]] | None = None,
) -> None:
    """Set edge delays and node latencies from each node's insert-chain latency.

    A sidechain key must reach its insert together with the audio at that insert's input: when
    the key route is later than that, the whole node waits for it (its input latency rises).

    Parameters
    ----------
    graph
        The compiled graph (modified in place).
    chain_latency
        Latency in samples of each node's insert chain, by node key.
    insert_input_latency
        By node key, the latency inside the chain at each insert's input (for sidechain keys).
    """
    by_key = graph.by_key
    inside = insert_input_latency or {}
    for node in graph.nodes:
        node.chain_latency_samples = chain_latency.get(node.key, 0)
        live = [e for e in node.inputs if by_key[e.source].audible]
        arrival = max((by_key[e.source].latency_samples for e in live), default=0)
        for key in node.keys:
            offset = inside.get(node.key, {}).get(key.insert_index or 0, 0)
            if by_key[key.source].audible:
                arrival = max(arrival, by_key[key.source].latency_samples - offset)
        node.input_latency_samples = arrival
        for edge in node.inputs:
            # An inaudible source's (silent) edge needs no delay.
            edge.delay_samples = max(arrival - by_key[edge.source].latency_samples, 0)
        for key in node.keys:
            offset = inside.get(node.key, {}).get(key.insert_index or 0, 0)
            key.delay_samples = max(arrival + offset - by_key[key.source].latency_samples, 0)
        node.latency_samples = arrival + node.chain_latency_samples


def latency_report(graph: RenderGraph) -> list[str]:
    """Measure each audible insert chain's latency error (``dsp.inserts.measure_latency``).

    Returns
    -------
    list of str
        One line per chain: ``ok``, ``differs by N samples`` (with the fix), or ``not measurable``.
    """
    from stemprint.dsp.inserts import measure_latency

    lines = []
    for node in graph.nodes:
        if not (node.audible and node.inserts):
            continue
        error = measure_latency(node.inserts, graph.sample_rate, node.channels)
        chain = " → ".join(spec.describe() for spec in node.inserts)
        label = f"{node.kind} {node.name!r} ({chain})"
        if error is None:
            lines.append(f"{label}: latency not measurable (the chain does not preserve a burst)")
        elif error == 0:
            lines.append(f"{label}: latency ok")
        else:
            lines.append(
                f"{label}: measured latency differs by {error:+d} samples from the reported one; "
                f"declare it with `latency_samples: {error}` on the latent insert (added to any "
                "value already declared)"
            )
    return lines
