"""Taps: one class per kind of output, each knowing what it reads, its latency and its role.

Invariants
----------
- A tap's ``latency_samples`` is how far its signal lags the timeline; the writer drops that many
  samples from its start, so every file starts at the render's first timeline sample.
- A tap reads only signals of the current block (``state``) and, through the runner, edge
  signals (tap, gain, compensation delay): taps hold no audio between blocks except their own
  alignment delay lines, which live in the runner (one set per render).
- A tap's ``key_image`` names every signal it reads by its content key (``render.cache_keys``)
  and how it combines them, so equal keys mean equal printed samples; a tap reading something
  without a key (or a track's clips: ``TrackSourceTap``) has none.
- A tap decides its manifest role (``stem``, ``stem_dry`` …) from what it prints: one answer
  for the live measurement, the manifest and the README.

Signals per kind (``n`` samples of block ``k``; sums in float64, in the graph's edge order):

=================  ===============================================================  ==========
class              signal                                                           latency
=================  ===============================================================  ==========
``MasterOutTap``   a master instance's output (mix, alternate mix, stem via master)  L(master)
``MasterInTap``    the full session's master input sum (premaster)                   A(master)
``ContributionTap`` Σ owned master-input edges of a variant (a stem)                 A(master)
``PreSumTap``      Σ routes' pre-fader signals, each delayed to the latest route     max L(r)
``PostTap``        one route's post-fader output (a multitrack track)               L(r)
``TrackSourceTap`` a track's clips before its strip (a dry multitrack track)         0
=================  ===============================================================  ==========
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from stemprint.dsp.layouts import convert, layout_of
from stemprint.graph.outputs import OutputSpec
from stemprint.render.plan import InstanceKey, PlanBuilder, SignalRef, edge_signal_kind, source_key

if TYPE_CHECKING:
    from stemprint.render.cache_keys import Keys
    from stemprint.render.runner import BlockRunner, BlockState


class Tap:
    """An output of the render (base class; one subclass per kind).

    Attributes
    ----------
    spec
        What the tap prints (``graph.outputs.OutputSpec``).
    latency_samples
        Samples the tap lags the timeline; dropped from its start when written.
    """

    kind: ClassVar[str]

    def __init__(self, spec: OutputSpec, builder: PlanBuilder) -> None:
        self.spec = spec
        self.latency_samples = self._prepare(builder)

    @property
    def key(self) -> str:
        """Unique key: ``mix``, ``premaster``, ``stem:<name>``, ``mix:<name>``, ``track:<name>``."""
        return self.spec.key

    @property
    def name(self) -> str:
        """Display name."""
        return self.spec.name

    @property
    def role(self) -> str:
        """The manifest role of the file."""
        return self.spec.role

    def _prepare(self, builder: PlanBuilder) -> int:
        """Create the instances the tap reads; return its latency."""
        raise NotImplementedError

    def consumed(self) -> set[SignalRef]:
        """The instance signals the tap reads each block (for the worker processes and the
        cache's pruning)."""
        return set()

    def signal(self, runner: BlockRunner, state: BlockState, index: int) -> np.ndarray:
        """The tap's ``(channels, n)`` samples of block ``index``."""
        raise NotImplementedError

    def key_image(self, keys: Keys) -> list[Any] | None:
        """What determines the tap's signal, for its key (``render.cache_keys``), or ``None``
        when something it reads has no key."""
        return None


class MasterOutTap(Tap):
    """A master instance's output: the mix, an alternate mix, or one stem through the master."""

    kind = "master_out"

    def _prepare(self, builder: PlanBuilder) -> int:
        keys_from = self.spec.tracks if self.spec.own_keys else None
        self._master = builder.master(self.spec.tracks, self.spec.dry, keys_from)
        return builder.graph.master.latency_samples

    @property
    def role(self) -> str:
        return "stem_via_master" if self.spec.role == "stem" else self.spec.role

    def consumed(self) -> set[SignalRef]:
        return {("post", self._master)}

    def key_image(self, keys: Keys) -> list[Any] | None:
        return _image(self, [keys.post(self._master)])

    def signal(self, runner: BlockRunner, state: BlockState, index: int) -> np.ndarray:
        return state.post[self._master]


class MasterInTap(Tap):
    """The full session's master input: the premaster."""

    kind = "master_in"

    def _prepare(self, builder: PlanBuilder) -> int:
        self._master = builder.master(self.spec.tracks, self.spec.dry)
        return builder.graph.master.input_latency_samples

    def consumed(self) -> set[SignalRef]:
        return {("input", self._master)}

    def key_image(self, keys: Keys) -> list[Any] | None:
        return _image(self, [keys.input(self._master)])

    def signal(self, runner: BlockRunner, state: BlockState, index: int) -> np.ndarray:
        return state.input[self._master]


class ContributionTap(Tap):
    """A stem: the owned master-input edges of a variant, summed as the master sums them."""

    kind = "contribution"

    def _prepare(self, builder: PlanBuilder) -> int:
        tracks = self.spec.tracks if self.spec.tracks is not None else builder.audible
        self._edges = []
        for edge in builder.graph.master.inputs:
            if edge.source in self.spec.owned:
                source = builder.instance(edge.source, tracks, self.spec.dry)
                if source is not None:
                    self._edges.append((edge, source))
        return builder.graph.master.input_latency_samples

    @property
    def role(self) -> str:
        return "stem" if self.spec.sums_to_premaster else f"stem_{self.spec.tap_point}"

    def consumed(self) -> set[SignalRef]:
        return {(edge_signal_kind(e), s) for e, s in self._edges}

    def key_image(self, keys: Keys) -> list[Any] | None:
        return _image(self, [keys.edge(e, s) for e, s in self._edges])

    def signal(self, runner: BlockRunner, state: BlockState, index: int) -> np.ndarray:
        total = np.zeros((self.spec.channels, runner.block_size))
        for edge, source in self._edges:
            total = total + runner.edge_signal(edge, source, state, index)
        return total


class _RouteSumTap(Tap):
    """Routes' main signals (pre- or post-fader), each delayed to the latest route's latency."""

    signal_kind: ClassVar[str]

    def _prepare(self, builder: PlanBuilder) -> int:
        nodes = builder.nodes
        latency = max((nodes[k].latency_samples for k in self.spec.routes), default=0)
        self._sources: list[tuple[str, InstanceKey, int]] = []
        for key in self.spec.routes:
            source = builder.instance(key, builder.audible, False)
            if source is not None:
                self._sources.append((key, source, latency - nodes[key].latency_samples))
        return latency

    def consumed(self) -> set[SignalRef]:
        return {(self.signal_kind, source) for _, source, _ in self._sources}

    def key_image(self, keys: Keys) -> list[Any] | None:
        signal = keys.pre if self.signal_kind == "pre" else keys.post
        found = [signal(source) for _, source, _ in self._sources]
        return _image(self, [*found, *(lag for _, _, lag in self._sources)], found)

    def signal(self, runner: BlockRunner, state: BlockState, index: int) -> np.ndarray:
        total = np.zeros((self.spec.channels, runner.block_size))
        layout = layout_of(self.spec.channels)
        signals = state.pre if self.signal_kind == "pre" else state.post
        for route, source, lag in self._sources:
            x = convert(signals[source], layout_of(signals[source].shape[0]), layout)
            if lag:
                x = runner.tap_delay(self.key, route, lag, x.shape[0]).process(x)
            total = total + x
        return total


class PreSumTap(_RouteSumTap):
    """A pre-fader stem: its routes after their inserts, before fader and pan."""

    kind = "pre_sum"
    signal_kind = "pre"

    @property
    def role(self) -> str:
        return "stem_pre_fader"


class PostTap(_RouteSumTap):
    """A multitrack track: one route's post-fader output."""

    kind = "post"
    signal_kind = "post"


class TrackSourceTap(Tap):
    """A dry multitrack track: the track's clips, before its strip."""

    kind = "track_source"

    def _prepare(self, builder: PlanBuilder) -> int:
        self._source = source_key(self.spec.routes[0])
        return 0

    def consumed(self) -> set[SignalRef]:
        return {("source", self._source)}

    def signal(self, runner: BlockRunner, state: BlockState, index: int) -> np.ndarray:
        found = state.source.get(self._source)
        return found if found is not None else np.zeros((self.spec.channels, runner.block_size))


def _image(tap: Tap, parts: list[Any], keyed: list[str | None] | None = None) -> list[Any] | None:
    """A tap's key image: its kind, channels and ``parts`` (``None`` when any of ``keyed``,
    default ``parts``, has no key)."""
    if any(k is None for k in (parts if keyed is None else keyed)):
        return None
    return [tap.kind, tap.spec.channels, parts]


TAP_CLASSES: dict[str, type[Tap]] = {
    cls.kind: cls
    for cls in (MasterOutTap, MasterInTap, ContributionTap, PreSumTap, PostTap, TrackSourceTap)
}
"""The tap class of each ``OutputSpec.kind``."""


def make_tap(spec: OutputSpec, builder: PlanBuilder) -> Tap:
    """The tap that prints ``spec``."""
    return TAP_CLASSES[spec.kind](spec, builder)
