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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from stemprint import __version__
from stemprint.errors import InputError, RenderError, StemprintError
from stemprint.export.audio import SUBTYPES, AudioWriter, BitDepth, Dither
from stemprint.graph.compile import Node, RenderGraph, compile_session
from stemprint.graph.outputs import ResolvedDelivery, plan_outputs, resolve_delivery
from stemprint.model.load import LoadedSession
from stemprint.render.engine import Renderer, Tap

if TYPE_CHECKING:
    from stemprint.analysis.live import LiveMeasurement

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
        ``16``, ``24``, ``32`` or ``32f``; default: the session's delivery (24).
    preset
        Delivery preset, replacing the session's (its explicit delivery fields still win).
    region
        Render only this region of the session (``regions:``): files start at the region's
        start, are named after it, and loop or fade out as the region says.
    format
        ``wav``, ``aiff`` or ``flac``; default: the session's delivery (wav).
    sample_rate
        Delivery sample rate (resampled with soxr VHQ); default: the session's.
    dither
        ``auto`` (TPDF when writing 16-bit), ``none``, ``tpdf``.
    block_size
        Render block in samples (speed only; the output does not depend on it); default:
        16384 up to 16 tracks, halved as tracks double, at least 2048
        (``render.engine.auto_block_size``).
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

    bit_depth: BitDepth | None = None
    preset: str | None = None
    region: str | None = None
    format: str | None = None
    sample_rate: int | None = None
    dither: Dither = "auto"
    block_size: int | None = None
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
    session = loaded.session
    session_delivery = session.delivery
    if options.preset is not None:
        session_delivery = session_delivery.model_copy(update={"preset": options.preset})
    delivery = resolve_delivery(session_delivery, session.tail_seconds)
    overrides: dict[str, Any] = {
        "bit_depth": options.bit_depth,
        "format": options.format,
        "sample_rate": options.sample_rate,
        "stems": None if options.stems else False,
    }
    delivery = replace(delivery, **{k: v for k, v in overrides.items() if v is not None})
    # Tail policy: the graph was sized with the session's tail_seconds.
    end = graph.length_samples - graph.tail_samples
    rate = graph.sample_rate
    until_silent = None
    tail = delivery.tail
    if tail.mode == "until_silent":
        graph.length_samples = max(end + round(tail.max_seconds * rate), 1)
        until_silent = (10 ** (tail.threshold_db / 20), round(tail.hold_seconds * rate), end)
    else:
        graph.length_samples = max(end + round((tail.seconds or 0.0) * rate), 1)
    graph.tail_samples = graph.length_samples - end
    region = _region(loaded, options.region, delivery, rate) if options.region else None
    start_sample = 0
    if region is not None:
        start_sample = region.start_sample
        graph.length_samples = region.render_samples
        graph.tail_samples = region.render_samples - region.length_samples
    plan = plan_outputs(loaded, graph, delivery, options.premaster)
    renderer = Renderer(graph, options.block_size, options.threads, plan.outputs)
    bit_depth = cast(BitDepth, delivery.bit_depth)
    container = {"wav": "WAV", "aiff": "AIFF", "flac": "FLAC"}[delivery.format]
    file_rate = delivery.sample_rate or rate
    warnings = list(graph.warnings) + plan.warnings
    if file_rate != rate:
        warnings.append(
            f"delivered at {file_rate} Hz (rendered at {rate} Hz, resampled with soxr VHQ)"
        )

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    writers: dict[str, AudioWriter] = {}
    live: LiveMeasurement | None = None
    try:
        taps = renderer.taps
        paths = _file_paths(
            taps, delivery, loaded, file_rate, region.name if region is not None else None
        )
        bytes_per_sample = {"16": 2, "24": 3}.get(delivery.bit_depth, 4)
        if container == "WAV":
            size = graph.length_samples * file_rate / rate * 2 * bytes_per_sample
            if size > options.rf64_threshold_bytes:
                container = "RF64"
        lag = until_silent[1] + renderer.block_size if until_silent else 0
        if (
            options.verify
            and file_rate == rate
            and not (region is not None and region.loop)
            and not delivery.mono_stems
        ):
            # Measured while written (analysis.live); resampled, looped and mono-rewritten
            # packages are read back instead.
            from stemprint.analysis.audio import full_scale_positive
            from stemprint.analysis.live import LiveFile, LiveMeasurement

            full_scale = full_scale_positive(SUBTYPES[bit_depth])
            live = LiveMeasurement(
                [
                    LiveFile(tmp / paths[t.key], file_rate, t.spec.channels, full_scale, t.role)
                    for t in taps
                ]
            )
        for tap in taps:
            (tmp / paths[tap.key]).parent.mkdir(parents=True, exist_ok=True)
            writers[tap.key] = AudioWriter(
                tmp / paths[tap.key],
                file_rate,
                tap.spec.channels,
                bit_depth,
                options.dither,
                seed_name=paths[tap.key],
                container=container,
                render_sample_rate=rate,
                lag_samples=lag,
                mono_if_identical=delivery.mono_stems and tap.role in ("stem", "track"),
                fade_out=region.fade_out if region is not None else None,
                wrap_at=region.length_samples if region is not None and region.loop else None,
                wrap_tail=region.render_samples - region.length_samples if region else 0,
                monitor=live.monitor(tmp / paths[tap.key]) if live is not None else None,
            )
        length = renderer.run(dict(writers), progress, until_silent, start_sample)
        graph.length_samples = length
        if region is not None and region.loop:
            graph.length_samples = region.length_samples
            graph.tail_samples = 0
        manifest = _manifest(loaded, graph, taps, paths, writers, delivery, warnings, tmp)
        if region is not None:
            manifest["region"] = {
                "name": region.name,
                "start_sample": region.start_sample,
                "length_samples": region.length_samples,
                "loop": region.loop,
                "fade_out_samples": region.fade_out[1] if region.fade_out else 0,
            }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
        (tmp / "README.md").write_text(_readme(loaded, graph, manifest), "utf-8")
        if options.verify and any(f["role"] == "stem" for f in manifest["files"]):
            manifest["verification"] = _verify(tmp, live)
            clipped = [
                f"{f['path']} clipped {f['clipped_samples']} samples when quantized (peak "
                f"{f['peak_dbfs']:+.2f} dBFS)"
                for f in manifest["files"]
                if f["clipped_samples"]
            ]
            if clipped and not manifest["verification"]["passed"]:
                # The likeliest cause of a failed null in our own render: say it first.
                manifest["verification"]["errors"] = (
                    clipped
                    + ["lower the levels feeding the master, or render with --bit-depth 32f"]
                    + manifest["verification"]["errors"]
                )
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
    except BaseException as exc:
        for writer in writers.values():
            try:
                writer.close()
            except Exception:  # noqa: BLE001, S110 - best effort while failing
                pass
        if live is not None:
            live.close()
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise RenderError(
                f"cannot write the package: {exc}",
                file=str(out_dir),
                fix="check free disk space and permissions",
            ) from exc
        raise
    _replace_dir(tmp, out_dir)
    return PackageResult(out_dir, manifest, warnings)


@dataclass(frozen=True)
class _Region:
    name: str
    start_sample: int
    length_samples: int
    render_samples: int
    loop: bool
    fade_out: tuple[int, int] | None


def _region(loaded: LoadedSession, name: str, delivery: ResolvedDelivery, rate: int) -> _Region:
    """Resolve a region for rendering; its tail policy, loop and cutdown fade."""
    session = loaded.session
    choices = ", ".join(repr(r.name) for r in session.regions) or "none defined"
    definition = next((r for r in session.regions if r.name == name), None)
    if definition is None:
        raise InputError(f"no region named {name!r}", field="--region", fix=f"regions: {choices}")
    tempo = session.tempo_map()
    start, end = tempo.sample(definition.start), tempo.sample(definition.end)
    if end <= start:
        raise InputError(
            f"region {name!r} ends before it starts", file=str(loaded.path), field="regions"
        )
    if delivery.tail.mode != "fixed":
        raise InputError(
            "regions are rendered with a fixed tail",
            field="delivery.tail",
            fix="use {mode: fixed, seconds: N} with regions",
        )
    length = end - start
    tail = round((delivery.tail.seconds or 0.0) * rate)
    fade = round(definition.fade_out_seconds * rate)
    if definition.loop and (delivery.sample_rate not in (None, rate) or delivery.format == "flac"):
        raise InputError(
            f"loop region {name!r} must be delivered as WAV or AIFF at the session rate",
            field="delivery",
            fix="drop sample_rate / use wav or aiff for loops",
        )
    if fade > length:
        raise InputError(f"region {name!r}: the fade-out is longer than the region")
    # A cutdown (end fade) is exactly the region; a loop wraps its tail; else region + tail.
    render = length if fade else length + tail
    return _Region(
        name,
        start,
        length,
        render,
        definition.loop and not fade,
        (length - fade, fade) if fade else None,
    )


def render_regions(
    loaded: LoadedSession,
    out_dir: str | Path,
    options: RenderOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[PackageResult]:
    """Render every region of the session into ``out_dir/<region>/``, atomically as a whole
    (the region × stem matrix)."""
    options = options or RenderOptions()
    out_dir = Path(out_dir)
    check_output_dir(out_dir, options.force)
    if not loaded.session.regions:
        raise InputError(
            "the session has no regions", field="regions", fix="add `regions:` to the session"
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.partial-regions-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    results = []
    try:
        for region in loaded.session.regions:
            one = replace(options, region=region.name, force=False)
            results.append(render_package(loaded, tmp / safe_file_name(region.name), one, progress))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _replace_dir(tmp, out_dir)
    return [replace(r, out_dir=out_dir / r.out_dir.name) for r in results]


def _verify(package: Path, live: LiveMeasurement | None = None) -> dict[str, Any]:
    """Verify the finished package (still in its temporary folder); write verification.json.

    With ``live`` (the package measured while written), the audio is not read back."""
    from stemprint.analysis import verify_package

    report = verify_package([package], live=live, diagnose_informational=False)
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


_EXTENSIONS = {"WAV": "wav", "RF64": "wav", "AIFF": "aif", "FLAC": "flac"}
_FOLDERS = {"stem": "stems", "alt_mix": "mixes", "track": "multitrack"}


def _file_paths(
    taps: list[Tap],
    delivery: ResolvedDelivery,
    loaded: LoadedSession,
    file_rate: int,
    region: str | None = None,
) -> dict[str, str]:
    """Relative file path of every tap, from the delivery's name template; collisions raise."""
    extension = {"wav": "wav", "aiff": "aif", "flac": "flac"}[delivery.format]
    paths: dict[str, str] = {}
    seen: dict[str, str] = {}
    counters: dict[str, int] = {}
    for tap in taps:
        if tap.role in ("mix", "premaster"):
            path = f"{tap.role}.{extension}"
            if region is not None:
                path = f"{tap.role} - {safe_file_name(region)}.{extension}"
        else:
            counters[tap.role] = counters.get(tap.role, 0) + 1
            template = delivery.file_name if tap.role == "stem" else "{stem}"
            if region is not None and "{region}" not in template:
                template += " - {region}"
            try:
                stem_name = template.format(
                    session=loaded.session.name,
                    stem=tap.name,
                    index=f"{counters[tap.role]:02d}",
                    sample_rate=file_rate,
                    bit_depth=delivery.bit_depth,
                    preset=delivery.preset or "custom",
                    tap=tap.spec.tap_point,
                    region=region or "",
                )
            except (KeyError, IndexError, ValueError) as exc:
                raise InputError(
                    f"bad file name template {template!r}: {exc}",
                    field="delivery.file_name",
                    fix="use the placeholders {session} {stem} {index} {sample_rate} "
                    "{bit_depth} {preset} {tap}",
                ) from None
            path = f"{_FOLDERS[tap.role]}/{safe_file_name(stem_name)}.{extension}"
        key = path.lower()  # case-insensitive file systems (macOS, Windows)
        if key in seen:
            raise InputError(
                f"{seen[key]!r} and {tap.name!r} would both be written as {path}",
                field="tracks/buses/stems name, or delivery.file_name",
                fix="rename one of them, or put {stem} or {index} in the file name template",
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
    taps: list[Tap],
    paths: dict[str, str],
    writers: dict[str, AudioWriter],
    delivery: ResolvedDelivery,
    warnings: list[str],
    tmp: Path,
) -> dict[str, Any]:
    by_key = graph.by_key
    files = []
    sums_to = "premaster" if any(t.role == "premaster" for t in taps) else "mix"
    for tap in taps:
        writer = writers[tap.key]
        spec = tap.spec
        role = tap.role
        if role == "stem" and not spec.sums_to_premaster:
            # Stems that are not meant to sum to the mix keep their own role, so that null
            # tests (``stemprint verify``) leave them out.
            role = f"stem_{spec.tap_point}"
        entry: dict[str, Any] = {
            "path": paths[tap.key],
            "role": role,
            "name": tap.name,
            "channels": writer.channels,
            "sample_rate": writer.sample_rate,
            "length_samples": writer.stats.frames,
            "format": writer.container,
            "subtype": writer.subtype,
            "bit_depth": delivery.bit_depth,
            "dither": writer.dither_name,
            "peak_dbfs": _db(writer.stats.peak_dbfs),
            "overs": writer.stats.overs,
            "clipped_samples": writer.stats.clipped_samples,
            "latency_compensated_samples": tap.latency_samples,
            "tap_point": spec.tap_point,
            "sha256": _sha256(tmp / paths[tap.key]),
        }
        if spec.tracks is not None and spec.kind != "pre_sum":
            entry["tracks"] = [by_key[k].name for k in sorted(spec.tracks, key=_order(graph))]
        entry["routes"] = [by_key[k].name for k in spec.routes]
        if role.startswith("stem"):
            entry["sums_to"] = sums_to if spec.sums_to_premaster else None
            silent_variant = spec.tracks is not None and not spec.tracks
            entry["muted"] = silent_variant or not any(by_key[k].audible for k in spec.routes)
            if spec.nonlinear_splits:
                entry["nonlinear_splits"] = list(spec.nonlinear_splits)
            entry["processing"] = [_strip_description(loaded, by_key[k]) for k in spec.routes]
            if spec.kind == "master_out":
                entry["processing"].append(_strip_description(loaded, graph.master))
            limit = delivery.peak_limit_dbfs
            peak = entry["peak_dbfs"]
            if limit is not None and peak is not None and peak > limit:
                warnings.append(f"stem {tap.name!r} peaks at {peak:.2f} dBFS, above {limit:g}")
        elif role in ("mix", "alt_mix"):
            entry["processing"] = [_strip_description(loaded, graph.master)]
        files.append(entry)
    return {
        "stemprint": 1,
        "generator": f"stemprint {__version__}",
        "session": loaded.session.name,
        "sample_rate": files[0]["sample_rate"] if files else graph.sample_rate,
        "render_sample_rate": graph.sample_rate,
        "length_samples": files[0]["length_samples"] if files else graph.length_samples,
        "length_seconds": graph.length_samples / graph.sample_rate,
        "tail_seconds": graph.tail_samples / graph.sample_rate,
        "bit_depth": delivery.bit_depth,
        "delivery": {
            "preset": delivery.preset,
            "tap": delivery.tap,
            "returns": delivery.returns,
            "tail": delivery.tail.model_dump(),
            "format": delivery.format,
            "peak_limit_dbfs": delivery.peak_limit_dbfs,
        },
        "stems_sum_to": sums_to,
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
        "warnings": warnings,
    }


def _order(graph: RenderGraph) -> Callable[[str], int]:
    position = {n.key: i for i, n in enumerate(graph.nodes)}
    return lambda key: position[key]


_ROLE_TEXT = {
    "stem": "Post-fader output of its routes, before the master bus (sums to the mix).",
    "stem_post_fader": "Post-fader output of its routes, before the master bus; it splits a "
    "bus with non-linear inserts, so it does not sum exactly to the mix.",
    "stem_pre_fader": "Its routes before their faders and pans (does not sum to the mix).",
    "stem_dry": "Its tracks without any insert or send, faders and pans kept (for remixers; "
    "does not sum to the mix).",
    "stem_via_master": "The stem alone through the master bus (for performance and DJ use; does "
    "not sum to the mix).",
    "alt_mix": "An alternate mix through the master bus.",
    "track": "One track on its own (multitrack).",
}


def _strip_line(strip: dict[str, Any]) -> str:
    chain = " → ".join(strip["inserts"]) or "no inserts"
    if strip["kind"] == "master":
        return f"- master: {chain}; gain {strip['gain_db']:+g} dB"
    sends = ", ".join(
        f"{s['to']} {s['level_db']:+g} dB {'pre' if s['pre_fader'] else 'post'}"
        for s in strip.get("sends", [])
    )
    return (
        f"- {strip['kind']} **{strip['route']}**: {chain}; fader {strip['gain_db']:+g} dB; "
        f"pan {strip['pan']:+.2f}"
        + ("; polarity inverted" if strip.get("invert_polarity") else "")
        + (f"; sends: {sends}" if sends else "")
        + f"; → {strip['output']}"
    )


def _readme(loaded: LoadedSession, graph: RenderGraph, manifest: dict[str, Any]) -> str:
    session = loaded.session
    rate = manifest["sample_rate"]
    length = manifest["length_samples"]
    delivery = manifest["delivery"]
    lines = [
        f"# {session.name} — stem package",
        "",
        f"Rendered by {manifest['generator']} from `{loaded.path.name}` in one pass"
        + (f" (preset `{delivery['preset']}`)" if delivery["preset"] else "")
        + ".",
        "",
        f"- Sample rate: {rate} Hz; bit depth: {manifest['bit_depth']}"
        + (" (float)" if manifest["bit_depth"] == "32f" else "-bit")
        + f"; {delivery['format'].upper()}.",
        f"- Every file starts at timeline 0 and is {length} samples long "
        f"({length / rate:.3f} s, including {manifest['tail_seconds']:g} s of tail).",
        f"- Shared returns: {delivery['returns']}"
        + (
            " (each stem carries its own share of the reverbs and delays)."
            if delivery["returns"] == "split"
            else " (each return is its own stem)."
        ),
        "",
        "## How to use it",
        "",
        "Import every file whose role is `stem` (see below) into a new session at the same "
        "sample rate, all starting at 0, every fader at unity (0 dB), pans centred, no "
        "processing. Their sum equals "
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
        lines.append(f"### `{entry['path']}` — {entry['name']} ({entry['role']}, {peak_text})")
        lines.append("")
        if entry["role"] == "mix":
            lines.append("The full mix, through the master bus.")
        elif entry["role"] == "premaster":
            lines.append("The master's input: every stem summed, before the master bus.")
        else:
            if entry.get("muted"):
                lines.append("Its routes are muted in the session: the file is silent.")
            lines.append(_ROLE_TEXT.get(entry["role"], ""))
            if entry.get("tracks") is not None:
                lines.append(f"Tracks: {', '.join(entry['tracks']) or 'none'}.")
        if entry.get("processing"):
            lines += ["", "Printed in, in signal order:", ""]
            lines += [_strip_line(strip) for strip in entry["processing"]]
        if entry["clipped_samples"]:
            lines.append(
                f"\n**Warning:** {entry['clipped_samples']} samples clipped when quantized."
            )
        lines.append("")
    if manifest["warnings"]:
        lines += ["## Warnings", ""] + [f"- {w}" for w in manifest["warnings"]] + [""]
    lines += [
        "`manifest.json` lists every file with its role, contents, tap point, processing, peak, "
        "overs and SHA-256; `verification.json` (when present) is `stemprint verify`'s report.",
        "",
    ]
    return "\n".join(lines)


__all__ = ["RenderOptions", "PackageResult", "render_package", "safe_file_name", "StemprintError"]
