"""The streaming render engine: one pass over the timeline, block by block, every tap at once.

Memory is bounded by the block size times the number of nodes (plus plug-in state), whatever
the session length. Sums are float64; plug-ins run in float32 (pedalboard's format), so a session
without inserts is rendered in float64 end to end. The same graph renders bit-identically for
every block size: sources are read per clip in timeline order, zero-latency plug-ins are
call-size independent, latent ones are fed fixed chunks (``dsp.inserts``), and dither noise is
drawn frame by frame from a seeded generator (``export.audio``).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from stemprint.dsp.automation import gain_db_lane_to_linear, mute_ramp, mute_ramp_samples
from stemprint.dsp.inserts import InsertChain
from stemprint.dsp.strip import fader_pan, fader_pan_automated, to_stereo
from stemprint.errors import InputError, RenderError
from stemprint.graph.compile import Edge, Node, RenderGraph, compensate_latency
from stemprint.graph.outputs import OutputSpec
from stemprint.model.session import MASTER
from stemprint.render.sources import ClipReader

MIN_BLOCK_SIZE = 32
"""Smallest render block: pedalboard guesses the channel axis of tiny buffers."""

DEFAULT_BLOCK_SIZE = 16384

InstanceKey = tuple[str, frozenset[str], bool]
"""A node rendered from a set of active tracks, wet or dry."""


class Sink(Protocol):
    """Where a tap's samples go (a file writer, a meter, a test buffer)."""

    def write(self, block: np.ndarray) -> None:
        """Take the next ``(channels, n)`` float64 samples."""

    def close(self) -> None:
        """All samples were written."""


@dataclass(frozen=True)
class Tap:
    """An output of the render, with its latency.

    Attributes
    ----------
    key
        Unique key (``mix``, ``premaster``, ``stem:<name>``, ``mix:<name>``, ``track:<name>``).
    role
        The output's role (``graph.outputs.OutputSpec.role``).
    name
        Display name.
    latency_samples
        Samples the tap lags the timeline; dropped from its start when written.
    spec
        What the tap prints.
    """

    key: str
    role: str
    name: str
    latency_samples: int
    spec: OutputSpec


class DelayLine:
    """A fixed delay of ``delay_samples`` for ``(channels, n)`` blocks of any size."""

    def __init__(self, channels: int, delay_samples: int) -> None:
        self._buffer = np.zeros((channels, delay_samples))

    def process(self, block: np.ndarray) -> np.ndarray:
        """Return ``block`` delayed; the first call returns zeros for the delay's length."""
        joined = np.concatenate([self._buffer, block], axis=1)
        n = block.shape[1]
        self._buffer = joined[:, n:]
        return joined[:, :n]


class _TrimmedSink:
    """Drops a tap's latency from its start and stops at the output length."""

    def __init__(self, sink: Sink, skip: int, length: int) -> None:
        self.sink = sink
        self.skip = skip
        self.left = length
        self.written = 0
        self.last_loud = -1  # timeline index of the last sample above the silence threshold

    def write(self, block: np.ndarray, threshold: float | None = None) -> None:
        if self.skip:
            cut = min(self.skip, block.shape[1])
            block = block[:, cut:]
            self.skip -= cut
        if self.left <= 0 or block.shape[1] == 0:
            return
        block = block[:, : self.left]
        if threshold is not None:
            loud = np.flatnonzero(np.max(np.abs(block), axis=0) > threshold)
            if loud.size:
                self.last_loud = self.written + int(loud[-1])
        self.left -= block.shape[1]
        self.written += block.shape[1]
        self.sink.write(np.ascontiguousarray(block))


class _Instance:
    """One node rendered for one variant (a set of active tracks, wet or dry)."""

    def __init__(self, node: Node, active: frozenset[str], dry: bool) -> None:
        self.node = node
        self.active = active
        self.dry = dry
        self.key: InstanceKey = (node.key, active, dry)
        self.inputs: list[tuple[Edge, InstanceKey]] = []
        self.keys: list[tuple[Edge, InstanceKey | None]] = []
        self.chain: InsertChain | None = None
        self.bypass: DelayLine | None = None  # dry: the chain's latency, without the chain
        self.source_delay: DelayLine | None = None


class _DelayedEdge:
    """An edge's gained and delayed signal from one source instance, computed once per block."""

    def __init__(self, edge: Edge, source: InstanceKey) -> None:
        self.edge = edge
        self.source = source
        self.delay = DelayLine(2, edge.delay_samples) if edge.delay_samples else None
        self.lock = threading.Lock()
        self.block = -1
        self.signal: np.ndarray | None = None


class Renderer:
    """Renders a :class:`RenderGraph` in one streaming pass, every output at once.

    Outputs that need a route rendered from only some tracks (split stems, alternate mixes,
    stems through the master, dry stems) get their own *instances* of the nodes concerned:
    each has its own plug-in state, and an instance whose tracks are the full session's is the
    main render itself, shared. Everything runs in the same pass over the timeline.

    Parameters
    ----------
    graph
        The compiled session. Its latencies are set here (plug-ins are probed).
    block_size
        Samples per render block (performance only: the output does not depend on it).
    threads
        Worker threads for independent instances (default: one per CPU).
        pedalboard, soxr, libsndfile and large numpy operations release the GIL, so the
        instances of one level (every track, then the buses they feed) can run in parallel.
        The output does not depend on it: each instance's computation is the same, and sums
        keep their order.
    outputs
        What to print (``graph.outputs``); default: the mix, the master input and the
        contract's default stems.
    """

    def __init__(
        self,
        graph: RenderGraph,
        block_size: int = DEFAULT_BLOCK_SIZE,
        threads: int | None = None,
        outputs: list[OutputSpec] | None = None,
    ) -> None:
        if block_size < MIN_BLOCK_SIZE:
            raise InputError(
                f"block size {block_size} is too small",
                field="--block-size",
                fix=f"use at least {MIN_BLOCK_SIZE} samples",
            )
        self.graph = graph
        self.block_size = block_size
        self.threads = max(1, threads if threads is not None else (os.cpu_count() or 1))
        self._pool: ThreadPoolExecutor | None = None
        self._nodes = graph.by_key
        self._audible_tracks = frozenset(
            n.key for n in graph.nodes if n.kind == "track" and n.audible
        )
        self._feeders: dict[tuple[str, bool], frozenset[str]] = {}
        main_chains: dict[str, InsertChain] = {}
        for node in graph.nodes:
            if node.audible and node.inserts:
                main_chains[node.key] = InsertChain(
                    node.inserts, graph.sample_rate, node.channels, _insert_automation(node)
                )
        compensate_latency(
            graph,
            {k: c.latency_samples for k, c in main_chains.items()},
            {k: c.input_latency_samples for k, c in main_chains.items()},
        )
        self._main_chains = main_chains
        self._instances: dict[InstanceKey, _Instance] = {}
        self._edges: dict[tuple[int, InstanceKey], _DelayedEdge] = {}
        # The full session first: every audible node, so that sidechain keys and the default
        # outputs find their main instances.
        for node in graph.nodes:
            if node.audible:
                self._instance(node.key, self._audible_tracks, False)
        if outputs is None:
            from stemprint.graph.outputs import default_outputs

            outputs = default_outputs(graph)
        self._tap_delays: dict[tuple[str, str], DelayLine] = {}
        self._mute_ramp_samples = mute_ramp_samples(graph.sample_rate)
        self._origin = 0
        self.taps = [self._tap(spec) for spec in outputs]
        order = {n.key: i for i, n in enumerate(graph.nodes)}
        self.levels = _levels(self._instances, order)

    # -- building ------------------------------------------------------------------------------

    def _track_feeders(self, key: str, dry: bool) -> frozenset[str]:
        """Audible tracks reaching ``key`` (dry: through outputs only, sends are dropped)."""
        cached = self._feeders.get((key, dry))
        if cached is not None:
            return cached
        node = self._nodes[key]
        if node.kind == "track":
            found = frozenset({key}) & self._audible_tracks
        else:
            parts: set[str] = set()
            for edge in node.inputs:
                if not (dry and edge.kind == "send"):
                    parts |= self._track_feeders(edge.source, dry)
            found = frozenset(parts)
        self._feeders[(key, dry)] = found
        return found

    def _instance(self, key: str, tracks: frozenset[str], dry: bool) -> InstanceKey | None:
        """The instance of node ``key`` for a variant, created on first use; ``None`` if silent."""
        node = self._nodes[key]
        if not node.audible:
            return None
        active = self._track_feeders(key, dry) & tracks
        if not active and node.kind != "master":
            return None
        instance_key: InstanceKey = (key, active, dry)
        if instance_key in self._instances:
            return instance_key
        instance = _Instance(node, active, dry)
        main = active == self._track_feeders(key, False) and not dry
        if node.inserts:
            if dry:
                if node.chain_latency_samples:
                    instance.bypass = DelayLine(node.channels, node.chain_latency_samples)
            elif main and key in self._main_chains:
                instance.chain = self._main_chains.pop(key)
            else:
                instance.chain = InsertChain(
                    node.inserts, self.graph.sample_rate, node.channels, _insert_automation(node)
                )
            if instance.chain is not None:
                instance.chain.anchor_to_timeline(node.input_latency_samples)
        if node.kind == "track" and node.input_latency_samples:
            # A track whose sidechain key arrives late waits for it: its clips are delayed.
            instance.source_delay = DelayLine(node.channels, node.input_latency_samples)
        for edge in node.inputs:
            if dry and edge.kind == "send":
                continue
            source = self._instance(edge.source, active, dry)
            if source is not None:
                instance.inputs.append((edge, source))
        if not dry:
            for edge in node.keys:
                # Keys always come from the full session: the bass of a split stem still ducks
                # under the kick of another stem.
                key_source = self._instance(edge.source, self._audible_tracks, False)
                instance.keys.append((edge, key_source))
        self._instances[instance_key] = instance
        return instance_key

    def _tap(self, spec: OutputSpec) -> Tap:
        graph = self.graph
        master = graph.master
        tracks = spec.tracks if spec.tracks is not None else self._audible_tracks
        if spec.kind in ("master_out", "master_in"):
            self._instance(MASTER, tracks, spec.dry)
            latency = (
                master.latency_samples
                if spec.kind == "master_out"
                else (master.input_latency_samples)
            )
        elif spec.kind == "contribution":
            for edge in master.inputs:
                if edge.source in spec.owned:
                    self._instance(edge.source, tracks, spec.dry)
            latency = master.input_latency_samples
        elif spec.kind in ("pre_sum", "post"):
            latency = max((self._nodes[k].latency_samples for k in spec.routes), default=0)
            for key in spec.routes:
                if self._nodes[key].audible:
                    self._instance(key, self._audible_tracks, False)
        else:  # track_source: the clips, before any delay
            latency = 0
        return Tap(spec.key, spec.role, spec.name, latency, spec)

    @property
    def total_latency_samples(self) -> int:
        """Largest tap latency: how far past the output length the engine must run."""
        return max((t.latency_samples for t in self.taps), default=0)

    # -- running -------------------------------------------------------------------------------

    def run(
        self,
        sinks: dict[str, Sink],
        progress: Callable[[int, int], None] | None = None,
        until_silent: tuple[float, int, int] | None = None,
        start_sample: int = 0,
    ) -> int:
        """Render the whole timeline into ``sinks`` (by tap key; taps without a sink are skipped).

        Parameters
        ----------
        sinks
            Where each tap's samples go.
        progress
            Called as ``progress(done_samples, total_samples)``.
        until_silent
            ``(threshold_linear, hold_samples, min_length_samples)``: stop once every output
            has stayed below the threshold for the hold time after ``min_length_samples``; the
            graph's length is then the cap.
        start_sample
            Timeline sample the render starts at (a region); outputs start there.

        Returns
        -------
        int
            The length written to every sink, in samples.

        Raises
        ------
        RenderError
            A route produced NaN or Inf (the message names the route and the time).
        """
        graph = self.graph
        length = graph.length_samples
        run_length = length + self.total_latency_samples
        blocks = math.ceil(run_length / self.block_size)
        trimmed = {
            t.key: _TrimmedSink(sinks[t.key], t.latency_samples, length)
            for t in self.taps
            if t.key in sinks
        }
        taps = [t for t in self.taps if t.key in trimmed]
        readers = {
            n.key: [ClipReader(c, graph.sample_rate) for c in sorted(n.clips, key=_start)]
            for n in graph.nodes
            if n.kind == "track" and n.audible
        }
        threshold = until_silent[0] if until_silent else None
        self._origin = start_sample
        if start_sample:
            for instance in self._instances.values():
                if instance.chain is not None:
                    instance.chain.anchor_to_timeline(
                        instance.node.input_latency_samples - start_sample
                    )
        final_length = length
        # Sinks (quantizing, file writes) run on a background thread, one block behind the
        # render, in order; at most one block waits, so memory stays flat.
        pending: Future[None] | None = None
        with ThreadPoolExecutor(max_workers=1) as output_pool:
            try:
                for index in range(blocks):
                    start = start_sample + index * self.block_size
                    state = self._render_block(index, start, readers)
                    outputs = {t.key: self._tap_signal(t, state, index) for t in taps}
                    del state
                    for delayed in self._edges.values():  # memory: keep no block past its use
                        delayed.signal = None
                    if pending is not None:
                        pending.result()
                    pending = output_pool.submit(_write_all, trimmed, outputs, threshold)
                    if progress is not None:
                        progress(min(start + self.block_size, run_length), run_length)
                    if until_silent is not None:
                        pending.result()
                        done = _silent_length(trimmed, until_silent)
                        if done is not None:
                            final_length = done
                            break
                if pending is not None:
                    pending.result()
            finally:
                if pending is not None:
                    pending.cancel()
                for track_readers in readers.values():
                    for reader in track_readers:
                        reader.close()
                if self._pool is not None:
                    self._pool.shutdown()
                    self._pool = None
        for sink in trimmed.values():
            # A sink that held its end back (``export.audio.AudioWriter``) can still cut it.
            set_length = getattr(sink.sink, "set_length", None)
            if final_length < sink.written and set_length is not None:
                set_length(final_length)
            sink.sink.close()
        return final_length

    # -- per block -----------------------------------------------------------------------------

    def _render_block(
        self, index: int, start: int, readers: dict[str, list[ClipReader]]
    ) -> dict[str, dict[InstanceKey, np.ndarray]]:
        """Process every instance, level by level; returns the block's signals."""
        n = self.block_size
        state: dict[str, dict[InstanceKey, np.ndarray]] = {
            "source": {}, "input": {}, "pre": {}, "post": {}
        }  # fmt: skip

        def read(node_key: str) -> None:
            node = self._nodes[node_key]
            x = np.zeros((node.channels, n))
            for reader in readers[node_key]:
                reader.add_into(x, start)
            _check_finite(x, node, start, "its clips (the audio file holds NaN or Inf)")
            state["source"][(node_key, frozenset(), False)] = x

        track_keys = list(readers)
        self._map(read, track_keys)

        def run(instance: _Instance) -> None:
            node = instance.node
            if node.kind == "track":
                x = state["source"][(node.key, frozenset(), False)]
                if instance.source_delay is not None:
                    x = instance.source_delay.process(x)
            else:
                x = np.zeros((2, n))
                for edge, source in instance.inputs:
                    x = x + self._edge_signal(edge, source, state, index)
            if node.kind == "master":  # only the master's input sum is ever tapped
                state["input"][instance.key] = x
            self._process(instance, x, start, state, index)

        for level in self.levels:
            self._map(run, level)
        return state

    def _map(self, function: Callable[[Any], None], items: Sequence[Any]) -> None:
        """Run ``function`` on every item, spread over the threads in one batch per thread.

        Batches, not one task per item: a task hand-off costs about 100 µs, as much as a small
        route's block. The render thread works on the first batch itself.
        """
        workers = min(self.threads, len(items))
        if workers <= 1:
            for item in items:
                function(item)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.threads - 1)

        def batch(part: Sequence[Any]) -> None:
            for item in part:
                function(item)

        parts = [items[i::workers] for i in range(workers)]
        futures = [self._pool.submit(batch, part) for part in parts[1:]]
        try:
            batch(parts[0])
        finally:
            for future in futures:
                future.result()  # re-raises a worker's exception here, in the render thread

    def _process(
        self,
        instance: _Instance,
        x: np.ndarray,
        start: int,
        state: dict[str, dict[InstanceKey, np.ndarray]],
        index: int,
    ) -> None:
        node = instance.node
        if node.invert_polarity:
            x = -x
        if instance.chain is not None:
            keys = None
            if instance.keys:
                keys = {}
                for edge, source in instance.keys:
                    # A muted key route is a silent key (not "no key", which would self-key).
                    keys[edge.insert_index or 0] = (
                        self._edge_signal(edge, source, state, index)
                        if source is not None
                        else np.zeros((2, x.shape[1]))
                    )
            x = instance.chain.process(x, keys)
            _check_finite(x, node, start - instance.chain.latency_samples, "its inserts")
        elif instance.bypass is not None:
            x = instance.bypass.process(x)
        state["pre"][instance.key] = x
        if node.kind == "master":
            out = to_stereo(x) * node.gain_linear if node.gain_linear != 1.0 else to_stereo(x)
        elif node.automation:
            out = self._automated_strip(node, x, start)
        else:
            out = fader_pan(x, node.gain_linear, node.pan)
        state["post"][instance.key] = out

    def _automated_strip(self, node: Node, x: np.ndarray, start: int) -> np.ndarray:
        """Fader and pan with per-sample automation, read on the session timeline."""
        lanes = node.automation
        n = x.shape[1]
        timeline = start - node.latency_samples  # this stream lags the timeline so much
        gain: float | np.ndarray = node.gain_linear
        if "gain_db" in lanes:
            gain = gain_db_lane_to_linear(lanes["gain_db"].values(timeline, n))
        if "mute" in lanes:
            gain = gain * self._mute_gain(node, timeline, n)
        pan = lanes["pan"].values(timeline, n) if "pan" in lanes else node.pan
        return fader_pan_automated(x, gain, pan)

    def _mute_gain(self, node: Node, timeline: int, n: int) -> np.ndarray:
        return mute_ramp(node.automation["mute"], timeline, n, self._mute_ramp_samples)

    def _edge_signal(
        self,
        edge: Edge,
        source: InstanceKey,
        state: dict[str, dict[InstanceKey, np.ndarray]],
        index: int,
    ) -> np.ndarray:
        """An edge's signal from one source instance: tap, gain, compensation delay."""
        memo_key = (id(edge), source)
        delayed = self._edges.get(memo_key)
        if delayed is None:
            delayed = self._edges.setdefault(memo_key, _DelayedEdge(edge, source))
        with delayed.lock:
            if delayed.block != index:
                if edge.tap == "post_fader":
                    signal = state["post"][source]
                else:
                    signal = to_stereo(state["pre"][source])
                lanes = self._nodes[edge.source].automation
                send_lane = lanes.get(f"send:{edge.target}") if edge.kind == "send" else None
                if send_lane is not None or (edge.tap == "pre_fader" and "mute" in lanes):
                    # Automated send level, or a mute that must also silence a pre-fader send.
                    source_node = self._nodes[edge.source]
                    timeline = self._origin + index * self.block_size - source_node.latency_samples
                    n = signal.shape[1]
                    gain: float | np.ndarray = edge.gain_linear
                    if send_lane is not None:
                        gain = gain_db_lane_to_linear(send_lane.values(timeline, n))
                    if edge.tap == "pre_fader" and "mute" in lanes:
                        gain = gain * self._mute_gain(source_node, timeline, n)
                    signal = signal * gain
                elif edge.gain_linear != 1.0:
                    signal = signal * edge.gain_linear
                if delayed.delay is not None:
                    signal = delayed.delay.process(signal)
                delayed.signal = signal
                delayed.block = index
            assert delayed.signal is not None
            return delayed.signal

    def _tap_signal(
        self, tap: Tap, state: dict[str, dict[InstanceKey, np.ndarray]], index: int
    ) -> np.ndarray:
        spec = tap.spec
        n = self.block_size
        tracks = spec.tracks if spec.tracks is not None else self._audible_tracks
        if spec.kind in ("master_out", "master_in"):
            master_key = self._instance(MASTER, tracks, spec.dry)
            assert master_key is not None
            return state["post" if spec.kind == "master_out" else "input"][master_key]
        if spec.kind == "contribution":
            total = np.zeros((2, n))
            for edge in self.graph.master.inputs:
                if edge.source not in spec.owned:
                    continue
                source = self._instance(edge.source, tracks, spec.dry)
                if source is not None:
                    total = total + self._edge_signal(edge, source, state, index)
            return total
        if spec.kind == "track_source":
            return state["source"].get(
                (spec.routes[0], frozenset(), False), np.zeros((spec.channels, n))
            )
        # pre_sum / post: main instances, each delayed to the tap's common latency.
        total = np.zeros((2, n))
        for key in spec.routes:
            source = self._instance(key, self._audible_tracks, False)
            if source is None:
                continue
            signal = (
                to_stereo(state["pre"][source]) if spec.kind == "pre_sum"
                else state["post"][source]
            )  # fmt: skip
            lag = tap.latency_samples - self._nodes[key].latency_samples
            if lag:
                line = self._tap_delays.setdefault((tap.key, key), DelayLine(2, lag))
                signal = line.process(signal)
            total = total + signal
        return total


def _write_all(
    trimmed: dict[str, _TrimmedSink], outputs: dict[str, np.ndarray], threshold: float | None
) -> None:
    for key, sink in trimmed.items():
        sink.write(outputs[key], threshold)


def _silent_length(
    trimmed: dict[str, _TrimmedSink], until_silent: tuple[float, int, int]
) -> int | None:
    """The final length once every output has been silent long enough, else ``None``."""
    _, hold, minimum = until_silent
    if not trimmed:
        return None
    last_loud = max(s.last_loud for s in trimmed.values())
    length = max(minimum, last_loud + 1 + hold)
    if min(s.written for s in trimmed.values()) >= length:
        return length
    return None


def _levels(
    instances: dict[InstanceKey, _Instance], order: dict[str, int]
) -> list[list[_Instance]]:
    """Instances grouped so that none feeds another of its group (tracks are level 0)."""
    level: dict[InstanceKey, int] = {}
    ordered = sorted(instances.values(), key=lambda i: order[i.node.key])
    for instance in ordered:
        sources = [level[s] for _, s in instance.inputs] + [
            level[s] for _, s in instance.keys if s is not None
        ]
        level[instance.key] = 1 + max(sources) if sources else 0
    groups: list[list[_Instance]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for instance in ordered:
        groups[level[instance.key]].append(instance)
    return groups


def _insert_automation(node: Node) -> dict[int, dict[str, Any]]:
    """``insert.<index>.<parameter>`` lanes of a node, by insert index and parameter."""
    found: dict[int, dict[str, Any]] = {}
    for param, lane in node.automation.items():
        if param.startswith("insert."):
            _, index, name = param.split(".")
            found.setdefault(int(index), {})[name] = lane
    return found


def _start(clip: object) -> int:
    return int(clip.start_sample)  # type: ignore[attr-defined]


def _check_finite(x: np.ndarray, node: Node, start: int, after: str) -> None:
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
