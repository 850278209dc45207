"""Write a corrected copy of a stem package: stems re-aligned and padded/trimmed to the mix.

The originals are never touched. Everything is written into a temporary directory next to
``out_dir`` and renamed to ``out_dir`` at the end, so ``out_dir`` appears complete or not at all.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from stemprint.errors import InputError

from .audio import BLOCK_FRAMES, AudioInfo, probe
from .package import MANIFEST_VERSION
from .report import VerificationReport
from .verify import verify_package


def repair_package(
    report_or_inputs: VerificationReport | Sequence[Path | str] | Path | str,
    out_dir: Path | str,
    *,
    mix: Path | str | None = None,
) -> Path:
    """Write a corrected copy of a package into the new directory ``out_dir``.

    Each stem is shifted by the time offset the null diagnosis found (a late stem moved earlier,
    an early one later, the gap zero-filled) and padded with zeros or trimmed to the mix length,
    in its own format and encoding (PCM is copied as integers, so untouched samples stay
    bit-exact). The mix and the pre-master are copied unchanged. A ``manifest.json`` describing
    the repaired package is written. Gains and polarity are not changed.

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
        ``out_dir`` exists, or there is nothing to align against (null test skipped).
    """
    out = Path(out_dir).expanduser()
    if out.exists():
        raise InputError(
            "output directory already exists",
            file=str(out),
            fix="choose a new directory; repair never overwrites",
        )
    if isinstance(report_or_inputs, VerificationReport):
        report = report_or_inputs
    else:
        inputs = report_or_inputs
        if isinstance(inputs, str | Path):
            inputs = [inputs]
        report = verify_package(list(inputs), mix=mix)
    null = report.verdict_null
    if null is None or null.skipped_reason:
        raise InputError(
            "cannot repair: the files differ in sample rate or channel count",
            file=report.package,
            fix="re-export the stems from the session with one format",
        )
    offsets = null.offsets()
    mix_file = next(f for f in report.files if f.role == "mix")
    length = mix_file.length_samples

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        used: set[str] = set()
        entries = []
        for f in report.files:
            rel = _unique(
                Path(f.label).as_posix() if not Path(f.label).is_absolute() else Path(f.label).name,
                used,
            )
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if f.role == "stem":
                _write_shifted(probe(Path(f.path)), dest, offsets.get(f.label, 0), length)
            else:
                shutil.copy2(f.path, dest)
            entries.append({"path": rel, "role": f.role, "name": f.name})
        manifest = {
            "stemprint": MANIFEST_VERSION,
            "sample_rate": mix_file.sample_rate,
            "length_samples": length,
            "files": entries,
            "repaired_from": report.package,
            "offsets_applied_samples": {k: v for k, v in offsets.items() if v},
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _unique(rel: str, used: set[str]) -> str:
    candidate, k = rel, 1
    while candidate in used:
        p = Path(rel)
        candidate = str(p.with_name(f"{p.stem}-{k}{p.suffix}"))
        k += 1
    used.add(candidate)
    return candidate


def _write_shifted(info: AudioInfo, dest: Path, offset_samples: int, length: int) -> None:
    """Write ``new[n] = old[n + offset_samples]`` for ``n`` in ``[0, length)``, zero elsewhere.

    Streams in blocks; PCM is read and written as int32 (exact), float as float64.
    """
    dtype = "float64" if info.is_float or info.bit_depth is None else "int32"
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
        lead = min(max(-offset_samples, 0), length)  # early stem: zeros first
        while written < lead:
            n = min(BLOCK_FRAMES, lead - written)
            dst.write(np.zeros((n, info.channels), dtype=dtype))
            written += n
        start = max(offset_samples, 0)
        if start < info.length_samples:
            src.seek(start)
        remaining_src = max(info.length_samples - start, 0)
        while written < length and remaining_src > 0:
            n = min(BLOCK_FRAMES, length - written, remaining_src)
            block = src.read(n, dtype=dtype, always_2d=True)
            if len(block) == 0:
                break
            dst.write(block)
            written += len(block)
            remaining_src -= len(block)
        while written < length:
            n = min(BLOCK_FRAMES, length - written)
            dst.write(np.zeros((n, info.channels), dtype=dtype))
            written += n
