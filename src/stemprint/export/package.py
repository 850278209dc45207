"""Render a session into a stem package on disk, atomically, and verify it.

Invariants
----------
- The package is written into a hidden staging folder beside ``OUT`` and published by one
  rename when every file, the manifest, the README and the verification report are complete
  (``export.publish``): a failed or interrupted render leaves no folder that looks finished, and
  ``force`` replaces only a stemprint package, only after the new one is complete.
- Bad input is refused before anything is written: an output folder that is not ours or that
  holds an input, a package that does not fit on its disk, a bad region or file name template.
- A render-cache entry that fails its check while it is read (``render.cache``) stops the
  render before any of its samples is used; the package is rendered once more into a new
  staging folder, every entry it uses checked in full first (a damaged one is a miss).
- The graph is never changed: the part of the timeline rendered is a ``RenderExtent`` value
  (the session's default, an until-silent cap, or a region pre-rolled from the start).
- Every package is verified (unless ``verify=False``): levels of every file, lengths, and the
  null test of every sum relation the render promises (``graph.outputs.SumRelation``); the
  report is stored as ``verification.json`` and returned as ``PackageResult.verification``.
- Every WAV/RF64 file is a Broadcast WAV (``export.bwf``): ``bext`` with the session's start
  timecode as TimeReference and ``iXML``; the loudness fields hold the verification's levels
  (live, or read back and patched after it), 0x7FFF without verification. Every SHA-256 in
  the manifest is of the file's final bytes.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from stemprint.errors import CacheEntryDamaged, InputError, RenderError
from stemprint.export.audio import SUBTYPES, AudioWriter, BitDepth, Dither, PrintedFile
from stemprint.export.bwf import (
    BWF_CONTAINERS,
    BextLoudness,
    BroadcastInfo,
    patch_loudness,
    session_broadcast_info,
)
from stemprint.export.manifest import (
    ManifestInput,
    build_manifest,
    json_db,
    sha256_file,
    sum_entries,
)
from stemprint.export.paths import file_paths, safe_file_name
from stemprint.export.publish import (
    check_free_space,
    check_output_dir,
    disk_full_error,
    estimate_bytes,
    is_disk_full,
    replace_dir,
    staging_dir,
)
from stemprint.export.readme import package_readme
from stemprint.export.regions import Region, resolve_region
from stemprint.graph.compile import compile_session
from stemprint.graph.outputs import OutputPlan, ResolvedDelivery, plan_outputs, resolve_delivery
from stemprint.graph.types import RenderExtent, RenderGraph, UntilSilent
from stemprint.model.load import LoadedSession
from stemprint.render.engine import Renderer

if TYPE_CHECKING:
    from stemprint.analysis.live import LiveMeasurement
    from stemprint.analysis.report import VerificationReport
    from stemprint.export.reuse import ReusedFile
    from stemprint.report.analysis import HopSource

RF64_THRESHOLD_BYTES = 0xFFFFFFFF - 1024 * 1024
"""WAV files whose data would pass this size are written as RF64 (the RIFF size field is 32-bit)."""

SAMPLE_BYTES = {"16": 2, "24": 3, "32": 4, "32f": 4}
CONTAINERS = {"wav": "WAV", "aiff": "AIFF", "flac": "FLAC"}


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
        16384 up to 32 tracks, then smaller as tracks grow (128 tracks: 2048)
        (``render.engine.auto_block_size``).
    threads
        Worker threads (default: one per CPU; speed only).
    stems
        Write the stems (``False``: the mix, and the premaster if chosen, only).
    verify
        Verify the package before it is published (``stemprint verify``) and store the report
        as ``verification.json``.
    force
        Replace an existing output folder that is a stemprint package.
    allow_plugins
        Allow hosting external VST3/AU plug-ins named by the session.
    premaster
        ``auto``: write ``premaster.wav`` (the master's input, which the stems sum to) when the
        master has inserts or gain; ``always``; ``never``.
    rf64_threshold_bytes
        Write RF64 instead of WAV above this data size.
    report
        Write ``report.html`` into the package (plots, the routing, a stem player).
    cache_dir
        Reuse and store routes' rendered signals in this folder (``render.cache``;
        ``render --cache DIR``); ``Path("auto")``: ``.stemprint-cache`` beside ``out_dir``.
        The package is identical to one rendered without it.
    cache_max_bytes
        The cache folder's size cap (default ``render.cache.DEFAULT_MAX_BYTES``).
    import_report
        The import report (``ImportReport.to_dict()``) of the DAW project the session was
        imported from: written as ``import-report.json``, summarized in the manifest's
        ``import`` and the README.
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
    import_report: dict[str, Any] | None = None
    report: bool = True
    cache_dir: Path | None = None
    cache_max_bytes: int | None = None


@dataclass
class PackageResult:
    """What a render wrote.

    Attributes
    ----------
    out_dir
        The package folder.
    manifest
        ``manifest.json`` as written.
    warnings
        Everything the user should know (resampled files, splits that do not sum, stems above
        the delivery's peak limit, a preset that found no vocal route …); never printed here.
    verification
        The package's verification report (``None`` with ``verify=False``);
        ``verification.passed`` is the verdict.
    """

    out_dir: Path
    manifest: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    verification: VerificationReport | None = None


@dataclass(frozen=True)
class _Job:
    """One render, fully resolved before anything is written."""

    loaded: LoadedSession
    graph: RenderGraph
    options: RenderOptions
    delivery: ResolvedDelivery
    region: Region | None
    extent: RenderExtent
    plan: OutputPlan
    renderer: Renderer
    paths: dict[str, str]
    container: str
    file_rate: int
    warnings: tuple[str, ...]

    @property
    def bit_depth(self) -> BitDepth:
        return cast(BitDepth, self.delivery.bit_depth)

    def file_frames(self) -> int:
        return self.extent.length_samples * self.file_rate // self.graph.sample_rate + 1

    def estimate_bytes(self) -> int:
        sample_bytes = SAMPLE_BYTES[self.delivery.bit_depth]
        return estimate_bytes(
            (self.file_frames(), t.spec.channels, sample_bytes) for t in self.renderer.taps
        )


def render_package(
    loaded: LoadedSession,
    out_dir: str | Path,
    options: RenderOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
    graph: RenderGraph | None = None,
) -> PackageResult:
    """Render the mix and the stems of ``loaded`` into the new folder ``out_dir``, verified.

    Parameters
    ----------
    loaded
        A validated session (``load_session``).
    out_dir
        The package folder to create.
    options
        Format and behaviour (:class:`RenderOptions`).
    progress
        Called as ``progress(done_samples, total_samples)``.
    graph
        An already compiled graph of ``loaded`` (compiled here if omitted; never changed).

    Returns
    -------
    PackageResult
        The folder, the manifest, the warnings and the verification report.

    Raises
    ------
    StemprintError
        Bad input (before anything is written), a full disk (exit 2), or a render failure; the
        staging folder is removed and an existing package is left as it was.
    """
    options = options or RenderOptions()
    out_dir = Path(out_dir)
    check_output_dir(out_dir, options.force, session_inputs(loaded))
    options = _with_cache_dir(options, out_dir)
    if graph is None:
        graph = compile_session(loaded, allow_plugins=options.allow_plugins)
    job = _plan_job(loaded, graph, options)
    needed = job.estimate_bytes()
    check_free_space(out_dir, needed)
    tmp = staging_dir(out_dir)
    try:
        try:
            result = _write_package(job, tmp, progress)
        except CacheEntryDamaged:
            # None of its samples reached a file; the renderer now checks every entry it uses
            # in full before it starts (a damaged one is a miss), so once is enough.
            tmp = staging_dir(out_dir)
            result = _write_package(job, tmp, progress)
    except BaseException as exc:
        full = is_disk_full(exc, out_dir)  # before the staging folder frees its space
        shutil.rmtree(tmp, ignore_errors=True)
        if full:
            raise disk_full_error(out_dir, needed) from exc
        if isinstance(exc, OSError):
            raise RenderError(
                f"cannot write the package: {exc}",
                file=str(out_dir),
                fix="check the permissions of the output folder",
            ) from exc
        raise
    replace_dir(tmp, out_dir)
    if job.delivery.archive is not None:
        from stemprint.export.archive import pack_package

        # Beside the published package; an earlier pack of it is ours to replace.
        pack_package(out_dir, bagit=job.delivery.archive == "bagit", force=True)
    return replace(result, out_dir=out_dir)


def session_inputs(loaded: LoadedSession) -> Iterator[Path]:
    """Every file the render reads: the session, its clips, impulse responses and plug-ins.

    Only the session file and what it names: a graph is not needed, so the output folder is
    checked before anything is compiled or probed.
    """
    yield loaded.path
    yield from loaded.includes
    base = loaded.base_dir
    session = loaded.session
    for track in session.tracks:
        for clip in track.clips:
            yield base / clip.file
    strips: list[Any] = [*session.tracks, *session.buses, session.master]
    for route in strips:
        for insert in route.inserts:
            for key in ("impulse_response_filename", "path", "preset"):
                if isinstance(insert.params.get(key), str):
                    yield base / insert.params[key]


def _plan_job(loaded: LoadedSession, graph: RenderGraph, options: RenderOptions) -> _Job:
    """Resolve the delivery, the extent, the outputs and their file names."""
    delivery = _delivery(loaded, options)
    rate = graph.sample_rate
    region = resolve_region(loaded, options.region, delivery, rate) if options.region else None
    extent = region.extent() if region is not None else _extent(graph, delivery)
    plan = plan_outputs(loaded, graph, delivery, options.premaster)
    renderer = Renderer(
        graph, options.block_size, options.threads, plan.outputs, cache=_cache(options)
    )
    file_rate = delivery.sample_rate or rate
    region_name = region.name if region is not None else None
    paths = file_paths(
        renderer.taps, delivery, loaded.session.name, file_rate, region_name, _names(loaded)
    )
    warnings = [*graph.warnings, *plan.warnings]
    if file_rate != rate:
        warnings.append(
            f"delivered at {file_rate} Hz (rendered at {rate} Hz, resampled with soxr VHQ)"
        )
    container = CONTAINERS[delivery.format]
    channels = max((tap.spec.channels for tap in renderer.taps), default=2)
    data_bytes = (
        extent.length_samples * file_rate / rate * channels * SAMPLE_BYTES[delivery.bit_depth]
    )
    if container == "WAV" and data_bytes > options.rf64_threshold_bytes:
        container = "RF64"
    return _Job(
        loaded, graph, options, delivery, region, extent, plan, renderer, paths, container,
        file_rate, tuple(warnings),
    )  # fmt: skip


def _names(loaded: LoadedSession) -> dict[str, str]:
    """What fills the file name template's ``{title}``, ``{version}`` and ``{fps}``."""
    session = loaded.session
    meta = session.metadata
    return {
        "title": meta.title or session.name,
        "version": meta.version or "",
        "frame_rate": str(session.frame_rate or ""),
    }


def _delivery(loaded: LoadedSession, options: RenderOptions) -> ResolvedDelivery:
    """The session's delivery with the preset applied and the command line's overrides."""
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
    return replace(delivery, **{k: v for k, v in overrides.items() if v is not None})


AUTO_CACHE = Path("auto")
"""``cache_dir=Path("auto")`` (``--cache auto``): :data:`AUTO_CACHE_NAME` beside the output."""
AUTO_CACHE_NAME = ".stemprint-cache"


def _with_cache_dir(options: RenderOptions, out_dir: Path) -> RenderOptions:
    """Resolve ``auto`` to the folder beside the output; refuse a cache inside the output
    (``--force`` replaces the output folder, the cache with it)."""
    cache = options.cache_dir
    if cache is None:
        return options
    if Path(cache) == AUTO_CACHE:
        cache = out_dir.absolute().parent / AUTO_CACHE_NAME
    inside = Path(cache).absolute()
    if inside == out_dir.absolute() or out_dir.absolute() in inside.parents:
        raise InputError(
            f"cache folder {cache} is inside the output folder {out_dir}",
            field="--cache",
            fix=f"name a folder outside it, or --cache auto ({AUTO_CACHE_NAME} beside it)",
        )
    return replace(options, cache_dir=Path(cache))


def _cache(options: RenderOptions) -> Any:
    """The render cache the options name, or ``None``."""
    if options.cache_dir is None:
        return None
    from stemprint.render.cache import DEFAULT_MAX_BYTES, RenderCache

    cap = DEFAULT_MAX_BYTES if options.cache_max_bytes is None else options.cache_max_bytes
    return RenderCache(options.cache_dir, cap)


def _extent(graph: RenderGraph, delivery: ResolvedDelivery) -> RenderExtent:
    """The whole session with the delivery's tail (fixed, or until silent up to a cap)."""
    rate = graph.sample_rate
    end = graph.end_samples
    tail = delivery.tail
    if tail.mode == "until_silent":
        until = UntilSilent(10 ** (tail.threshold_db / 20), round(tail.hold_seconds * rate), end)
        return RenderExtent(0, max(end + round(tail.max_seconds * rate), 1), until)
    return RenderExtent(0, max(end + round((tail.seconds or 0.0) * rate), 1))


def _write_package(
    job: _Job, tmp: Path, progress: Callable[[int, int], None] | None
) -> PackageResult:
    """Render every file into ``tmp`` (or copy it from the render cache when unchanged), then
    the manifest, the README and the verification."""
    settings = _writer_settings(job)
    keys = _file_keys(job, settings)
    reused = _reuse(job, tmp, keys, settings)
    live = _live_measurement(job, tmp, reused)
    writers = _open_writers(job, tmp, live, settings, reused)
    files: dict[str, PrintedFile] = {
        t.key: writers[t.key] if t.key in writers else reused[t.key] for t in job.renderer.taps
    }
    try:
        length = job.renderer.run(dict(writers), progress, job.extent)
    except BaseException:
        _abandon(writers, live)
        raise
    region = job.region
    if region is not None and region.loop:
        length = region.length_samples
    warnings = list(job.warnings)
    loudness = _finish_bwf(files, live)
    manifest = _manifest(job, tmp, files, reused, length, warnings)
    _bwf_entries(job, manifest, files, loudness)
    if region is not None:
        manifest["region"] = _region_entry(region)
    if job.options.import_report is not None:
        manifest["import"] = _import_entry(job.options.import_report)
        _write_json(tmp / IMPORT_REPORT_NAME, job.options.import_report)
    _write_json(tmp / "manifest.json", manifest)
    (tmp / "README.md").write_text(package_readme(job.loaded, manifest), "utf-8")
    report = None
    if job.options.verify:
        report = _verify(tmp, manifest, live)
        _patch_read_back_loudness(job, manifest, files, loudness, report)
        _write_json(tmp / "manifest.json", manifest)
    _derived_files(job, tmp, manifest)
    if job.options.report:
        from stemprint.report import REPORT_NAME, write_package_report

        # Lossless or linked: an Opus copy of a long package costs about what its render did.
        write_package_report(tmp, manifest, report, audio="lossless", hops=_live_hops(live))
        manifest["report"] = REPORT_NAME
        _write_json(tmp / "manifest.json", manifest)
    if keys and job.renderer.cache is not None:
        from stemprint.export.reuse import store_files

        # Last: nothing changes a file of the package after this.
        by_path = {entry["path"]: entry["sha256"] for entry in manifest["files"]}
        digests = {key: by_path[job.paths[key]] for key in writers}
        store_files(job.renderer.cache, keys, writers, digests, live)
    return PackageResult(tmp, manifest, warnings, report)


def _manifest(
    job: _Job,
    tmp: Path,
    files: dict[str, PrintedFile],
    reused: dict[str, ReusedFile],
    length: int,
    warnings: list[str],
) -> dict[str, Any]:
    """The manifest of the files rendered and reused, with what the cache gave."""
    region = job.region
    content_end = region.length_samples if region is not None else job.graph.end_samples
    manifest = build_manifest(
        ManifestInput(
            job.loaded, job.graph, job.delivery, job.renderer.taps, job.paths, files,
            job.plan.sums, warnings, length, max(length - content_end, 0), tmp,
            {key: r.sha256 for key, r in reused.items()},
        )
    )  # fmt: skip
    if job.renderer.cache_report is not None:
        manifest["cache"] = {
            **job.renderer.cache_report,
            "files_reused": [job.paths[t.key] for t in job.renderer.taps if t.key in reused],
        }
    return manifest


def _derived_files(job: _Job, tmp: Path, manifest: dict[str, Any]) -> None:
    """Discrete channel files and the deliverables (NI Stems, previews, handoff sessions),
    made from the written package; the manifest is rewritten when any is made."""
    delivery = job.delivery
    if delivery.channel_files:
        from stemprint.export.channel_files import write_channel_files

        manifest["channel_files"] = write_channel_files(
            tmp, manifest["files"], job.bit_depth, job.container, _broadcast_info(job)
        )
    if delivery.ni_stem is not None or delivery.previews or delivery.handoff:
        from stemprint.export.deliverables import DeliverableContext, write_deliverables

        context = DeliverableContext(tmp, manifest, job.loaded, delivery)
        manifest["files"] = [*manifest["files"], *write_deliverables(context)]
    if (
        delivery.channel_files
        or delivery.ni_stem is not None
        or delivery.previews
        or (delivery.handoff)
    ):
        _write_json(tmp / "manifest.json", manifest)


def _writer_settings(job: _Job) -> dict[str, dict[str, Any]]:
    """Every tap's :class:`AudioWriter` arguments but its path and monitor, by tap key (what
    its file's key covers besides the signal)."""
    region = job.region
    until = job.extent.until_silent
    # With an until-silent tail the writers hold back what may still be cut: the hold, a block,
    # and the spread of the taps' latencies (a tap with less latency has written further).
    renderer = job.renderer
    lag = until.hold_samples + renderer.block_size + renderer.total_latency_samples if until else 0
    bwf = _broadcast_info(job)
    return {
        tap.key: {
            "sample_rate": job.file_rate, "channels": tap.spec.channels,
            "bit_depth": job.bit_depth, "dither": job.options.dither,
            "seed_name": job.paths[tap.key], "container": job.container,
            "render_sample_rate": job.graph.sample_rate, "lag_samples": lag,
            "mono_if_identical": job.delivery.mono_stems and tap.spec.role in ("stem", "track"),
            "fade_out": region.fade_out if region is not None else None,
            "wrap_at": region.length_samples if region is not None and region.loop else None,
            "wrap_tail": region.render_samples - region.length_samples if region else 0,
            "bwf": bwf.for_file(tap.name) if bwf is not None else None,
        }
        for tap in renderer.taps
    }  # fmt: skip


def _file_keys(job: _Job, settings: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The render-cache key of every file that can be reused (``export.reuse``), by tap key:
    its tap's signal key, its writer's settings and the meters' (with the library versions
    and the extent, in the signal key)."""
    if job.renderer.cache is None:
        return {}
    from stemprint.analysis.audio import BLOCK_FRAMES, full_scale_positive
    from stemprint.export.reuse import file_key

    meters = [BLOCK_FRAMES, full_scale_positive(SUBTYPES[job.bit_depth])]
    return {
        key: file_key(signal, {"writer": settings[key], "meters": meters})
        for key, signal in job.renderer.tap_keys(job.extent).items()
    }


def _reuse(
    job: _Job, tmp: Path, keys: dict[str, str], settings: dict[str, dict[str, Any]]
) -> dict[str, ReusedFile]:
    """The files copied from the render cache into ``tmp`` instead of written, by tap key."""
    if not keys or job.renderer.cache is None:
        return {}
    from stemprint.export.reuse import reuse_files

    targets = {key: tmp / job.paths[key] for key in keys}
    bwf = {key: settings[key]["bwf"] for key in keys}
    return reuse_files(job.renderer.cache, keys, targets, bwf, _measures_live(job))


def _measures_live(job: _Job) -> bool:
    """Whether the files are measured while written: they hold exactly what is written
    (resampled and looped packages are read back instead)."""
    region = job.region
    return (
        job.options.verify
        and job.file_rate == job.graph.sample_rate
        and not (region is not None and region.loop)
    )


def _live_measurement(
    job: _Job, tmp: Path, reused: dict[str, ReusedFile]
) -> LiveMeasurement | None:
    """Meters fed while the files are written (:func:`_measures_live`); a reused file only
    enters the null sums."""
    if not _measures_live(job):
        return None
    from stemprint.analysis.audio import full_scale_positive
    from stemprint.analysis.live import LiveFile, LiveMeasurement

    full_scale = full_scale_positive(SUBTYPES[job.bit_depth])
    files = [
        LiveFile(
            tmp / job.paths[t.key],
            job.file_rate,
            t.spec.channels,
            full_scale,
            t.role,
            mono_if_identical=job.delivery.mono_stems and t.spec.role in ("stem", "track"),
        )
        for t in job.renderer.taps
    ]
    sums = sum_entries(job.plan.sums, job.paths)
    measured = {r.path: r.measurement for r in reused.values() if r.measurement is not None}
    printed = [t.key for t in job.renderer.taps if t.key not in reused]
    processes = _meter_processes(job, len(files) - len(measured), printed)
    return LiveMeasurement(files, sums=sums, root=tmp, processes=processes, reused=measured)


def _meter_processes(job: _Job, files: int, printed: list[str]) -> int:
    """Meter processes beside the render (one per render thread) when metering weighs about
    as much as rendering: at least :data:`~stemprint.analysis.verify.PARALLEL_MIN_SECONDS` of
    audio in all, and at least one file for every two tracks the render runs (a re-render
    from the cache, a short cue). Otherwise the track workers already keep every core busy and
    meter processes would only add their copies (32 tracks x 3 min cold: +1 CPU s)."""
    from stemprint.analysis.verify import PARALLEL_MIN_SECONDS

    renderer = job.renderer
    extent = job.extent or job.graph.extent()
    seconds = files * extent.length_samples / job.graph.sample_rate
    if renderer.threads < 2 or seconds < PARALLEL_MIN_SECONDS:
        return 0
    return renderer.threads if 2 * files >= renderer.tracks_to_run(extent, printed) else 0


def _open_writers(
    job: _Job,
    tmp: Path,
    live: LiveMeasurement | None,
    settings: dict[str, dict[str, Any]],
    reused: dict[str, ReusedFile],
) -> dict[str, AudioWriter]:
    """A writer for every tap whose file is not reused, by tap key."""
    writers: dict[str, AudioWriter] = {}
    try:
        for tap in job.renderer.taps:
            if tap.key in reused:
                continue
            path = tmp / job.paths[tap.key]
            path.parent.mkdir(parents=True, exist_ok=True)
            monitor = live.monitor(path) if live is not None else None
            writers[tap.key] = AudioWriter(path, **settings[tap.key], monitor=monitor)
    except BaseException:
        _abandon(writers, live)
        raise
    return writers


def _broadcast_info(job: _Job) -> BroadcastInfo | None:
    """The package's Broadcast WAV info (WAV/RF64 only); a region's files start at its start."""
    if job.container not in BWF_CONTAINERS:
        return None
    loaded = job.loaded
    info = session_broadcast_info(loaded.session, job.file_rate, file=str(loaded.path))
    if job.region is None:
        return info
    start, rate = job.region.start_sample * job.file_rate, job.graph.sample_rate
    return info.for_file("", (2 * start + rate) // (2 * rate))  # nearest sample, halves up


def _finish_bwf(
    writers: dict[str, PrintedFile], live: LiveMeasurement | None
) -> dict[str, BextLoudness | None]:
    """iXML and the live loudness into every Broadcast WAV (before the SHA-256 is taken).

    Returns the loudness written by tap key; ``None``: not known yet (read back by the
    verification and patched after it, or unknown without verification)."""
    written: dict[str, BextLoudness | None] = {}
    for key, writer in writers.items():
        if writer.bwf is None:
            continue
        levels = None
        if live is not None:
            levels = live.file_levels(str(writer.path.resolve()), writer.channels)
        written[key] = BextLoudness.from_levels(levels).stored() if levels is not None else None
        writer.finish_bwf(written[key])
    return written


def _bwf_entries(
    job: _Job,
    manifest: dict[str, Any],
    writers: dict[str, PrintedFile],
    loudness: dict[str, BextLoudness | None],
) -> None:
    """``bwf`` of every Broadcast WAV file entry; ``start_timecode`` / ``frame_rate``."""
    session = job.loaded.session
    if session.start_timecode is not None:
        manifest["start_timecode"] = session.start_timecode
        manifest["frame_rate"] = session.frame_rate
    by_path = {job.paths[key]: key for key in loudness}
    for entry in manifest["files"]:
        key = by_path.get(entry["path"])
        if key is None:
            continue
        info = writers[key].bwf
        assert info is not None
        entry["bwf"] = {
            "time_reference_samples": info.time_reference_samples,
            "start_timecode": info.start_timecode,
            "frame_rate": info.frame_rate,
            "loudness": (loudness[key] or BextLoudness()).to_dict(),
        }


def _patch_read_back_loudness(
    job: _Job,
    manifest: dict[str, Any],
    writers: dict[str, PrintedFile],
    loudness: dict[str, BextLoudness | None],
    report: VerificationReport,
) -> None:
    """Loudness the live measurement did not give: the verification's, patched into the file,
    its manifest entry and its SHA-256."""
    entries = {e["path"]: e for e in manifest["files"]}
    measured = {str(Path(f.path).resolve()): f.levels for f in report.files}
    for key in (k for k, v in loudness.items() if v is None):
        path = writers[key].path
        levels = measured.get(str(path.resolve()))
        if levels is None:
            continue
        stored = BextLoudness.from_levels(levels).stored()
        patch_loudness(path, stored)
        entry = entries[job.paths[key]]
        entry["bwf"]["loudness"] = stored.to_dict()
        entry["sha256"] = sha256_file(path)


def _abandon(writers: dict[str, AudioWriter], live: LiveMeasurement | None) -> None:
    """Close every writer and the live measurement after a failure (the files are removed)."""
    for writer in writers.values():
        writer.close_quietly()
    if live is not None:
        live.close()


def _region_entry(region: Region) -> dict[str, Any]:
    return {
        "name": region.name,
        "start_sample": region.start_sample,
        "length_samples": region.length_samples,
        "loop": region.loop,
        "fade_out_samples": region.fade_out[1] if region.fade_out else 0,
        "preroll_samples": region.extent().preroll_samples,
    }


IMPORT_REPORT_NAME = "import-report.json"


def _import_entry(report: dict[str, Any]) -> dict[str, Any]:
    """The manifest's summary of the import report the package came from."""
    keys = ("project", "format", "application", "changes_audio", "codes")
    entry = {key: report.get(key) for key in keys}
    entry["project"] = Path(str(entry["project"])).name
    entry["path"] = IMPORT_REPORT_NAME
    entry["changed"] = [
        f"{f['code']}: {f['where']}" for f in report.get("findings", []) if f["effect"] != "none"
    ]
    return entry


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", "utf-8")


def _live_hops(live: LiveMeasurement | None) -> HopSource | None:
    """The live meters' loudness hops by ``(path, channels)``, for the report."""
    if live is None:
        return None
    return lambda path, channels: live.hop_energies(str(path.resolve()), channels)


def _verify(
    package: Path, manifest: dict[str, Any], live: LiveMeasurement | None
) -> VerificationReport:
    """Verify the finished package (still in its staging folder); write verification.json and
    a summary into ``manifest["verification"]``."""
    from stemprint.analysis import verify_package

    report = verify_package([package], live=live, diagnose_informational=False)
    data = report.to_dict(reproducible=True)  # no absolute path, no timing
    _write_json(package / "verification.json", data)
    verdict = next((n for n in report.nulls if n.decides_verdict), None)
    errors = [f.message for f in report.errors]
    clipped = [
        f"{f['path']} clipped {f['clipped_samples']} samples when quantized (peak "
        f"{f['peak_dbfs']:+.2f} dBFS)"
        for f in manifest["files"]
        if f["clipped_samples"]
    ]
    if clipped and not report.passed:
        # The likeliest cause of a failed null in our own render: say it first.
        errors = [*clipped, "lower the levels feeding the master, or render with --bit-depth 32f"]
        errors += [f.message for f in report.errors]
    manifest["verification"] = {
        "path": "verification.json",
        "passed": report.passed,
        "null_reference": verdict.reference if verdict else None,
        "null_residual_peak_dbfs": json_db(verdict.residual_peak_dbfs) if verdict else None,
        "errors": errors,
    }
    return report


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
    check_output_dir(out_dir, options.force, session_inputs(loaded))
    options = _with_cache_dir(options, out_dir)
    if not loaded.session.regions:
        raise InputError(
            "the session has no regions", field="regions", fix="add `regions:` to the session"
        )
    graph = compile_session(loaded, allow_plugins=options.allow_plugins)
    tmp = staging_dir(out_dir, "partial-regions")
    results = []
    try:
        for region in loaded.session.regions:
            one = replace(options, region=region.name, force=False)
            folder = tmp / safe_file_name(region.name)
            results.append(render_package(loaded, folder, one, progress, graph))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, out_dir)
    return [replace(r, out_dir=out_dir / r.out_dir.name) for r in results]


__all__ = ["PackageResult", "RenderOptions", "render_package", "render_regions"]
