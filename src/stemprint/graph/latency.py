"""Latency compensation (plug-in delay compensation), measured and applied inside the graph.

Formulas
--------
For each node ``n`` in topological order, with ``L(x)`` the output latency of node ``x``:

- arrival ``A(n) = max(L(s) for audible inputs s; L(k) − c(n, i) for audible keys k)``, where
  a pre-FX send's ``L(s)`` is its source's input latency ``A(s)`` (it taps before the chain), and
  ``c(n, i)`` is the latency inside ``n``'s chain at the input of the keyed insert ``i`` (a key
  must reach its insert together with the audio there);
- every input edge is delayed by ``A(n) − L(s)`` (≥ 0), every key edge by
  ``A(n) + c(n, i) − L(k)``;
- ``L(n) = A(n) + chain(n)``, the insert chain's latency (probed: ``dsp.chain.InsertChain``).

Every output file is a tap with a known latency; the writer drops that many samples from the
tap's start, so a transient at sample N of a source lands at sample N of every file it reaches.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import MappingProxyType

from stemprint.dsp.chain import InsertChain, known_latency, measure_latency
from stemprint.graph.types import Node, RenderGraph


@dataclass(frozen=True)
class ChainLatency:
    """A probed insert chain: its latency and the latency at each insert's input."""

    latency_samples: int
    input_latency_samples: dict[int, int]
    buffering_samples: int = 0


def probe_chains(nodes: list[Node], sample_rate: int) -> dict[str, ChainLatency]:
    """Every audible node's insert chain latency: known without building the plug-ins
    (``dsp.chain.known_latency``), or read from the chain built once to probe it.

    Built chains are discarded: the engine builds its own (each render instance has its own
    plug-in state); their hold-back does not depend on the instance.
    """
    found: dict[str, ChainLatency] = {}
    for node in nodes:
        if node.audible and node.inserts:
            found[node.key] = _chain_latency(node, sample_rate)
    return found


def _chain_latency(node: Node, sample_rate: int) -> ChainLatency:
    automation = node.insert_automation()
    known = known_latency(node.inserts, sample_rate, node.channels, automation)
    if known is not None:
        return ChainLatency(*known)
    chain = InsertChain(node.inserts, sample_rate, node.channels, automation)
    return ChainLatency(chain.latency_samples, chain.input_latency_samples, chain.buffering_samples)


def compensate(nodes: list[Node], chains: dict[str, ChainLatency]) -> tuple[Node, ...]:
    """The nodes (topological order) with every latency and compensation delay set."""
    done: dict[str, Node] = {}
    for node in nodes:
        chain = chains.get(node.key, ChainLatency(0, {}))
        inside = chain.input_latency_samples
        arrival = max(
            (
                done[e.source].source_latency_samples(e.tap)
                for e in node.inputs
                if done[e.source].audible
            ),
            default=0,
        )
        for key in node.keys:
            if done[key.source].audible:
                offset = inside.get(key.insert_index or 0, 0)
                arrival = max(arrival, done[key.source].latency_samples - offset)
        inputs = tuple(
            # An inaudible source's (silent) edge needs no delay.
            replace(e, delay_samples=max(arrival - done[e.source].source_latency_samples(e.tap), 0))
            for e in node.inputs
        )
        keys = tuple(
            replace(
                k,
                delay_samples=max(
                    arrival + inside.get(k.insert_index or 0, 0) - done[k.source].latency_samples,
                    0,
                ),
            )
            for k in node.keys
        )
        done[node.key] = replace(
            node,
            inputs=inputs,
            keys=keys,
            chain_latency_samples=chain.latency_samples,
            chain_buffering_samples=chain.buffering_samples,
            insert_input_latency_samples=MappingProxyType(dict(inside)),
            input_latency_samples=arrival,
            latency_samples=arrival + chain.latency_samples,
        )
    return tuple(done[n.key] for n in nodes)


def latency_report(graph: RenderGraph) -> list[str]:
    """Measure each audible insert chain's latency error (``dsp.chain.measure_latency``).

    Returns
    -------
    list of str
        One line per chain: ``ok``, ``differs by N samples`` (with the fix), or ``not measurable``.
    """
    lines = []
    for node in graph.nodes:
        if not (node.audible and node.inserts):
            continue
        error = measure_latency(node.inserts, graph.sample_rate, node.channels)
        chain = " → ".join(spec.describe() for spec in node.inserts)
        label = f"{node.kind} {node.name!r} ({chain})"
        if error is None:
            lines.append(f"{label}: latency not measurable (the chain does not preserve a burst)")
        elif error == 0:
            lines.append(f"{label}: latency ok")
        else:
            lines.append(f"{label}: {_latency_advice(node, error)}")
    return lines


def _latency_advice(node: Node, error: int) -> str:
    """What to declare: the declared latencies can only grow, so an early output (a negative
    error) cannot be fixed by declaring less than zero."""
    declared = sum(spec.declared_latency_samples for spec in node.inserts)
    text = f"measured latency differs by {error:+d} samples from the reported one; "
    if error > 0:
        return text + (
            f"declare it with `latency_samples: {error}` on the latent insert (added to any "
            "value already declared)"
        )
    if declared >= -error:
        return text + (
            f"lower the declared `latency_samples` by {-error} (the chain declares {declared} in "
            "all)"
        )
    return text + (
        "the plug-in reports more latency than it has and a declared latency cannot be "
        f"negative: delay the route by {-error} samples with a `sample_delay` insert "
        f"(`delay_samples: {-error}`) before it"
    )
