"""The package report: one self-contained HTML page people look at and listen to.

``write_package_report(package, manifest, verification)`` writes ``report.html`` into a package
folder (``stemprint render`` does it by default; ``stemprint report PACKAGE`` for any package).

Invariants
----------
* One file that works from ``file://`` with no network at all: styles, script, plots and audio
  are inside it, and its Content-Security-Policy forbids every connection (:mod:`.html`).
* Every figure on the page is the verification's or the manifest's (:mod:`.inputs`,
  :mod:`.markup`); the audio is read once for the drawings and the embedded player
  (:mod:`.analysis`, :mod:`.embed`).
* Deterministic: the same package gives the same bytes (:mod:`.plots`, :mod:`.routing`,
  :mod:`.png`); the page holds no date and no absolute path.
* The report is written to a temporary file beside ``out`` and renamed over it, so a reader
  never sees half a page.

Modules: :mod:`.inputs` (what the page is built from), :mod:`.analysis` (the audio pass),
:mod:`.embed` (the player's audio), :mod:`.plots` (matplotlib), :mod:`.figures` (the
helper processes that draw them), :mod:`.png`,
:mod:`.routing` (the diagram), :mod:`.player` and :mod:`.assets` (player markup, CSS and
script), :mod:`.html` (the page).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stemprint.errors import InputError

from .embed import AUDIO_MODES, EMBED_CAP_BYTES

if TYPE_CHECKING:
    from .analysis import HopSource
    from .figures import FigureHelpers, Job

__all__ = ["AUDIO_MODES", "EMBED_CAP_BYTES", "REPORT_NAME", "write_package_report"]

REPORT_NAME = "report.html"
"""File name of the report inside a package."""


def write_package_report(
    package: Path,
    manifest: dict[str, Any] | None,
    verification: Any | None,
    out: Path | None = None,
    audio: str = "embed",
    *,
    cap_bytes: int = EMBED_CAP_BYTES,
    hops: HopSource | None = None,
) -> Path:
    """Write the report of ``package`` (default ``package/report.html``); return its path.

    Parameters
    ----------
    package
        A package folder, or a ZIP made by ``stemprint pack`` (unpacked safely while the
        report is built; its report defaults to ``NAME.report.html`` beside it).
    manifest
        The package's manifest; ``None`` reads ``manifest.json`` when there is one.
    verification
        Its :class:`~stemprint.analysis.report.VerificationReport` or that report's
        ``to_dict(reproducible=True)``; ``None`` uses ``verification.json`` when the
        manifest's SHA-256s prove it current, else verifies the package for the report.
    out
        Where to write the page.
    audio
        ``embed`` (FLAC in the page, with fallbacks, :mod:`.embed`), ``lossless`` (FLAC, or the
        package's own files past the cap), ``link`` (the package's own files) or ``none`` (no
        player).
    cap_bytes
        Largest embedded audio (base64 bytes) before the fallback.
    hops
        The loudness hops the verification already measured, by ``(path, channels)``
        (``stemprint render`` passes its live meters'): the loudness curves are drawn from
        them, the same values, instead of K-weighting those files again.

    Raises
    ------
    stemprint.errors.InputError
        ``package`` is neither a folder nor a ZIP, ``audio`` is unknown, or ``link`` was asked
        for a ZIP.
    """
    package = Path(package)
    if audio not in AUDIO_MODES:
        raise InputError(
            f"unknown audio mode {audio!r}", field="audio", fix="use embed, lossless, link or none"
        )
    if package.is_file() and package.suffix.lower() == ".zip":
        return _from_archive(package, out, audio, cap_bytes)
    if not package.is_dir():
        raise InputError(
            "not a package folder", file=str(package), fix="give the folder `render` wrote"
        )
    target = Path(out) if out is not None else package / REPORT_NAME
    text = build_report(package, manifest, verification, target, audio, cap_bytes, hops)
    return _write(target, text)


def _from_archive(archive: Path, out: Path | None, audio: str, cap_bytes: int) -> Path:
    from stemprint.analysis.archive_input import unpacked

    if audio == "link":
        raise InputError(
            "--audio link needs the package folder, not a ZIP",
            file=str(archive),
            fix="unpack it, or use --audio embed",
        )
    target = Path(out) if out is not None else archive.with_name(archive.stem + ".report.html")
    with unpacked(archive) as found:
        text = build_report(found.folder, None, None, target, audio, cap_bytes)
    return _write(target, text)


def build_report(
    package: Path,
    manifest: dict[str, Any] | None,
    verification: Any | None,
    out: Path,
    audio: str = "embed",
    cap_bytes: int = EMBED_CAP_BYTES,
    hops: HopSource | None = None,
) -> str:
    """The report's HTML (see :func:`write_package_report`)."""
    from .analysis import analyse
    from .embed import finish_audio, plan_audio
    from .figures import FigureHelpers
    from .inputs import gather

    inputs = gather(package, manifest, verification)
    # Forked before the pass: they import matplotlib meanwhile (a figure per file, and one of
    # the residuals when files sum to others).
    helpers = FigureHelpers(len(inputs.files) + bool(inputs.relations))
    try:
        plan = plan_audio(inputs, audio, out, cap_bytes)
        try:
            analysis = analyse(inputs, plan.sinks, hops=hops)
            player = finish_audio(plan, out, cap_bytes)
        finally:
            plan.cancel()
        figures, residuals = _figures(helpers, inputs, analysis)
    finally:
        helpers.close()
    from .html import page
    from .routing import routing_svg

    routing = routing_svg(inputs.files, inputs.manifest)
    return page(inputs, analysis, player, figures, residuals, routing)


def _figures(
    helpers: FigureHelpers, inputs: Any, analysis: Any
) -> tuple[dict[str, str], str | None]:
    """Every file's figure by label (in file order, after its true-peak note) and the
    residual figure (``None`` without residuals)."""
    files = [(f, analysis.files[f.label]) for f in inputs.files if f.label in analysis.files]
    jobs: list[Job] = [
        ("file", (curves, f.channel_names, f.sample_rate, f.length, f.colour,
                  (f.facts.get("levels") or {}).get("loudness_lufs"), f"f{f.index}"))
        for f, curves in files
    ]  # fmt: skip
    if analysis.residuals:
        threshold = float(inputs.verification.get("null_threshold_dbfs") or -60.0)
        curves = [analysis.residuals[k] for k in sorted(analysis.residuals)]
        jobs.append(("residual", (curves, inputs.sample_rate, threshold, "residual")))
    drawn = helpers.draw(jobs)
    figures = {
        f.label: _peak_note(any(m.size for m in curves.marks)) + svg
        for (f, curves), svg in zip(files, drawn[: len(files)], strict=True)
    }
    return figures, drawn[len(files)] if analysis.residuals else None


def _peak_note(marked: bool) -> str:
    if marked:
        return (
            '<p class="note"><span class="red">▼</span> marks where the true peak reaches '
            "-1 dBTP.</p>"
        )
    return '<p class="note">The true peak stays below -1 dBTP everywhere.</p>'


def _write(target: Path, text: str) -> Path:
    """Write ``text`` to ``target`` through a temporary file in its folder."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a report is for reading
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
