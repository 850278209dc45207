"""The scheduler: a dataflow over (unit, block) run by a few threads, and the trimmed sinks.

Invariants
----------
- A unit is a piece of the render done block after block, in order: a track's clip read, one
  instance, a track worker's block (received from its process), the taps (every output's
  signal), a group of sinks (writing those outputs: the groups run side by side, each sink in
  one group, so each file still gets its blocks in order), or the end of the block (release its
  signals). A unit runs block ``k`` once every unit it reads has finished block ``k``, so a bus
  of block ``k`` runs beside the tracks of block ``k + 1``.
- At most :data:`BLOCKS_IN_FLIGHT` blocks are open at once: memory stays bounded whatever the
  session length.
- Which thread runs a unit changes nothing: each unit's arithmetic is the same, in the same
  order, and sums read their inputs in a fixed order (``render.runner``).
- Every output is written from its tap's latency on (the tap's first ``latency_samples`` are
  dropped) and stops at the extent's length; with until-silent, every output is cut at the same
  length once the whole render has been silent for the hold time.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from stemprint.graph.types import UntilSilent
from stemprint.render.runner import BlockRunner
from stemprint.render.sources import ClipReader
from stemprint.render.taps import Tap
from stemprint.render.workers import deal_by_cost

if TYPE_CHECKING:
    from stemprint.render.plan import Instance, InstanceKey
    from stemprint.render.workers import TrackWorker

BLOCKS_IN_FLIGHT = 3
"""Blocks rendered at once: block k + 1 starts while block k's buses and master finish. Three
rather than two: 32 tracks x 3 min on two cores, best of five 10.4 s against 11.4 s (mean 11.9
against 12.8 s), for ~10 MB more."""


class Sink(Protocol):
    """Where a tap's samples go (a file writer, a meter, a test buffer)."""

    def write(self, block: np.ndarray) -> None:
        """Take the next ``(channels, n)`` float64 samples.

        ``block`` is valid only during the call (it may be a view of a worker's shared
        memory, reused once the block is done): a sink that keeps it keeps a copy.
        """

    def close(self) -> None:
        """All samples were written."""


class TrimmedSink:
    """Drops a tap's latency from its start and stops at the output length."""

    def __init__(self, sink: Sink, skip: int, length: int) -> None:
        self.sink = sink
        self.skip = skip
        self.left = length
        self.written = 0
        self.last_loud = -1  # index of the last sample above the silence threshold

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


class _Unit:
    __slots__ = (
        "kind", "order", "target", "deps", "dependents", "done", "busy", "queued", "blocker"
    )  # fmt: skip

    def __init__(self, kind: str, order: int, target: object) -> None:
        self.kind = kind
        self.order = order
        self.target = target
        self.deps: list[_Unit] = []
        self.dependents: list[_Unit] = []
        self.done = 0  # blocks finished; the next block to run
        self.busy = False
        self.queued = False
        self.blocker: _Unit | None = None  # the dep last found unfinished (checked first)


class Scheduler:
    """Runs every unit of a render for ``blocks`` blocks on the calling thread and helpers.

    Every thread pulls the most urgent ready unit (lowest block, then signal-path order) under
    one condition variable; there is no executor hand-off (it would cost ~100 µs a unit).
    """

    def __init__(
        self,
        runner: BlockRunner,
        blocks: int,
        readers: dict[str, list[ClipReader]],
        taps: Sequence[Tap],
        trimmed: dict[str, TrimmedSink],
        until_silent: UntilSilent | None,
        progress: Callable[[int, int], None] | None,
        remote: Sequence[TrackWorker],
        sink_groups: int = 1,
    ) -> None:
        self.runner = runner
        self.blocks = blocks
        self.readers = readers
        self.taps_list = list(taps)
        self.trimmed = trimmed
        self.until_silent = until_silent
        self.progress = progress
        self.remote = list(remote)
        self.final_length: int | None = None
        self.error: BaseException | None = None
        self.stopped = False
        self.cond = threading.Condition()
        self.heap: list[tuple[int, int, _Unit]] = []
        self.outputs: dict[int, dict[str, np.ndarray]] = {}  # by block, from taps to sinks
        self.units = self._units(sink_groups)
        self.last = self.units[-1]  # a block ends here
        with self.cond:
            for unit in self.units:
                self._offer(unit)

    def _units(self, sink_groups: int) -> list[_Unit]:
        units: list[_Unit] = []
        by_instance: dict[InstanceKey, _Unit] = {}
        remote_tracks: set[str] = set()
        for worker in self.remote:  # tracks rendered in a worker process: one unit receives them
            unit = _Unit("remote", len(units), worker)
            units.append(unit)
            remote_tracks.update(worker.tracks)
            by_instance.update({instance.key: unit for instance in worker.instances})
        reads = {}
        for key in self.readers:
            if key not in remote_tracks:
                reads[key] = _Unit("read", len(units), key)
                units.append(reads[key])
        for level in self.runner.plan.levels:
            for instance in level:
                if instance.key in self.runner.idle:
                    continue  # nothing in this render needs it (the cache holds what it fed)
                if instance.key not in by_instance:
                    unit = _Unit("instance", len(units), instance)
                    unit.deps = self._deps(instance, reads, by_instance, self.runner)
                    by_instance[instance.key] = unit
                    units.append(unit)
        taps = _Unit("taps", len(units), None)
        taps.deps = list(units)
        units.append(taps)
        # The sinks dealt to groups by channels (what a write costs).
        groups = deal_by_cost({t.key: t.spec.channels for t in self.taps_list}, sink_groups)
        sinks = [_Unit("sinks", len(units) + i, g) for i, g in enumerate(groups)]
        for unit in sinks:
            unit.deps = [taps]
        end = _Unit("end", len(units) + len(sinks), None)
        end.deps = sinks or [taps]
        units += [*sinks, end]
        for unit in units:
            for dep in unit.deps:
                dep.dependents.append(unit)
        return units

    @staticmethod
    def _deps(
        instance: Instance,
        reads: dict[str, _Unit],
        by_instance: dict[InstanceKey, _Unit],
        runner: BlockRunner,
    ) -> list[_Unit]:
        deps = [reads[instance.node.key]] if instance.node.kind == "track" else []
        deps += [by_instance[s] for _, s in runner.live_inputs(instance)]
        deps += [by_instance[s] for _, s in instance.keys if s is not None]
        return deps

    def _offer(self, unit: _Unit) -> None:
        """Queue ``unit``'s next block if it can run now (call with the lock held)."""
        block = unit.done
        if unit.busy or unit.queued or block >= self.blocks or self.stopped:
            return
        if unit is not self.last and block >= self.last.done + BLOCKS_IN_FLIGHT:
            return
        # The taps depend on every unit and are offered after each one: remembering the dep
        # that held them back makes the common "not yet" answer one comparison.
        blocker = unit.blocker
        if blocker is not None and blocker.done <= block:
            return
        for dep in unit.deps:
            if dep.done <= block:
                unit.blocker = dep
                return
        unit.queued = True
        heapq.heappush(self.heap, (block, unit.order, unit))

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()

    def work(self) -> None:
        """Run ready units until the render is done, stopped or failed."""
        while True:
            job = self._next()
            if job is None:
                return
            block, unit = job
            try:
                self._run(unit, block)
            except BaseException as exc:  # handed to the render thread, raised there
                with self.cond:
                    self.error = self.error or exc
                    self.stopped = True
                    self.cond.notify_all()
                return
            self._finish(unit)

    def _next(self) -> tuple[int, _Unit] | None:
        with self.cond:
            while not self.heap:
                if self.stopped or self.last.done >= self.blocks:
                    return None
                self.cond.wait()
            if self.stopped:
                return None
            block, _, unit = heapq.heappop(self.heap)
            unit.queued = False
            unit.busy = True
            return block, unit

    def _finish(self, unit: _Unit) -> None:
        with self.cond:
            unit.busy = False
            unit.done += 1
            for candidate in self.units if unit is self.last else [unit, *unit.dependents]:
                self._offer(candidate)
            if self.last.done >= self.blocks:
                self.stopped = True
            self.cond.notify_all()

    def _run(self, unit: _Unit, block: int) -> None:
        runner = self.runner
        if unit.kind == "read":
            track = str(unit.target)
            runner.read(track, self.readers[track], block)
        elif unit.kind == "instance":
            runner.run_instance(unit.target, block)  # type: ignore[arg-type]
        elif unit.kind == "remote":
            worker: TrackWorker = unit.target  # type: ignore[assignment]
            state = runner.state(block)
            for (kind, key, _), view in zip(worker.shipped, worker.receive(block), strict=True):
                state.signals(kind)[key] = view
        elif unit.kind == "taps":
            state = runner.state(block)
            self.outputs[block] = {t.key: t.signal(runner, state, block) for t in self.taps_list}
        elif unit.kind == "sinks":
            self._write(block, unit.target)  # type: ignore[arg-type]
        else:
            self._end(block)

    def _write(self, block: int, keys: list[str]) -> None:
        outputs = self.outputs[block]
        threshold = self.until_silent.threshold_linear if self.until_silent else None
        for key in keys:
            self.trimmed[key].write(outputs[key], threshold)

    def _end(self, block: int) -> None:
        runner = self.runner
        self.outputs.pop(block, None)
        runner.release(block)  # after the writes: an output may be a worker's slot
        for worker in self.remote:
            worker.free()  # its slot may be reused: nothing here refers to it any more
        if self.progress is not None:
            size = runner.block_size
            self.progress((block + 1) * size, self.blocks * size)
        if self.until_silent is not None:
            done = silent_length(self.trimmed, self.until_silent)
            if done is not None:
                self.final_length = done
                self.stop()


def silent_length(trimmed: dict[str, TrimmedSink], until_silent: UntilSilent) -> int | None:
    """The final length once every output has been silent long enough, else ``None``."""
    if not trimmed:
        return None
    last_loud = max(s.last_loud for s in trimmed.values())
    length = max(until_silent.min_length_samples, last_loud + 1 + until_silent.hold_samples)
    if min(s.written for s in trimmed.values()) >= length:
        return length
    return None
