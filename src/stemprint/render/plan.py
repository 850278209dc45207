"""The render plan: which node instances a render needs, in what order, reading what.

Invariants
----------
- Pure: built from a frozen graph and the output specs; it holds no audio, no plug-in state
  and is never changed once built (:class:`RenderPlan`). Every render of the plan builds its own
  runtime state (``render.runner``).
- An *instance* is a node rendered for one variant: a set of active tracks, wet or dry.
  ``InstanceKey = (node key, active tracks, dry)``. The instance of the full session (active =
  every audible track reaching the node, wet) is the main render, shared by every output that
  needs it; split stems, alternate mixes, stems through the master and dry stems get their own
  instances of the nodes concerned, in the same pass.
- An instance with no active track renders silence and is not created (the master always is).
- Sidechain keys come from the full session's instances (the bass of a split stem still ducks
  under the kick of another stem), unless a variant takes its keys from its own tracks
  (``keys_from``: an alternate mix with ``sidechain: mix``, where a muted kick no longer ducks
  the bass, as in a DAW). ``keys_from`` is part of an instance's key only where it changes
  something: on nodes that a keyed insert feeds, and when it is not the full session.
- Levels: no instance feeds another of its level; tracks are level 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from stemprint.errors import RenderError
from stemprint.graph.types import Edge, Node, RenderGraph
from stemprint.model.session import MASTER

InstanceKey = tuple[str, frozenset[str], bool, frozenset[str] | None]
"""A node rendered from a set of active tracks, wet (``False``) or dry (``True``), its sidechain
keys from the full session (``None``) or from a set of tracks."""

SignalKind = str
"""``source`` (a track's clips), ``input`` (after polarity, before the inserts: the master's input
sum, or a pre-FX send's source), ``pre`` (after inserts), ``post`` (after fader and pan)."""

SignalRef = tuple[SignalKind, InstanceKey]


def source_key(track: str) -> InstanceKey:
    """The key under which a track's clip signal is stored (shared by all its instances)."""
    return (track, frozenset(), False, None)


@dataclass(frozen=True)
class Instance:
    """One node rendered for one variant.

    Attributes
    ----------
    node
        The graph node.
    active
        Audible tracks of the variant that reach the node.
    dry
        Inserts bypassed (their latency kept) and sends dropped.
    inputs
        ``(edge, source instance)`` summed at the input, in the node's edge order.
    keys
        ``(key edge, source instance or None when the key route is silent)``.
    keys_from
        The tracks its (and its sources') sidechain keys are rendered from; ``None``: the
        full session.
    """

    node: Node
    active: frozenset[str]
    dry: bool
    inputs: tuple[tuple[Edge, InstanceKey], ...]
    keys: tuple[tuple[Edge, InstanceKey | None], ...]
    keys_from: frozenset[str] | None = None

    @property
    def key(self) -> InstanceKey:
        return (self.node.key, self.active, self.dry, self.keys_from)


class PlanBuilder:
    """Creates instances on first use while the outputs are planned (then frozen in a plan)."""

    def __init__(self, graph: RenderGraph) -> None:
        self.graph = graph
        self.nodes = graph.by_key
        self.routing = graph.routing
        self.audible = graph.audible_tracks
        self.instances: dict[InstanceKey, Instance] = {}
        # The full session first, so that keys and the default outputs find their instances.
        for node in graph.nodes:
            self.instance(node.key, self.audible, False)

    def instance(
        self,
        key: str,
        tracks: frozenset[str],
        dry: bool,
        keys_from: frozenset[str] | None = None,
    ) -> InstanceKey | None:
        """The instance of node ``key`` for a variant, created on first use; ``None`` if silent."""
        node = self.nodes[key]
        if not node.audible:
            return None
        active = self.routing.tracks_reaching(key, not dry) & tracks
        if not active and node.kind != "master":
            return None
        if dry or keys_from == self.audible or not self._keyed_upstream(key):
            keys_from = None
        instance_key: InstanceKey = (key, active, dry, keys_from)
        if instance_key not in self.instances:
            self.instances[instance_key] = self._build(node, active, dry, keys_from)
        return instance_key

    def _keyed_upstream(self, key: str) -> bool:
        """Some node feeding ``key`` (or ``key`` itself) has a sidechain key."""
        return any(self.nodes[k].keys for k in self.routing.upstream(key))

    def _build(
        self, node: Node, active: frozenset[str], dry: bool, keys_from: frozenset[str] | None
    ) -> Instance:
        inputs = []
        for edge in node.inputs:
            if dry and edge.kind == "send":
                continue
            source = self.instance(edge.source, active, dry, keys_from)
            if source is not None:
                inputs.append((edge, source))
        keys: tuple[tuple[Edge, InstanceKey | None], ...] = ()
        if not dry:
            tracks = self.audible if keys_from is None else keys_from
            keys = tuple((e, self.instance(e.source, tracks, False, keys_from)) for e in node.keys)
        return Instance(node, active, dry, tuple(inputs), keys, keys_from)

    def master(
        self,
        tracks: frozenset[str] | None,
        dry: bool = False,
        keys_from: frozenset[str] | None = None,
    ) -> InstanceKey:
        found = self.instance(MASTER, self.audible if tracks is None else tracks, dry, keys_from)
        if found is None:
            raise RenderError("the master has no instance (it is always audible)")
        return found


@dataclass(frozen=True)
class RenderPlan:
    """Every instance a render needs, grouped in levels (signal-path order within a level)."""

    graph: RenderGraph
    instances: dict[InstanceKey, Instance]
    levels: tuple[tuple[Instance, ...], ...]

    @classmethod
    def freeze(cls, builder: PlanBuilder) -> RenderPlan:
        order = {n.key: i for i, n in enumerate(builder.graph.nodes)}
        return cls(builder.graph, dict(builder.instances), _levels(builder.instances, order))

    def track_instances(self) -> dict[str, list[Instance]]:
        """Every track's instances, by track key, in level order."""
        found: dict[str, list[Instance]] = {}
        for level in self.levels:
            for instance in level:
                if instance.node.kind == "track":
                    found.setdefault(instance.node.key, []).append(instance)
        return found

    def consumed(self) -> set[SignalRef]:
        """Every instance signal another instance reads (taps add their own)."""
        needed: set[SignalRef] = set()
        for instance in self.instances.values():
            for edge, source in (*instance.inputs, *instance.keys):
                if source is not None:
                    needed.add((edge_signal_kind(edge), source))
        return needed


def signal_kind(tap: str) -> str:
    """The block-state signal an edge's tap reads: ``post``, ``pre`` or ``input``."""
    return {"post_fader": "post", "pre_fader": "pre", "pre_inserts": "input"}[tap]


def edge_signal_kind(edge: Edge) -> str:
    """The block-state signal an edge reads (a post-fader LFE send reads ``pre``: it applies
    the fader itself, to the mean of the channels before pan)."""
    if edge.lfe and edge.tap == "post_fader":
        return "pre"
    return signal_kind(edge.tap)


def _levels(
    instances: dict[InstanceKey, Instance], order: dict[str, int]
) -> tuple[tuple[Instance, ...], ...]:
    """Instances grouped so that none feeds another of its group (tracks are level 0)."""
    level: dict[InstanceKey, int] = {}
    ordered = sorted(instances.values(), key=lambda i: order[i.node.key])
    for instance in ordered:
        sources = [level[s] for _, s in instance.inputs]
        sources += [level[s] for _, s in instance.keys if s is not None]
        level[instance.key] = 1 + max(sources) if sources else 0
    groups: list[list[Instance]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for instance in ordered:
        groups[level[instance.key]].append(instance)
    return tuple(tuple(g) for g in groups)
