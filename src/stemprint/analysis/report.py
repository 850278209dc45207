"""The verification report: data classes, JSON output and the rich console rendering."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .findings import SEVERITY_ORDER, Finding, to_jsonable
from .meters import FileLevels
from .nulltest import NullResult

#: Version of the ``to_dict`` layout; bumped when keys change meaning.
REPORT_SCHEMA = "stemprint.verify/1"


@dataclass
class FileReport:
    """Facts about one file of the package.

    Attributes
    ----------
    path
        Absolute path.
    label
        Path relative to the package (as used in messages).
    role
        ``mix``, ``premaster``, ``stem`` or another manifest role.
    name
        Display name.
    sample_rate
        Hz.
    channels
        Channel count.
    length_samples
        Samples per channel.
    format, subtype
        libsndfile container and encoding (``WAV``, ``PCM_24``).
    bit_depth
        Bits per sample (``None`` for compressed encodings).
    is_float
        Floating-point samples.
    levels
        Measured levels.
    profile_passed
        Pass/fail of this file against the delivery profile, if one was given.
    """

    path: str
    label: str
    role: str
    name: str
    sample_rate: int
    channels: int
    length_samples: int
    format: str
    subtype: str
    bit_depth: int | None
    is_float: bool
    levels: FileLevels | None = None
    profile_passed: bool | None = None

    @property
    def duration_seconds(self) -> float:
        """Length in seconds."""
        return self.length_samples / self.sample_rate if self.sample_rate else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serializable dict with stable keys."""
        return to_jsonable(
            {
                "path": self.path,
                "label": self.label,
                "role": self.role,
                "name": self.name,
                "sample_rate": self.sample_rate,
                "channels": self.channels,
                "length_samples": self.length_samples,
                "duration_seconds": self.duration_seconds,
                "format": self.format,
                "subtype": self.subtype,
                "bit_depth": self.bit_depth,
                "is_float": self.is_float,
                "profile_passed": self.profile_passed,
                "levels": self.levels.to_dict() if self.levels else None,
            }
        )


@dataclass
class VerificationReport:
    """Everything :func:`~stemprint.analysis.verify.verify_package` found.

    Attributes
    ----------
    passed
        True when there is no error finding.
    package
        The package directory or the first input.
    profile
        Name of the delivery profile checked, if any.
    null_threshold_dbfs
        Pass threshold of the null test (dBFS).
    files
        Per-file facts and levels (mix, pre-master, stems, others).
    nulls
        Null tests run (the pre-master null first when there is one).
    findings
        Every finding, errors first.
    elapsed_seconds
        Wall time of the verification (s).
    """

    passed: bool
    package: str
    profile: str | None
    null_threshold_dbfs: float
    files: list[FileReport] = field(default_factory=list)
    nulls: list[NullResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    elapsed_seconds: float = 0.0

    @property
    def errors(self) -> list[Finding]:
        """Findings of severity ``error``."""
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        """Findings of severity ``warning``."""
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def verdict_null(self) -> NullResult | None:
        """The null test that decides the verdict (pre-master if present, else mix)."""
        for n in self.nulls:
            if n.decides_verdict:
                return n
        return None

    def file(self, label: str) -> FileReport:
        """Return the file report with this label (or file name)."""
        for f in self.files:
            if f.label == label or Path(f.label).name == label:
                return f
        raise KeyError(label)

    def sort_findings(self) -> None:
        """Order findings errors → warnings → info, keeping the order within a severity."""
        self.findings.sort(key=lambda f: SEVERITY_ORDER[f.severity])

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serializable dict with stable keys (non-finite numbers → ``None``)."""
        return to_jsonable(
            {
                "schema": REPORT_SCHEMA,
                "passed": self.passed,
                "package": self.package,
                "profile": self.profile,
                "null_threshold_dbfs": self.null_threshold_dbfs,
                "counts": {
                    "error": len(self.errors),
                    "warning": len(self.warnings),
                    "info": len(self.findings) - len(self.errors) - len(self.warnings),
                },
                "files": [f.to_dict() for f in self.files],
                "nulls": [n.to_dict() for n in self.nulls],
                "findings": [f.to_dict() for f in self.findings],
                "elapsed_seconds": self.elapsed_seconds,
            }
        )


def write_report_json(report: VerificationReport, path: Path) -> Path:
    """Write ``report.to_dict()`` as JSON, atomically.

    The JSON goes to a temporary file in the destination directory, is flushed to disk, then
    renamed over ``path`` with :func:`os.replace`, so readers never see a half-written report.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(report.to_dict(), fh, indent=2, allow_nan=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    if not np.isfinite(value):
        return "-inf" if value < 0 else "inf"
    return f"{value:.{digits}f}"


def print_report(report: VerificationReport, console: Console) -> None:
    """Print the verdict first, then a table of per-file levels, then one line per failure.

    Parameters
    ----------
    report
        The verification report.
    console
        Where to print (``rich.console.Console``).
    """
    n_err, n_warn = len(report.errors), len(report.warnings)
    if report.passed:
        verdict = "[bold green]PASS[/]"
    else:
        verdict = "[bold red]FAIL[/]"
    summary = f"{verdict} {escape(report.package)}: {n_err} error(s), {n_warn} warning(s)"
    if report.profile:
        summary += f", profile {report.profile}"
    console.print(summary, highlight=False)
    for null in report.nulls:
        if null.skipped_reason:
            console.print(
                f"  null vs {escape(null.reference)}: not run ({null.skipped_reason})",
                highlight=False,
            )
            continue
        state = "[green]nulls[/]" if null.passed else "[red]does not null[/]"
        role = "" if null.decides_verdict else " (for information)"
        console.print(
            f"  stems vs {escape(null.reference)}{role}: {state}: residual peak "
            f"{_fmt(null.residual_peak_dbfs)} dBFS, RMS {_fmt(null.residual_rms_dbfs)} dBFS "
            f"(threshold {_fmt(null.threshold_dbfs)} dBFS)",
            highlight=False,
        )

    table = Table(title="Levels", show_lines=False, header_style="bold")
    for title, justify in [
        ("File", "left"),
        ("Role", "left"),
        ("Format", "left"),
        ("Length s", "right"),
        ("Peak dBFS", "right"),
        ("TP dBTP", "right"),
        ("LUFS", "right"),
        ("LRA LU", "right"),
        ("Max M", "right"),
        ("Max S", "right"),
        ("DC", "right"),
        ("Clips", "right"),
        ("Corr", "right"),
    ]:
        table.add_column(title, justify=justify)  # type: ignore[arg-type]
    if report.profile:
        table.add_column("Profile", justify="center")
    for f in report.files:
        lv = f.levels
        fmt = f"{f.sample_rate / 1000:g} kHz {f.channels}ch {f.subtype}"
        cells = [escape(f.label), f.role, fmt, _fmt(f.duration_seconds, 2)]
        if lv is None:
            cells += ["–"] * 9
        else:
            dc = max((abs(d) for d in lv.dc_offset_per_channel), default=0.0)
            cells += [
                _fmt(lv.sample_peak_dbfs),
                _fmt(lv.true_peak_dbtp),
                _fmt(lv.loudness_lufs),
                _fmt(lv.loudness_range_lu),
                _fmt(lv.max_momentary_lufs),
                _fmt(lv.max_short_term_lufs),
                f"{dc:.1e}",
                str(lv.clipped_run_count),
                _fmt(lv.channel_correlation, 2),
            ]
        if report.profile:
            cells.append(
                "–"
                if f.profile_passed is None
                else ("[green]ok[/]" if f.profile_passed else "[red]fail[/]")
            )
        table.add_row(*cells)
    console.print(table)

    for finding in report.findings:
        if finding.severity == "info":
            continue
        mark = "[red]✗[/]" if finding.severity == "error" else "[yellow]![/]"
        line = f"{mark} {escape(finding.message)}"
        if finding.advice:
            line += f" → {escape(finding.advice)}"
        console.print(line, highlight=False)
