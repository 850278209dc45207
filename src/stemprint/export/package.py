"""Render a session into a stem package on disk, atomically.

The package is written into a hidden temporary folder beside ``OUT`` and renamed to ``OUT`` only
when every file, the manifest and the README are complete: a failed or interrupted render leaves
no folder that looks finished, and an existing ``OUT`` is replaced only with ``force`` and only
after the new package is complete.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stemprint import __version__
from stemprint.errors import InputError, RenderError, StemprintError
from stemprint.export.audio import AudioWriter, BitDepth, Dither
from stemprint.graph.compile import Node, RenderGraph, compile_session
from stemprint.model.load import LoadedSession
from stemprint.model.session import MASTER
from stemprint.render.engine import DEFAULT_BLOCK_SIZE, Renderer, Tap

RF64_THRESHOLD_BYTES = 0xFFFFFFFF - 1024 * 1024
"""WAV files whose data would pass this size are written as RF64 (the RIFF size field is 32-bit)."""

_UNSAFE = re.compile(r"[^A-Za-z0-9 ._()\-+&,]")
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10))} | {
    f"lpt{i}" for i in range(10)
}


@dataclass
class RenderOptions:
    """How to render and write a package.

    Attributes
    ----------
    bit_depth
        ``16``, ``24`` (default), ``32`` or ``32f``.
    dither
        ``auto`` (TPDF when writing 16-bit), ``none``, ``tpdf``.
    block_size
        Render block in samples (speed only; the output does not depend on it).
    threads
        Worker threads (default: one per CPU; speed only).
    stems
        Write the stems (``False``: the mix, and the premaster if chosen, only).
    verify
        Verify the package before it is published (``stemprint verify``: null test, levels)
        and store the report as ``verification.json``.
    force
        Replace an existing output folder.
    allow_plugins
        Allow hosting external VST3/AU plug-ins named by the session.
    premaster
        ``auto``: write ``premaster.wav`` (the master's input, which the stems sum to) when the
        master has inserts or gain; ``always``; ``never``.
    rf64_threshold_bytes
        Write RF64 instead of WAV above this data size.
    """

    bit_depth: BitDepth = "24"
    dither: Dither = "auto"
    block_size: int = DEFAULT_BLOCK_SIZE
    threads: int | None = None
    stems: bool = True
    verify: bool = True
    force: bool = False
    allow_plugins: bool = False
    premaster: str = "auto"
    rf64_threshold_bytes: int = RF64_THRESHOLD_BYTES


@dataclass
class PackageResult:
    """What a render wrote."""

    out_dir: Path
    manifest: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def safe_file_name(name: str) -> str:
    """A file name that is valid on Windows, macOS and Linux, derived from a route name."""
    cleaned = _UNSAFE.sub("_", name).strip(" .")
    if not cleaned:
        cleaned = "_"
    if cleaned.split(".")[0].lower() in _WINDOWS_RESERVED:
        cleaned = "_" + cleaned
    return cleaned[:120]


def check_output_dir(out_dir: Path, force: bool) -> None:
    """Refuse an existing output folder unless ``force``."""
    if out_dir.exists() and not force:
        raise InputError(
            f"output folder already exists: {out_dir}",
            field="-o/--output",
            fix="choose another folder, or pass --force to replace it",
        )
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(
            f"output path exists and is not a folder: {out_dir}",
            field="-o/--output",
            fix="choose another path",
        )


def render_package(
    loaded: LoadedSession,
    out_dir: str | Path,
    options: RenderOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
    graph: RenderGraph | None = None,
) -> PackageResult:
    """Render the mix and the default stems of ``loaded`` into the folder ``out_dir``.

    Parameters
    ----------
    loaded
        A validated session.
    out_dir
        The package folder to create.
    options
        Format and behaviour (:class:`RenderOptions`).
    progress
        Called as ``progress(done_samples, total_samples)``.
    graph
        An already compiled graph of ``loaded`` (compiled here if omitted).

    Returns
    -------
    PackageResult
        The folder and the manifest written into it.

    Raises
    ------
    StemprintError
        Bad input (before anything is written), or a render failure (the partial package is
        removed).
    """
    options = options or RenderOptions()
    out_dir = Path(out_dir)
    check_output_dir(out_dir, options.force)
    if graph is None:
        graph = compile_session(loaded, allow_plugins=options.allow_plugins)
    renderer = Renderer(graph, options.block_size, options.threads)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    writers: dict[str, AudioWriter] = {}
    try:
        taps = _choose_taps(graph, renderer, options)
        paths = _file_paths(taps)
        (tmp / "stems").mkdir()
        bytes_per_sample = 2 if options.bit_depth == "16" else 3 if options.bit_depth == "24" else 4
        container = (
            "RF64"
            if graph.length_samples * 2 * bytes_per_sample > options.rf64_threshold_bytes
            else "WAV"
        )
        for tap in taps:
            writers[tap.key] = AudioWriter(
                tmp / paths[tap.key],
                graph.sample_rate,
                2,
                options.bit_depth,
                options.dither,
                seed_name=paths[tap.key],
                container=container,
            )
        renderer.run(dict(writers), progress)
        manifest = _manifest(loaded, graph, renderer, taps, paths, writers, options, tmp)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
        (tmp / "README.md").write_text(_readme(loaded, graph, manifest), "utf-8")
        if options.verify:
            manifest["verification"] = _verify(tmp)
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
    except BaseException as exc:
        for writer in writers.values():
            try:
                writer.close()
            except Exception:  # noqa: BLE001, S110 - best effort while failing
                pass
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise RenderError(
                f"cannot write the package: {exc}",
                file=str(out_dir),
                fix="check free disk space and permissions",
            ) from exc
        raise
    _replace_dir(tmp, out_dir)
    return PackageResult(out_dir, manifest, list(graph.warnings))


def _verify(package: Path) -> dict[str, Any]:
    """Verify the finished package (still in its temporary folder); write verification.json."""
    from stemprint.analysis import verify_package

    report = verify_package([package])
    data = report.to_dict()
    # Paths relative to the package, no timing: the stored report is reproducible.
    data["package"] = "."
    data.pop("elapsed_seconds", None)
    for entry in data.get("files", []):
        entry["path"] = entry.get("label", entry.get("path"))
    (package / "verification.json").write_text(json.dumps(data, indent=2) + "\n", "utf-8")
    verdict = next((n for n in report.nulls if n.decides_verdict), None)
    return {
        "path": "verification.json",
        "passed": report.passed,
        "null_reference": verdict.reference if verdict else None,
        "null_residual_peak_dbfs": _db(verdict.residual_peak_dbfs) if verdict else None,
        "errors": [f.message for f in report.errors],
    }


def _replace_dir(tmp: Path, out_dir: Path) -> None:
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out_dir)


def _choose_taps(graph: RenderGraph, renderer: Renderer, options: RenderOptions) -> list[Tap]:
    master = graph.master
    master_processes = bool(master.inserts) or master.gain_linear != 1.0
    want_premaster = options.premaster == "always" or (
        options.premaster == "auto" and master_processes
    )
    return [
        t
        for t in renderer.taps
        if (t.role != "premaster" or want_premaster) and (t.role != "stem" or options.stems)
    ]


def _file_paths(taps: list[Tap]) -> dict[str, str]:
    paths: dict[str, str] = {}
    seen: dict[str, str] = {}
    for tap in taps:
        if tap.role == "mix":
            path = "mix.wav"
        elif tap.role == "premaster":
            path = "premaster.wav"
        else:
            path = f"stems/{safe_file_name(tap.name)}.wav"
        key = path.lower()  # case-insensitive file systems (macOS, Windows)
        if key in seen:
            raise InputError(
                f"stems {seen[key]!r} and {tap.name!r} would both be written as {path}",
                field="tracks/buses name",
                fix="rename one of the routes so their file names differ",
            )
        seen[key] = tap.name
        paths[tap.key] = path
    return paths


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _db(value: float) -> float | None:
    """JSON-safe dB value (``None`` for −∞)."""
    return None if math.isinf(value) else round(value, 4)


def _strip_description(loaded: LoadedSession, node: Node) -> dict[str, Any]:
    session = loaded.session
    info: dict[str, Any] = {
        "route": node.name,
        "kind": node.kind,
        "inserts": [spec.describe() for spec in node.inserts],
    }
    if node.kind == "master":
        info["gain_db"] = session.master.gain_db
        return info
    strips = session.tracks if node.kind == "track" else session.buses
    strip = next(r for r in strips if r.name == node.name)
    info.update(
        gain_db=strip.gain_db,
        pan=strip.pan,
        invert_polarity=strip.invert_polarity,
        output=strip.output,
        sends=[{"to": s.to, "level_db": s.level_db, "pre_fader": s.pre_fader} for s in strip.sends],
        audible=node.audible,
        latency_samples=node.chain_latency_samples,
    )
    return info


def _manifest(
    loaded: LoadedSession,
    graph: RenderGraph,
    renderer: Renderer,
    taps: list[Tap],
    paths: dict[str, str],
    writers: dict[str, AudioWriter],
    options: RenderOptions,
    tmp: Path,
) -> dict[str, Any]:
    by_key = graph.by_key
    stems = {f"stem:{s.name}": s for s in graph.stems}
    files = []
    for tap in taps:
        writer = writers[tap.key]
        entry: dict[str, Any] = {
            "path": paths[tap.key],
            "role": tap.role,
            "name": tap.name,
            "channels": 2,
            "sample_rate": graph.sample_rate,
            "length_samples": writer.stats.frames,
            "format": writer.container,
            "subtype": writer.subtype,
            "bit_depth": options.bit_depth,
            "dither": writer.dither_name,
            "peak_dbfs": _db(writer.stats.peak_dbfs),
            "overs": writer.stats.overs,
            "clipped_samples": writer.stats.clipped_samples,
            "latency_compensated_samples": tap.latency_samples,
            "sha256": _sha256(tmp / paths[tap.key]),
        }
        if tap.role == "stem":
            stem = stems[tap.key]
            entry["tap_point"] = "post_fader"
            entry["route"] = by_key[stem.route].name
            entry["routes"] = [by_key[k].name for k in stem.routes]
            entry["muted"] = not by_key[stem.route].audible
            entry["processing"] = [
                _strip_description(loaded, by_key[k]) for k in reversed(stem.routes)
            ]
        else:
            entry["routes"] = [n.name for n in graph.nodes if n.name != MASTER]
            if tap.role == "mix":
                entry["processing"] = [_strip_description(loaded, graph.master)]
        files.append(entry)
    return {
        "stemprint": 1,
        "generator": f"stemprint {__version__}",
        "session": loaded.session.name,
        "sample_rate": graph.sample_rate,
        "length_samples": graph.length_samples,
        "length_seconds": graph.length_samples / graph.sample_rate,
        "tail_seconds": loaded.session.tail_seconds,
        "bit_depth": options.bit_depth,
        "stems_sum_to": "premaster" if any(t.role == "premaster" for t in taps) else "mix",
        "latency": {
            "master_input_samples": graph.master.input_latency_samples,
            "mix_samples": graph.master.latency_samples,
            "routes": [
                {
                    "route": n.name,
                    "kind": n.kind,
                    "latency_samples": n.chain_latency_samples,
                    "compensated_to_samples": n.latency_samples,
                }
                for n in graph.nodes
            ],
        },
        "files": files,
        "warnings": list(graph.warnings),
    }


def _readme(loaded: LoadedSession, graph: RenderGraph, manifest: dict[str, Any]) -> str:
    session = loaded.session
    rate = graph.sample_rate
    lines = [
        f"# {session.name} — stem package",
        "",
        f"Rendered by {manifest['generator']} from `{loaded.path.name}` in one pass.",
        "",
        f"- Sample rate: {rate} Hz; bit depth: {manifest['bit_depth']}"
        + (" (float)" if manifest["bit_depth"] == "32f" else "-bit")
        + "; stereo WAV.",
        f"- Every file starts at timeline 0 and is {graph.length_samples} samples long "
        f"({graph.length_samples / rate:.3f} s, including {session.tail_seconds:g} s of tail).",
        "",
        "## How to use it",
        "",
        "Import every file in `stems/` into a new session at the same sample rate, all starting "
        "at 0, every fader at unity (0 dB), pans centred, no processing. Their sum equals "
        + (
            "`premaster.wav`, the mix before the master bus processing; `mix.wav` is that sum "
            "through the master chain."
            if manifest["stems_sum_to"] == "premaster"
            else "`mix.wav` (the master bus has no processing)."
        ),
        "",
        "## Files",
        "",
    ]
    for entry in manifest["files"]:
        peak = entry["peak_dbfs"]
        peak_text = "silent" if peak is None else f"peak {peak:.2f} dBFS"
        lines.append(f"### `{entry['path']}` — {entry['name']} ({peak_text})")
        lines.append("")
        if entry["role"] == "mix":
            lines.append("The full mix, through the master bus.")
            master = entry["processing"][0]
            chain = " → ".join(master["inserts"]) or "no inserts"
            lines.append(f"Master: {chain}; gain {master['gain_db']:+g} dB.")
        elif entry["role"] == "premaster":
            lines.append("The master's input: every stem summed, before the master bus.")
        else:
            if entry.get("muted"):
                lines.append("This route is muted in the session: the file is silent.")
            lines.append(
                "Post-fader output of the route, before the master bus. Printed in, "
                "in signal order:"
            )
            lines.append("")
            for strip in entry["processing"]:
                chain = " → ".join(strip["inserts"]) or "no inserts"
                sends = ", ".join(
                    f"{s['to']} {s['level_db']:+g} dB {'pre' if s['pre_fader'] else 'post'}"
                    for s in strip.get("sends", [])
                )
                lines.append(
                    f"- {strip['kind']} **{strip['route']}**: {chain}; fader "
                    f"{strip['gain_db']:+g} dB; pan {strip['pan']:+.2f}"
                    + ("; polarity inverted" if strip.get("invert_polarity") else "")
                    + (f"; sends: {sends}" if sends else "")
                    + f"; → {strip['output']}"
                )
        if entry["clipped_samples"]:
            lines.append(
                f"\n**Warning:** {entry['clipped_samples']} samples clipped when quantized."
            )
        lines.append("")
    if manifest["warnings"]:
        lines += ["## Warnings", ""] + [f"- {w}" for w in manifest["warnings"]] + [""]
    lines += [
        "`manifest.json` lists every file with its role, contents, processing, peak, overs "
        "and SHA-256.",
        "",
    ]
    return "\n".join(lines)


__all__ = ["RenderOptions", "PackageResult", "render_package", "safe_file_name", "StemprintError"]
