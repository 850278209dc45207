"""The streaming render engine: one pass over the timeline, block by block, every tap at once.

This module only orchestrates: :mod:`render.plan` decides which node instances the outputs need,
:mod:`render.taps` what each output reads, :mod:`render.runner` does the arithmetic of one
unit of one block, :mod:`render.scheduler` runs the units, :mod:`render.workers` moves tracks
into worker processes.

Invariants
----------
- Memory is bounded by the block size times the number of instances (plus plug-in state),
  whatever the session length.
- Sums are float64; plug-ins run in float32 (pedalboard's format), so a session without
  inserts is rendered in float64 end to end.
- The same graph renders bit-identically for every block size, thread count and run: sources
  are read per clip in timeline order, zero-latency plug-ins are call-size independent, latent
  ones are fed fixed chunks (``dsp.chain``), and each render builds its own runtime state.
- A :class:`Renderer` never changes its graph; the extent rendered is an argument of
  :meth:`Renderer.run`.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from stemprint.dsp.inserts import EXTERNAL_TYPES
from stemprint.errors import CacheEntryDamaged, InputError
from stemprint.graph.outputs import OutputSpec, default_outputs
from stemprint.graph.types import RenderExtent, RenderGraph
from stemprint.render.cache import RenderCache
from stemprint.render.cache_plan import CachePlan, build_cache_plan, render_keys
from stemprint.render.plan import InstanceKey, PlanBuilder, RenderPlan, SignalRef, source_key
from stemprint.render.runner import BlockRunner
from stemprint.render.scheduler import BLOCKS_IN_FLIGHT, Scheduler, Sink, TrimmedSink
from stemprint.render.sources import ClipReader
from stemprint.render.taps import Tap, make_tap
from stemprint.render.worker_parts import signals_still_read, worker_parts
from stemprint.render.workers import SignalKey, TrackWorker, fork_available, split_in_order

MIN_BLOCK_SIZE = 32
"""Smallest render block: pedalboard guesses the channel axis of tiny buffers."""

DEFAULT_BLOCK_SIZE = 16384
"""The largest default render block (sessions of up to :data:`FULL_BLOCK_TRACKS` tracks)."""

FULL_BLOCK_TRACKS = 32
"""Audible tracks up to which the default block is :data:`DEFAULT_BLOCK_SIZE`. Beyond, memory in
flight grows with tracks times block (every track's signals of every block in flight, and its
share of the worker slots), so the block shrinks as ``tracks ** -1.5`` (a power of two): 48
tracks 8192, 64 tracks 4096, 128 tracks 2048. Measured on two cores (2026-12-02), 32 tracks x 3
min: 16384 took 6.1-6.5 s and 10.8-11.4 CPU s, 8192 took 6.7-8.9 s and 12.0-12.6 CPU s (the
per-block Python work), for 112 MB instead of 92 (the largest process); 128 tracks x 1 min at
2048 took 155 MB (the process tree's PSS) against 264 MB at 8192. ``--block-size`` trades one
for the other."""

MIN_DEFAULT_BLOCK_SIZE = 2048
"""Below this the per-block Python work dominates."""

MIN_WORKER_TRACK_SECONDS = 240.0
"""Audio the tracks to run must hold (tracks x seconds of the render) before track workers are
forked by default. Below it, forking, shared memory and the hand-over of every block cost more
than the second core gains, as pedalboard releases the GIL on threads too. Measured on two
cores, alternating, ``--no-report`` (2026-12-04): the demo (6 tracks x 21 s) 0.97 s median with
threads only against 1.05 s with workers (10 runs each); 8 tracks x 30 s even (1.49-1.91 against
1.45-1.74 s); 8 tracks x 3 min 5.6-6.4 s against 5.1-5.3 s."""

WORKER_SLOTS = BLOCKS_IN_FLIGHT + 1
"""Blocks a track worker process may hold in shared memory: one more than the render process
reads at once, so the worker keeps working while both are read."""


def auto_block_size(tracks: int) -> int:
    """The default render block for a session of ``tracks`` audible tracks (a power of two)."""
    block = DEFAULT_BLOCK_SIZE
    limit = DEFAULT_BLOCK_SIZE**2 * FULL_BLOCK_TRACKS**3  # block² x tracks³, in integers
    while block > MIN_DEFAULT_BLOCK_SIZE and block**2 * max(tracks, 1) ** 3 > limit:
        block //= 2
    return block


class Renderer:
    """Renders a :class:`RenderGraph` in one streaming pass, every output at once.

    Parameters
    ----------
    graph
        The compiled (frozen) session.
    block_size
        Samples per render block (performance only: the output does not depend on it);
        default: :func:`auto_block_size`.
    threads
        Parallel workers (default: one per CPU). With more than one, tracks are rendered in
        that many worker processes (``render.workers``; Linux) and the buses, master and taps
        on as many threads in this process. The output does not depend on it.
    outputs
        What to print (``graph.outputs``); default: the mix, the master input and the
        contract's default stems.
    processes
        Render tracks in worker processes (default: when ``threads`` > 1, ``os.fork`` exists,
        no hosted VST3/AU plug-in is in the session and the tracks to run hold at least
        :data:`MIN_WORKER_TRACK_SECONDS` of audio); ``True`` forks them for any length;
        ``False`` keeps everything in threads of this process.
    cache
        Reuse and store routes' ``pre`` signals and partial sums there (``render.cache``); the
        output does not depend on it. After :meth:`run`, :attr:`cache_report` says what was
        reused.
    """

    def __init__(
        self,
        graph: RenderGraph,
        block_size: int | None = None,
        threads: int | None = None,
        outputs: Sequence[OutputSpec] | None = None,
        processes: bool | None = None,
        cache: RenderCache | None = None,
    ) -> None:
        if block_size is None:
            block_size = auto_block_size(len(graph.audible_tracks))
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
        self._fork_any_length = processes is True
        builder = PlanBuilder(graph)
        self.taps: tuple[Tap, ...] = tuple(
            make_tap(spec, builder) for spec in (outputs or default_outputs(graph))
        )
        self.plan = RenderPlan.freeze(builder)
        self.cache = cache
        self.cache_report: dict[str, object] | None = None
        # tracks_to_run's plan for (extent, taps printed), taken by the next run
        self._prepared: tuple[RenderExtent, frozenset[str], CachePlan | None] | None = None
        # After a run that met a damaged entry: check every entry in full before the next.
        self._check_cache_first = False

    @property
    def total_latency_samples(self) -> int:
        """Largest tap latency: how far past the output length the engine must run."""
        return max((t.latency_samples for t in self.taps), default=0)

    def run(
        self,
        sinks: Mapping[str, Sink],
        progress: Callable[[int, int], None] | None = None,
        extent: RenderExtent | None = None,
    ) -> int:
        """Render ``extent`` (default: the graph's) into ``sinks`` (by tap key; taps without a
        sink are skipped: with a cache, nothing only they need is run).

        Returns
        -------
        int
            The length written to every sink, in samples (shorter than the extent's with an
            until-silent tail).

        Raises
        ------
        RenderError
            A route produced NaN or Inf (the message names the route and the time).
        CacheEntryDamaged
            A cache entry failed its check while it was read (deleted; nothing of it was
            used). The sinks hold a partial render: start again with new ones; the next run
            checks every entry it uses before it starts.
        """
        extent = extent or self.graph.extent()
        run_length = self._run_length(extent)
        printed = frozenset(t.key for t in self.taps if t.key in sinks)
        prepared, self._prepared = self._prepared, None
        if prepared is not None and prepared[:2] == (extent, printed):
            cache_plan = prepared[2]
        else:
            cache_plan = self._cache_plan(extent, run_length, printed)
        runner = BlockRunner(self.plan, self.block_size, extent, cache_plan)
        if cache_plan is not None:
            self.cache_report = cache_plan.report()
        blocks = math.ceil(run_length / self.block_size)
        trimmed = {
            t.key: TrimmedSink(
                sinks[t.key], extent.preroll_samples + t.latency_samples, extent.length_samples
            )
            for t in self.taps
            if t.key in sinks
        }
        readers = {
            n.key: [ClipReader(c, self.graph.sample_rate) for c in sorted(n.clips, key=_start)]
            for n in self.graph.nodes
            if n.kind == "track" and n.audible
        }
        needed = cache_plan.signals if cache_plan is not None else self._consumed()
        remote = self._track_workers(runner, needed) if self._forks(runner, run_length) else []
        taps = [t for t in self.taps if t.key in trimmed]
        scheduler = Scheduler(
            runner, blocks, readers, taps, trimmed, extent.until_silent, progress, remote,
            sink_groups=self.threads,
        )  # fmt: skip
        try:
            self._run_threads(scheduler, remote, blocks, readers)
            if scheduler.error is not None:
                raise scheduler.error
        except CacheEntryDamaged:
            # Deleted where it was found; the next plan checks every entry it uses first.
            self._check_cache_first = True
            raise
        finally:
            runner.clear()
        final = scheduler.final_length
        final_length = final if final is not None else extent.length_samples
        self._close_sinks(list(trimmed.values()), final_length)
        return final_length

    def _close_sinks(self, sinks: list[TrimmedSink], final_length: int) -> None:
        """Cut and close every sink, side by side: closing a file waits for the disk
        (libsndfile's ``sf_close`` syncs it), one file's wait need not follow another's."""

        def close(sink: TrimmedSink) -> None:
            # A sink that held its end back (``export.audio.AudioWriter``) can still cut it.
            set_length = getattr(sink.sink, "set_length", None)
            if final_length < sink.written and set_length is not None:
                set_length(final_length)
            sink.sink.close()

        if self.threads < 2 or len(sinks) < 2:
            for sink in sinks:
                close(sink)
            return
        with ThreadPoolExecutor(self.threads, thread_name_prefix="stemprint-close") as pool:
            list(pool.map(close, sinks))

    def _run_length(self, extent: RenderExtent) -> int:
        return extent.preroll_samples + extent.length_samples + self.total_latency_samples

    def tracks_to_run(
        self, extent: RenderExtent | None = None, printed: Collection[str] | None = None
    ) -> int:
        """How many tracks the next :meth:`run` of ``extent`` into sinks for the taps
        ``printed`` (default: every tap) renders (a cached render reads the others' ``pre``
        from the cache, or needs nothing of them). Plans the cache use once; ``run`` takes
        that plan."""
        extent = extent or self.graph.extent()
        keys = frozenset(t.key for t in self.taps if printed is None or t.key in printed)
        if self.cache is None:
            plan = None
        else:
            plan = self._cache_plan(extent, self._run_length(extent), keys)
            self._prepared = (extent, keys, plan)
        skipped = (plan.hits.keys() | plan.idle) if plan is not None else set()
        return sum(
            any(i.key not in skipped for i in instances)
            for instances in self.plan.track_instances().values()
        )

    def tap_keys(self, extent: RenderExtent | None = None) -> dict[str, str]:
        """The content key of every tap's printed signal over ``extent`` that has one (with a
        cache and without an until-silent tail: ``render.cache_keys``). Equal keys, equal
        samples: a file printed from a tap with an unchanged key may be reused."""
        extent = extent or self.graph.extent()
        if self.cache is None or extent.until_silent is not None:
            return {}
        run_length = self._run_length(extent)
        keys = render_keys(self.cache, self.plan, extent, run_length, self._keep_input())
        found = {}
        for tap in self.taps:
            image = tap.key_image(keys)
            if image is not None:
                found[tap.key] = keys.tap(
                    image, tap.latency_samples, extent.preroll_samples, extent.length_samples
                )
        return found

    def _keep_input(self) -> set[InstanceKey]:
        """Instances whose input is read before their inserts (pre-FX sends)."""
        return {key for kind, key in self.plan.consumed() if kind == "input"}

    def _cache_plan(
        self, extent: RenderExtent, run_length: int, printed: frozenset[str]
    ) -> CachePlan | None:
        if self.cache is None:
            return None
        taps: set[SignalRef] = set()
        for tap in self.taps:
            if tap.key in printed:
                taps |= tap.consumed()
        return build_cache_plan(
            self.cache,
            self.plan,
            extent,
            run_length,
            self._keep_input(),
            taps,
            self.threads,
            self._check_cache_first,
        )

    def _run_threads(
        self,
        scheduler: Scheduler,
        remote: list[TrackWorker],
        blocks: int,
        readers: dict[str, list[ClipReader]],
    ) -> None:
        threads: list[threading.Thread] = []
        try:
            # Fork before any thread of ours starts: a worker is a copy of this process.
            for worker in remote:
                worker.start(blocks, readers)
            # The render thread is one of the workers; the others pull from the same plan.
            for i in range(self.threads - 1):
                thread = threading.Thread(target=scheduler.work, name=f"stemprint-render-{i}")
                thread.start()
                threads.append(thread)
            scheduler.work()
        finally:
            scheduler.stop()
            for thread in threads:
                thread.join()
            for worker in remote:
                worker.close()
            for track_readers in readers.values():
                for reader in track_readers:
                    reader.close()

    def _forks(self, runner: BlockRunner, run_length: int) -> bool:
        """Whether this run forks track workers (:data:`MIN_WORKER_TRACK_SECONDS`)."""
        if not self.processes or self.threads < 2:
            return False
        if self._fork_any_length:
            return True
        tracks = sum(
            any(i.key not in runner.idle for i in instances)
            for instances in self.plan.track_instances().values()
        )
        return tracks * run_length >= MIN_WORKER_TRACK_SECONDS * self.graph.sample_rate

    def _track_workers(
        self, runner: BlockRunner, needed: set[SignalRef] | None = None
    ) -> list[TrackWorker]:
        """One worker process per share of the tracks (none if it would not pay; none for a
        share the cache leaves nothing to run in). ``needed``: the signals read (default:
        every signal something consumes)."""
        needed = self._consumed() if needed is None else needed
        by_track = self.plan.track_instances()
        jobs = []
        for share in self._worker_shares(runner.idle):
            instances = [i for key in share for i in by_track[key] if i.key not in runner.idle]
            if instances:
                jobs.append((share, instances, worker_parts(runner, {i.key for i in instances})))
        taps: set[SignalRef] = set().union(*(t.consumed() for t in self.taps))
        read = signals_still_read(runner, needed, taps, [p for *_, parts in jobs for p in parts])
        return [
            TrackWorker(
                runner,
                share,
                instances,
                self._shipped(runner, share, by_track, read),
                WORKER_SLOTS,
                parts,
            )
            for share, instances, parts in jobs
        ]

    def _worker_shares(
        self, idle: frozenset[InstanceKey] | set[InstanceKey] = frozenset()
    ) -> list[list[str]]:
        """The tracks of each worker process.

        A track goes to a worker with all its instances when none of them reads a sidechain
        key (a key is another route's signal of the same block, which lives here). The tracks
        are cut, in the edge order of the widest sums (:meth:`_sum_order`), into runs of about
        equal cost (channels x inserts), so that a worker holds whole partial sums
        (``render.worker_parts``). A session that hosts a VST3/AU is never forked (such a
        plug-in may run threads or talk to its framework).
        """
        by_track = {
            k: [i for i in ins if i.key not in idle]
            for k, ins in self.plan.track_instances().items()
        }
        eligible = [k for k, ins in by_track.items() if ins and not any(i.keys for i in ins)]
        count = min(self.threads, len(eligible))
        hosted = any(s.type in EXTERNAL_TYPES for n in self.graph.nodes for s in n.inserts)
        if count < 2 or hosted:
            return []
        nodes = self.graph.by_key
        order = self._sum_order()
        costs = {
            key: nodes[key].channels * (1 + len(nodes[key].inserts)) * len(by_track[key])
            for key in sorted(eligible, key=lambda k: order.get(k, len(order)))
        }
        return split_in_order(costs, count)

    def _sum_order(self) -> dict[str, int]:
        """Routes in the edge order of the widest sums first (session order for a return or
        master every track feeds): consecutive tracks then make whole partial sums."""
        order: dict[str, int] = {}
        for node in sorted(self.graph.nodes, key=lambda n: -len(n.inputs)):
            for edge in node.inputs:
                order.setdefault(edge.source, len(order))
        return order

    def _consumed(self) -> set[SignalRef]:
        """Every instance signal something reads per block."""
        needed = self.plan.consumed()
        for tap in self.taps:
            needed |= tap.consumed()
        return needed

    def _shipped(
        self,
        runner: BlockRunner,
        share: list[str],
        by_track: dict[str, list],
        needed: set[SignalRef],
    ) -> list[SignalKey]:
        """The signals a worker sends back for its tracks, in slot order."""
        shipped: list[SignalKey] = []
        for key in share:
            if ("source", source_key(key)) in needed:
                shipped.append(("source", source_key(key), self.graph.by_key[key].channels))
        for key in share:
            for instance in by_track[key]:
                if ("input", instance.key) in needed:
                    shipped.append(("input", instance.key, instance.node.channels))
                if ("pre", instance.key) in needed:
                    shipped.append(("pre", instance.key, runner.output_channels(instance)))
                if ("post", instance.key) in needed:
                    shipped.append(("post", instance.key, instance.node.post_channels))
        return shipped


def _start(clip: object) -> int:
    return int(clip.start_sample)  # type: ignore[attr-defined]
