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
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from stemprint.dsp.inserts import InsertChain
from stemprint.dsp.strip import fader_pan, to_stereo
from stemprint.errors import InputError, RenderError
from stemprint.graph.compile import Edge, Node, RenderGraph, compensate_latency
from stemprint.render.sources import ClipReader

MIN_BLOCK_SIZE = 32
"""Smallest render block: pedalboard guesses the channel axis of tiny buffers."""

DEFAULT_BLOCK_SIZE = 8192

TapRole = Literal["mix", "premaster", "stem"]


class Sink(Protocol):
    """Where a tap's samples go (a file writer, a meter, a test buffer)."""

    def write(self, block: np.ndarray) -> None:
        """Take the next ``(2, n)`` float64 samples."""

    def close(self) -> None:
        """All samples were written."""


@dataclass(frozen=True)
class Tap:
    """A point of the graph printed to an output.

    Attributes
    ----------
    key
        Unique key (``mix``, ``premaster``, ``stem:<route>``).
    role
        ``mix``, ``premaster`` or ``stem``.
    name
        Display name.
    latency_samples
        Samples the tap lags the timeline; dropped from its start when written.
    """

    key: str
    role: TapRole
    name: str
    latency_samples: int
    route: str | None = None
    """Node key of the route a stem prints."""


class DelayLine:
    """A fixed delay of ``delay_samples`` for ``(2, n)`` blocks of any size."""

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

    def write(self, block: np.ndarray) -> None:
        if self.skip:
            cut = min(self.skip, block.shape[1])
            block = block[:, cut:]
            self.skip -= cut
        if self.left <= 0 or block.shape[1] == 0:
            return
        block = block[:, : self.left]
        self.left -= block.shape[1]
        self.sink.write(np.ascontiguousarray(block))


class Renderer:
    """Renders a :class:`RenderGraph` in one streaming pass.

    Parameters
    ----------
    graph
        The compiled session. Its latencies are set here (plug-ins are probed).
    block_size
        Samples per render block (performance only: the output does not depend on it).
    threads
        Worker threads for independent nodes (default: one per CPU). pedalboard, soxr,
        libsndfile and large numpy operations release the GIL, so routes of one level (every
        track, then the buses they feed) run in parallel. The output does not depend on it:
        each node's computation is the same, and sums keep their order.
    """

    def __init__(
        self, graph: RenderGraph, block_size: int = DEFAULT_BLOCK_SIZE, threads: int | None = None
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
        self.levels = _levels(graph)
        self.chains: dict[str, InsertChain] = {}
        for node in graph.nodes:
            if node.audible and node.inserts:
                self.chains[node.key] = InsertChain(node.inserts, graph.sample_rate, node.channels)
        compensate_latency(
            graph,
            {k: c.latency_samples for k, c in self.chains.items()},
            {k: c.input_latency_samples for k, c in self.chains.items()},
        )
        self._delays: dict[int, DelayLine] = {}
        for key, chain in self.chains.items():
            chain.anchor_to_timeline(graph.by_key[key].input_latency_samples)
        # A track whose sidechain key arrives late waits for it: its clips are delayed.
        self._source_delays = {
            node.key: DelayLine(node.channels, node.input_latency_samples)
            for node in graph.nodes
            if node.kind == "track" and node.input_latency_samples
        }
        for node in graph.nodes:
            for edge in [*node.inputs, *node.keys]:
                if edge.delay_samples:
                    self._delays[id(edge)] = DelayLine(2, edge.delay_samples)
        master = graph.master
        self.taps: list[Tap] = [Tap("mix", "mix", "Mix", master.latency_samples)]
        self.taps.append(
            Tap("premaster", "premaster", "Mix (pre-master)", master.input_latency_samples)
        )
        for stem in graph.stems:
            self.taps.append(
                Tap(
                    f"stem:{stem.name}", "stem", stem.name, master.input_latency_samples, stem.route
                )
            )

    @property
    def total_latency_samples(self) -> int:
        """Largest tap latency: how far past the output length the engine must run."""
        return max(t.latency_samples for t in self.taps)

    def run(
        self,
        sinks: dict[str, Sink],
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Render the whole timeline into ``sinks`` (by tap key; taps without a sink are skipped).

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
        readers = {
            n.key: [ClipReader(c, graph.sample_rate) for c in sorted(n.clips, key=_start)]
            for n in graph.nodes
            if n.kind == "track" and n.audible
        }
        stem_taps = {t.route: t.key for t in self.taps if t.route and t.key in trimmed}
        # Sinks (quantizing, file writes) run on a background thread, one block behind the
        # render, in order; at most one block waits, so memory stays flat.
        pending: Future[None] | None = None
        with ThreadPoolExecutor(max_workers=1) as output_pool:
            try:
                for index in range(blocks):
                    start = index * self.block_size
                    pre, post = self._render_block(start, readers)
                    master_in, contributions = self._master_input(pre, post, stem_taps)
                    mix = self._process_node(graph.master, master_in, start, pre, post)
                    outputs = {"mix": mix, "premaster": master_in, **contributions}
                    if pending is not None:
                        pending.result()
                    pending = output_pool.submit(_write_all, trimmed, outputs)
                    if progress is not None:
                        progress(min(start + self.block_size, run_length), run_length)
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
            sink.sink.close()

    # -- per block -----------------------------------------------------------------------------

    def _render_block(
        self, start: int, readers: dict[str, list[ClipReader]]
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Process every node but the master; returns pre- and post-fader outputs by name."""
        pre: dict[str, np.ndarray] = {}
        post: dict[str, np.ndarray] = {}
        n = self.block_size

        def run_node(node: Node) -> None:
            if node.kind == "track":
                x = np.zeros((node.channels, n))
                for reader in readers[node.key]:
                    reader.add_into(x, start)
                _check_finite(x, node, start, "its clips (the audio file holds NaN or Inf)")
                if node.key in self._source_delays:
                    x = self._source_delays[node.key].process(x)
            else:
                x = self._sum_inputs(node.inputs, pre, post, n)
            self._process_node(node, x, start, pre, post)

        for level in self.levels:
            if self.threads > 1 and len(level) > 1:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(max_workers=self.threads)
                # list() re-raises the first worker exception here, in the render thread.
                list(self._pool.map(run_node, level))
            else:
                for node in level:
                    run_node(node)
        return pre, post

    def _process_node(
        self,
        node: Node,
        x: np.ndarray,
        start: int,
        pre: dict[str, np.ndarray],
        post: dict[str, np.ndarray],
    ) -> np.ndarray:
        if node.invert_polarity:
            x = -x
        chain = self.chains.get(node.key)
        if chain is not None:
            keys = None
            if node.keys:
                keys = {}
                for edge in node.keys:
                    signal = self._edge_signal(edge, pre, post)
                    # A muted key route is a silent key (not "no key", which would self-key).
                    if signal is None:
                        signal = np.zeros((2, x.shape[1]))
                    keys[edge.insert_index or 0] = signal
            x = chain.process(x, keys)
            _check_finite(x, node, start - chain.latency_samples, "its inserts")
        pre[node.key] = x
        if node.kind == "master":
            out = to_stereo(x) * node.gain_linear if node.gain_linear != 1.0 else to_stereo(x)
        else:
            out = fader_pan(x, node.gain_linear, node.pan)
        post[node.key] = out
        return out

    def _edge_signal(
        self, edge: Edge, pre: dict[str, np.ndarray], post: dict[str, np.ndarray]
    ) -> np.ndarray | None:
        if edge.source not in post:  # inaudible source
            return None
        signal = post[edge.source] if edge.tap == "post_fader" else to_stereo(pre[edge.source])
        if edge.gain_linear != 1.0:
            signal = signal * edge.gain_linear
        delay = self._delays.get(id(edge))
        if delay is not None:
            signal = delay.process(signal)
        return signal

    def _sum_inputs(
        self,
        edges: Sequence[Edge],
        pre: dict[str, np.ndarray],
        post: dict[str, np.ndarray],
        n: int,
    ) -> np.ndarray:
        total = np.zeros((2, n))
        for edge in edges:
            signal = self._edge_signal(edge, pre, post)
            if signal is not None:
                total += signal
        return total

    def _master_input(
        self,
        pre: dict[str, np.ndarray],
        post: dict[str, np.ndarray],
        stem_taps: dict[str, str],
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        n = self.block_size
        total = np.zeros((2, n))
        contributions: dict[str, np.ndarray] = {}
        for edge in self.graph.master.inputs:
            signal = self._edge_signal(edge, pre, post)
            if signal is not None:
                total += signal
            if edge.source in stem_taps:
                contributions[stem_taps[edge.source]] = (
                    signal if signal is not None else np.zeros((2, n))
                )
        return total, contributions


def _write_all(trimmed: dict[str, _TrimmedSink], outputs: dict[str, np.ndarray]) -> None:
    for key, sink in trimmed.items():
        sink.write(outputs[key])


def _levels(graph: RenderGraph) -> list[list[Node]]:
    """Audible nodes but the master, grouped so that no node feeds another of its group.

    A node's level is one more than the highest level among its audible sources (tracks: 0).
    """
    level: dict[str, int] = {}
    for node in graph.nodes[:-1]:
        if not node.audible:
            continue
        sources = [level[e.source] for e in [*node.inputs, *node.keys] if e.source in level]
        level[node.key] = 1 + max(sources) if sources else 0
    groups: list[list[Node]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for node in graph.nodes[:-1]:
        if node.key in level:
            groups[level[node.key]].append(node)
    return groups


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
