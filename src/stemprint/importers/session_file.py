"""Publish an import: the session YAML, the media extracted from the project, the report.

Invariants
----------
- Nothing the user owns is overwritten: an existing session file is replaced only with
  ``force`` and only when stemprint's import wrote it (its first line says so); an existing
  media folder only when it carries :data:`MEDIA_MARKER`.
- Everything is written under a temporary name and renamed into place, the media folder first
  and the session last, so a failure leaves no half-written session that points at nothing.
- Paths in the written session are relative to its folder when the file is inside it (the
  extracted media), absolute otherwise (media the project keeps elsewhere, plug-ins).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from stemprint._version import __version__
from stemprint.errors import InputError
from stemprint.importers.report import ImportReport

HEADER = "# stemprint session imported from {project} by stemprint {version}\n"
"""First line of every session file an import writes (``--force`` replaces only these)."""

MEDIA_MARKER = ".stemprint-import"
"""File inside a media folder an import wrote (``--force`` replaces only such folders)."""


def media_dir_for(session_path: Path) -> Path:
    """Where an import puts the media it extracts: ``<session name>.media`` beside it."""
    return session_path.with_name(session_path.stem + ".media")


def check_targets(session_path: Path, force: bool) -> None:
    """Refuse to overwrite a session file or media folder the import did not write."""
    if session_path.exists():
        if not force:
            raise InputError(
                f"{session_path} exists",
                field="-o/--output",
                fix="choose a new file name, or pass --force to replace an earlier import",
            )
        first = _first_line(session_path)
        if not first.startswith("# stemprint session imported from "):
            raise InputError(
                f"{session_path} exists and was not written by `stemprint import`; --force "
                "replaces only an earlier import",
                field="-o/--output",
                fix="choose a new file name (your session file is left as it is)",
            )
    media = media_dir_for(session_path)
    if media.exists() and not (media / MEDIA_MARKER).is_file():
        raise InputError(
            f"{media} exists and was not written by `stemprint import`",
            field="-o/--output",
            fix="move that folder away, or choose another session file name",
        )


def _first_line(path: Path) -> str:
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return handle.readline()
    except OSError:
        return ""


@contextmanager
def staging(session_path: Path) -> Iterator[Path]:
    """A hidden folder beside the session for the extracted media; removed unless published."""
    session_path.parent.mkdir(parents=True, exist_ok=True)
    folder = session_path.parent / f".{session_path.stem}.media.import-{os.getpid()}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    try:
        yield folder
    finally:
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)


def publish(
    data: dict[str, Any],
    report: ImportReport,
    session_path: Path,
    staged: Path,
    report_path: Path | None = None,
) -> Path:
    """Move the staged media into place and write the session (and the report) atomically.

    Returns
    -------
    pathlib.Path
        The session file written.
    """
    media = media_dir_for(session_path)
    has_media = any(p.name != MEDIA_MARKER for p in staged.iterdir())
    relocated = _relocate(data, staged, media, session_path.parent)
    report.media = [str(_moved(Path(p), staged, media)) for p in report.media]
    if has_media:
        (staged / MEDIA_MARKER).write_text("extracted by `stemprint import`\n", "utf-8")
        if media.exists():
            shutil.rmtree(media)
        os.replace(staged, media)
    header = HEADER.format(project=Path(report.project).name, version=__version__)
    text = header + yaml.safe_dump(relocated, sort_keys=False, allow_unicode=True, width=100)
    _write_atomic(session_path, text)
    if report_path is not None:
        _write_atomic(report_path, json.dumps(report.to_dict(), indent=2) + "\n")
    return session_path


def write_report(report: ImportReport, path: Path) -> None:
    """Write the import report as JSON, atomically."""
    _write_atomic(path, json.dumps(report.to_dict(), indent=2) + "\n")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _moved(path: Path, staged: Path, media: Path) -> Path:
    try:
        return media / path.relative_to(staged)
    except ValueError:
        return path


def _relative(path: Path, base: Path) -> str:
    """Relative to the session folder when inside it (the session moves with its media),
    absolute otherwise (media and plug-ins that stay where they are)."""
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path)


def _relocate(data: dict[str, Any], staged: Path, media: Path, base: Path) -> dict[str, Any]:
    """A copy of the session data with every file path moved out of staging, made relative."""

    def fix(value: str) -> str:
        return _relative(_moved(Path(value), staged, media), base)

    out = json.loads(json.dumps(data))  # a deep copy of plain data
    for track in out.get("tracks", []):
        for clip in track.get("clips", []):
            clip["file"] = fix(clip["file"])
    strips = [*out.get("tracks", []), *out.get("buses", []), out.get("master", {})]
    for strip in strips:
        for insert in strip.get("inserts", []):
            for key in ("path", "preset", "impulse_response_filename"):
                if isinstance(insert.get(key), str):
                    insert[key] = fix(insert[key])
    return out
