"""The compiled render graph: immutable nodes and edges, latencies already compensated.

Invariants
----------
- A :class:`RenderGraph` is complete and frozen when :func:`~stemprint.graph.compile.
  compile_session` returns it: every node's latency is measured and every edge's compensation
  delay is set. Nothing downstream writes to a node, an edge or the graph; a render's extent
  (start, length, until-silent) is a :class:`RenderExtent` value passed to the render.
- Nodes are in processing (topological) order, the master last.
- Latency compensation (plug-in delay compensation): a node's input latency is the latest
  arrival among its audible inputs (and its sidechain keys, less the latency inside the chain at
  the keyed insert); each edge is delayed by ``input latency − source latency``; a node's output
  latency is its input latency plus its insert chain's latency.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from stemprint.dsp.inserts import InsertSpec
from stemprint.dsp.layouts import channel_count

if TYPE_CHECKING:
    from stemprint.graph.clips import ClipPlan
    from stemprint.graph.routing import Routing

NodeKind = Literal["track", "bus", "master"]
TapPoint = Literal["pre_inserts", "pre_fader", "post_fader"]
EdgeKind = Literal["output", "send", "key"]

EMPTY: Mapping[Any, Any] = MappingProxyType({})


@dataclass(frozen=True)
class Edge:
    """Audio flowing from one node's tap into another node's input.

    Attributes
    ----------
    source
        Key of the sending node.
    tap
        ``post_fader`` (outputs and post-fader sends), ``pre_fader`` (pre-fader sends: after
        the inserts) or ``pre_inserts`` (pre-FX sends: after polarity, before the inserts).
    gain_linear
        Send level (1.0 for outputs; negative for a send that inverts the polarity).
    kind
        ``output``, ``send``, or ``key`` (a sidechain key: an ordering edge whose audio goes to
        one insert's detector, not into the sum).
    delay_samples
        Latency-compensation delay of this edge.
    insert_index
        For a sidechain key: the index of the keyed insert in the receiving node's chain.
    target
        For a send: the receiving bus's name (for send-level automation).
    pan
        For a send: its balance, −1 … +1 (``dsp.strip.balance``).
    source_layout, target_layout
        The layout of the tapped signal and the layout it arrives in (``dsp.layouts``; the
        edge converts between them). A key edge does not convert.
    lfe
        An LFE send: the mean of the source's channels into the target's LFE channel only.
    """

    source: str
    tap: TapPoint
    gain_linear: float
    kind: EdgeKind
    delay_samples: int = 0
    insert_index: int | None = None
    target: str = ""
    pan: float = 0.0
    source_layout: str = "stereo"
    target_layout: str = "stereo"
    lfe: bool = False

    @property
    def channels(self) -> int:
        """Channels of the edge's signal where it arrives."""
        return channel_count(self.target_layout)


@dataclass(frozen=True)
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
    gain_linear, pan, invert_polarity
        Fader, pan and polarity (a muted master has gain 0).
    pan_law
        ``auto``, ``constant_power`` or ``balance`` (``dsp.strip``).
    layout
        The layout of the node's own signal (its input, inserts and pre-fader taps): a track's
        ``mono`` or ``stereo`` source, a bus's or the master's declared layout.
    post_layout
        The layout after fader and pan: the surround layout a mono or stereo route is panned
        into (its output is a 5.1/7.1 bus), ``mono`` into a mono bus, a surround route's own
        layout, else ``stereo``.
    surround
        Surround panner gains ``(post channels, channels)`` when the route pans into a surround
        layout (``dsp.layouts.surround_pan_matrix``), else ``None``.
    channels
        Input channels (tracks: 1 if every clip is mono, else 2; buses: 2).
    output
        Key of the node this one outputs to (``None`` for the master, and for a route that
        feeds only its sends).
    inputs
        Edges summed at this node's input.
    keys
        Sidechain key edges into this node's inserts.
    clips
        Clip plans (tracks only).
    chain_latency_samples
        Latency of the insert chain (compensated).
    chain_buffering_samples
        The part of it that is stemprint's fixed-chunk feeding of pedalboard, not the
        plug-ins' own latency.
    insert_input_latency_samples
        By insert index, the latency inside the chain at that insert's input.
    input_latency_samples, latency_samples
        Latency at the input sum and at the output, relative to the timeline.
    automation
        Automation lanes (``dsp.automation.AutomationLane``) by param: ``gain_db``, ``pan``,
        ``mute``, ``send:<bus>``, ``insert.<index>.<parameter>``; positions in timeline samples.
    """

    key: str
    name: str
    kind: NodeKind
    audible: bool
    inserts: tuple[InsertSpec, ...]
    gain_linear: float
    pan: float
    invert_polarity: bool
    channels: int
    output: str | None
    inputs: tuple[Edge, ...] = ()
    keys: tuple[Edge, ...] = ()
    clips: tuple[ClipPlan, ...] = ()
    chain_latency_samples: int = 0
    chain_buffering_samples: int = 0
    insert_input_latency_samples: Mapping[int, int] = field(default_factory=lambda: EMPTY)
    input_latency_samples: int = 0
    latency_samples: int = 0
    automation: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    pan_law: str = "auto"
    layout: str = "stereo"
    post_layout: str = "stereo"
    surround: Any = None

    @property
    def post_channels(self) -> int:
        """Channels after fader and pan."""
        return channel_count(self.post_layout)

    def source_latency_samples(self, tap: str) -> int:
        """Latency of this node's signal at ``tap`` (a pre-FX tap is ahead of its inserts)."""
        return self.input_latency_samples if tap == "pre_inserts" else self.latency_samples

    def insert_automation(self) -> dict[int, dict[str, Any]]:
        """``insert.<index>.<parameter>`` lanes, by insert index and parameter name."""
        found: dict[int, dict[str, Any]] = {}
        for param, lane in self.automation.items():
            if param.startswith("insert."):
                _, index, name = param.split(".")
                found.setdefault(int(index), {})[name] = lane
        return found


@dataclass(frozen=True)
class Stem:
    """A default stem: the post-fader output of one route that outputs to the master.

    Attributes
    ----------
    name
        The route's name.
    route
        Key of the route printed to this stem.
    routes
        Keys of every route whose audio reaches this stem (the route and what feeds it).
    """

    name: str
    route: str
    routes: tuple[str, ...]


@dataclass(frozen=True)
class UntilSilent:
    """Stop once every output stayed below ``threshold_linear`` for ``hold_samples`` after
    ``min_length_samples`` (the extent's length is then the cap)."""

    threshold_linear: float
    hold_samples: int
    min_length_samples: int


@dataclass(frozen=True)
class RenderExtent:
    """What part of the timeline one render covers.

    Attributes
    ----------
    start_sample
        Timeline sample the outputs start at (0, or a region's start).
    length_samples
        Samples written to every output (the cap, with ``until_silent``).
    until_silent
        Cut every output once the whole render has gone silent, or ``None``.
    preroll_samples
        Samples rendered before ``start_sample`` and not written, so that reverbs, delays and
        plug-in state are warm when the outputs start (as a DAW pre-rolls).
    """

    start_sample: int
    length_samples: int
    until_silent: UntilSilent | None = None
    preroll_samples: int = 0

    @property
    def origin_sample(self) -> int:
        """Timeline sample the render itself starts at (the pre-roll's first)."""
        return self.start_sample - self.preroll_samples


@dataclass(frozen=True)
class RenderGraph:
    """The compiled session, ready for the streaming engine.

    Attributes
    ----------
    sample_rate
        Render rate in Hz.
    nodes
        Every node in processing (topological) order; the master last.
    stems
        The default stems, in session order.
    end_samples
        End of the last audible clip (timeline samples).
    tail_samples
        The session's tail (``tail_seconds``) in samples.
    warnings
        Things the user should know (resampled files, silent routes).
    """

    sample_rate: int
    nodes: tuple[Node, ...]
    stems: tuple[Stem, ...]
    end_samples: int
    tail_samples: int
    warnings: tuple[str, ...]

    @property
    def length_samples(self) -> int:
        """Length of the default extent: the last audible clip's end plus the session tail."""
        return self.end_samples + self.tail_samples

    def extent(self) -> RenderExtent:
        """The default extent: from 0 to the end of the last audible clip plus the tail."""
        return RenderExtent(0, self.length_samples)

    @cached_property
    def by_key(self) -> Mapping[str, Node]:
        """Nodes by key."""
        return MappingProxyType({n.key: n for n in self.nodes})

    @property
    def master(self) -> Node:
        """The master node."""
        return self.nodes[-1]

    @cached_property
    def routing(self) -> Routing:
        """Route look-ups on this graph (feeders, paths, returns), cached."""
        from stemprint.graph.routing import Routing

        return Routing(self.nodes)

    @cached_property
    def audible_tracks(self) -> frozenset[str]:
        """Keys of the audible tracks."""
        return frozenset(n.key for n in self.nodes if n.kind == "track" and n.audible)
