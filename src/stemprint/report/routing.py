"""The routing diagram: tracks → buses → returns → master, each stem's routes in its colour.

Invariants
----------
* Built only from the manifest: the nodes are the routes of every file's ``processing`` (plus
  any ``output`` or send target they name, and ``master``); the edges are each route's
  ``output`` (solid) and ``sends`` (dashed). A bus that receives a send is drawn as a return.
* Columns are longest-path layers from the tracks (tracks in column 0, the master alone in the
  last); within a column, nodes follow their inputs (barycentre) and keep a fixed spacing.
* An edge is drawn once per stem whose ``routes`` hold both ends (an edge into the master:
  the source), in that stem's colour, side by side; an edge no stem holds is grey. A node
  shows a stripe per stem that holds it.
* The SVG is plain text written here (no script, no external reference); the same manifest
  gives the same bytes.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .inputs import NEUTRAL_COLOUR, ReportFile

NODE_W = 156
NODE_H = 30
COL_PITCH = 236
ROW_PITCH = 40
MARGIN = 16
HEAD = 26
GREY = "#b5bbc2"
_NAME_CHARS = 21


@dataclass
class Node:
    """One route of the diagram."""

    name: str
    kind: str
    order: int
    output: str | None = None
    sends: list[dict[str, Any]] = field(default_factory=list)
    inserts: list[str] = field(default_factory=list)
    stems: list[int] = field(default_factory=list)
    layer: int = 0
    y: float = 0.0


@dataclass(frozen=True)
class Stem:
    """A stem as the diagram colours it."""

    name: str
    colour: str
    routes: frozenset[str]


def stems_of(files: Sequence[ReportFile], manifest: dict[str, Any]) -> list[Stem]:
    """The stem-coloured files (in the report's colours) with their manifest ``routes``."""
    entries = manifest.get("files", [])
    out = []
    for f in files:
        if f.colour == NEUTRAL_COLOUR or f.manifest_index is None:
            continue
        routes = entries[f.manifest_index].get("routes") or []
        out.append(Stem(f.name, f.colour, frozenset(str(r) for r in routes)))
    return out


def _nodes(manifest: dict[str, Any]) -> dict[str, Node]:
    nodes: dict[str, Node] = {}
    for entry in manifest.get("files", []):
        for p in entry.get("processing") or []:
            name = str(p.get("route"))
            if name in nodes:
                continue
            kind = str(p.get("kind") or "track")
            output = p.get("output") or (None if kind == "master" else "master")
            nodes[name] = Node(
                name, kind, len(nodes), None if output is None else str(output),
                list(p.get("sends") or []), [str(i) for i in p.get("inserts") or []],
            )  # fmt: skip
    for node in list(nodes.values()):
        targets = [node.output] + [str(s.get("to")) for s in node.sends]
        for target in targets:
            if target and target not in nodes:
                kind = "master" if target == "master" else "bus"
                nodes[target] = Node(target, kind, len(nodes))
    if nodes and "master" not in nodes:
        nodes["master"] = Node("master", "master", len(nodes))
    return nodes


def _edges(nodes: dict[str, Node]) -> list[tuple[str, str, bool]]:
    """``(source, target, is_send)`` for every output and send."""
    edges = []
    for node in nodes.values():
        if node.output and node.kind != "master":
            edges.append((node.name, node.output, False))
        edges += [(node.name, str(s.get("to")), True) for s in node.sends]
    return edges


def _layers(nodes: dict[str, Node], edges: list[tuple[str, str, bool]]) -> int:
    preds: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b, _ in edges:
        preds[b].append(a)
    done: dict[str, int] = {}

    def layer(name: str, seen: frozenset[str]) -> int:
        if name in done:
            return done[name]
        inputs = [p for p in preds[name] if p not in seen and nodes[p].kind != "master"]
        value = 0 if nodes[name].kind == "track" else 1
        for p in inputs:
            value = max(value, layer(p, seen | {name}) + 1)
        done[name] = value
        return value

    last = max((layer(n, frozenset()) for n in nodes if nodes[n].kind != "master"), default=0)
    for name, node in nodes.items():
        node.layer = last + 1 if node.kind == "master" else done[name]
    return last + 1


def _chains(
    nodes: dict[str, Node], edges: list[tuple[str, str, bool]]
) -> list[tuple[list[str], bool]]:
    """Each edge as a chain of nodes, one per column it crosses: a hidden waypoint in every
    column between its ends keeps a row free, so no line runs under a node."""
    chains = []
    for a, b, send in edges:
        chain = [a]
        for layer in range(nodes[a].layer + 1, nodes[b].layer):
            name = f"{a}\u2192{b}{'~' if send else ''}@{layer}"
            nodes[name] = Node(name, "waypoint", len(nodes), layer=layer)
            chain.append(name)
        chains.append((chain + [b], send))
    return chains


def _place(nodes: dict[str, Node], chains: list[tuple[list[str], bool]], columns: int) -> float:
    """Vertical positions (nodes follow their inputs); returns the content height."""
    inputs: dict[str, list[str]] = {n: [] for n in nodes}
    sends: dict[str, list[str]] = {n: [] for n in nodes}
    for chain, send in chains:
        for a, b in zip(chain, chain[1:], strict=False):
            (sends if send and b == chain[-1] else inputs)[b].append(a)
    height = 0.0
    for col in range(columns + 1):
        members = [n for n in nodes.values() if n.layer == col]
        key = {n.name: _barycentre(n, inputs, sends, nodes) for n in members}
        members.sort(key=lambda n: (key[n.name], min(n.stems, default=999), n.order))
        y = 0.0
        for n in members:
            pitch = ROW_PITCH / 2 if n.kind == "waypoint" else ROW_PITCH
            n.y = max(y, key[n.name] if col else y)
            y = n.y + pitch
        height = max(height, y)
    for n in nodes.values():
        if n.kind == "master":
            n.y = max((height - ROW_PITCH) / 2.0, 0.0)
    return height


def _barycentre(
    node: Node, inputs: dict[str, list[str]], sends: dict[str, list[str]], nodes: dict[str, Node]
) -> float:
    """Mean height of the node's inputs (its sends when it has none); tracks: their order."""
    if node.layer == 0:
        return 0.0
    ys = [nodes[p].y for p in inputs[node.name] or sends[node.name]]
    return sum(ys) / len(ys) if ys else 1e6


def routing_svg(files: Sequence[ReportFile], manifest: dict[str, Any] | None) -> str | None:
    """The diagram as inline SVG, or ``None`` when the manifest lists no processing."""
    if not manifest:
        return None
    nodes = _nodes(manifest)
    if len(nodes) < 2:
        return None
    stems = stems_of(files, manifest)
    for k, stem in enumerate(stems):
        for route in stem.routes:
            if route in nodes:
                nodes[route].stems.append(k)
    edges = _edges(nodes)
    returns = {b for _a, b, send in edges if send}
    columns = _layers(nodes, edges)
    chains = _chains(nodes, edges)
    height = _place(nodes, chains, columns)
    width = MARGIN * 2 + columns * COL_PITCH + NODE_W
    total = HEAD + height + MARGIN * 2
    parts = [
        f'<svg class="routing" viewBox="0 0 {width} {total:.0f}" width="{width}" '
        f'height="{total:.0f}" xmlns="http://www.w3.org/2000/svg" role="img" '
        'aria-label="routing diagram">'
    ]
    parts += _headers(nodes, returns, columns)
    for chain, send in chains:
        parts += _edge([nodes[n] for n in chain], send, stems)
    for node in sorted(nodes.values(), key=lambda n: n.order):
        if node.kind != "waypoint":
            parts.append(_node(node, node.name in returns, stems))
    parts.append("</svg>")
    return "\n".join(parts)


def _x(layer: int) -> float:
    return MARGIN + layer * COL_PITCH


def _y(node: Node) -> float:
    return MARGIN + HEAD + node.y


def _headers(nodes: dict[str, Node], returns: set[str], columns: int) -> list[str]:
    out = []
    for col in range(columns + 1):
        kinds = {
            "return" if n.name in returns else n.kind for n in nodes.values() if n.layer == col
        }
        words = {"track": "tracks", "bus": "buses", "return": "returns", "master": "master"}
        title = " · ".join(words[k] for k in ("track", "bus", "return", "master") if k in kinds)
        out.append(
            f'<text x="{_x(col) + NODE_W / 2:.1f}" y="{MARGIN + 10}" class="rt-head" '
            f'text-anchor="middle">{html.escape(title)}</text>'
        )
    return out


def _edge(chain: list[Node], send: bool, stems: Sequence[Stem]) -> list[str]:
    a, b = chain[0], chain[-1]
    owners = list(a.stems) if b.kind == "master" else [k for k in a.stems if k in b.stems]
    colours = [stems[k].colour for k in owners] or [GREY]
    dash = ' stroke-dasharray="5 3"' if send else ""
    width = 1.4 if send else 2.2
    out = []
    for i, colour in enumerate(colours):
        off = (i - (len(colours) - 1) / 2.0) * 3.0
        out.append(
            f'<path d="{_path(chain, off)}" fill="none" stroke="{colour}" '
            f'stroke-width="{width}"{dash} opacity="0.85"/>'
        )
    return out


def _path(chain: list[Node], off: float) -> str:
    """Curves between columns, straight through each waypoint's column."""
    first = chain[0]
    x, y = _x(first.layer) + NODE_W, _y(first) + NODE_H / 2 + off
    d = [f"M{x:.1f} {y:.1f}"]
    for node in chain[1:]:
        x2, y2 = _x(node.layer), _y(node) + NODE_H / 2 + off
        if node.kind == "waypoint":
            y2 = _y(node) + off
        dx = (x2 - x) * 0.5
        d.append(f"C{x + dx:.1f} {y:.1f} {x2 - dx:.1f} {y2:.1f} {x2:.1f} {y2:.1f}")
        x, y = x2, y2
        if node.kind == "waypoint":
            x += NODE_W
            d.append(f"L{x:.1f} {y:.1f}")
    return " ".join(d)


def _node(node: Node, is_return: bool, stems: Sequence[Stem]) -> str:
    x, y = _x(node.layer), _y(node)
    kind = "return" if is_return and node.kind == "bus" else node.kind
    title = f"{node.name} ({kind})"
    if node.inserts:
        title += "\ninserts: " + ", ".join(node.inserts)
    if node.stems:
        title += "\nin stems: " + ", ".join(stems[k].name for k in node.stems)
    border = stems[node.stems[0]].colour if node.stems else GREY
    name = node.name if len(node.name) <= _NAME_CHARS else node.name[: _NAME_CHARS - 1] + "…"
    detail = kind + (f" · {len(node.inserts)} insert{'s' * (len(node.inserts) != 1)}"
                     if node.inserts else "")  # fmt: skip
    out = [
        f'<g class="rt-node"><title>{html.escape(title)}</title>',
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{NODE_W}" height="{NODE_H}" rx="4" '
        f'fill="#ffffff" stroke="{border}" stroke-width="1.4"/>',
    ]
    stripe = NODE_H / max(len(node.stems), 1)
    for i, k in enumerate(node.stems):
        out.append(
            f'<rect x="{x:.1f}" y="{y + i * stripe:.1f}" width="6" height="{stripe:.1f}" '
            f'fill="{stems[k].colour}"/>'
        )
    out.append(
        f'<text x="{x + 12:.1f}" y="{y + 13:.1f}" class="rt-name">{html.escape(name)}</text>'
        f'<text x="{x + 12:.1f}" y="{y + 25:.1f}" class="rt-kind">{html.escape(detail)}</text>'
        "</g>"
    )
    return "".join(out)
