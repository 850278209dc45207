"""Content keys of a render's signals, for the incremental re-render cache (``render.cache``).

A key is the SHA-256 of an exact, order-stable image (``_canon``: floats by their hex form,
arrays by their digest, files by the digest of their content) of everything that determines a
signal, over the whole render extent. Keys chain along the signal path, so a change anywhere
changes the key of every signal downstream of it, and of nothing else:

====================  ===========================================================================
signal                key covers
====================  ===========================================================================
track ``pre``         its clips and their files, polarity, inserts (their parameters, files and
                      automation lanes), latencies, the extent and the library versions
edge signal           the source's ``post`` key (post-fader taps) or its ``pre`` key, send lane,
                      mute lane and latency (pre-fader taps), and the edge (gain, pan, delay,
                      layouts, LFE)
partial sum           the keys of its edges, in order (``partial_sums``)
bus ``pre``           the keys of its input edges, in order, and what a track's ``pre`` key
                      covers except clips
``post``              the ``pre`` key and the whole node (fader, pan, pan law, automation,
                      layouts, latencies)
input sum             the keys of its edges, in order
tap (a printed file)  the keys of the signals it reads (their kinds, order, alignment delays),
                      its latency, the extent's preroll and the length printed
====================  ===========================================================================

Invariants
----------
- Never a false hit: when something cannot be imaged faithfully (a hosted plug-in's state, a
  sidechain key from another route, a pre-FX send's source, a dry instance, an until-silent
  tail), the signal has no key (``None``), and neither has anything downstream of it.
- A key does not depend on the block size, the thread count or the process that renders.
- Partial sums (:func:`partial_sums`) are the arithmetic of every render, cached or not: an
  input of ``n >= PARTIAL_SUM_MIN_INPUTS`` edges is summed as ``Σ_p (Σ_{e in part p} e)``,
  parts of ``max(ceil(sqrt(n)), PARTIAL_SUM_MIN_EDGES)`` consecutive edges, so a change in one
  edge re-sums one part and adds the other parts' cached partial sums, instead of reading every edge
  again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stemprint.render.plan import edge_signal_kind

if TYPE_CHECKING:
    from collections.abc import Callable

    from stemprint.graph.types import Edge, Node
    from stemprint.render.plan import Instance, InstanceKey, RenderPlan

FORMAT = 2
"""Key format (2: bus entries and partial sums); entries have their own (``render.cache``)."""

PARTIAL_SUM_MIN_INPUTS = 16
"""Inputs from which an input sum is taken in partial sums (fewer: one sum, in edge order)."""

PARTIAL_SUM_MIN_EDGES = 8
"""Fewest edges in one partial sum."""


class Uncacheable(Exception):
    """Something in a signal's key cannot be hashed faithfully: do not cache it."""


def partial_sums(n: int) -> list[tuple[int, int]]:
    """The ``[start, end)`` edge ranges an input of ``n`` edges is summed in (one range below
    :data:`PARTIAL_SUM_MIN_INPUTS`).

    A partial sum is stored as float64 (16 bytes a stereo frame), a track's ``pre`` usually
    as float32 (4 bytes a mono frame): it pays only when it stands for many edges, hence at
    least :data:`PARTIAL_SUM_MIN_EDGES` edges a part, else ``ceil(sqrt(n))`` (fewest reads when
    one edge changes: one part's edges plus the other parts' sums).
    """
    if n < PARTIAL_SUM_MIN_INPUTS:
        return [(0, n)]
    size = max(math.isqrt(n - 1) + 1, PARTIAL_SUM_MIN_EDGES)
    return [(a, min(a + size, n)) for a in range(0, n, size)]


def canon(obj: Any) -> Any:
    """A JSON-able, exact and order-stable image of ``obj`` (floats by their hex form)."""
    from stemprint.dsp.automation import AutomationLane

    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return ["f", float(obj).hex()]
    if isinstance(obj, Path):
        return ["path", str(obj)]
    if isinstance(obj, (tuple, list)):
        return [canon(x) for x in obj]
    if isinstance(obj, (set, frozenset)):
        return ["set", sorted(json.dumps(canon(x)) for x in obj)]
    if isinstance(obj, dict) or hasattr(obj, "items"):
        items = [[canon(k), canon(v)] for k, v in obj.items()]
        return ["dict", sorted(items, key=lambda kv: json.dumps(kv[0]))]
    if isinstance(obj, AutomationLane):
        return ["lane", canon(obj.points), obj.interpolation, canon(obj.default)]
    if isinstance(obj, np.ndarray):
        data = np.ascontiguousarray(obj)
        return ["nd", str(data.dtype), list(data.shape), hashlib.sha256(data.tobytes()).hexdigest()]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [
            type(obj).__name__,
            [[f.name, canon(getattr(obj, f.name))] for f in dataclasses.fields(obj)
             if f.name != "where"],  # a message location, not audio
        ]  # fmt: skip
    raise Uncacheable(f"cannot hash a {type(obj).__name__}")


def digest(image: Any) -> str:
    """SHA-256 of an image's canonical JSON."""
    blob = json.dumps(canon(image), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def versions() -> dict[str, str]:
    """Everything outside the session that changes samples: the libraries and the constants."""
    import numpy
    import pedalboard
    import soundfile
    import soxr

    from stemprint import __version__
    from stemprint.dsp.chain import INSERT_CONTROL_INTERVAL
    from stemprint.dsp.inserts import CHUNK_SAMPLES
    from stemprint.render.sources import READ_FRAMES

    return {
        "format": str(FORMAT),
        "stemprint": __version__,
        "numpy": numpy.__version__,
        "pedalboard": str(getattr(pedalboard, "__version__", "?")),
        "soundfile": str(soundfile.__version__),
        "libsndfile": str(soundfile.__libsndfile_version__),
        "soxr": str(getattr(soxr, "__version__", "?")),
        "python": sys.version,
        "chunk": str(CHUNK_SAMPLES),
        "control": str(INSERT_CONTROL_INTERVAL),
        "read_frames": str(READ_FRAMES),
        "partial_sums": f"{PARTIAL_SUM_MIN_INPUTS}/{PARTIAL_SUM_MIN_EDGES}",
    }


def uncacheable_reason(instance: Instance, keep_input: bool) -> str | None:
    """Why an instance's ``pre`` has no key, or ``None`` when it has one."""
    from stemprint.dsp.inserts import EXTERNAL_TYPES

    node = instance.node
    if instance.dry:
        return "dry"
    if instance.keys or node.keys or any(s.sidechain for s in node.inserts):
        return "sidechain key"
    if any(s.type in EXTERNAL_TYPES for s in node.inserts):
        return "hosted plug-in"
    if keep_input:
        return "pre-FX send"
    return None


class Keys:
    """The keys of one render's signals, computed on first use (``None``: no key).

    Parameters
    ----------
    plan
        The render plan.
    base
        What every key shares: the versions, the sample rate and the extent.
    keep_input
        Instances whose input is read before their inserts (pre-FX sends).
    file_digest
        SHA-256 of a file's content (remembered by the cache folder).
    """

    def __init__(
        self,
        plan: RenderPlan,
        base: dict[str, Any],
        keep_input: set[InstanceKey],
        file_digest: Callable[[Path], str],
    ) -> None:
        self.plan = plan
        self.base = base
        self.keep_input = keep_input
        self.file_digest = file_digest
        self.reasons: dict[InstanceKey, str] = {}
        self._pre: dict[InstanceKey, str | None] = {}
        self._post: dict[InstanceKey, str | None] = {}

    def pre(self, key: InstanceKey) -> str | None:
        """Key of an instance's ``pre`` signal (after its inserts)."""
        if key not in self._pre:
            self._pre[key] = None  # a cycle cannot happen (the graph is acyclic); be safe
            self._pre[key] = self._pre_key(self.plan.instances[key])
        return self._pre[key]

    def post(self, key: InstanceKey) -> str | None:
        """Key of an instance's ``post`` signal (after fader and pan)."""
        if key not in self._post:
            pre = self.pre(key)
            node = self.plan.instances[key].node
            self._post[key] = None if pre is None else self._digest(["post", pre, node])
        return self._post[key]

    def edge(self, edge: Edge, source: InstanceKey) -> str | None:
        """Key of an edge's signal from one source instance."""
        kind = edge_signal_kind(edge)
        node = self.plan.instances[source].node
        if kind == "input":
            return None
        if edge.tap == "post_fader":
            upstream = self.post(source)
            extra: list[Any] = []
        else:  # pre-fader: the send lane, a mute lane and the latency, not the fader
            upstream = self.pre(source)
            lanes = node.automation
            extra = [
                lanes.get(f"send:{edge.target}"),
                lanes.get("mute"),
                node.source_latency_samples(edge.tap),
            ]
        return None if upstream is None else self._digest(["edge", upstream, edge, extra])

    def input(self, key: InstanceKey) -> str | None:
        """Key of an instance's whole input sum (the premaster is the master's)."""
        instance = self.plan.instances[key]
        edges = [self.edge(e, s) for e, s in instance.inputs]
        if any(k is None for k in edges):
            return None
        return self._digest(["input", instance.node.channels, edges])

    def tap(self, image: Any, latency_samples: int, preroll_samples: int, length: int) -> str:
        """Key of a printed signal: a tap's image (``Tap.key_image``) cut as the tap's file is
        (its latency and the extent's preroll dropped, ``length`` samples kept)."""
        return self._digest(["tap", image, latency_samples, preroll_samples, length])

    def part(self, key: InstanceKey, start: int, end: int) -> str | None:
        """Key of the sum of an instance's input edges ``start … end``."""
        instance = self.plan.instances[key]
        edges = [self.edge(e, s) for e, s in instance.inputs[start:end]]
        if any(k is None for k in edges):
            return None
        return self._digest(["sum", instance.node.channels, len(instance.inputs), start, edges])

    def _pre_key(self, instance: Instance) -> str | None:
        reason = uncacheable_reason(instance, instance.key in self.keep_input)
        if reason is None:
            try:
                return self._pre_image_key(instance)
            except (Uncacheable, OSError) as exc:
                reason = f"not hashable ({exc})"
        self.reasons[instance.key] = reason
        return None

    def _pre_image_key(self, instance: Instance) -> str | None:
        node = instance.node
        files = {str(c.info.path): self.file_digest(c.info.path) for c in node.clips}
        files.update(self._insert_files(node))
        image: dict[str, Any] = {
            "node": [
                node.key, node.kind, node.channels, node.layout, node.invert_polarity,
                node.chain_latency_samples, node.chain_buffering_samples,
                node.insert_input_latency_samples, node.input_latency_samples,
            ],
            "inserts": node.inserts,
            "lanes": {k: v for k, v in node.automation.items() if k.startswith("insert.")},
            "clips": node.clips,
            "files": files,
            "active": instance.active,
        }  # fmt: skip
        if node.kind != "track":
            inputs = [self.edge(e, s) for e, s in instance.inputs]
            if any(k is None for k in inputs):
                self.reasons[instance.key] = "an input has no key"
                return None
            image["inputs"] = inputs
        return self._digest(image)

    def _insert_files(self, node: Node) -> dict[str, str]:
        """Digests of files an insert names (impulse responses, presets)."""
        files = {}
        for spec in node.inserts:
            for value in spec.params.values():
                if isinstance(value, (str, Path)) and len(str(value)) < 4096:
                    with contextlib.suppress(OSError, ValueError):
                        if Path(value).is_file():
                            files[str(value)] = self.file_digest(Path(value))
        return files

    def _digest(self, image: Any) -> str:
        return digest([self.base, image])
