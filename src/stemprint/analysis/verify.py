"""Verify a stem package: consistency, levels, sum relations (null tests) with diagnosis, profile.

Invariants and formulas
-----------------------
* Every file is measured (:mod:`~stemprint.analysis.meters`), whatever its role; a package of
  one file is measured and checked against the profile, and nothing is null-tested.
* A sum relation (:class:`~stemprint.analysis.discovery.SumRelation`) is checked by its null:
  ``residual = reference − Σ parts`` in float64, parts at unity and in the listed order, over the
  whole files (a shorter file counts as zero-padded to the relation's longest). A part with one
  channel is added to every channel of a multichannel reference (mono at unity). The null passes
  when ``20·log10(max |residual|) < null_threshold_dbfs``. Only ``exact`` relations decide the
  verdict; the others are reported for information.
* Consistency: every file has the sample rate and the length (samples) of the first file (the
  mix when there is one); a part has its reference's channel count or one channel; files that
  carry a Broadcast WAVE start time all start at the same sample.
* All files are read once, together, block by block (:data:`~stemprint.analysis.audio.BLOCK_FRAMES`
  frames): each block feeds that file's level meter, and each relation's parts are summed and
  compared with its reference block. Memory is a few blocks per file whatever the length. Only a
  failed null reads more: a bounded excerpt of its files for the diagnosis.
* Loudness is weighted for the file's layout (ITU-R BS.1770-4: LFE excluded, surrounds
  +1.5 dB; :mod:`~stemprint.analysis.meters`).
* Dialogue-gated (approximation): in a package with a mix and a ``stem`` named ``DX``, both
  measured from sample 0 at one sample rate, the mix's BS.1770-4 gating blocks are kept where
  the DX stem's own blocks pass the absolute (−70 LUFS) and relative (−10 LU) gates:
  ``L = −0.691 + 10·log10(mean_{j ∈ J_DX} z_mix,j)``. Dolby Dialogue Intelligence, which
  platforms name, is proprietary; the figure is always labelled an approximation.
* Fold-down (``fold_down=True``): each 5.1/7.1 file is also measured as ``Lo/Ro =
  matrix(layout, "stereo") @ x`` (ITU-R BS.775-3, ``Lo = L + 0.7071·C + 0.7071·Ls``, LFE left
  out), in the same pass, block for block.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stemprint.dsp.layouts import layout_of

from . import _meter_worker
from .archive_input import is_archive, unpacked
from .audio import BLOCK_FRAMES, AudioInfo, BlockReader, probe
from .discovery import (
    PackageFile,
    StemPackage,
    SumRelation,
    bwf_time_reference,
    discover_package,
    is_stem_role,
)
from .findings import Finding, Severity
from .live import LiveMeasurement
from .meters import FileLevels, LevelMeter, fold_down_matrix, gated_loudness, meter_for
from .nulltest import (
    DEFAULT_NULL_THRESHOLD_DBFS,
    EXCERPT_SECONDS,
    MAX_LAG_SECONDS,
    NullAccumulator,
    NullResult,
    diagnose_null,
)
from .profiles import check_profile, get_profile
from .report import (
    DIALOGUE_GATED_LABEL,
    DialogueGatedLoudness,
    FileReport,
    FoldDown,
    SumCheck,
    VerificationReport,
)

#: DC offset above this magnitude (linear; −60 dBFS) is reported.
DC_WARNING = 1e-3
#: Packages with at least this much audio in total (s) are metered by worker processes.
PARALLEL_MIN_SECONDS = 120.0
#: Name (case-insensitive) of the ``stem`` whose gating blocks gate the dialogue-gated figure.
DIALOGUE_STEM_NAME = "dx"

#: A fold-down meter: the ``(2, channels)`` matrix and the stereo meter it feeds.
_FoldMeter = tuple[np.ndarray, LevelMeter]


@dataclass
class _Plan:
    """One relation as this verification runs it: entry indices, or why it cannot run."""

    relation: SumRelation
    parts: list[int]
    reference: int
    skipped_reason: str | None = None

    @property
    def files(self) -> list[int]:
        """The reference, then the parts."""
        return [self.reference, *self.parts]


@dataclass
class _Measured:
    """What the measuring pass returns: levels, null sums, fold-downs, gating blocks."""

    levels: dict[int, FileLevels]
    accumulators: dict[int, NullAccumulator]
    folds: dict[int, FileLevels]
    #: Gating-block energies by (entry, of its fold-down) for the dialogue-gated figure.
    blocks: dict[tuple[int, bool], np.ndarray]


@dataclass(frozen=True)
class _Wanted:
    """Beyond the levels: the fold-downs to meter and the (mix, DX) pair to gate."""

    folds: frozenset[int]
    dialogue: tuple[int, int] | None

    @property
    def block_keys(self) -> list[tuple[int, bool]]:
        """Gating blocks needed: the mix and DX, and their fold-downs when measured."""
        if self.dialogue is None:
            return []
        return [
            (i, fold)
            for i in self.dialogue
            for fold in (False, True)
            if not fold or i in self.folds
        ]


@dataclass(frozen=True)
class _NullOptions:
    threshold_dbfs: float
    excerpt_seconds: float
    max_lag_seconds: float
    diagnose_informational: bool


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
    fold_down: bool = False,
) -> VerificationReport:
    """Verify a stem package.

    Parameters
    ----------
    inputs
        One package directory, or a list of audio files (WAV, AIFF, FLAC); one file alone is
        measured as the mix. See :mod:`stemprint.analysis.discovery` for how roles and sum
        relations are found.
    mix
        The mix file; overrides the manifest and the naming rule.
    profile
        Delivery profile to check (``stem-mastering``, ``ebu-r128``, ``streaming``,
        ``atmos-music``, ``atsc-a85``, ``broadcast-dme``, ``netflix-pm``, ``netflix-me``), or
        ``None``.
    null_threshold_dbfs
        A null passes when the residual peak is below this level (dBFS).
    excerpt_seconds
        Length of the excerpt a failed null is diagnosed on (s).
    max_lag_seconds
        Largest time offset the diagnosis searches, each way (s).
    block_frames
        Frames per streaming block.
    workers
        Processes sharing the work: this one runs the null tests and meters about
        ``1/workers`` of the files in the same pass; ``workers - 1`` worker subprocesses
        (``python -m stemprint.analysis._meter_worker``) meter the others. ``None``: one per
        CPU when the package holds at least :data:`PARALLEL_MIN_SECONDS` of audio, else 1
        (everything in one lockstep pass in this process).
    live
        The package measured while it was written (``stemprint render``): its levels and null
        sums are used instead of reading the audio back, when it holds exactly the files found
        here, measured with the channel counts on disk, and every relation checked here
        (same parts in the same order, same reference). Headers and lengths are still read from
        disk. Otherwise the package is read back (and ``live``'s thread is stopped).
    diagnose_informational
        Diagnose a failed null that does not decide the verdict (stems against the mix when a
        pre-master exists, ``exact: false`` relations). ``stemprint render`` skips it: its mix
        differs from the stems by design when the master processes, and the diagnosis costs
        ~80 MB and ~0.3 s.
    fold_down
        Also measure the stereo fold-down (ITU-R BS.775-3 Lo/Ro) of every 5.1/7.1 file
        (``FileReport.fold_down``), checked by the profile's level rules. Those files are
        metered in this process.

    Returns
    -------
    VerificationReport
        ``passed`` is False when any error was found. The function does not raise for a failed
        package; the CLI maps ``passed=False`` to :class:`~stemprint.errors.VerificationFailed`.

    Raises
    ------
    stemprint.errors.InputError
        No input, a missing or unreadable file, a bad manifest or ``sums``, an unknown profile.
    """
    paths = [Path(p) for p in ([inputs] if isinstance(inputs, str | Path) else inputs)]
    if len(paths) == 1 and is_archive(paths[0]):
        return _verify_archive(
            paths[0], mix, profile, null_threshold_dbfs, excerpt_seconds=excerpt_seconds,
            max_lag_seconds=max_lag_seconds, block_frames=block_frames, workers=workers,
            fold_down=fold_down,
        )  # fmt: skip
    started = time.perf_counter()
    prof = get_profile(profile) if profile else None
    package = discover_package(paths, Path(mix) if mix is not None else None)
    entries = package.files
    infos = [probe(e.path) for e in entries]
    plans, plan_findings = _plans(package.relations(), entries, infos)
    findings = [Finding("info", "package.note", note) for note in package.notes]
    findings += _consistency(package, entries, infos) + plan_findings
    dialogue, dialogue_findings = _dialogue_pair(entries, infos)
    folds = frozenset(
        i
        for i, info in enumerate(infos)
        if fold_down and fold_down_matrix(info.channels) is not None
    )
    wanted = _Wanted(folds, dialogue)
    measured = _levels_and_sums(entries, infos, plans, live, block_frames, workers, wanted)
    accumulators = measured.accumulators
    reports = _file_reports(entries, infos, measured.levels)
    _attach_fold_downs(reports, infos, measured)
    findings += dialogue_findings + _attach_dialogue(reports, wanted, measured)
    findings += _level_findings(reports) + _fold_down_findings(reports, fold_down)
    options = _NullOptions(
        null_threshold_dbfs, excerpt_seconds, max_lag_seconds, diagnose_informational
    )
    checks = [
        _check(plan, accumulators.get(k), entries, infos, reports, options)
        for k, plan in enumerate(plans)
    ]
    for check in checks:
        findings += _null_findings(check)
    unrelated = _unrelated(entries, plans)
    no_sums_reason = _no_sums_reason(package, entries) if not plans else None
    findings += _coverage_findings(package, entries, unrelated, no_sums_reason, bool(plans))
    nulls = [check.null for check in checks]
    if prof is not None:
        findings += check_profile(prof, reports, nulls)
    report = VerificationReport(
        passed=False,
        package=str(package.root) if package.root else str(paths[0]),
        profile=prof.name if prof else None,
        null_threshold_dbfs=null_threshold_dbfs,
        files=reports,
        nulls=nulls,
        findings=findings,
        sums=checks,
        sums_source=package.relations_source,
        unrelated_files=[entries[i].label for i in unrelated],
        no_sums_reason=no_sums_reason,
        package_label="." if package.root else paths[0].name,
    )
    report.sort_findings()
    report.passed = not report.errors
    report.elapsed_seconds = time.perf_counter() - started
    return report


def _verify_archive(
    archive: Path,
    mix: Path | str | None,
    profile: str | None,
    null_threshold_dbfs: float,
    **options: Any,
) -> VerificationReport:
    """A packed package (``stemprint pack``): unpacked safely, checksums checked, verified."""
    with unpacked(archive) as found:
        report = verify_package(found.folder, mix, profile, null_threshold_dbfs, **options)
    report.findings += found.findings
    report.sort_findings()
    report.passed = not report.errors
    report.package = str(archive)
    return report


# --- relations ------------------------------------------------------------------------------


def _plans(
    relations: list[SumRelation], entries: list[PackageFile], infos: list[AudioInfo]
) -> tuple[list[_Plan], list[Finding]]:
    """Map relations onto the entries; a relation whose files cannot be summed is skipped."""
    index = {e.path: i for i, e in enumerate(entries)}
    plans: list[_Plan] = []
    findings: list[Finding] = []
    mono_noted: set[int] = set()
    for relation in relations:
        plan = _Plan(
            relation, [index[p.path] for p in relation.parts], index[relation.reference.path]
        )
        ref = infos[plan.reference]
        if any(infos[p].sample_rate != ref.sample_rate for p in plan.parts):
            plan.skipped_reason = "sample rate differs between files"
        for p in plan.parts:
            channels = infos[p].channels
            if channels not in (1, ref.channels):
                plan.skipped_reason = "channel count differs between files"
                findings.append(
                    _channel_mismatch(entries[p], channels, entries[plan.reference], ref, relation)
                )
            elif channels < ref.channels and p not in mono_noted:
                mono_noted.add(p)
                findings.append(
                    Finding(
                        "info",
                        "null.mono_part",
                        f"{entries[p].label} is mono: it is added to all {ref.channels} channels "
                        f"of the sum against {entries[plan.reference].label} (at unity)",
                        file=entries[p].label,
                    )
                )
        plans.append(plan)
    return plans, findings


def _channel_mismatch(
    part: PackageFile, channels: int, ref: PackageFile, ref_info: AudioInfo, relation: SumRelation
) -> Finding:
    return Finding(
        "error" if relation.exact else "warning",
        "consistency.channels",
        f"{part.label} has {channels} channel(s) but {ref.label}, which it sums to, has "
        f"{ref_info.channels}; a part must have the reference's channels or be mono",
        file=part.label,
        advice=f"re-export {part.label} with {ref_info.channels} channel(s), or as mono",
        value=float(channels),
    )


def _check(
    plan: _Plan,
    acc: NullAccumulator | None,
    entries: list[PackageFile],
    infos: list[AudioInfo],
    reports: list[FileReport],
    options: _NullOptions,
) -> SumCheck:
    """The null of one relation, diagnosed when it fails (and decides, or is asked to)."""
    relation = plan.relation
    ref = entries[plan.reference]
    if acc is None:
        null = NullResult(
            reference=ref.label,
            reference_role=ref.role,
            threshold_dbfs=options.threshold_dbfs,
            decides_verdict=relation.exact,
            skipped_reason=plan.skipped_reason,
        )
    else:
        null = acc.result(ref.label, ref.role, options.threshold_dbfs, relation.exact)
        if not null.passed and (relation.exact or options.diagnose_informational):
            _diagnose(null, plan, acc, entries, infos, options)
            _note_clipped_reference(null, reports[plan.reference], relation.exact)
    return SumCheck(
        name=relation.name,
        parts=[entries[p].label for p in plan.parts],
        reference=ref.label,
        exact=relation.exact,
        why=relation.why,
        source=relation.source,
        null=null,
    )


def _diagnose(
    null: NullResult,
    plan: _Plan,
    acc: NullAccumulator,
    entries: list[PackageFile],
    infos: list[AudioInfo],
    options: _NullOptions,
) -> None:
    # Mono parts are spread to the reference's channels by the diagnosis, as by the null.
    severity: Severity = "error" if plan.relation.exact else "info"
    diagnose_null(
        null,
        infos[plan.reference],
        [(entries[p].label, infos[p]) for p in plan.parts],
        acc.excerpt_center(min(infos[i].length_samples for i in plan.files)),
        severity=severity,
        excerpt_seconds=options.excerpt_seconds,
        max_lag_seconds=options.max_lag_seconds,
    )


def _note_clipped_reference(null: NullResult, ref: FileReport, decides: bool) -> None:
    """A fixed-point reference that reached full scale clipped when it was exported: the parts
    (unclipped) can never null against it. Say so before any other diagnosis."""
    lv = ref.levels
    if lv is None or ref.is_float:
        return
    if not (lv.clipped_run_count or lv.sample_peak_dbfs >= -0.001):
        return
    null.diagnoses.insert(
        0,
        Finding(
            "error" if decides else "info",
            "null.reference_clipped",
            f"{ref.label} reaches full scale ({lv.sample_peak_dbfs:+.2f} dBFS, "
            f"{lv.clipped_run_count} clipped run(s)): it clipped when it was exported, so the "
            "stems cannot null against it",
            file=ref.label,
            advice="export the mix with headroom or as 32-bit float, then verify again",
            value=lv.sample_peak_dbfs,
        ),
    )


def _null_findings(check: SumCheck) -> list[Finding]:
    null = check.null
    if null.skipped_reason:
        return []  # the consistency errors say why
    ref = check.reference
    plural = check.source == "roles"  # "stems null", "sum 'Drums bus' nulls"
    subject = check.name if plural else f"sum {check.name!r}"
    numbers = (
        f"residual peak {null.residual_peak_dbfs:.1f} dBFS, RMS {null.residual_rms_dbfs:.1f} "
        f"dBFS (threshold {null.threshold_dbfs:.1f} dBFS)"
    )
    if null.passed:
        verb = "null" if plural else "nulls"
        return [
            Finding(
                "info",
                "null.pass",
                f"{subject} {verb} against {ref}: {numbers}",
                file=ref,
                value=null.residual_peak_dbfs,
            )
        ]
    verb = "do not null" if plural else "does not null"
    if check.exact:
        head = Finding(
            "error",
            "null.fail",
            f"{subject} {verb} against {ref}: {numbers}",
            file=ref,
            advice="see the diagnosis lines below",
            value=null.residual_peak_dbfs,
        )
    else:
        head = Finding(
            "info",
            "null.mix_differs" if null.reference_role == "mix" else "null.informational",
            f"{subject} {verb} against {ref} ({numbers}); for information"
            + (f": {check.why}" if check.why else ""),
            file=ref,
            value=null.residual_peak_dbfs,
        )
    return [head, *null.diagnoses]


def _unrelated(entries: list[PackageFile], plans: list[_Plan]) -> list[int]:
    """Entries that are neither a part nor a reference of any relation."""
    related = {i for plan in plans for i in plan.files}
    return [i for i in range(len(entries)) if i not in related]


def _no_sums_reason(package: StemPackage, entries: list[PackageFile]) -> str:
    if package.sums is not None:
        return "the manifest lists no sums"
    if len(entries) == 1:
        return f"{entries[0].label} is the only file"
    if not package.stems:
        return "the package has no stems (no file has role stem)"
    return "no mix or pre-master to null the stems against"


def _coverage_findings(
    package: StemPackage,
    entries: list[PackageFile],
    unrelated: list[int],
    no_sums_reason: str | None,
    has_relations: bool,
) -> list[Finding]:
    """What was null-tested and what was not."""
    out: list[Finding] = []
    if no_sums_reason is not None and package.sums is None and package.stems:
        out.append(
            Finding(
                "warning",
                "null.no_reference",
                f"no mix or pre-master: the {len(package.stems)} stem(s) are measured but not "
                "null-tested",
                advice="pass the mix (--mix FILE), name it mix.wav, or describe the package in "
                "manifest.json",
            )
        )
    elif no_sums_reason is not None:
        out.append(Finding("info", "sums.none", f"nothing null-tested: {no_sums_reason}"))
    if has_relations or package.manifest is not None:
        for i in unrelated:
            e = entries[i]
            out.append(
                Finding(
                    "info",
                    "sums.unrelated",
                    f"{e.label} ({e.role}) takes part in no sum: measured, not null-tested",
                    file=e.label,
                )
            )
    return out


# --- measuring ------------------------------------------------------------------------------


def _levels_and_sums(
    entries: list[PackageFile],
    infos: list[AudioInfo],
    plans: list[_Plan],
    live: LiveMeasurement | None,
    block_frames: int,
    workers: int | None,
    wanted: _Wanted,
) -> _Measured:
    """Levels of every file, one accumulator per runnable relation, the fold-downs and gating
    blocks asked for: live when it fits, else read back."""
    if live is not None:
        measured = _from_live(live, entries, infos, plans, wanted)
        if measured is not None:
            return measured
    accumulators = {
        k: NullAccumulator(block_frames) for k, p in enumerate(plans) if not p.skipped_reason
    }
    return _measure(infos, plans, accumulators, block_frames, workers, wanted)


def _from_live(
    live: LiveMeasurement,
    entries: list[PackageFile],
    infos: list[AudioInfo],
    plans: list[_Plan],
    wanted: _Wanted,
) -> _Measured | None:
    """The live measurement's results, or ``None`` when they do not describe this package."""
    resolved = [str(e.path.resolve()) for e in entries]
    if sorted(resolved) != sorted(live.files):
        live.close()
        return None
    levels: dict[int, FileLevels] = {}
    for i, key in enumerate(resolved):
        lv = live.file_levels(key, infos[i].channels)
        if lv is None:
            return None
        levels[i] = lv
    folds: dict[int, FileLevels] = {}
    for i in wanted.folds:
        fold = live.fold_levels(resolved[i])
        if fold is None:
            return None
        folds[i] = fold
    blocks: dict[tuple[int, bool], np.ndarray] = {}
    for i, fold_block in wanted.block_keys:
        energies = live.gating_blocks(resolved[i], infos[i].channels, fold_block)
        if energies is None:
            return None
        blocks[(i, fold_block)] = energies
    accumulators: dict[int, NullAccumulator] = {}
    for k, plan in enumerate(plans):
        if plan.skipped_reason:
            continue
        found = live.relation([resolved[p] for p in plan.parts], resolved[plan.reference])
        if found is None or found.channels != infos[plan.reference].channels:
            return None
        accumulators[k] = found.accumulator
    return _Measured(levels, accumulators, folds, blocks)


def _measure(
    infos: list[AudioInfo],
    plans: list[_Plan],
    accumulators: dict[int, NullAccumulator],
    block_frames: int,
    workers: int | None,
    wanted: _Wanted,
) -> _Measured:
    """Read the files back: levels of every file, null sums into ``accumulators``, the
    fold-downs and gating blocks in ``wanted``."""
    if workers is None:
        total_seconds = sum(info.duration_seconds for info in infos)
        workers = (os.cpu_count() or 1) if total_seconds >= PARALLEL_MIN_SECONDS else 1
    workers = max(1, min(workers, len(infos)))
    # this process meters the first files (the mix first) and those whose fold-down or gating
    # blocks are wanted (workers return levels only); workers split the rest
    local = list(range(-(-len(infos) // workers)))
    local += sorted({*wanted.folds, *(wanted.dialogue or ())} - set(local))
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
        fold_meters = {i: _fold_meter(infos[i]) for i in wanted.folds}
        _stream(infos, meters, fold_meters, plans, accumulators, block_frames)
        levels: dict[int, FileLevels] = {i: m.result() for i, m in meters.items()}
        for group, proc in procs:
            levels.update(zip(group, _meter_worker.collect(proc), strict=True))
    except BaseException:
        for _, proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        raise
    folds = {i: meter.result() for i, (_, meter) in fold_meters.items()}
    blocks = {
        (i, fold): (fold_meters[i][1] if fold else meters[i]).gating_block_energies
        for i, fold in wanted.block_keys
    }
    return _Measured(levels, accumulators, folds, blocks)


def _fold_meter(info: AudioInfo) -> _FoldMeter:
    """The fold-down matrix of a 5.1/7.1 file and a stereo meter for its Lo/Ro (float)."""
    fold = fold_down_matrix(info.channels)
    assert fold is not None  # only 5.1/7.1 files are folded
    return fold, LevelMeter(info.sample_rate, 2, 1.0)


def _stream(
    infos: list[AudioInfo],
    meters: dict[int, LevelMeter],
    fold_meters: dict[int, _FoldMeter],
    plans: list[_Plan],
    accumulators: dict[int, NullAccumulator],
    block_frames: int,
) -> None:
    """One pass over the files in lockstep: the null sums of the relations in
    ``accumulators``, the meters of the files in ``meters`` (the others are metered
    elsewhere) and the fold-down meters."""
    active = [(k, plans[k]) for k in accumulators]
    in_null = {i for _, plan in active for i in plan.files}
    wanted = [i for i in range(len(infos)) if i in meters or i in in_null]
    if not wanted:
        return
    total = max(infos[i].length_samples for i in wanted)
    lengths = {k: max(infos[i].length_samples for i in plan.files) for k, plan in active}
    readers = {i: BlockReader(infos[i]) for i in wanted}
    try:
        pos = 0
        while pos < total:
            n = min(block_frames, total - pos)
            blocks = _read_blocks(readers, infos, meters, in_null, pos, n)
            for i, (fold, meter) in fold_meters.items():
                real = min(n, max(infos[i].length_samples - pos, 0))
                if real:
                    meter.process(fold @ blocks[i][:, :real])
            sums: dict[tuple[tuple[int, ...], int, int], np.ndarray] = {}
            for k, plan in active:
                if pos >= lengths[k]:
                    continue
                frames = min(n, lengths[k] - pos)
                channels = infos[plan.reference].channels
                key = (tuple(plan.parts), channels, frames)
                if key not in sums:
                    part_sum = np.zeros((channels, frames))
                    for p in plan.parts:
                        part_sum += blocks[p][:, :frames]  # a (1, n) part adds to every channel
                    sums[key] = part_sum
                accumulators[k].add(blocks[plan.reference][:, :frames], sums[key])
            pos += n
    finally:
        for reader in readers.values():
            reader.close()


def _read_blocks(
    readers: dict[int, BlockReader],
    infos: list[AudioInfo],
    meters: dict[int, LevelMeter],
    in_null: set[int],
    pos: int,
    n: int,
) -> dict[int, np.ndarray]:
    """The next block of every file; files in a sum are zero-padded to ``n`` frames."""
    blocks: dict[int, np.ndarray] = {}
    for i, reader in readers.items():
        real = min(n, max(infos[i].length_samples - pos, 0))
        if real == 0 and i not in in_null:
            continue
        block = reader.read(n if i in in_null else real)
        if real and i in meters:
            meters[i].process(block[:, :real] if real < n else block)
        blocks[i] = block
    return blocks


def _file_reports(
    entries: list[PackageFile], infos: list[AudioInfo], levels: dict[int, FileLevels]
) -> list[FileReport]:
    return [
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
            levels=levels[i],
        )
        for i, (e, info) in enumerate(zip(entries, infos, strict=True))
    ]


# --- consistency ----------------------------------------------------------------------------


def _consistency(
    package: StemPackage, entries: list[PackageFile], infos: list[AudioInfo]
) -> list[Finding]:
    return (
        _format_findings(entries, infos)
        + _manifest_findings(package, entries, infos)
        + _encoding_findings(entries, infos)
        + _start_findings(entries)
    )


def _format_findings(entries: list[PackageFile], infos: list[AudioInfo]) -> list[Finding]:
    """Sample rate and length of every file against the first (the mix when there is one)."""
    out: list[Finding] = []
    ref_e, ref_i = entries[0], infos[0]
    ref_name = f"the mix ({ref_e.label})" if ref_e.role == "mix" else ref_e.label
    for e, info in zip(entries[1:], infos[1:], strict=True):
        if info.sample_rate != ref_i.sample_rate:
            out.append(
                Finding(
                    "error",
                    "consistency.sample_rate",
                    f"{e.label} is {info.sample_rate} Hz but {ref_name} is {ref_i.sample_rate} Hz",
                    file=e.label,
                    advice=f"re-export {e.label} at {ref_i.sample_rate} Hz from the same session",
                    value=float(info.sample_rate),
                )
            )
        if info.length_samples != ref_i.length_samples:
            diff = info.length_samples - ref_i.length_samples
            out.append(
                Finding(
                    "error",
                    "consistency.length",
                    f"{e.label} is {info.length_samples} samples long, {ref_name} "
                    f"{ref_i.length_samples} ({diff:+d} samples, {diff / info.sample_rate:+.3f} s)",
                    file=e.label,
                    advice=f"re-export {e.label} with the same start and end as {ref_e.label}, "
                    "or run stemprint repair to pad/trim it",
                    value=float(diff),
                )
            )
    counts = sorted({info.channels for info in infos})
    if len(counts) > 1:
        out.append(
            Finding(
                "info",
                "consistency.channel_counts",
                "files have different channel counts: " + ", ".join(map(str, counts)),
            )
        )
    return out


def _manifest_findings(
    package: StemPackage, entries: list[PackageFile], infos: list[AudioInfo]
) -> list[Finding]:
    """Every file against what the manifest states: the package's sample rate and length, and
    each entry's own ``sample_rate``, ``channels`` and ``length_samples`` when it gives them."""
    manifest = package.manifest
    if manifest is None or package.root is None:
        return []
    stated: dict[Path, dict[str, Any]] = {}
    for entry in manifest.get("files", []):
        stated[(package.root / entry["path"]).resolve()] = entry
    out: list[Finding] = []
    for e, info in zip(entries, infos, strict=True):
        wants = {"sample_rate": manifest.get("sample_rate"), **stated.get(e.path, {})}
        wants.setdefault("length_samples", manifest.get("length_samples"))
        for key, actual, text in (
            ("sample_rate", info.sample_rate, "is {} Hz, the manifest says {} Hz"),
            ("channels", info.channels, "has {} channel(s), the manifest says {}"),
            ("length_samples", info.length_samples, "is {} samples long, the manifest says {}"),
        ):
            want = wants.get(key)
            if isinstance(want, int) and not isinstance(want, bool) and actual != want:
                out.append(
                    Finding(
                        "error",
                        f"manifest.{key.removesuffix('_samples')}",
                        f"{e.label} " + text.format(actual, want),
                        file=e.label,
                        advice="re-render the package or fix manifest.json",
                        value=float(actual - want) if key == "length_samples" else float(actual),
                    )
                )
    return out


def _encoding_findings(entries: list[PackageFile], infos: list[AudioInfo]) -> list[Finding]:
    out: list[Finding] = []
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
        elif is_stem_role(e.role) and not info.is_float and info.bit_depth < 24:
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


def _start_findings(entries: list[PackageFile]) -> list[Finding]:
    """Files whose Broadcast WAVE start time differs from the others' (the most common one).

    Files without a start time are not judged: only a relation's null proves where they start.
    """
    starts = {i: bwf_time_reference(e.path) for i, e in enumerate(entries)}
    known = {i: t for i, t in starts.items() if t is not None}
    if len(set(known.values())) <= 1:
        return []
    values = list(known.values())
    common = max(sorted(set(values)), key=values.count)
    base = next(entries[i] for i, t in known.items() if t == common)
    out = []
    for i, t in known.items():
        if t == common:
            continue
        e = entries[i]
        out.append(
            Finding(
                "error",
                "consistency.start",
                f"{e.label} starts at sample {t} of the session timeline (BWF time reference), "
                f"{base.label} at sample {common} ({t - common:+d} samples): the files do not "
                "start together",
                file=e.label,
                advice=f"re-export {e.label} from the same start point as the other files",
                value=float(t - common),
            )
        )
    return out


# --- levels ---------------------------------------------------------------------------------


def _level_findings(reports: list[FileReport]) -> list[Finding]:
    out: list[Finding] = []
    for f in reports:
        lv = f.levels
        if lv is None:
            continue
        out += _silence_and_clipping(f, lv) + _layout_findings(f, lv)
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


def _silence_and_clipping(f: FileReport, lv: FileLevels) -> list[Finding]:
    out: list[Finding] = []
    if lv.silent and is_stem_role(f.role):
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
                f"{f.label} has {lv.clipped_run_count} clipped run(s) of ≥ 3 full-scale samples, "
                f"first at {first.start_seconds:.3f} s (channel {first.channel + 1}, "
                f"{first.length_samples} samples)",
                file=f.label,
                advice=f"lower the level feeding {f.label} and re-print it",
                value=float(lv.clipped_run_count),
            )
        )
    if lv.over_full_scale_samples:
        first_s = lv.first_over_full_scale_seconds or 0.0
        out.append(
            Finding(
                "warning",
                "levels.over_full_scale",
                f"{f.label} is over full scale, not clipped (float): "
                f"{lv.over_full_scale_samples} sample(s) above 0 dBFS, peak "
                f"{lv.sample_peak_dbfs:+.2f} dBFS, first at {first_s:.3f} s",
                file=f.label,
                advice=f"lower {f.label} by at least {lv.sample_peak_dbfs:.2f} dB before it is "
                "converted to fixed point (PCM) or played, which would clip it",
                value=lv.sample_peak_dbfs,
            )
        )
    return out


# --- multichannel: dialogue gating and fold-down --------------------------------------------


def _dialogue_pair(
    entries: list[PackageFile], infos: list[AudioInfo]
) -> tuple[tuple[int, int] | None, list[Finding]]:
    """(mix, DX stem) entry indices for the dialogue-gated figure, or ``None``."""
    mix = next((i for i, e in enumerate(entries) if e.role == "mix"), None)
    dx = [
        i
        for i, e in enumerate(entries)
        if e.role == "stem" and e.name.strip().lower() == DIALOGUE_STEM_NAME
    ]
    if mix is None or not dx:
        return None, []
    findings: list[Finding] = []
    if len(dx) > 1:
        findings.append(
            Finding(
                "info",
                "loudness.dialogue_stems",
                f"several stems are named DX; the {DIALOGUE_GATED_LABEL} loudness is gated by "
                f"the first, {entries[dx[0]].label}",
                file=entries[dx[0]].label,
            )
        )
    if infos[dx[0]].sample_rate != infos[mix].sample_rate:
        findings.append(
            Finding(
                "info",
                "loudness.dialogue_not_gated",
                f"{entries[dx[0]].label} and {entries[mix].label} differ in sample rate: their "
                f"gating blocks do not line up, no {DIALOGUE_GATED_LABEL} loudness",
                file=entries[mix].label,
            )
        )
        return None, findings
    return (mix, dx[0]), findings


def _attach_fold_downs(
    reports: list[FileReport], infos: list[AudioInfo], measured: _Measured
) -> None:
    for i, levels in measured.folds.items():
        reports[i].fold_down = FoldDown(layout_of(infos[i].channels), levels)


def _dialogue_figure(
    programme: FileReport, dialogue: FileReport, z: np.ndarray, gate: np.ndarray
) -> DialogueGatedLoudness:
    gated = gated_loudness(z, gate)
    return DialogueGatedLoudness(
        programme=programme.label,
        dialogue=dialogue.label,
        loudness_lufs=gated.loudness_lufs,
        dialogue_fraction=gated.kept_blocks / gated.blocks if gated.blocks else 0.0,
        kept_blocks=gated.kept_blocks,
        blocks=gated.blocks,
    )


def _attach_dialogue(
    reports: list[FileReport], wanted: _Wanted, measured: _Measured
) -> list[Finding]:
    """The mix's dialogue-gated (approximation) loudness, and its fold-down's, with an info
    finding; the DX fold-down gates the mix's fold-down (DX itself when it has none)."""
    if wanted.dialogue is None:
        return []
    mix, dx = wanted.dialogue
    blocks = measured.blocks
    programme, dialogue = reports[mix], reports[dx]
    figure = _dialogue_figure(programme, dialogue, blocks[(mix, False)], blocks[(dx, False)])
    programme.dialogue_gated = figure
    fold = programme.fold_down
    if fold is not None:
        gate = blocks.get((dx, True), blocks[(dx, False)])
        fold.dialogue_gated = _dialogue_figure(programme, dialogue, blocks[(mix, True)], gate)
    full = programme.levels.loudness_lufs if programme.levels else float("-inf")
    return [
        Finding(
            "info",
            "loudness.dialogue_gated",
            f"{programme.label} {DIALOGUE_GATED_LABEL} loudness {figure.loudness_lufs:.1f} "
            f"LUFS: the programme over the gating blocks where {dialogue.label} passes its own "
            f"gates (dialogue in {100 * figure.dialogue_fraction:.0f} % of the programme); "
            f"full programme {full:.1f} LUFS",
            file=programme.label,
            value=figure.loudness_lufs if np.isfinite(figure.loudness_lufs) else None,
        )
    ]


def _fold_down_findings(reports: list[FileReport], asked: bool) -> list[Finding]:
    """A fold-down over full scale (a stereo downmix of the file clips); nothing to fold."""
    folded = [f for f in reports if f.fold_down is not None]
    if asked and not folded:
        return [
            Finding(
                "info",
                "fold_down.none",
                "no 5.1 or 7.1 file: nothing to fold down to stereo",
            )
        ]
    out: list[Finding] = []
    for f in folded:
        assert f.fold_down is not None
        peak = f.fold_down.levels.sample_peak_dbfs
        if peak > 0.0:
            out.append(
                Finding(
                    "warning",
                    "levels.fold_down_over",
                    f"{f.label} folds down to stereo (Lo/Ro, BS.775-3) over full scale: peak "
                    f"{peak:+.2f} dBFS; a stereo downmix of it clips",
                    file=f.label,
                    advice=f"lower the centre and surrounds of {f.label}, or deliver a "
                    "separate stereo mix",
                    value=peak,
                )
            )
    return out


def _layout_findings(f: FileReport, lv: FileLevels) -> list[Finding]:
    if f.channels <= 2 or lv.layout is not None:
        return []
    return [
        Finding(
            "info",
            "levels.no_layout",
            f"{f.label} has {f.channels} channels, a count with no known layout: its loudness "
            "weighs every channel 1.0 (no LFE left out, no surround weighting)",
            file=f.label,
        )
    ]
