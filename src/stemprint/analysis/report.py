"""The verification report: data classes, JSON output and the rich console rendering.

Invariants
----------
* ``VerificationReport.passed`` is ``not errors``: warnings and info never fail a package.
* ``nulls[i]`` is the null of ``sums[i]`` (the same :class:`~.nulltest.NullResult` object), in
  the order the relations were checked; a null decides the verdict exactly when its relation
  is ``exact``.
* ``to_dict(reproducible=True)`` holds no absolute path and no timing: the same package gives
  byte-identical JSON wherever it lies and however long the verification took (files are named
  by their label, the path relative to the package).
* :func:`print_report` never shortens a file name: each file is listed on its own line, in full,
  and the level table refers to it by number, so the table fits an 80-column terminal.
* A dialogue-gated figure is always labelled :data:`DIALOGUE_GATED_LABEL` ("dialogue-gated
  (approximation)"), in the JSON (``label``) and wherever it is printed: it is the programme's
  BS.1770-4 loudness over the gating blocks where the ``DX`` stem passes its own gates
  (absolute −70 LUFS, relative −10 LU), not Dolby Dialogue Intelligence (proprietary).
* A fold-down (``FileReport.fold_down``) is the stereo Lo/Ro of a 5.1/7.1 file by ITU-R
  BS.775-3 (``Lo = L + 0.7071·C + 0.7071·Ls``, LFE left out), measured like a file; it is
  printed as an extra row ``n Lo/Ro`` under its file.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .audio import amplitude_to_db
from .findings import SEVERITY_ORDER, Finding, to_jsonable
from .meters import FileLevels, loudness_channel_names
from .nulltest import NullResult

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

#: Version of the ``to_dict`` layout; bumped when keys change meaning.
REPORT_SCHEMA = "stemprint.verify/1"
#: How every dialogue-gated figure is named (it approximates a proprietary dialogue gate).
DIALOGUE_GATED_LABEL = "dialogue-gated (approximation)"
#: The fold-down's matrix, as named in the report.
FOLD_DOWN_METHOD = "ITU-R BS.775-3 Lo/Ro: Lo = L + 0.7071·C + 0.7071·Ls, LFE left out"


@dataclass
class DialogueGatedLoudness:
    """The programme's loudness over the blocks where the dialogue stem passes its gates.

    Attributes
    ----------
    programme
        Label of the programme file (the printmaster, the package's mix).
    dialogue
        Label of the dialogue stem (the stem named ``DX``) whose gating blocks decide.
    loudness_lufs
        ``−0.691 + 10·log10`` of the programme's mean block energy over those blocks (LUFS);
        ``-inf`` when the dialogue passes no block.
    dialogue_fraction
        Kept blocks / all gating blocks of the programme (0 … 1): how much of the programme
        holds dialogue.
    kept_blocks, blocks
        Gating blocks kept, and measured (400 ms blocks every 100 ms).
    label
        Always :data:`DIALOGUE_GATED_LABEL`.
    """

    programme: str
    dialogue: str
    loudness_lufs: float
    dialogue_fraction: float
    kept_blocks: int
    blocks: int
    label: str = DIALOGUE_GATED_LABEL

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serializable dict with stable keys."""
        return to_jsonable(
            {
                "label": self.label,
                "programme": self.programme,
                "dialogue": self.dialogue,
                "loudness_lufs": self.loudness_lufs,
                "dialogue_fraction": self.dialogue_fraction,
                "kept_blocks": self.kept_blocks,
                "blocks": self.blocks,
                "method": "programme gated by the dialogue stem's BS.1770-4 gating blocks "
                "(absolute -70 LUFS, relative -10 LU); not Dolby Dialogue Intelligence",
            }
        )


@dataclass
class FoldDown:
    """The stereo fold-down (Lo/Ro) of a 5.1 or 7.1 file, measured like a file.

    Attributes
    ----------
    source_layout
        The file's layout (``5.1``, ``7.1``).
    levels
        Levels of ``matrix(source_layout, "stereo") @ x`` (float64, never quantized).
    dialogue_gated
        Its dialogue-gated (approximation) loudness, gated by the ``DX`` stem's fold-down, for
        the programme file of a package with a ``DX`` stem.
    profile_passed
        Pass/fail against the profile's level rules, if a profile judged the file.
    """

    source_layout: str
    levels: FileLevels
    dialogue_gated: DialogueGatedLoudness | None = None
    profile_passed: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serializable dict with stable keys."""
        return to_jsonable(
            {
                "layout": "stereo",
                "source_layout": self.source_layout,
                "method": FOLD_DOWN_METHOD,
                "profile_passed": self.profile_passed,
                "levels": self.levels.to_dict(),
                "dialogue_gated": self.dialogue_gated.to_dict() if self.dialogue_gated else None,
            }
        )


@dataclass
class SumCheck:
    """One sum relation as it was checked: which parts, against what, and why.

    Attributes
    ----------
    name
        The relation's name (``stems``, ``Drums bus``).
    parts
        Labels of the files summed, in order.
    reference
        Label of the file they must sum to.
    exact
        The null decides the verdict (else it is reported for information).
    why
        Why the relation holds or why it is informational.
    source
        ``manifest`` (the manifest's ``sums``) or ``roles`` (derived from the file roles).
    null
        The null test of this relation (also in :attr:`VerificationReport.nulls`).
    """

    name: str
    parts: list[str]
    reference: str
    exact: bool
    why: str
    source: str
    null: NullResult

    def relation_dict(self) -> dict[str, Any]:
        """The relation's own keys (merged into the null's dict by the report)."""
        return {
            "name": self.name,
            "parts": list(self.parts),
            "exact": self.exact,
            "why": self.why,
            "source": self.source,
        }


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
    dialogue_gated
        The dialogue-gated (approximation) loudness of the programme file (the mix of a
        package with a ``DX`` stem), else ``None``.
    fold_down
        The stereo fold-down's levels (``verify --fold-down``, 5.1/7.1 files), else ``None``.
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
    dialogue_gated: DialogueGatedLoudness | None = None
    fold_down: FoldDown | None = None

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
                "dialogue_gated": self.dialogue_gated.to_dict() if self.dialogue_gated else None,
                "fold_down": self.fold_down.to_dict() if self.fold_down else None,
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
    sums
        The sum relations checked, each with its null (``nulls[i] is sums[i].null``).
    sums_source
        ``manifest`` (its ``sums`` key decided) or ``roles`` (stems vs pre-master and mix).
    unrelated_files
        Labels of the files that take part in no sum relation (measured, not null-tested).
    no_sums_reason
        Why nothing was null-tested, when no relation was checked.
    package_label
        ``package`` as a reproducible report names it: ``.`` for a directory, else the first
        file's name.
    """

    passed: bool
    package: str
    profile: str | None
    null_threshold_dbfs: float
    files: list[FileReport] = field(default_factory=list)
    nulls: list[NullResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    elapsed_seconds: float = 0.0
    sums: list[SumCheck] = field(default_factory=list)
    sums_source: str = "roles"
    unrelated_files: list[str] = field(default_factory=list)
    no_sums_reason: str | None = None
    package_label: str = "."

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

    def _null_dict(self, null: NullResult) -> dict[str, Any]:
        check = next((c for c in self.sums if c.null is null), None)
        return {**(check.relation_dict() if check else {}), **null.to_dict()}

    def to_dict(self, reproducible: bool = False) -> dict[str, Any]:
        """Return a JSON-serializable dict with stable keys (non-finite numbers → ``None``).

        Parameters
        ----------
        reproducible
            Leave out everything that differs between two verifications of the same package:
            ``package`` becomes :attr:`package_label`, each file's ``path`` its label, and
            ``elapsed_seconds`` is dropped. ``stemprint render`` stores this form as
            ``verification.json``.
        """
        files = [f.to_dict() for f in self.files]
        if reproducible:
            for entry in files:
                entry["path"] = entry["label"]
        data: dict[str, Any] = {
            "schema": REPORT_SCHEMA,
            "passed": self.passed,
            "package": self.package_label if reproducible else self.package,
            "profile": self.profile,
            "null_threshold_dbfs": self.null_threshold_dbfs,
            "counts": {
                "error": len(self.errors),
                "warning": len(self.warnings),
                "info": len(self.findings) - len(self.errors) - len(self.warnings),
            },
            "files": files,
            "sums_source": self.sums_source,
            "nulls": [self._null_dict(n) for n in self.nulls],
            "unrelated_files": list(self.unrelated_files),
            "no_sums_reason": self.no_sums_reason,
            "findings": [f.to_dict() for f in self.findings],
        }
        if not reproducible:
            data["elapsed_seconds"] = self.elapsed_seconds
        return to_jsonable(data)


def write_report_json(report: VerificationReport, path: Path, reproducible: bool = False) -> Path:
    """Write ``report.to_dict(reproducible)`` as JSON, atomically.

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
            json.dump(report.to_dict(reproducible), fh, indent=2, allow_nan=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def escape(text: str) -> str:
    """rich's markup escaping; rich is imported only to print (a render never prints)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    if not np.isfinite(value):
        return "-inf" if value < 0 else "inf"
    return f"{value:.{digits}f}"


def print_report(report: VerificationReport, console: Console) -> None:
    """Print the verdict first, then the sums, the files, their levels, and one line per failure.

    File names are never shortened: each file has its own line, in full (``soft_wrap``: the
    terminal wraps a name longer than the screen, nothing is cut), and the level table refers
    to the files by number.

    Parameters
    ----------
    report
        The verification report.
    console
        Where to print (``rich.console.Console``).
    """
    n_err, n_warn = len(report.errors), len(report.warnings)
    verdict = "[bold green]PASS[/]" if report.passed else "[bold red]FAIL[/]"
    summary = f"{verdict} {escape(report.package)}: {n_err} error(s), {n_warn} warning(s)"
    if report.profile:
        summary += f", profile {report.profile}"
    console.print(summary, highlight=False, soft_wrap=True)
    _print_sums(report, console)
    _print_files(report, console)
    console.print(
        "[bold]Levels[/]: peak and DC dBFS, true peak dBTP, loudness LUFS, range LU",
        highlight=False,
    )
    console.print(_levels_table(report))
    _print_channels(report, console)
    _print_dialogue_gated(report, console)
    for finding in report.findings:
        if finding.severity == "info":
            continue
        mark = "[red]✗[/]" if finding.severity == "error" else "[yellow]![/]"
        line = f"{mark} {escape(finding.message)}"
        if finding.advice:
            line += f" → {escape(finding.advice)}"
        console.print(line, highlight=False)


def _print_sums(report: VerificationReport, console: Console) -> None:
    """One line per sum relation checked; what takes part in none."""
    checks = report.sums or [
        SumCheck("stems", [], n.reference, n.decides_verdict, "", "roles", n) for n in report.nulls
    ]
    for check in checks:
        null = check.null
        subject = check.name if check.source == "roles" else f"sum {check.name!r}"
        subject += f" ({len(check.parts)} parts)" if check.parts else ""
        role = "" if check.exact else " (for information)"
        head = f"  {escape(subject)} vs {escape(check.reference)}{role}: "
        if null.skipped_reason:
            console.print(head + f"not run ({escape(null.skipped_reason)})", highlight=False)
            continue
        state = "[green]nulls[/]" if null.passed else "[red]does not null[/]"
        console.print(
            head + f"{state}: residual peak {_fmt(null.residual_peak_dbfs)} dBFS, RMS "
            f"{_fmt(null.residual_rms_dbfs)} dBFS (threshold {_fmt(null.threshold_dbfs)} dBFS)",
            highlight=False,
        )
    if not checks and report.no_sums_reason:
        console.print(f"  nothing null-tested: {escape(report.no_sums_reason)}", highlight=False)
    if report.unrelated_files and checks:
        console.print("  in no sum (measured only):", highlight=False)
        for label in report.unrelated_files:
            console.print(f"    {escape(label)}", highlight=False, soft_wrap=True)


def _print_files(report: VerificationReport, console: Console) -> None:
    """``#  label  (role, format, length)``: the label in full, details on the next line when
    the whole does not fit the console."""
    console.print("[bold]Files[/]", highlight=False)
    for number, f in enumerate(report.files, 1):
        details = (
            f"({f.role}, {f.sample_rate / 1000:g} kHz {f.channels}ch {f.subtype}, "
            f"{_fmt(f.duration_seconds, 2)} s)"
        )
        head = f"{number:>3}  {f.label}"
        if len(head) + 2 + len(details) <= console.width:
            console.print(f"{escape(head)}  {escape(details)}", highlight=False, soft_wrap=True)
        else:
            console.print(escape(head), highlight=False, soft_wrap=True)
            console.print(f"     {escape(details)}", highlight=False, soft_wrap=True)


def _levels_table(report: VerificationReport) -> Table:
    """Per-file levels keyed by the file's number in the list above (fits 80 columns)."""
    from rich import box
    from rich.table import Table

    table = Table(
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
        header_style="bold",
    )
    titles = ["#", "Peak", "TP", "LUFS", "LRA", "M max", "S max", "DC", "Clips", "Corr"]
    for title in titles + (["Profile"] if report.profile else []):
        table.add_column(title, justify="right", overflow="fold")
    for number, f in enumerate(report.files, 1):
        rows = [(str(number), f.levels, f.profile_passed)]
        if f.fold_down is not None:
            rows.append((f"{number} Lo/Ro", f.fold_down.levels, f.fold_down.profile_passed))
        for name, lv, passed in rows:
            cells = [name] + (["–"] * (len(titles) - 1) if lv is None else _level_cells(lv))
            if report.profile:
                cells.append(
                    "–" if passed is None else ("[green]ok[/]" if passed else "[red]fail[/]")
                )
            table.add_row(*cells)
    return table


def _level_cells(lv: FileLevels) -> list[str]:
    dc = max((abs(d) for d in lv.dc_offset_per_channel), default=0.0)
    return [
        _fmt(lv.sample_peak_dbfs),
        _fmt(lv.true_peak_dbtp),
        _fmt(lv.loudness_lufs),
        _fmt(lv.loudness_range_lu),
        _fmt(lv.max_momentary_lufs),
        _fmt(lv.max_short_term_lufs),
        _fmt(amplitude_to_db(dc)),
        str(lv.clipped_run_count),
        _fmt(lv.channel_correlation, 2),
    ]


def _print_channels(report: VerificationReport, console: Console) -> None:
    """True peak per channel of every file with more than two channels, named by layout."""
    for number, f in enumerate(report.files, 1):
        lv = f.levels
        if lv is None or f.channels <= 2:
            continue
        names = loudness_channel_names(f.channels) or ()
        if len(names) != len(lv.true_peak_dbtp_per_channel):
            names = tuple(str(k + 1) for k in range(len(lv.true_peak_dbtp_per_channel)))
        peaks = " ".join(
            f"{n} {_fmt(p)}" for n, p in zip(names, lv.true_peak_dbtp_per_channel, strict=True)
        )
        weighting = _weighting_text(lv)
        console.print(
            f"  {number} ({lv.layout or f'{f.channels} ch'}, loudness: {weighting}) "
            f"true peak dBTP: {peaks}",
            highlight=False,
            soft_wrap=True,
        )


def _weighting_text(lv: FileLevels) -> str:
    """How the loudness weighed the channels, in words."""
    if lv.layout is None:
        return "no layout: every channel 1.0"
    weights = lv.loudness_channel_weights
    parts = [
        "LFE excluded" if 0.0 in weights else "",
        "surrounds +1.5 dB" if 1.41 in weights else "",
    ]
    return ", ".join(p for p in parts if p) or "every channel 1.0"


def _print_dialogue_gated(report: VerificationReport, console: Console) -> None:
    """One line per programme with a dialogue-gated (approximation) figure."""
    for f in report.files:
        dg = f.dialogue_gated
        if dg is None:
            continue
        line = (
            f"{DIALOGUE_GATED_LABEL.capitalize()} loudness of {escape(f.label)}: "
            f"{_fmt(dg.loudness_lufs)} LUFS, gated by {escape(dg.dialogue)} "
            f"(dialogue in {100 * dg.dialogue_fraction:.0f} % of the programme)"
        )
        fold = f.fold_down.dialogue_gated if f.fold_down is not None else None
        if fold is not None:
            line += f"; Lo/Ro fold-down {_fmt(fold.loudness_lufs)} LUFS"
        console.print(line, highlight=False, soft_wrap=True)
