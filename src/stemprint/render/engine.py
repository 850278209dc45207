"""The streaming render engine: one pass over the timeline, block by block, every tap at once.

Memory is bounded by the block size times the number of nodes (plus plug-in state), whatever
the session length. Sums are float64; plug-ins run in float32 (pedalboard's format), so a session
without inserts is rendered in float64 end to end. The same graph renders bit-identically for
every block size: sources are read per clip in timeline order, zero-latency plug-ins are
call-size independent, latent ones are fed fixed chunks (``dsp.inserts``), and dither noise is
drawn frame by frame from a seeded generator (``export.audio``).
"""

from __future__ import annotations

import heapq
import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from stemprint.dsp.automation import gain_db_lane_to_linear, mute_ramp, mute_ramp_samples
from stemprint.dsp.inserts import EXTERNAL_TYPES, InsertChain
from stemprint.dsp.strip import fader_pan, fader_pan_automated, to_stereo
from stemprint.errors import InputError, RenderError
from stemprint.graph.compile import Edge, Node, RenderGraph, compensate_latency
from stemprint.graph.outputs import OutputSpec
from stemprint.model.session import MASTER
from stemprint.render.allocator import tune_allocator
from stemprint.render.sources import ClipReader
from stemprint.render.workers import SignalKey, TrackWorker, fork_available

MIN_BLOCK_SIZE = 32
"""Smallest render block: pedalboard guesses the channel axis of tiny buffers."""

DEFAULT_BLOCK_SIZE = 16384
"""The largest default render block (sessions of up to 16 tracks)."""

BLOCK_TRACK_SAMPLES = 16 * 16384
"""Default block x audible tracks: memory in flight grows with both (every track's signals of
every block in flight, and its share of the worker slots), so the default block shrinks as
tracks grow. Measured on two cores: 32 tracks x 3 min at 8192 takes 120 instead of 164 MB (the
process tree's PSS) and is 2-8 % slower than at 16384; 128 tracks x 1 min at 2048: 155 MB
against 264 MB at 8192, ~10 % slower. ``--block-size`` trades one for the other."""

MIN_DEFAULT_BLOCK_SIZE = 2048
"""Below this the per-block Python work dominates."""


def auto_block_size(tracks: int) -> int:
    """The default render block for a session of ``tracks`` audible tracks (a power of two)."""
    block = DEFAULT_BLOCK_SIZE
    while block > MIN_DEFAULT_BLOCK_SIZE and block * max(tracks, 1) > BLOCK_TRACK_SAMPLES:
        block //= 2
    return block


BLOCKS_IN_FLIGHT = 3
"""Blocks rendered at once: block k + 1 starts while block k's buses and master finish. Three
rather than two: 32 tracks x 3 min on two cores, best of five 10.4 s against 11.4 s (mean 11.9
against 12.8 s), for ~10 MB more."""

WORKER_SLOTS = BLOCKS_IN_FLIGHT + 1
"""Blocks a track worker process may hold in shared memory: one more than the render process
reads at once, so the worker keeps working while both are read."""

InstanceKey = tuple[str, frozenset[str], bool]
"""A node rendered from a set of active tracks, wet or dry."""


class Sink(Protocol):
    """Where a tap's samples go (a file writer, a meter, a test buffer)."""

    def write(self, block: np.ndarray) -> None:
        """Take the next ``(channels, n)`` float64 samples.

        ``block`` is valid only during the call (it may be a view of a worker's shared
        memory, reused once the block is done): a sink that keeps it keeps a copy.
        """

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
    """A delayed edge's signal from one source instance, computed once per block."""

    def __init__(self, edge: Edge, source: InstanceKey) -> None:
        self.edge = edge
        self.source = source
        self.delay = DelayLine(2, edge.delay_samples)
        self.lock = threading.Lock()
        self.next_block = 0  # edges are computed in block order (the delay line has state)
        self.signals: dict[int, np.ndarray] = {}


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
        Samples per render block (performance only: the output does not depend on it);
        default: :func:`auto_block_size`.
    threads
        Parallel workers (default: one per CPU). With more than one, tracks are rendered in
        that many worker processes (``render.workers``; Linux) and the buses, master and taps
        on as many threads in this process; pedalboard, soxr and libsndfile release the GIL.
        The output does not depend on it: each instance's computation is the same, and sums
        keep their order.
    outputs
        What to print (``graph.outputs``); default: the mix, the master input and the
        contract's default stems.
    processes
        Render tracks in worker processes (default: when ``threads`` > 1 and ``os.fork``
        exists, and no hosted VST3/AU plug-in is in the session); ``False`` keeps everything
        in threads of this process.
    """

    def __init__(
        self,
        graph: RenderGraph,
        block_size: int | None = None,
        threads: int | None = None,
        outputs: list[OutputSpec] | None = None,
        processes: bool | None = None,
    ) -> None:
        tune_allocator()  # large temporaries from the heap, not fresh mmap pages
        if block_size is None:
            block_size = auto_block_size(
                sum(1 for n in graph.nodes if n.kind == "track" and n.audible)
            )
        if block_size < MIN_BLOCK_SIZE:
            raise InputError(
                f"block size {block_size} is too small",
                field="--block-size",
                fix=f"use at least {MIN_BLOCK_SIZE} samples",
            )
        self.graph = graph
        self.block_size = block_size
        self.threads = max(1, threads if threads is not None else (os.cpu_count() or 1))
        self.processes = fork_available() if processes is None else processes
        self._states: dict[int, dict[str, dict[InstanceKey, np.ndarray]]] = {}
        self._workers: list[TrackWorker] = []
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
        self._origin = start_sample
        if start_sample:
            for instance in self._instances.values():
                if instance.chain is not None:
                    instance.chain.anchor_to_timeline(
                        instance.node.input_latency_samples - start_sample
                    )
        remote = self._track_workers() if self.processes and self.threads > 1 else []
        plan = _Plan(
            self, blocks, start_sample, readers, taps, trimmed, until_silent, progress, remote
        )
        workers: list[threading.Thread] = []
        try:
            # Fork before any thread of ours starts: a worker is a copy of this process.
            for track_worker in remote:
                track_worker.start(blocks, start_sample, readers)
            # The render thread is one of the workers; the others are plain threads that pull
            # work from the same plan (no executor: a hand-off would cost ~100 µs a unit).
            for i in range(self.threads - 1):
                worker = threading.Thread(target=plan.work, name=f"stemprint-render-{i}")
                worker.start()
                workers.append(worker)
            plan.work()
        finally:
            plan.stop()
            for worker in workers:
                worker.join()
            for track_worker in remote:
                track_worker.close()
            self._workers = []
            for track_readers in readers.values():
                for reader in track_readers:
                    reader.close()
            self._states.clear()
            for delayed in self._edges.values():
                delayed.signals.clear()
        if plan.error is not None:
            raise plan.error
        final_length = plan.final_length if plan.final_length is not None else length
        for sink in trimmed.values():
            # A sink that held its end back (``export.audio.AudioWriter``) can still cut it.
            set_length = getattr(sink.sink, "set_length", None)
            if final_length < sink.written and set_length is not None:
                set_length(final_length)
            sink.sink.close()
        return final_length

    # -- per unit of work ----------------------------------------------------------------------

    def _state(self, block: int) -> dict[str, dict[InstanceKey, np.ndarray]]:
        """The signals of one block in flight, created on first use."""
        return self._states.setdefault(
            block, {"source": {}, "input": {}, "pre": {}, "post": {}}
        )  # fmt: skip

    def _read(self, node_key: str, readers: list[ClipReader], block: int, start: int) -> None:
        """A track's clips for one block (shared by every instance of the track)."""
        node = self._nodes[node_key]
        x = np.zeros((node.channels, self.block_size))
        for reader in readers:
            reader.add_into(x, start)
        _check_finite(x, node, start, "its clips (the audio file holds NaN or Inf)")
        self._state(block)["source"][(node_key, frozenset(), False)] = x

    def _run_instance(self, instance: _Instance, block: int, start: int) -> None:
        """One instance's block: its input (clips or the sum of its inputs), inserts, fader."""
        node = instance.node
        state = self._state(block)
        if node.kind == "track":
            x = state["source"][(node.key, frozenset(), False)]
            if instance.source_delay is not None:
                x = instance.source_delay.process(x)
        else:
            x = np.zeros((2, self.block_size))
            for edge, source in instance.inputs:
                np.add(x, self._edge_signal(edge, source, state, block), out=x)
        if node.kind == "master":  # only the master's input sum is ever tapped
            state["input"][instance.key] = x
        self._process(instance, x, start, state, block)

    def _release(self, block: int) -> None:
        """Memory: keep no block's signals past the taps that read them."""
        self._states.pop(block, None)
        for delayed in self._edges.values():
            delayed.signals.pop(block, None)
        for worker in self._workers:
            worker.free()  # its slot may be reused: nothing here refers to it any more

    def _track_workers(self) -> list[TrackWorker]:
        """Share the tracks among worker processes (none if it would not pay).

        A track goes to a worker with all its instances when none of them reads a sidechain
        key (a key is another route's signal of the same block, which lives here). Tracks are
        dealt by cost (channels x inserts) to the least loaded worker.
        """
        by_track: dict[str, list[_Instance]] = {}
        for level in self.levels:
            for instance in level:
                if instance.node.kind == "track":
                    by_track.setdefault(instance.node.key, []).append(instance)
        eligible = [
            key
            for key, instances in by_track.items()
            if not any(instance.keys for instance in instances)
        ]
        count = min(self.threads, len(eligible))
        hosted = any(
            spec.type in EXTERNAL_TYPES for node in self.graph.nodes for spec in node.inserts
        )
        if count < 2 or hosted:
            # A hosted VST3/AU may run threads or talk to its framework: never fork it.
            return []
        needed = self._consumed_signals()

        def cost(key: str) -> int:
            node = self._nodes[key]
            return node.channels * (1 + len(node.inserts)) * len(by_track[key])

        shares: list[list[str]] = [[] for _ in range(count)]
        loads = [0] * count
        for key in sorted(eligible, key=lambda k: (-cost(k), k)):
            least = loads.index(min(loads))
            shares[least].append(key)
            loads[least] += cost(key)
        workers = []
        for share in shares:
            instances = [i for key in share for i in by_track[key]]
            shipped: list[SignalKey] = []
            for key in share:
                source: InstanceKey = (key, frozenset(), False)
                if ("source", source) in needed:
                    shipped.append(("source", source, self._nodes[key].channels))
            for instance in instances:
                channels = (
                    instance.chain.output_channels if instance.chain else instance.node.channels
                )
                if ("pre", instance.key) in needed:
                    shipped.append(("pre", instance.key, channels))
                if ("post", instance.key) in needed:
                    shipped.append(("post", instance.key, 2))
            workers.append(TrackWorker(self, share, instances, shipped, WORKER_SLOTS))
        self._workers = workers
        return workers

    def _consumed_signals(self) -> set[tuple[str, InstanceKey]]:
        """Every (``source`` | ``pre`` | ``post``, instance) signal something reads per block."""
        needed: set[tuple[str, InstanceKey]] = set()

        def edge(e: Edge, source: InstanceKey | None) -> None:
            if source is not None:
                needed.add(("post" if e.tap == "post_fader" else "pre", source))

        for instance in self._instances.values():
            for e, source in instance.inputs:
                edge(e, source)
            for e, key_source in instance.keys:
                edge(e, key_source)
        for tap in self.taps:
            spec = tap.spec
            tracks = spec.tracks if spec.tracks is not None else self._audible_tracks
            if spec.kind == "contribution":
                for e in self.graph.master.inputs:
                    if e.source in spec.owned:
                        edge(e, self._instance(e.source, tracks, spec.dry))
            elif spec.kind == "track_source":
                needed.add(("source", (spec.routes[0], frozenset(), False)))
            elif spec.kind in ("pre_sum", "post"):
                for key in spec.routes:
                    found = self._instance(key, self._audible_tracks, False)
                    if found is not None:
                        needed.add(("pre" if spec.kind == "pre_sum" else "post", found))
        return needed

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
        """An edge's signal from one source instance: tap, gain, compensation delay.

        Only a delayed edge is kept for the block (its delay line has state, so it runs once
        per block, in block order, whoever asks first); any other edge is computed where it
        is read and dropped (memory: 128 sends would otherwise hold 128 scaled copies).
        """
        if not edge.delay_samples:
            return self._gained(edge, source, state, index)
        memo_key = (id(edge), source)
        delayed = self._edges.get(memo_key)
        if delayed is None:
            delayed = self._edges.setdefault(memo_key, _DelayedEdge(edge, source))
        with delayed.lock:
            found = delayed.signals.get(index)
            if found is not None:
                return found
            # Every consumer reads its edges in block order, so the first request for a block
            # is always the next one.
            assert index == delayed.next_block, (index, delayed.next_block)
            signal = delayed.delay.process(self._gained(edge, source, state, index))
            delayed.signals[index] = signal
            delayed.next_block = index + 1
            return signal

    def _gained(
        self,
        edge: Edge,
        source: InstanceKey,
        state: dict[str, dict[InstanceKey, np.ndarray]],
        index: int,
    ) -> np.ndarray:
        """An edge's tapped signal times its gain (send level, automation, pre-fader mute)."""
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
            return signal * gain
        if edge.gain_linear != 1.0:
            return signal * edge.gain_linear
        return signal

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


class _Unit:
    """A piece of the render done block after block, in order: a track's clip read, one
    instance, or the taps (sum the outputs, write the sinks)."""

    __slots__ = ("kind", "order", "target", "deps", "dependents", "done", "busy", "queued")

    def __init__(self, kind: str, order: int, target: Any) -> None:
        self.kind = kind
        self.order = order
        self.target = target
        self.deps: list[_Unit] = []
        self.dependents: list[_Unit] = []
        self.done = 0  # blocks finished; the next block to run
        self.busy = False
        self.queued = False


class _Plan:
    """Dataflow over (unit, block): a unit runs its next block once the units it reads have
    finished that block, so a bus of block k runs beside the tracks of block k + 1.

    Every thread pulls the most urgent ready unit (lowest block, then signal-path order) under
    one condition variable. At most :data:`BLOCKS_IN_FLIGHT` blocks are open at once, so memory
    stays bounded. Which thread runs a unit changes nothing: each unit's arithmetic is the same,
    in the same order, and sums read their inputs in a fixed order.
    """

    def __init__(
        self,
        renderer: Renderer,
        blocks: int,
        start_sample: int,
        readers: dict[str, list[ClipReader]],
        taps: list[Tap],
        trimmed: dict[str, _TrimmedSink],
        until_silent: tuple[float, int, int] | None,
        progress: Callable[[int, int], None] | None,
        remote: list[TrackWorker],
    ) -> None:
        self.renderer = renderer
        self.blocks = blocks
        self.start_sample = start_sample
        self.readers = readers
        self.tap_list = taps
        self.trimmed = trimmed
        self.until_silent = until_silent
        self.threshold = until_silent[0] if until_silent else None
        self.progress = progress
        self.final_length: int | None = None
        self.error: BaseException | None = None
        self.stopped = False
        self.cond = threading.Condition()
        self.heap: list[tuple[int, int, _Unit]] = []
        units: list[_Unit] = []
        reads: dict[str, _Unit] = {}
        by_instance: dict[InstanceKey, _Unit] = {}
        remote_tracks: set[str] = set()
        for worker in remote:  # tracks rendered in a worker process: one unit receives them
            unit = _Unit("remote", len(units), worker)
            units.append(unit)
            remote_tracks.update(worker.tracks)
            for instance in worker.instances:
                by_instance[instance.key] = unit
        for key in readers:
            if key not in remote_tracks:
                reads[key] = _Unit("read", len(units), key)
                units.append(reads[key])
        for level in renderer.levels:
            for instance in level:
                if instance.key in by_instance:
                    continue
                unit = _Unit("instance", len(units), instance)
                if instance.node.kind == "track":
                    unit.deps.append(reads[instance.node.key])
                unit.deps += [by_instance[s] for _, s in instance.inputs]
                unit.deps += [by_instance[s] for _, s in instance.keys if s is not None]
                by_instance[instance.key] = unit
                units.append(unit)
        self.taps = _Unit("taps", len(units), None)
        self.taps.deps = list(units)
        units.append(self.taps)
        for unit in units:
            for dep in unit.deps:
                dep.dependents.append(unit)
        self.units = units
        with self.cond:
            for unit in units:
                self._offer(unit)

    def _offer(self, unit: _Unit) -> None:
        """Queue ``unit``'s next block if it can run now (call with the lock held)."""
        block = unit.done
        if unit.busy or unit.queued or block >= self.blocks or self.stopped:
            return
        if unit is not self.taps and block >= self.taps.done + BLOCKS_IN_FLIGHT:
            return
        for dep in unit.deps:
            if dep.done <= block:
                return
        unit.queued = True
        heapq.heappush(self.heap, (block, unit.order, unit))

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()

    def work(self) -> None:
        """Run ready units until the render is done, stopped or failed."""
        cond = self.cond
        while True:
            with cond:
                while not self.heap:
                    if self.stopped or self.taps.done >= self.blocks:
                        return
                    cond.wait()
                if self.stopped:
                    return
                block, _, unit = heapq.heappop(self.heap)
                unit.queued = False
                unit.busy = True
            try:
                self._run(unit, block)
            except BaseException as exc:  # handed to the render thread, raised there
                with cond:
                    if self.error is None:
                        self.error = exc
                    self.stopped = True
                    cond.notify_all()
                return
            with cond:
                unit.busy = False
                unit.done += 1
                candidates = self.units if unit is self.taps else [unit, *unit.dependents]
                for candidate in candidates:
                    self._offer(candidate)
                if self.taps.done >= self.blocks:
                    self.stopped = True
                cond.notify_all()

    def _run(self, unit: _Unit, block: int) -> None:
        renderer = self.renderer
        start = self.start_sample + block * renderer.block_size
        if unit.kind == "read":
            renderer._read(unit.target, self.readers[unit.target], block, start)
        elif unit.kind == "instance":
            renderer._run_instance(unit.target, block, start)
        elif unit.kind == "remote":
            worker: TrackWorker = unit.target
            state = renderer._state(block)
            for (kind, key, _), view in zip(worker.shipped, worker.receive(block), strict=True):
                state[kind][key] = view
        else:
            state = renderer._state(block)
            outputs = {t.key: renderer._tap_signal(t, state, block) for t in self.tap_list}
            del state
            _write_all(self.trimmed, outputs, self.threshold)
            del outputs
            renderer._release(block)  # after the writes: an output may be a worker's slot
            if self.progress is not None:
                self.progress((block + 1) * renderer.block_size, self.blocks * renderer.block_size)
            if self.until_silent is not None:
                done = _silent_length(self.trimmed, self.until_silent)
                if done is not None:
                    self.final_length = done
                    self.stop()


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
