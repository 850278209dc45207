"""The package manifest (``manifest.json``): every file, its role, what it holds, what sums.

Invariants
----------
- The manifest lists every audio file written, so tools never guess names (product contract:
  ``stemprint``, ``sample_rate``, ``length_samples``, ``files[].path/role/name``).
- A file's role comes from its tap (``render.taps``), the same role the live measurement used.
- ``sums`` lists the sum relations of the render (``graph.outputs.SumRelation``) by file path:
  ``{name, parts, reference, exact, why}``; ``stemprint verify`` checks exactly those.
- Latencies: ``latency_samples`` of a route is its plug-ins' own latency (reported or
  declared); ``buffering_samples`` is stemprint's fixed-chunk feeding of pedalboard; both are
  compensated (``compensated_to_samples`` is the route's output latency on the timeline).
- Every number is of the files as written: lengths and peaks from the writers, the tail from
  the length actually kept (an until-silent tail is what was kept, not its cap).
- Every ``sha256`` is of the file's bytes on disk when the manifest is built; the files are
  hashed side by side (:func:`sha256_files`), each digest the same as :func:`sha256_file`'s.
  A file copied from the render cache was hashed when it was copied (``export.reuse``).
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stemprint._version import __version__
from stemprint.export.audio import PrintedFile
from stemprint.graph.outputs import ResolvedDelivery, SumRelation
from stemprint.graph.types import Node, RenderGraph
from stemprint.model.load import LoadedSession
from stemprint.render.taps import Tap


@dataclass(frozen=True)
class ManifestInput:
    """Everything the manifest is made of (one render, written into ``root``)."""

    loaded: LoadedSession
    graph: RenderGraph
    delivery: ResolvedDelivery
    taps: Sequence[Tap]
    paths: dict[str, str]
    writers: Mapping[str, PrintedFile]
    sums: Sequence[SumRelation]
    warnings: list[str]
    length_samples: int
    tail_samples: int
    root: Path
    digests: Mapping[str, str] = field(default_factory=dict)
    """SHA-256 already taken, by tap key (a file reused from the render cache, hashed when it
    was copied and checked)."""


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_files(paths: Sequence[Path]) -> list[str]:
    """:func:`sha256_file` of every path, in order, hashed on up to one thread per CPU
    (hashlib and file reads release the GIL: a package's files hash side by side)."""
    threads = min(len(paths), os.cpu_count() or 1)
    if threads < 2:
        return [sha256_file(path) for path in paths]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads, thread_name_prefix="stemprint-sha256") as pool:
        return list(pool.map(sha256_file, paths))


def json_db(value: float) -> float | None:
    """JSON-safe dB value (``None`` for −∞)."""
    return None if math.isinf(value) else round(value, 4)


def build_manifest(m: ManifestInput) -> dict[str, Any]:
    """The manifest as a JSON-ready dict (peak warnings are appended to ``m.warnings``)."""
    unknown = [tap for tap in m.taps if tap.key not in m.digests]
    hashed = sha256_files([m.root / m.paths[tap.key] for tap in unknown])
    found = {**m.digests, **{tap.key: d for tap, d in zip(unknown, hashed, strict=True)}}
    digests = [found[tap.key] for tap in m.taps]
    files = [_file_entry(m, tap, digest) for tap, digest in zip(m.taps, digests, strict=True)]
    graph = m.graph
    rate = graph.sample_rate
    sums_to = "premaster" if any(t.role == "premaster" for t in m.taps) else "mix"
    return {
        "stemprint": 1,
        "generator": f"stemprint {__version__}",
        "session": m.loaded.session.name,
        "sample_rate": files[0]["sample_rate"] if files else rate,
        "render_sample_rate": rate,
        "length_samples": files[0]["length_samples"] if files else m.length_samples,
        "length_seconds": m.length_samples / rate,
        "tail_seconds": m.tail_samples / rate,
        "bit_depth": m.delivery.bit_depth,
        "delivery": {
            "preset": m.delivery.preset,
            "tap": m.delivery.tap,
            "returns": m.delivery.returns,
            "tail": m.delivery.tail.model_dump(),
            "format": m.delivery.format,
            "peak_limit_dbfs": m.delivery.peak_limit_dbfs,
        },
        "stems_sum_to": sums_to,
        "sums": sum_entries(m.sums, m.paths),
        "latency": _latency(graph),
        "files": files,
        "warnings": m.warnings,
    }


def sum_entries(sums: Sequence[SumRelation], paths: dict[str, str]) -> list[dict[str, Any]]:
    """The sum relations by file path (the manifest's and the live measurement's ``sums``)."""
    return [
        {
            "name": s.name,
            "parts": [paths[k] for k in s.parts],
            "reference": paths[s.reference],
            "exact": s.exact,
            "why": s.why,
        }
        for s in sums
        if s.reference in paths and all(k in paths for k in s.parts)
    ]


def _latency(graph: RenderGraph) -> dict[str, Any]:
    return {
        "master_input_samples": graph.master.input_latency_samples,
        "mix_samples": graph.master.latency_samples,
        "routes": [
            {
                "route": n.name,
                "kind": n.kind,
                "latency_samples": n.chain_latency_samples - n.chain_buffering_samples,
                "buffering_samples": n.chain_buffering_samples,
                "compensated_to_samples": n.latency_samples,
            }
            for n in graph.nodes
        ],
    }


def _file_entry(m: ManifestInput, tap: Tap, sha256: str) -> dict[str, Any]:
    writer = m.writers[tap.key]
    spec = tap.spec
    by_key = m.graph.by_key
    entry: dict[str, Any] = {
        "path": m.paths[tap.key],
        "role": tap.role,
        "name": tap.name,
        "channels": writer.channels,
        "sample_rate": writer.sample_rate,
        "length_samples": writer.stats.frames,
        "format": writer.container,
        "subtype": writer.subtype,
        "bit_depth": m.delivery.bit_depth,
        "dither": writer.dither_name,
        "peak_dbfs": json_db(writer.stats.peak_dbfs),
        "overs": writer.stats.overs,
        "clipped_samples": writer.stats.clipped_samples,
        "latency_compensated_samples": tap.latency_samples,
        "tap_point": spec.tap_point,
        "sha256": sha256,
    }
    if spec.tracks is not None and spec.kind != "pre_sum":
        entry["tracks"] = [by_key[k].name for k in m.graph.routing.in_order(spec.tracks)]
    entry["routes"] = [by_key[k].name for k in spec.routes]
    if tap.role.startswith("stem"):
        _stem_fields(m, tap, entry)
    elif tap.role in ("mix", "alt_mix"):
        entry["processing"] = [strip_description(m.loaded, m.graph.master)]
    return entry


def _stem_fields(m: ManifestInput, tap: Tap, entry: dict[str, Any]) -> None:
    spec = tap.spec
    by_key = m.graph.by_key
    reference = next((s.reference for s in m.sums if tap.key in s.parts), None)
    entry["sums_to"] = reference if tap.role == "stem" else None
    silent_variant = spec.tracks is not None and not spec.tracks
    entry["muted"] = silent_variant or not any(by_key[k].audible for k in spec.routes)
    if spec.nonlinear_splits:
        entry["nonlinear_splits"] = list(spec.nonlinear_splits)
    entry["processing"] = [strip_description(m.loaded, by_key[k]) for k in spec.routes]
    if spec.kind == "master_out":
        entry["processing"].append(strip_description(m.loaded, m.graph.master))
    limit = m.delivery.peak_limit_dbfs
    peak = entry["peak_dbfs"]
    if limit is not None and peak is not None and peak > limit:
        m.warnings.append(f"stem {tap.name!r} peaks at {peak:.2f} dBFS, above {limit:g}")


def strip_description(loaded: LoadedSession, node: Node) -> dict[str, Any]:
    """A route's strip as printed in a file: inserts, fader, pan, sends, output."""
    session = loaded.session
    info: dict[str, Any] = {
        "route": node.name,
        "kind": node.kind,
        "inserts": [spec.describe() for spec in node.inserts],
    }
    if node.kind == "master":
        master = session.master
        info.update(gain_db=master.gain_db, pan=master.pan, mute=master.mute,
                    automated=sorted(node.automation))  # fmt: skip
        return info
    strips = session.tracks if node.kind == "track" else session.buses
    strip = next(r for r in strips if r.name == node.name)
    info.update(
        gain_db=strip.gain_db,
        pan=strip.pan,
        pan_law=strip.pan_law,
        invert_polarity=strip.invert_polarity,
        output=strip.output,
        sends=[_send_entry(s) for s in strip.sends],
        audible=node.audible,
        latency_samples=node.chain_latency_samples - node.chain_buffering_samples,
    )
    return info


def _send_entry(send: Any) -> dict[str, Any]:
    """A send as the manifest lists it: level, tap and pan."""
    return {
        "to": send.to,
        "level_db": send.level_db,
        "pre_fader": send.pre_fader or send.pre_inserts,
        "pre_inserts": send.pre_inserts,
        "pan": send.pan,
    }
