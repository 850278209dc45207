"""One routing model: who feeds a route, what a route feeds, the path from tracks to the master.

Every question about the session's routing is answered here, from the nodes' input edges, so
the promise that stems sum to the mix rests on one set of answers (compile, the delivery plan
and the engine all ask this module). Answers are cached: a :class:`Routing` is built on frozen
nodes and never changes.

Definitions (``→`` is an output or a send; sidechain keys carry no audio into a sum and are
not routing):

- ``upstream(r)``: ``r`` and every route with a path ``x → … → r``.
- ``downstream(r)``: every node with a path ``r → … → x`` (``r`` excluded).
- ``tracks_reaching(r, sends)``: the audible tracks in ``upstream(r)``; with ``sends=False``
  only paths made of outputs count (a dry render drops sends).
- ``path(tracks, targets)``: every node on a path from one of ``tracks`` to one of
  ``targets``, in graph order.
- A *return* is a bus fed by at least one send.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache

from stemprint.graph.types import Node


class Routing:
    """Cached routing queries over a graph's nodes (in topological order).

    Parameters
    ----------
    nodes
        The nodes; their ``audible`` flags decide which tracks count as audible.
    """

    def __init__(self, nodes: Sequence[Node]) -> None:
        self.nodes = {n.key: n for n in nodes}
        self.order = {n.key: i for i, n in enumerate(nodes)}
        self.audible_tracks = frozenset(n.key for n in nodes if n.kind == "track" and n.audible)
        feeds: dict[str, list[str]] = {key: [] for key in self.nodes}
        for node in nodes:
            for edge in node.inputs:
                feeds[edge.source].append(node.key)
        self._feeds = {key: tuple(targets) for key, targets in feeds.items()}
        # Per-instance caches (a method-level functools.cache would keep every Routing alive).
        self.upstream = cache(self._upstream)
        self.downstream = cache(self._downstream)
        self.tracks_reaching = cache(self._tracks_reaching)

    def _upstream(self, key: str) -> frozenset[str]:
        found = {key}
        for edge in self.nodes[key].inputs:
            found |= self.upstream(edge.source)
        return frozenset(found)

    def _downstream(self, key: str) -> frozenset[str]:
        found: set[str] = set()
        for target in self._feeds[key]:
            found |= {target} | self.downstream(target)
        return frozenset(found)

    def _tracks_reaching(self, key: str, sends: bool = True) -> frozenset[str]:
        node = self.nodes[key]
        if node.kind == "track":
            return frozenset({key}) & self.audible_tracks
        found: set[str] = set()
        for edge in node.inputs:
            if sends or edge.kind == "output":
                found |= self.tracks_reaching(edge.source, sends)
        return frozenset(found)

    def is_return(self, key: str) -> bool:
        """A bus fed by at least one send."""
        return any(e.kind == "send" for e in self.nodes[key].inputs)

    def path(self, tracks: frozenset[str], targets: Iterable[str]) -> tuple[str, ...]:
        """Every node on a path from ``tracks`` to ``targets`` (outputs and sends), graph order."""
        keep = {
            key
            for target in targets
            for key in self.upstream(target)
            if self.tracks_reaching(key) & tracks
        }
        return tuple(sorted(keep, key=self.order.__getitem__))

    def in_order(self, keys: Iterable[str]) -> list[str]:
        """``keys`` sorted in graph (processing) order."""
        return sorted(keys, key=self.order.__getitem__)
