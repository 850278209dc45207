"""Partial sums summed inside the render worker processes, and what the workers then ship.

A bus's or the master's input is the sum of its edges, in partial sums of consecutive edges
when it has many (``render.cache_keys.partial_sums``; one sum of every edge otherwise). When
every edge of one such sum comes from tracks one worker renders, that worker sums it and hands
the render process the sum instead of each edge's signal: for 32 tracks into the master, two
sums of eight per worker cross the process boundary instead of sixteen signals, and the
additions run where the signals are.

Invariants
----------
- Bit-identical: the worker sums with :meth:`~stemprint.render.runner.BlockRunner.edges_sum`,
  the code the render process runs otherwise, over the same edges in the same order, from
  zeros; only where the sum is computed changes.
- Only edges without a compensation delay (a delay line's state lives in the render process)
  and only partial sums this render computes (one the cache holds is read from its entry).
- A signal is still shipped when anything else reads it: an edge outside those sums, a
  sidechain key, a tap (:func:`signals_still_read`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from stemprint.render.plan import edge_signal_kind

if TYPE_CHECKING:
    from stemprint.render.plan import Instance, InstanceKey, SignalRef
    from stemprint.render.runner import BlockRunner


@dataclass(frozen=True)
class WorkerPart:
    """One partial sum a worker computes: edges ``start … end`` of ``instance``'s input.

    Attributes
    ----------
    key
        The bus's or master's instance key.
    index
        The partial sum's index (``render.cache_keys.partial_sums``).
    start, end
        Its edges in the instance's edge order.
    channels
        Channels of the sum (the instance's input).
    """

    key: InstanceKey
    index: int
    start: int
    end: int
    channels: int

    @property
    def part_key(self) -> tuple[InstanceKey, int]:
        """Its key in the block state's ``part`` signals."""
        return (self.key, self.index)


def _summing(runner: BlockRunner) -> list[Instance]:
    """The instances whose input this render sums: every bus and the master that runs."""
    return [
        instance
        for instance in runner.plan.instances.values()
        if instance.node.kind != "track" and instance.key not in runner.idle
    ]


def worker_parts(runner: BlockRunner, owned: set[InstanceKey]) -> list[WorkerPart]:
    """The partial sums a worker rendering the instances ``owned`` can compute itself."""
    found: list[WorkerPart] = []
    for instance in _summing(runner):
        for index, start, end in runner.live_parts(instance):
            edges = instance.inputs[start:end]
            if edges and all(source in owned and not e.delay_samples for e, source in edges):
                found.append(WorkerPart(instance.key, index, start, end, instance.node.channels))
    return found


def signals_still_read(
    runner: BlockRunner, needed: set[SignalRef], taps: set[SignalRef], parts: list[WorkerPart]
) -> set[SignalRef]:
    """``needed`` without the signals only the workers' partial sums read.

    Parameters
    ----------
    needed
        Every signal the render reads.
    taps
        The signals the taps read (always kept).
    parts
        The partial sums every worker computes.
    """
    covered = {(p.key, i) for p in parts for i in range(p.start, p.end)}
    instances = runner.plan.instances
    in_parts = {_reads(instances[p.key], i) for p in parts for i in range(p.start, p.end)}
    elsewhere = set(taps)
    for instance in instances.values():
        if instance.key in runner.idle:
            continue
        elsewhere |= {(edge_signal_kind(e), s) for e, s in instance.keys if s is not None}
        elsewhere |= {
            _reads(instance, i)
            for _, start, end in runner.live_parts(instance)
            for i in range(start, end)
            if (instance.key, i) not in covered
        }
    return needed - (in_parts - elsewhere)


def _reads(instance: Instance, index: int) -> SignalRef:
    """The signal input edge ``index`` of ``instance`` reads."""
    edge, source = instance.inputs[index]
    return (edge_signal_kind(edge), source)
