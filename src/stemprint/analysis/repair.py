"""Write a corrected copy of a stem package: exactly the corrections its report states, proved.

Invariants
----------
* The originals are never touched. Everything is written into a temporary directory next to
  ``out_dir`` and renamed to ``out_dir`` at the end, so ``out_dir`` appears complete or not at
  all; a refusal or an error leaves nothing behind.
* Only what the report states is applied: the diagnoses of the verdict null
  (``null.time_offset``, ``null.polarity``, ``null.stem_gain``, ``null.common_gain``), and every
  stem padded with zeros or trimmed to the mix length. A number the diagnosis fitted but did not
  state as a finding is never applied.
* A diagnosis that is not a fact is refused (:class:`~stemprint.errors.InputError`): an
  ambiguous offset, faults that are not separable, an unexplained residual, a clipped
  reference (:data:`~stemprint.analysis.nulltest.AMBIGUOUS_CODES`).
* Proof: the copy's null against the same reference is measured over the whole files before the
  rename. The copy is kept only if it nulls better than the original: it passes where the
  original failed, or its residual energy is at least :data:`MIN_IMPROVEMENT_DB` lower and its
  residual peak not higher. Otherwise nothing is written.

Formulas
--------
Corrected stem: ``new[n] = f·old[n + d]`` for ``n`` in ``[0, length)``, zero where ``n + d``
falls outside the file; ``d`` is the stated offset (positive: the stem was late) and
``f = ±10^(gain_db/20)`` with ``gain_db = −value`` of the stated gain (``hot_db`` of a stem, or
the stems' common level) and the sign negative for a stated polarity inversion. PCM is
processed as integers (``int32`` as libsndfile reads it): with ``f = 1`` the samples are copied
bit-exact; otherwise ``round(f·k / q)·q`` with ``q = 2^(32 − bits)``, one LSB of the encoding.
Float is scaled in float64 and stored in the file's own encoding.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from stemprint.errors import InputError

from .audio import BLOCK_FRAMES, AudioInfo, BlockReader, amplitude_to_db, power_to_db, probe
from .discovery import MANIFEST_VERSION, is_stem_role
from .findings import to_jsonable
from .nulltest import AMBIGUOUS_CODES, NullAccumulator, NullResult
from .report import FileReport, VerificationReport
from .verify import verify_package

#: Residual energy drop (dB) the copy must show, when it still fails, to count as better.
MIN_IMPROVEMENT_DB = 0.01
#: Tolerance on the residual peak (dB): the copy's peak must not exceed the original's by more.
PEAK_TOLERANCE_DB = 0.01


@dataclass
class _Correction:
    """What to do to one stem: move it ``offset_samples`` earlier, scale it by ``factor``."""

    offset_samples: int = 0
    gain_db: float = 0.0
    polarity: bool = False

    @property
    def factor(self) -> float:
        return (-1.0 if self.polarity else 1.0) * 10.0 ** (self.gain_db / 20.0)

    @property
    def changes_samples(self) -> bool:
        return bool(self.offset_samples or self.gain_db or self.polarity)


@dataclass
class _NullNumbers:
    """Residual peak and energy of a null over the whole files."""

    peak_dbfs: float
    energy: float
    values: int

    @property
    def rms_dbfs(self) -> float:
        return power_to_db(self.energy / max(self.values, 1))


def repair_package(
    report_or_inputs: VerificationReport | Sequence[Path | str] | Path | str,
    out_dir: Path | str,
    *,
    mix: Path | str | None = None,
) -> Path:
    """Write a corrected copy of a package into the new directory ``out_dir``.

    Each stem gets exactly the corrections the verdict null's diagnosis states (time offset,
    polarity, gain; see the module docstring) and is padded with zeros or trimmed to the mix
    length, in its own format and encoding. The mix, the pre-master and other files are copied
    unchanged. A ``manifest.json`` describing the repaired package, the corrections applied and
    the null before and after is written.

    Parameters
    ----------
    report_or_inputs
        A :class:`VerificationReport` from :func:`verify_package`, or the inputs to verify first.
    out_dir
        The directory to create. Must not exist.
    mix
        The mix, when ``report_or_inputs`` are inputs that need it.

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    InputError
        ``out_dir`` exists; there is nothing to align against (null test skipped); the
        diagnosis is ambiguous; there is nothing to correct; a corrected PCM stem would clip;
        or the corrected copy would not null better than the original.
    """
    out = Path(out_dir).expanduser()
    if out.exists():
        raise InputError(
            "output directory already exists",
            file=str(out),
            fix="choose a new directory; repair never overwrites",
        )
    report = _report(report_or_inputs, mix)
    null = report.verdict_null
    if null is None or null.skipped_reason:
        raise InputError(
            "cannot repair: the files differ in sample rate or channel count",
            file=report.package,
            fix="re-export the stems from the session with one format",
        )
    _refuse_ambiguous(report, null)
    parts = _null_parts(report, null)
    corrections = _stated_corrections(null, parts)
    mix_file = next((f for f in report.files if f.role == "mix"), None)
    if mix_file is None:
        raise InputError(
            "cannot repair: the package has no mix to conform the stems to",
            file=report.package,
            fix="add the mix (role mix) to the package",
        )
    length = mix_file.length_samples
    stems = [f for f in report.files if is_stem_role(f.role)]
    if not any(c.changes_samples for c in corrections.values()) and all(
        f.length_samples == length for f in stems
    ):
        raise InputError(
            "nothing to repair: the report states no correction (no time offset, polarity or "
            "gain finding, and every stem has the mix's length)",
            file=report.package,
            fix="see the diagnosis; a missing stem or master-bus processing needs a re-print",
        )

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        entries = _write_files(report, tmp, corrections, length)
        written = {f.label: tmp / rel for f, rel in entries}
        after = _measure_null(
            written[_file(report, null.reference).label], [written[p] for p in parts]
        )
        _require_better(report, null, after)
        manifest = {
            "stemprint": MANIFEST_VERSION,
            "sample_rate": mix_file.sample_rate,
            "length_samples": length,
            "files": [{"path": rel, "role": f.role, "name": f.name} for f, rel in entries],
            "repaired_from": report.package,
            "offsets_applied_samples": {
                k: c.offset_samples for k, c in corrections.items() if c.offset_samples
            },
            "gains_applied_db": {k: c.gain_db for k, c in corrections.items() if c.gain_db},
            "polarity_inverted": [k for k, c in corrections.items() if c.polarity],
            "null_before": _summary(
                null.reference, null.residual_peak_dbfs, null.residual_rms_dbfs
            ),
            "null_after": _summary(null.reference, after.peak_dbfs, after.rms_dbfs),
        }
        (tmp / "manifest.json").write_text(
            json.dumps(to_jsonable(manifest), indent=2) + "\n", encoding="utf-8"
        )
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _report(
    report_or_inputs: VerificationReport | Sequence[Path | str] | Path | str,
    mix: Path | str | None,
) -> VerificationReport:
    if isinstance(report_or_inputs, VerificationReport):
        return report_or_inputs
    inputs = report_or_inputs
    if isinstance(inputs, str | Path):
        inputs = [inputs]
    return verify_package(list(inputs), mix=mix)


def _refuse_ambiguous(report: VerificationReport, null: NullResult) -> None:
    """Raise when the diagnosis does not state a fact a repair could apply."""
    blocking = [d for d in null.diagnoses if d.code in AMBIGUOUS_CODES]
    if not blocking:
        return
    raise InputError(
        "cannot repair: the diagnosis is not certain enough to correct the stems ("
        + "; ".join(d.message for d in blocking)
        + ")",
        file=report.package,
        fix="re-print the stems from the session (same start, unity gain, every track routed "
        "once), or correct the stems named above by hand and verify again",
    )


def _null_parts(report: VerificationReport, null: NullResult) -> list[str]:
    """Labels of the files summed in ``null``: its sum relation's parts, else every stem."""
    for check in getattr(report, "sums", None) or []:
        if getattr(check, "null", None) is null:
            return list(check.parts)
    return [f.label for f in report.files if is_stem_role(f.role)]


def _file(report: VerificationReport, label: str) -> FileReport:
    return next(f for f in report.files if f.label == label)


def _stated_corrections(null: NullResult, parts: list[str]) -> dict[str, _Correction]:
    """The corrections the diagnosis states, per stem label (nothing else)."""
    out = {label: _Correction() for label in parts}
    for d in null.diagnoses:
        if d.value is None:
            continue
        if d.code == "null.common_gain":
            for every in out.values():
                every.gain_db = -float(d.value)
            continue
        one = out.get(d.file or "")
        if one is None:
            continue
        if d.code == "null.time_offset":
            one.offset_samples = int(round(d.value))
        elif d.code == "null.polarity":
            one.polarity = True
        elif d.code == "null.stem_gain":
            one.gain_db = -float(d.value)
    return out


def _write_files(
    report: VerificationReport,
    tmp: Path,
    corrections: dict[str, _Correction],
    length: int,
) -> list[tuple[FileReport, str]]:
    """Write every file of the package into ``tmp``; returns ``(file, relative path)``."""
    used: set[str] = set()
    entries = []
    for f in report.files:
        label = Path(f.label)
        rel = _unique(label.as_posix() if not label.is_absolute() else label.name, used)
        dest = tmp / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if is_stem_role(f.role):
            _write_corrected(probe(Path(f.path)), dest, corrections.get(f.label), length, f.label)
        else:
            shutil.copy2(f.path, dest)
        entries.append((f, rel))
    return entries


def _unique(rel: str, used: set[str]) -> str:
    candidate, k = rel, 1
    while candidate in used:
        p = Path(rel)
        candidate = str(p.with_name(f"{p.stem}-{k}{p.suffix}"))
        k += 1
    used.add(candidate)
    return candidate


def _write_corrected(
    info: AudioInfo, dest: Path, correction: _Correction | None, length: int, label: str
) -> None:
    """Write ``new[n] = f·old[n + d]`` for ``n`` in ``[0, length)``, zero elsewhere.

    Streams in blocks; PCM is read and written as int32 (exact when ``f = 1``), float as
    float64.
    """
    c = correction or _Correction()
    pcm = not (info.is_float or info.bit_depth is None)
    dtype = "int32" if pcm else "float64"
    factor = c.factor
    lsb = 2 ** (32 - info.bit_depth) if pcm and info.bit_depth else 1
    offset = c.offset_samples
    with (
        sf.SoundFile(str(info.path)) as src,
        sf.SoundFile(
            str(dest),
            "w",
            samplerate=info.sample_rate,
            channels=info.channels,
            subtype=info.subtype,
            format=info.format,
        ) as dst,
    ):
        written = 0
        lead = min(max(-offset, 0), length)  # early stem: zeros first
        while written < lead:
            n = min(BLOCK_FRAMES, lead - written)
            dst.write(np.zeros((n, info.channels), dtype=dtype))
            written += n
        start = max(offset, 0)
        if start < info.length_samples:
            src.seek(start)
        remaining_src = max(info.length_samples - start, 0)
        while written < length and remaining_src > 0:
            n = min(BLOCK_FRAMES, length - written, remaining_src)
            block = src.read(n, dtype=dtype, always_2d=True)
            if len(block) == 0:
                break
            if factor != 1.0:
                block = _scaled(block, factor, lsb, label) if pcm else block * factor
            dst.write(block)
            written += len(block)
            remaining_src -= len(block)
        while written < length:
            n = min(BLOCK_FRAMES, length - written)
            dst.write(np.zeros((n, info.channels), dtype=dtype))
            written += n


def _scaled(block: np.ndarray, factor: float, lsb: int, label: str) -> np.ndarray:
    """``round(factor·block / lsb)·lsb`` as int32; one LSB past full scale saturates (an
    inverted most-negative code), more is refused rather than wrapped or clipped."""
    y = np.rint(block.astype(np.float64) * (factor / lsb)) * lsb
    top, bottom = float(2**31 - lsb), float(-(2**31))
    over = max(float(y.max(initial=0.0)) - top, bottom - float(y.min(initial=0.0)))
    if over > lsb:
        gain_db = amplitude_to_db(abs(factor))
        raise InputError(
            f"cannot repair: {label} would clip after a {gain_db:+.2f} dB correction in its "
            "fixed-point encoding",
            file=label,
            fix=f"re-print {label} at the mix's level, or convert the package to 32-bit float "
            "and repair again",
        )
    return np.clip(y, bottom, top).astype(np.int32)


def _measure_null(reference: Path, parts: list[Path]) -> _NullNumbers:
    """Residual peak and energy of ``reference − Σ parts`` over the whole files (streaming; a
    one-channel part is added to every channel)."""
    ref = probe(reference)
    infos = [probe(p) for p in parts]
    total = max([ref.length_samples, *(i.length_samples for i in infos)])
    acc = NullAccumulator(BLOCK_FRAMES)
    readers = [BlockReader(ref), *(BlockReader(i) for i in infos)]
    try:
        pos = 0
        while pos < total:
            n = min(BLOCK_FRAMES, total - pos)
            ref_block = readers[0].read(n)
            stem_sum = np.zeros_like(ref_block)
            for reader in readers[1:]:
                stem_sum += reader.read(n)
            acc.add(ref_block, stem_sum)
            pos += n
    finally:
        for reader in readers:
            reader.close()
    return _NullNumbers(amplitude_to_db(acc.residual_peak), acc.residual_sumsq, acc.values)


def _require_better(report: VerificationReport, null: NullResult, after: _NullNumbers) -> None:
    """Raise unless the copy nulls better than the original (module docstring)."""
    rms = null.residual_rms_dbfs
    values = max(null.length_samples, 1) * _file(report, null.reference).channels
    before_energy = 10.0 ** (rms / 10.0) * values if np.isfinite(rms) else 0.0
    passes = after.peak_dbfs < null.threshold_dbfs
    if null.passed:
        better = passes
    else:
        better = passes or (
            after.energy <= before_energy * 10.0 ** (-MIN_IMPROVEMENT_DB / 10.0)
            and after.peak_dbfs <= null.residual_peak_dbfs + PEAK_TOLERANCE_DB
        )
    if better:
        return
    raise InputError(
        "cannot repair: the corrected copy would not null better than the original "
        f"(residual peak {after.peak_dbfs:.1f} dBFS, RMS {after.rms_dbfs:.1f} dBFS against "
        f"{null.residual_peak_dbfs:.1f} / {null.residual_rms_dbfs:.1f} dBFS before, "
        f"{null.reference}); nothing was written",
        file=report.package,
        fix="re-print the stems from the session; the stated corrections do not explain "
        "the residual",
    )


def _summary(reference: str, peak_dbfs: float, rms_dbfs: float) -> dict[str, Any]:
    return {"reference": reference, "residual_peak_dbfs": peak_dbfs, "residual_rms_dbfs": rms_dbfs}
