"""The block runner: one render's runtime state, and the arithmetic of one unit of one block.

Invariants
----------
- One runner per render: it builds every instance's insert chain (its own plug-in state),
  delay lines and tap delays from a frozen :class:`~stemprint.render.plan.RenderPlan`; a second
  render builds a second runner, so nothing carries over between renders.
- Each unit's arithmetic is the same whoever runs it (a thread here, a track worker process):
  a track's clips are read in timeline order; an instance sums its inputs in the node's edge
  order, in float64 (in partial sums of consecutive edges when it has many:
  ``render.cache_keys.partial_sums``); polarity, inserts, then fader and pan. The output does
  not depend on the block size, the thread count or the scheduling order.
- Strip math: ``pre = chain(±input)`` (a dry instance delays by the chain's latency instead);
  ``post = fader_pan(pre)`` with the route's pan law (``dsp.strip``); the master's ``post``
  is ``pre`` on two channels times its gain, then its balance (with its automation).
- A pre-FX send reads ``±input`` (after polarity, before the inserts); a send's pan is a
  balance on its stereo signal, after the send level.
- Automation is read on the session timeline: a signal ``L`` samples late at block start ``s``
  is at timeline sample ``s − L``.
- An edge with a compensation delay has state (its delay line): it is computed once per block,
  in block order, whoever asks first, and kept until the block is released; any other edge is
  computed where it is read.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from stemprint.dsp.automation import gain_db_lane_to_linear, mute_ramp, mute_ramp_samples
from stemprint.dsp.chain import InsertChain
from stemprint.dsp.delay import DelayLine
from stemprint.dsp.layouts import convert, layout_of, lfe_index
from stemprint.dsp.strip import balance, fader_pan, fader_pan_automated, to_stereo
from stemprint.errors import RenderError
from stemprint.graph.types import Edge, Node, RenderExtent
from stemprint.render.cache_keys import partial_sums
from stemprint.render.plan import (
    Instance,
    InstanceKey,
    RenderPlan,
    edge_signal_kind,
    source_key,
)
from stemprint.render.sources import ClipReader

if TYPE_CHECKING:
    from stemprint.render.cache_plan import CachePlan


@dataclass
class BlockState:
    """The signals of one block in flight, by instance (``source``: by track)."""

    source: dict[InstanceKey, np.ndarray] = field(default_factory=dict)
    input: dict[InstanceKey, np.ndarray] = field(default_factory=dict)
    pre: dict[InstanceKey, np.ndarray] = field(default_factory=dict)
    post: dict[InstanceKey, np.ndarray] = field(default_factory=dict)
    #: Partial sums of a bus's or the master's input summed in a render worker, by
    #: ``(instance, part index)`` (``render.worker_parts``).
    part: dict[Any, np.ndarray] = field(default_factory=dict)

    def signals(self, kind: str) -> dict[Any, np.ndarray]:
        """The signals of one kind (``source``, ``input``, ``pre``, ``post``, ``part``)."""
        found: dict[Any, np.ndarray] = getattr(self, kind)
        return found


@dataclass
class _Strip:
    """The runtime state of one instance."""

    chain: InsertChain | None = None
    bypass: DelayLine | None = None  # dry: the chain's latency, without the chain
    source_delay: DelayLine | None = None  # a track waiting for a late sidechain key


class _DelayedEdge:
    """A delayed edge's signal from one source instance, computed once per block."""

    def __init__(self, edge: Edge) -> None:
        self.delay_samples = edge.delay_samples
        self.delay: DelayLine | None = None  # sized by the first block (its channels)
        self.lock = threading.Lock()
        self.next_block = 0
        self.signals: dict[int, np.ndarray] = {}


class BlockRunner:
    """Runs the units of a render block by block (public: the track workers use it too).

    Parameters
    ----------
    plan
        The render plan.
    block_size
        Samples per block.
    extent
        The timeline part rendered (its start anchors automation and control grids).
    cache
        The render cache's decisions (``render.cache``): instances whose ``pre`` signal is read
        from a verified entry (no clips read, no chain built), and entries to write.
    """

    def __init__(
        self,
        plan: RenderPlan,
        block_size: int,
        extent: RenderExtent,
        cache: CachePlan | None = None,
    ) -> None:
        self.plan = plan
        self.graph = plan.graph
        self.block_size = block_size
        self.origin = extent.origin_sample
        self.cache = cache
        self._hits = cache.hits if cache is not None else {}
        self._writers = cache.misses if cache is not None else {}
        self._part_hits = cache.part_hits if cache is not None else {}
        self._part_writers = cache.part_writers if cache is not None else {}
        self._input_needed = cache.input_needed if cache is not None else set()
        self._skip_reads = cache.skip_reads if cache is not None else set()
        self.idle: set[InstanceKey] = cache.idle if cache is not None else set()
        self._mute_ramp_samples = mute_ramp_samples(self.graph.sample_rate)
        self._strips = {key: self._strip(i) for key, i in plan.instances.items()}
        self._states: dict[int, BlockState] = {}
        self._states_lock = threading.Lock()
        self._edges: dict[tuple[int, InstanceKey], _DelayedEdge] = {}
        self._edges_lock = threading.Lock()
        self._tap_delays: dict[tuple[str, str], DelayLine] = {}
        #: Where the next block's ``post`` of an instance goes, if somewhere (a worker's slot).
        self.post_buffers: dict[InstanceKey, np.ndarray] = {}
        # Only instances tapped before their inserts (pre-FX sends) keep their input per block.
        self._keep_input = {key for kind, key in plan.consumed() if kind == "input"}

    def _strip(self, instance: Instance) -> _Strip:
        node = instance.node
        strip = _Strip()
        if instance.key in self._hits or instance.key in self.idle:
            return strip  # its ``pre`` comes from the cache, or nothing needs it
        if node.inserts and instance.dry:
            if node.chain_latency_samples:
                strip.bypass = DelayLine(node.channels, node.chain_latency_samples)
        elif node.inserts:
            rate = self.graph.sample_rate
            strip.chain = InsertChain(node.inserts, rate, node.channels, node.insert_automation())
            strip.chain.anchor_to_timeline(node.input_latency_samples - self.origin)
        if node.kind == "track" and node.input_latency_samples:
            strip.source_delay = DelayLine(node.channels, node.input_latency_samples)
        return strip

    def live_inputs(self, instance: Instance) -> list[tuple[Edge, InstanceKey]]:
        """The input edges this render computes for ``instance`` (the cache may hold the rest)."""
        return self.cache.live_inputs(instance) if self.cache is not None else list(instance.inputs)

    def live_parts(self, instance: Instance) -> list[tuple[int, int, int]]:
        """``(index, first edge, end edge)`` of the partial sums of ``instance``'s input this
        render computes (``render.cache_keys.partial_sums``; the cache may hold the rest)."""
        if self.cache is not None:
            return self.cache.live_parts(instance)
        return [(c, a, b) for c, (a, b) in enumerate(partial_sums(len(instance.inputs)))]

    def output_channels(self, instance: Instance) -> int:
        """Channels of an instance's ``pre`` signal."""
        hit = self._hits.get(instance.key)
        if hit is not None:
            return hit.channels
        chain = self._strips[instance.key].chain
        return chain.output_channels if chain is not None else instance.node.channels

    # -- block state ---------------------------------------------------------------------------

    def state(self, block: int) -> BlockState:
        """The signals of one block in flight, created on first use."""
        with self._states_lock:
            return self._states.setdefault(block, BlockState())

    def release(self, block: int) -> BlockState | None:
        """Forget a block's signals (after the taps read them); return them."""
        with self._states_lock:
            state = self._states.pop(block, None)
        for delayed in self._edges.values():
            delayed.signals.pop(block, None)
        return state

    def clear(self) -> None:
        """Drop every block in flight (the render ended or failed), and this process's
        half-written cache entries."""
        if self.cache is not None:
            self.cache.abandon()
        self._states.clear()
        for delayed in self._edges.values():
            delayed.signals.clear()

    def start_of(self, block: int) -> int:
        """Timeline sample of block ``block``'s first sample."""
        return self.origin + block * self.block_size

    # -- units ---------------------------------------------------------------------------------

    def read(self, track: str, readers: list[ClipReader], block: int) -> None:
        """A track's clips for one block (shared by every instance of the track)."""
        if track in self._skip_reads:
            return  # every instance of the track reads its ``pre`` from the cache
        node = self.graph.by_key[track]
        start, n = self.start_of(block), self.block_size
        playing = [r for r in readers if r.overlaps(start, n)]
        x = playing[0].whole_block(start, n, node.channels) if len(playing) == 1 else None
        if x is None:
            x = np.zeros((node.channels, n))
            for reader in playing:
                reader.add_into(x, start)
        if not all(r.integer_coded for r in playing):  # integer PCM decodes to finite values
            check_finite(x, node, start, "its clips (the audio file holds NaN or Inf)")
        self.state(block).source[source_key(track)] = x

    def run_instance(self, instance: Instance, block: int) -> None:
        """One instance's block: its input (clips or the sum of its inputs), inserts, fader."""
        node = instance.node
        state = self.state(block)
        hit = self._hits.get(instance.key)
        if hit is not None and instance.key not in self._input_needed:
            pre = hit.block(block * self.block_size, self.block_size)
            state.pre[instance.key] = pre
            self._post(instance, pre, state, block)
            return
        strip = self._strips[instance.key]
        if node.kind == "track":
            x = state.source[source_key(node.key)]
            if strip.source_delay is not None:
                x = strip.source_delay.process(x)
        else:
            x = self._input_sum(instance, state, block)
        self._process(instance, strip, x, state, block)

    def _input_sum(self, instance: Instance, state: BlockState, block: int) -> np.ndarray:
        """A bus's or the master's input: its edges summed in edge order, in partial sums when it
        has many (``render.cache_keys.partial_sums``: the same arithmetic with or without the
        cache); a partial sum may come from the cache."""
        inputs = instance.inputs
        parts = partial_sums(len(inputs))
        if len(parts) == 1:
            whole = state.part.get((instance.key, 0))  # summed in a render worker
            if whole is not None:
                return whole
            return self.edges_sum(instance.node.channels, inputs, state, block)
        n = self.block_size
        x = np.zeros((instance.node.channels, n))
        for c, (a, b) in enumerate(parts):
            hit = self._part_hits.get((instance.key, c))
            if hit is not None:
                part = hit.block(block * n, n)
            else:
                summed = state.part.get((instance.key, c))  # in a render worker
                if summed is None:
                    summed = self.edges_sum(instance.node.channels, inputs[a:b], state, block)
                part = summed
                writer = self._part_writers.get((instance.key, c))
                if writer is not None:
                    writer.write(block * n, part)
            np.add(x, part, out=x)
        return x

    def edges_sum(
        self,
        channels: int,
        inputs: tuple[tuple[Edge, InstanceKey], ...],
        state: BlockState,
        block: int,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """``Σ`` of the edges' signals in edge order, from zeros (into ``out`` if given)."""
        if out is None:
            x = np.zeros((channels, self.block_size))
        else:
            x = out
            x.fill(0.0)
        for edge, source in inputs:
            np.add(x, self.edge_signal(edge, source, state, block), out=x)
        return x

    def _process(
        self, instance: Instance, strip: _Strip, x: np.ndarray, state: BlockState, block: int
    ) -> None:
        node = instance.node
        start = self.start_of(block)
        if node.invert_polarity:
            x = -x
        if node.kind == "master" or instance.key in self._keep_input:
            state.input[instance.key] = x  # the premaster, or a pre-FX send's source
        hit = self._hits.get(instance.key)
        if hit is not None:  # its input was needed (the premaster); its ``pre`` is read back
            x = hit.block(block * self.block_size, self.block_size)
        elif strip.chain is not None:
            x = strip.chain.process(x, self._keys(instance, state, block, x.shape[1]))
            check_finite(x, node, start - strip.chain.latency_samples, "its inserts")
        elif strip.bypass is not None:
            x = strip.bypass.process(x)
        state.pre[instance.key] = x
        writer = self._writers.get(instance.key)
        if writer is not None:
            writer.write(block * self.block_size, x)
        self._post(instance, x, state, block)

    def _post(self, instance: Instance, x: np.ndarray, state: BlockState, block: int) -> None:
        """Fader and pan (or the master's gain and balance) of a ``pre`` block."""
        node = instance.node
        start = self.start_of(block)
        if node.kind == "master":
            out = self._master_strip(node, to_stereo(x) if node.layout == "stereo" else x, start)
        elif node.surround is not None or node.post_layout != "stereo":
            out = self._layout_strip(node, x, start)
        elif node.automation:
            out = self._automated_strip(node, x, start)
        else:
            # A render worker hands its buffer in shared memory: no copy to ship the block.
            into = self.post_buffers.pop(instance.key, None)
            out = fader_pan(x, node.gain_linear, node.pan, node.pan_law, into)
        state.post[instance.key] = out

    def _master_strip(self, node: Node, x: np.ndarray, start: int) -> np.ndarray:
        """The master's gain (a muted master has gain 0) and balance, with automation."""
        if node.automation:
            return self._automated_strip(node, x, start)
        if node.pan != 0.0:
            return fader_pan(x, node.gain_linear, node.pan)
        return x * node.gain_linear if node.gain_linear != 1.0 else x

    def _keys(
        self, instance: Instance, state: BlockState, block: int, n: int
    ) -> dict[int, np.ndarray] | None:
        """Sidechain key blocks by insert index; a muted key route is a silent key (not "no
        key", which would self-key)."""
        if not instance.keys:
            return None
        return {
            edge.insert_index or 0: (
                self.edge_signal(edge, source, state, block)
                if source is not None
                else np.zeros((2, n))
            )
            for edge, source in instance.keys
        }

    def _fader_gain(self, node: Node, start: int, n: int) -> float | np.ndarray:
        """The fader's gain for one block: static, or its ``gain_db`` and ``mute`` lanes read
        on the session timeline (this stream lags the timeline by the node's latency)."""
        lanes = node.automation
        timeline = start - node.latency_samples
        gain: float | np.ndarray = node.gain_linear
        if "gain_db" in lanes:
            gain = gain_db_lane_to_linear(lanes["gain_db"].values(timeline, n))
        if "mute" in lanes:
            gain = gain * mute_ramp(lanes["mute"], timeline, n, self._mute_ramp_samples)
        return gain

    def _layout_strip(self, node: Node, x: np.ndarray, start: int) -> np.ndarray:
        """Fader, then the surround panner, a mono sum, or a surround route's own layout."""
        gain = self._fader_gain(node, start, x.shape[1])
        if node.surround is not None:
            panned = (
                node.surround @ x
                if x.shape[0] == node.channels
                else convert(x, layout_of(x.shape[0]), node.post_layout)
            )
        else:
            panned = convert(x, layout_of(x.shape[0]), node.post_layout)
        return panned * gain

    def _automated_strip(self, node: Node, x: np.ndarray, start: int) -> np.ndarray:
        """Fader and pan with per-sample automation, read on the session timeline."""
        lanes = node.automation
        n = x.shape[1]
        timeline = start - node.latency_samples  # this stream lags the timeline so much
        gain = self._fader_gain(node, start, n)
        pan = lanes["pan"].values(timeline, n) if "pan" in lanes else node.pan
        return fader_pan_automated(x, gain, pan, node.pan_law)

    # -- edges and taps ------------------------------------------------------------------------

    def edge_signal(
        self, edge: Edge, source: InstanceKey, state: BlockState, block: int
    ) -> np.ndarray:
        """An edge's signal from one source instance: tap, gain, compensation delay."""
        if not edge.delay_samples:
            return self._gained(edge, source, state, block)
        memo = (id(edge), source)
        with self._edges_lock:
            delayed = self._edges.setdefault(memo, _DelayedEdge(edge))
        with delayed.lock:
            found = delayed.signals.get(block)
            if found is not None:
                return found
            if block != delayed.next_block:
                raise RenderError(
                    f"edge {edge.source} → {edge.target or edge.kind}: block {block} requested "
                    f"before block {delayed.next_block} (a scheduling bug)"
                )
            gained = self._gained(edge, source, state, block)
            if delayed.delay is None:
                delayed.delay = DelayLine(gained.shape[0], delayed.delay_samples)
            signal = delayed.delay.process(gained)
            delayed.signals[block] = signal
            delayed.next_block = block + 1
            return signal

    def _gained(self, edge: Edge, source: InstanceKey, state: BlockState, block: int) -> np.ndarray:
        """An edge's tapped signal times its gain (send level, automation, pre-fader mute), then
        the send's pan."""
        signal = self._gained_unpanned(edge, source, state, block)
        return balance(signal, edge.pan) if edge.pan != 0.0 else signal

    def _gained_unpanned(
        self, edge: Edge, source: InstanceKey, state: BlockState, block: int
    ) -> np.ndarray:
        if edge.lfe:
            signal = self._lfe_signal(edge, source, state, block)
        else:
            tapped = state.signals(edge_signal_kind(edge))[source]
            signal = convert(tapped, layout_of(tapped.shape[0]), edge.target_layout)
        source_node = self.graph.by_key[edge.source]
        lanes = source_node.automation
        send_lane = lanes.get(f"send:{edge.target}") if edge.kind == "send" else None
        muted_pre = edge.tap != "post_fader" and "mute" in lanes
        if send_lane is None and not muted_pre:
            return signal * edge.gain_linear if edge.gain_linear != 1.0 else signal
        # Automated send level, or a mute that must also silence a pre-fader send.
        timeline = self.start_of(block) - source_node.source_latency_samples(edge.tap)
        n = signal.shape[1]
        gain: float | np.ndarray = edge.gain_linear
        if send_lane is not None:  # the level follows the lane; the polarity stays
            gain = math.copysign(1.0, edge.gain_linear) * gain_db_lane_to_linear(
                send_lane.values(timeline, n)
            )
        if muted_pre:
            gain = gain * mute_ramp(lanes["mute"], timeline, n, self._mute_ramp_samples)
        return signal * gain

    def _lfe_signal(
        self, edge: Edge, source: InstanceKey, state: BlockState, block: int
    ) -> np.ndarray:
        """An LFE send before its level: the mean of the source's channels after its inserts
        (its LFE channel left out), times its fader unless pre-fader, on the target's LFE."""
        x = state.signals("input" if edge.tap == "pre_inserts" else "pre")[source]
        node = self.graph.by_key[edge.source]
        lfe = lfe_index(layout_of(x.shape[0]))
        keep = [c for c in range(x.shape[0]) if c != lfe]
        mono = np.mean(x[keep], axis=0) if len(keep) > 1 else x[keep[0]]
        if edge.tap == "post_fader":
            mono = mono * self._fader_gain(node, self.start_of(block), mono.shape[0])
        out = np.zeros((edge.channels, mono.shape[0]))
        out[lfe_index(edge.target_layout) or 0] = mono
        return out

    def tap_delay(self, tap: str, route: str, lag_samples: int, channels: int = 2) -> DelayLine:
        """The alignment delay line of one route inside one tap (created on first use)."""
        line = self._tap_delays.get((tap, route))
        if line is None:
            line = self._tap_delays.setdefault((tap, route), DelayLine(channels, lag_samples))
        return line


def check_finite(x: np.ndarray, node: Node, start: int, after: str) -> None:
    """Raise :class:`RenderError` naming the route and the time when ``x`` holds NaN or Inf."""
    # The sum is NaN or Inf iff a sample is (audio never comes near float64 overflow); one
    # reduction is cheaper than a full isfinite mask on every block.
    if math.isfinite(float(np.sum(x))):
        return
    bad = np.flatnonzero(~np.isfinite(x).all(axis=0))
    sample = max(start + int(bad[0]), 0) if bad.size else max(start, 0)
    raise RenderError(
        f"{node.kind} {node.name!r} produced NaN or Inf after {after}, "
        f"near timeline sample {sample}",
        field=node.name,
        fix="check that route's inserts and their parameters (a plug-in blew up), "
        "or its audio files",
    )
