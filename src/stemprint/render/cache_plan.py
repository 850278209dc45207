"""One render's use of the cache: what is read from entries, what runs, what is stored.

Invariants
----------
- No sample of an entry is used before it passed its check. By default each chunk is checked
  as it is read (``render.cache``: a damaged entry stops the render, which is run again);
  with ``check_first`` (the render after one that met a damaged entry) every entry used is
  checked in full first, one that fails is a miss, and the plan is made again without it
  (what it stood for is rendered).
- Only what something needs runs: the taps' signals are followed upstream; an instance whose
  ``pre`` comes from an entry needs nothing upstream (unless its own input is tapped: the
  master's input is the premaster), a partial sum from an entry needs none of its edges. An
  instance nothing needs is not run at all (its clips are not even read).
- Entries are written only for what this render computes, so a stored entry always holds
  samples computed in this render.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from stemprint.render.cache import CachedSignal, EntryWriter, RenderCache
from stemprint.render.cache_keys import Keys, partial_sums, versions
from stemprint.render.plan import edge_signal_kind

if TYPE_CHECKING:
    from stemprint.graph.types import Edge, RenderExtent
    from stemprint.render.plan import Instance, InstanceKey, RenderPlan, SignalRef

PartKey = tuple["InstanceKey", int]
"""(instance, part index) of a partial input sum."""


@dataclasses.dataclass
class CachePlan:
    """One render's use of the cache.

    Attributes
    ----------
    hits
        Instances whose ``pre`` signal is read from an entry (no chain built, no clips read).
    part_hits
        Partial input sums read from entries.
    misses
        Entries of ``pre`` signals written by this render.
    part_writers
        Entries of partial input sums written by this render.
    skipped
        Instances without a key, and why.
    idle
        Instances nothing in this render needs: not run.
    input_needed
        Instances whose input sum is needed although their ``pre`` is a hit.
    signals
        Every instance signal something reads per block (what worker processes ship).
    skip_reads
        Tracks whose clips are not read.
    """

    cache: RenderCache
    hits: dict[InstanceKey, CachedSignal] = dataclasses.field(default_factory=dict)
    part_hits: dict[PartKey, CachedSignal] = dataclasses.field(default_factory=dict)
    misses: dict[InstanceKey, EntryWriter] = dataclasses.field(default_factory=dict)
    part_writers: dict[PartKey, EntryWriter] = dataclasses.field(default_factory=dict)
    skipped: dict[InstanceKey, str] = dataclasses.field(default_factory=dict)
    idle: set[InstanceKey] = dataclasses.field(default_factory=set)
    input_needed: set[InstanceKey] = dataclasses.field(default_factory=set)
    signals: set[SignalRef] = dataclasses.field(default_factory=set)
    skip_reads: set[str] = dataclasses.field(default_factory=set)
    routes: list[tuple[str, str, list[InstanceKey]]] = dataclasses.field(default_factory=list)
    note: str | None = None

    def live_parts(self, instance: Instance) -> list[tuple[int, int, int]]:
        """``(index, first edge, end edge)`` of each partial sum of ``instance``'s input this
        render computes (none when its ``pre`` is a hit and its input is not needed; none read
        from an entry)."""
        key = instance.key
        if key in self.hits and key not in self.input_needed:
            return []
        parts = enumerate(partial_sums(len(instance.inputs)))
        return [(c, a, b) for c, (a, b) in parts if (key, c) not in self.part_hits]

    def live_inputs(self, instance: Instance) -> list[tuple[Edge, InstanceKey]]:
        """The input edges this render computes for ``instance`` (:meth:`live_parts`)."""
        return [e for _, a, b in self.live_parts(instance) for e in instance.inputs[a:b]]

    def abandon(self) -> None:
        """Drop this process's half-written entries (the render ended early or failed) and
        close the entries read."""
        for writer in [*self.misses.values(), *self.part_writers.values()]:
            if not writer.done:
                writer.abandon()
        for hit in [*self.hits.values(), *self.part_hits.values()]:
            hit.close()

    def report(self) -> dict[str, Any]:
        """The manifest's ``cache`` entry: routes reused (read back, or not needed), rendered,
        stored and not needed (``idle``), and the partial sums reused and stored."""

        def reused(ins: list[InstanceKey]) -> bool:
            return bool(ins) and all(k in self.hits or k in self.idle for k in ins)

        entry: dict[str, Any] = {
            "dir": str(self.cache.root),
            "reused": [name for _, name, ins in self.routes if reused(ins)],
            "rendered": [name for _, name, ins in self.routes if not reused(ins)],
            "stored": [name for _, name, ins in self.routes if any(k in self.misses for k in ins)],
            "idle": [name for _, name, ins in self.routes if ins and self.idle.issuperset(ins)],
            "sums_reused": sum(1 for k, _ in self.part_hits if _parts_used(self, k)),
            "sums_stored": len(self.part_writers),
        }
        if self.note:
            entry["note"] = self.note
        return entry


def build_cache_plan(
    cache: RenderCache,
    plan: RenderPlan,
    extent: RenderExtent,
    run_length: int,
    keep_input: set[InstanceKey],
    tap_needed: set[SignalRef],
    threads: int = 1,
    check_first: bool = False,
) -> CachePlan:
    """Look the render's signals up, decide what runs, and what is stored.

    ``check_first``: check the data of every entry used in full now (a damaged one is a miss);
    otherwise each chunk is checked as it is read (``render.cache``), and a damaged one stops
    the render with :class:`~stemprint.errors.CacheEntryDamaged`."""
    result = CachePlan(cache)
    result.routes = _routes(plan)
    if extent.until_silent is not None:
        result.note = "until-silent tail: nothing cached"
        result.signals = _prune(plan, result, tap_needed)
        return result
    keys = render_keys(cache, plan, extent, run_length, keep_input)
    pre_keys, part_keys = _candidates(plan, keys)
    result.skipped = dict(keys.reasons)
    found = _lookup(cache, [*pre_keys.values(), *part_keys.values()], run_length, threads)
    result.hits = {k: h for k, d in pre_keys.items() if (h := found.get(d)) is not None}
    result.part_hits = {k: h for k, d in part_keys.items() if (h := found.get(d)) is not None}
    if check_first:
        result.signals = _prune_verified(plan, result, tap_needed, threads)
    else:
        result.signals = _prune(plan, result, tap_needed)
        for entry in _used(result):
            entry.open()
    cache.evict()  # the entries used stay readable (mapped) even if evicted now
    _writers(plan, result, pre_keys, part_keys, run_length)
    return result


def render_keys(
    cache: RenderCache,
    plan: RenderPlan,
    extent: RenderExtent,
    run_length: int,
    keep_input: set[InstanceKey],
) -> Keys:
    """The content keys of one render's signals (``render.cache_keys``)."""
    base = {"versions": versions(), "rate": plan.graph.sample_rate,
            "origin": extent.origin_sample, "length": run_length}  # fmt: skip
    return Keys(plan, base, keep_input, cache.file_digest)


def _routes(plan: RenderPlan) -> list[tuple[str, str, list[InstanceKey]]]:
    return [
        (n.key, n.name, [k for k in plan.instances if k[0] == n.key])
        for n in plan.graph.nodes
        if any(k[0] == n.key for k in plan.instances)
    ]


def _stores_pre(instance: Instance) -> bool:
    """Whether an instance's ``pre`` is worth an entry (a track without inserts is its clips)."""
    return instance.node.kind != "track" or bool(instance.node.inserts)


def _candidates(plan: RenderPlan, keys: Keys) -> tuple[dict[InstanceKey, str], dict[PartKey, str]]:
    """The keys of every ``pre`` signal and partial sum that could come from an entry."""
    pre_keys: dict[InstanceKey, str] = {}
    part_keys: dict[PartKey, str] = {}
    for key, instance in plan.instances.items():
        digest = keys.pre(key)
        if digest is not None and _stores_pre(instance):
            pre_keys[key] = digest
        parts = partial_sums(len(instance.inputs))
        if len(parts) > 1 and not instance.dry:
            for c, (a, b) in enumerate(parts):
                found = keys.part(key, a, b)
                if found is not None:
                    part_keys[(key, c)] = found
    return pre_keys, part_keys


def _lookup(
    cache: RenderCache, digests: list[str], run_length: int, threads: int
) -> dict[str, CachedSignal | None]:
    with ThreadPoolExecutor(max(1, threads)) as pool:
        found = pool.map(lambda d: cache.lookup(d, None, run_length), digests)
        return dict(zip(digests, found, strict=True))


def _prune_verified(
    plan: RenderPlan, result: CachePlan, tap_needed: set[SignalRef], threads: int
) -> set[SignalRef]:
    """Prune, check the data of the entries the pruned render uses, and prune again without
    any that failed, until every entry used is sound."""
    checked: set[int] = set()
    while True:
        signals = _prune(plan, result, tap_needed)
        used = _used(result)
        fresh = [h for h in used if id(h) not in checked]
        if not fresh:
            return signals
        with ThreadPoolExecutor(max(1, threads)) as pool:
            sound = list(pool.map(CachedSignal.verify, fresh))
        checked.update(id(h) for h in fresh)
        bad = {id(h) for h, ok in zip(fresh, sound, strict=True) if not ok}
        if not bad:
            return signals
        result.hits = {k: h for k, h in result.hits.items() if id(h) not in bad}
        result.part_hits = {k: h for k, h in result.part_hits.items() if id(h) not in bad}


def _used(result: CachePlan) -> list[CachedSignal]:
    """The entries the pruned render reads."""
    return [
        *(h for k, h in result.hits.items() if k not in result.idle),
        *(h for (k, _), h in result.part_hits.items() if _parts_used(result, k)),
    ]


def _parts_used(result: CachePlan, key: InstanceKey) -> bool:
    return key not in result.idle and (key not in result.hits or key in result.input_needed)


def _prune(plan: RenderPlan, result: CachePlan, tap_needed: set[SignalRef]) -> set[SignalRef]:
    """Follow the taps' signals upstream; set ``idle``, ``input_needed`` and ``skip_reads``;
    return every signal read."""
    needed: set[SignalRef] = set()
    reads: set[str] = set()
    stack = list(tap_needed)
    while stack:
        ref = stack.pop()
        if ref in needed:
            continue
        needed.add(ref)
        kind, key = ref
        if kind == "source":
            reads.add(key[0])
            continue
        instance = plan.instances[key]
        if key in result.hits and kind != "input":
            continue  # read back: nothing upstream
        if instance.node.kind == "track":
            reads.add(instance.node.key)
        stack.extend(_upstream(result, instance))
    result.input_needed = {k for kind, k in needed if kind == "input" and k in result.hits}
    running = {k for kind, k in needed if kind != "source"}
    result.idle = set(plan.instances) - running
    result.skip_reads = {n.key for n in plan.graph.nodes if n.kind == "track"} - reads
    return needed


def _upstream(result: CachePlan, instance: Instance) -> Iterable[SignalRef]:
    """The signals an instance reads when it is computed (its input, its sidechain keys)."""
    key = instance.key
    for c, (a, b) in enumerate(partial_sums(len(instance.inputs))):
        if (key, c) not in result.part_hits:
            for edge, source in instance.inputs[a:b]:
                yield edge_signal_kind(edge), source
    for key_edge, key_source in instance.keys:
        if key_source is not None:
            yield edge_signal_kind(key_edge), key_source


def _writers(
    plan: RenderPlan,
    result: CachePlan,
    pre_keys: dict[InstanceKey, str],
    part_keys: dict[PartKey, str],
    run_length: int,
) -> None:
    """Entries for what this render computes and did not find."""
    for key, digest in pre_keys.items():
        if key in result.hits or key in result.idle:
            continue
        inserts = plan.instances[key].node.inserts
        # A pedalboard stage last: its samples are float32 values (checked per block).
        dtype = "<f4" if inserts and not inserts[-1].native else "<f8"
        result.misses[key] = EntryWriter(result.cache, digest, run_length, dtype)
    for part, digest in part_keys.items():
        if part not in result.part_hits and _parts_used(result, part[0]):
            result.part_writers[part] = EntryWriter(result.cache, digest, run_length, "<f8")
