"""Verify a stem package: consistency, levels, null test with diagnosis, delivery profile.

All files are read once, together, block by block (:data:`~stemprint.analysis.audio.BLOCK_FRAMES`
frames): each block feeds that file's level meter, and the stem blocks are summed in float64 and
compared with the mix (and the pre-master) block. Memory is a few blocks per file whatever the
length. Only a failed null reads more: a bounded excerpt of every file for the diagnosis.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import _meter_worker
from .audio import BLOCK_FRAMES, AudioInfo, BlockReader, probe
from .findings import Finding
from .live import LiveMeasurement
from .meters import FileLevels, LevelMeter, meter_for
from .nulltest import (
    DEFAULT_NULL_THRESHOLD_DBFS,
    EXCERPT_SECONDS,
    MAX_LAG_SECONDS,
    NullAccumulator,
    NullResult,
    diagnose_null,
)
from .package import PackageFile, StemPackage, discover_package
from .profiles import check_profile, get_profile
from .report import FileReport, VerificationReport

#: DC offset above this magnitude (linear; −60 dBFS) is reported.
DC_WARNING = 1e-3
#: Packages with at least this much audio in total (s) are metered by worker processes.
PARALLEL_MIN_SECONDS = 120.0


def verify_package(
    inputs: Sequence[Path | str] | Path | str,
    mix: Path | str | None = None,
    profile: str | None = None,
    null_threshold_dbfs: float = DEFAULT_NULL_THRESHOLD_DBFS,
    *,
    excerpt_seconds: float = EXCERPT_SECONDS,
    max_lag_seconds: float = MAX_LAG_SECONDS,
    block_frames: int = BLOCK_FRAMES,
    workers: int | None = None,
    live: LiveMeasurement | None = None,
    diagnose_informational: bool = True,
) -> VerificationReport:
    """Verify a stem package.

    Parameters
    ----------
    inputs
        One package directory, or a list of stem files (WAV, AIFF, FLAC). See
        :mod:`stemprint.analysis.package` for how the mix, stems and pre-master are found.
    mix
        The mix file; overrides the manifest and the naming rule.
    profile
        Delivery profile to check (``stem-mastering``, ``ebu-r128``, ``streaming``,
        ``atmos-music``, ``broadcast-dme``), or ``None``.
    null_threshold_dbfs
        The null passes when the residual peak is below this level (dBFS).
    excerpt_seconds
        Length of the excerpt a failed null is diagnosed on (s).
    max_lag_seconds
        Largest time offset the diagnosis searches, each way (s).
    block_frames
        Frames per streaming block.
    workers
        Processes sharing the work: this one runs the null test and meters about
        ``1/workers`` of the files in the same pass; ``workers - 1`` worker subprocesses
        (``python -m stemprint.analysis._meter_worker``) meter the others. ``None``: one per
        CPU when the package holds at least :data:`PARALLEL_MIN_SECONDS` of audio, else 1
        (everything in one lockstep pass in this process).
    live
        The package measured while it was written (``stemprint render``): its levels and null
        sums are used instead of reading the audio back, when it holds exactly the files,
        stems and references found here (headers and lengths are still read from disk).
    diagnose_informational
        Diagnose a failed null that does not decide the verdict (stems against the mix when a
        pre-master exists). ``stemprint render`` skips it: its mix differs from the stems by
        design when the master processes, and the diagnosis costs ~80 MB and ~0.3 s.

    Returns
    -------
    VerificationReport
        ``passed`` is False when any error was found. The function does not raise for a failed
        package; the CLI maps ``passed=False`` to :class:`~stemprint.errors.VerificationFailed`.

    Raises
    ------
    stemprint.errors.InputError
        No stems, no mix, a missing or unreadable file, a bad manifest, an unknown profile.
    """
    started = time.perf_counter()
    prof = get_profile(profile) if profile else None
    if isinstance(inputs, str | Path):
        inputs = [inputs]
    package = discover_package([Path(p) for p in inputs], Path(mix) if mix is not None else None)
    entries = package.files
    infos = [probe(e.path) for e in entries]
    findings = [Finding("info", "package.note", note) for note in package.notes]
    findings += _consistency(package, entries, infos)

    mix_info = infos[0]
    null_idx = [i for i, e in enumerate(entries) if e.role in ("mix", "premaster", "stem")]
    mismatch = [
        i
        for i in null_idx
        if (infos[i].sample_rate, infos[i].channels) != (mix_info.sample_rate, mix_info.channels)
    ]
    skipped_reason = None
    if mismatch:
        skipped_reason = "sample rate or channel count differs between files"

    stem_idx = [i for i, e in enumerate(entries) if e.role == "stem"]
    ref_idx = [i for i, e in enumerate(entries) if e.role == "premaster"] + [0]
    accumulators = {i: NullAccumulator(block_frames) for i in ref_idx} if not mismatch else {}
    null_length = max(infos[i].length_samples for i in null_idx)
    resolved = [str(e.path.resolve()) for e in entries]
    if (
        live is not None
        and not mismatch
        and sorted(resolved) == sorted(live.files)
        and [resolved[i] for i in stem_idx] == live.stems
        and [resolved[i] for i in ref_idx] == live.references
    ):
        live_levels = live.levels()
        levels: dict[int, FileLevels] = {i: live_levels[p] for i, p in enumerate(resolved)}
        accumulators = {i: live.accumulators[resolved[i]] for i in ref_idx}
    else:
        levels = _measure(infos, stem_idx, accumulators, null_length, block_frames, workers)

    reports = [
        FileReport(
            path=str(e.path),
            label=e.label,
            role=e.role,
            name=e.name,
            sample_rate=info.sample_rate,
            channels=info.channels,
            length_samples=info.length_samples,
            format=info.format,
            subtype=info.subtype,
            bit_depth=info.bit_depth,
            is_float=info.is_float,
            levels=lv,
        )
        for e, info, lv in zip(entries, infos, [levels[i] for i in range(len(infos))], strict=True)
    ]
    findings += _level_findings(reports)

    nulls: list[NullResult] = []
    has_premaster = package.premaster is not None
    for i in ref_idx:
        decides = entries[i].role == "premaster" or not has_premaster
        if mismatch:
            nulls.append(
                NullResult(
                    reference=entries[i].label,
                    reference_role=entries[i].role,
                    threshold_dbfs=null_threshold_dbfs,
                    decides_verdict=decides,
                    skipped_reason=skipped_reason,
                )
            )
            continue
        acc = accumulators[i]
        result = acc.result(entries[i].label, entries[i].role, null_threshold_dbfs, decides)
        if not result.passed and (decides or diagnose_informational):
            diagnose_null(
                result,
                infos[i],
                [(entries[s].label, infos[s]) for s in stem_idx],
                acc.excerpt_center(min(infos[j].length_samples for j in null_idx)),
                severity="error" if decides else "info",
                excerpt_seconds=excerpt_seconds,
                max_lag_seconds=max_lag_seconds,
            )
            levels_i = reports[i].levels
            if (
                levels_i is not None
                and not reports[i].is_float
                and (levels_i.clipped_run_count or levels_i.sample_peak_dbfs >= -0.001)
            ):
                # A reference that reached full scale clipped when it was exported: the stems
                # (unclipped) can never null against it. Say so before any other diagnosis.
                result.diagnoses.insert(
                    0,
                    Finding(
                        "error" if decides else "info",
                        "null.reference_clipped",
                        f"{entries[i].label} reaches full scale "
                        f"({levels_i.sample_peak_dbfs:+.2f} dBFS, "
                        f"{levels_i.clipped_run_count} clipped run(s)): it clipped when it was "
                        "exported, so the stems cannot null against it",
                        file=entries[i].label,
                        advice="export the mix with headroom or as 32-bit float, then verify again",
                        value=levels_i.sample_peak_dbfs,
                    ),
                )
        nulls.append(result)
        findings += _null_findings(result, has_premaster)

    if prof is not None:
        findings += check_profile(prof, reports, nulls)

    report = VerificationReport(
        passed=False,
        package=str(package.root) if package.root else str(Path(str(list(inputs)[0]))),
        profile=prof.name if prof else None,
        null_threshold_dbfs=null_threshold_dbfs,
        files=reports,
        nulls=nulls,
        findings=findings,
    )
    report.sort_findings()
    report.passed = not report.errors
    report.elapsed_seconds = time.perf_counter() - started
    return report


def _measure(
    infos: list[AudioInfo],
    stem_idx: list[int],
    accumulators: dict[int, NullAccumulator],
    null_length: int,
    block_frames: int,
    workers: int | None,
) -> dict[int, FileLevels]:
    """Read the files back: levels of every file, null sums into ``accumulators``."""
    if workers is None:
        total_seconds = sum(info.duration_seconds for info in infos)
        workers = (os.cpu_count() or 1) if total_seconds >= PARALLEL_MIN_SECONDS else 1
    workers = max(1, min(workers, len(infos)))
    # this process meters the first files (the mix first); workers split the rest
    local = list(range(-(-len(infos) // workers)))
    remote = [i for i in range(len(infos)) if i not in local]
    groups = [remote[k :: workers - 1] for k in range(workers - 1)] if remote else []
    procs = []
    for group in groups:
        try:
            procs.append((group, _meter_worker.start([infos[i] for i in group])))
        except OSError:  # no usable interpreter (frozen app …): meter here instead
            local += group
    try:
        meters = {i: meter_for(infos[i]) for i in local}
        _stream(infos, meters, stem_idx, accumulators, null_length, block_frames)
        levels: dict[int, FileLevels] = {i: m.result() for i, m in meters.items()}
        for group, proc in procs:
            levels.update(zip(group, _meter_worker.collect(proc), strict=True))
    except BaseException:
        for _, proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        raise
    return levels


def _stream(
    infos: list[AudioInfo],
    meters: dict[int, LevelMeter],
    stem_idx: list[int],
    accumulators: dict[int, NullAccumulator],
    null_length: int,
    block_frames: int,
) -> None:
    """One pass over the files in lockstep: null sums for the references, and the meters of the
    files in ``meters`` (the others are metered elsewhere)."""
    in_null = {
        i for i in range(len(infos)) if accumulators and (i in accumulators or i in stem_idx)
    }
    wanted = [i for i in range(len(infos)) if i in meters or i in in_null]
    if not wanted:
        return
    total = max(infos[i].length_samples for i in wanted)
    readers = {i: BlockReader(infos[i]) for i in wanted}
    try:
        pos = 0
        while pos < total:
            n = min(block_frames, total - pos)
            blocks: dict[int, np.ndarray] = {}
            for i, reader in readers.items():
                real = min(n, max(infos[i].length_samples - pos, 0))
                if real == 0 and i not in in_null:
                    continue
                block = reader.read(n if i in in_null else real)
                if real and i in meters:
                    meters[i].process(block[:, :real] if real < n else block)
                blocks[i] = block
            if accumulators and pos < null_length:
                k = min(n, null_length - pos)
                stem_sum = np.zeros((infos[0].channels, k))
                for s in stem_idx:
                    stem_sum += blocks[s][:, :k]
                for r, acc in accumulators.items():
                    acc.add(blocks[r][:, :k], stem_sum)
            pos += n
    finally:
        for reader in readers.values():
            reader.close()


def _consistency(
    package: StemPackage, entries: list[PackageFile], infos: list[AudioInfo]
) -> list[Finding]:
    out: list[Finding] = []
    mix_e, mix_i = entries[0], infos[0]
    for e, info in zip(entries[1:], infos[1:], strict=True):
        if info.sample_rate != mix_i.sample_rate:
            out.append(
                Finding(
                    "error",
                    "consistency.sample_rate",
                    f"{e.label} is {info.sample_rate} Hz but the mix ({mix_e.label}) is "
                    f"{mix_i.sample_rate} Hz",
                    file=e.label,
                    advice=f"re-export {e.label} at {mix_i.sample_rate} Hz from the same session",
                    value=float(info.sample_rate),
                )
            )
        if info.channels != mix_i.channels:
            out.append(
                Finding(
                    "error",
                    "consistency.channels",
                    f"{e.label} has {info.channels} channel(s) but the mix has {mix_i.channels}",
                    file=e.label,
                    advice=f"re-export {e.label} with {mix_i.channels} channel(s)",
                    value=float(info.channels),
                )
            )
        if info.length_samples != mix_i.length_samples:
            diff = info.length_samples - mix_i.length_samples
            out.append(
                Finding(
                    "error",
                    "consistency.length",
                    f"{e.label} is {info.length_samples} samples long, the mix "
                    f"{mix_i.length_samples} ({diff:+d} samples, {diff / info.sample_rate:+.3f} s)",
                    file=e.label,
                    advice=f"re-export {e.label} with the same start and end as the mix, or run "
                    "stemprint repair to pad/trim it",
                    value=float(diff),
                )
            )
    manifest = package.manifest or {}
    want_rate = manifest.get("sample_rate")
    want_len = manifest.get("length_samples")
    for e, info in zip(entries, infos, strict=True):
        if isinstance(want_rate, int) and info.sample_rate != want_rate:
            out.append(
                Finding(
                    "error",
                    "manifest.sample_rate",
                    f"{e.label} is {info.sample_rate} Hz, the manifest says {want_rate} Hz",
                    file=e.label,
                    advice="re-render the package or fix manifest.json",
                    value=float(info.sample_rate),
                )
            )
        if isinstance(want_len, int) and info.length_samples != want_len:
            out.append(
                Finding(
                    "error",
                    "manifest.length",
                    f"{e.label} is {info.length_samples} samples long, "
                    f"the manifest says {want_len}",
                    file=e.label,
                    advice="re-render the package or fix manifest.json",
                    value=float(info.length_samples - want_len),
                )
            )
    subtypes = {info.subtype for info in infos}
    if len(subtypes) > 1:
        out.append(
            Finding(
                "info",
                "consistency.subtype",
                "files use different encodings: " + ", ".join(sorted(subtypes)),
            )
        )
    for e, info in zip(entries, infos, strict=True):
        if info.bit_depth is None:
            out.append(
                Finding(
                    "warning",
                    "format.not_pcm",
                    f"{e.label} is encoded as {info.subtype}, not linear PCM or float",
                    file=e.label,
                    advice=f"re-export {e.label} as 24-bit PCM or 32-bit float",
                )
            )
        elif e.role == "stem" and not info.is_float and info.bit_depth < 24:
            out.append(
                Finding(
                    "warning",
                    "format.bit_depth",
                    f"{e.label} is {info.bit_depth}-bit; stem mastering needs 24-bit or float",
                    file=e.label,
                    advice=f"re-export {e.label} as 24-bit PCM or 32-bit float, without dither",
                    value=float(info.bit_depth),
                )
            )
    return out


def _level_findings(reports: list[FileReport]) -> list[Finding]:
    out: list[Finding] = []
    for f in reports:
        lv = f.levels
        if lv is None:
            continue
        if lv.silent and f.role == "stem":
            out.append(
                Finding(
                    "warning",
                    "levels.silent",
                    f"{f.label} is silent (peak {lv.sample_peak_dbfs:.1f} dBFS)",
                    file=f.label,
                    advice=f"check the routing of {f.label}, or drop it from the package",
                    value=lv.sample_peak_dbfs if np.isfinite(lv.sample_peak_dbfs) else None,
                )
            )
        elif lv.silent:
            out.append(Finding("warning", "levels.silent", f"{f.label} is silent", file=f.label))
        if lv.clipped_run_count:
            first = lv.clipped_runs[0]
            out.append(
                Finding(
                    "warning",
                    "levels.clipping",
                    f"{f.label} has {lv.clipped_run_count} clipped run(s) of ≥ 3 full-scale "
                    "samples, "
                    f"first at {first.start_seconds:.3f} s (channel {first.channel + 1}, "
                    f"{first.length_samples} samples)",
                    file=f.label,
                    advice=f"lower the level feeding {f.label} and re-print it",
                    value=float(lv.clipped_run_count),
                )
            )
        dc = max((abs(d) for d in lv.dc_offset_per_channel), default=0.0)
        if dc > DC_WARNING:
            out.append(
                Finding(
                    "warning",
                    "levels.dc_offset",
                    f"{f.label} has a DC offset of {dc:.4f} ({20 * np.log10(dc):.1f} dBFS)",
                    file=f.label,
                    advice="high-pass the source of the offset (a few Hz)",
                    value=dc,
                )
            )
        if f.role in ("mix", "premaster") and lv.true_peak_dbtp > 0.0:
            out.append(
                Finding(
                    "warning",
                    "levels.true_peak_over",
                    f"{f.label} true peak is {lv.true_peak_dbtp:+.2f} dBTP: inter-sample overs",
                    file=f.label,
                    advice="lower the level or use a true-peak limiter",
                    value=lv.true_peak_dbtp,
                )
            )
    return out


def _null_findings(result: NullResult, has_premaster: bool) -> list[Finding]:
    ref = result.reference
    numbers = (
        f"residual peak {result.residual_peak_dbfs:.1f} dBFS, RMS {result.residual_rms_dbfs:.1f} "
        f"dBFS (threshold {result.threshold_dbfs:.1f} dBFS)"
    )
    if result.passed:
        return [
            Finding(
                "info",
                "null.pass",
                f"stems null against {ref}: {numbers}",
                file=ref,
                value=result.residual_peak_dbfs,
            )
        ]
    if result.decides_verdict:
        head = Finding(
            "error",
            "null.fail",
            f"stems do not null against {ref}: {numbers}",
            file=ref,
            advice="see the diagnosis lines below",
            value=result.residual_peak_dbfs,
        )
    else:
        head = Finding(
            "info",
            "null.mix_differs",
            f"stems do not null against {ref} ({numbers}); expected when the mix has master-bus "
            "processing: the verdict uses the pre-master",
            file=ref,
            value=result.residual_peak_dbfs,
        )
    return [head, *result.diagnoses]
