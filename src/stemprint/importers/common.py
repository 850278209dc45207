"""What both importers need: unique route names, media lookup, gain automation in dB.

Formulas
--------
- Fader and send gains arrive as linear factors ``g``: ``gain_db = 20·log10(g)``; ``g = 0`` is
  written as :data:`SILENT_DB` (−144 dB, below 24-bit resolution) so the value stays finite.
- A gain-linear automation ramp ``g(t) = g0 + (g1 − g0)·u`` is not linear in dB, and stemprint's
  ``gain_db`` lanes ramp linearly in dB. :func:`gain_points_to_db` splits each ramp at its
  midpoint until the dB-linear interpolation stays within ``tolerance_db`` (0.05 dB) of the
  gain-linear curve at the quarter points, or within −120 dBFS in amplitude near silence.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath, PureWindowsPath

from stemprint.importers.report import ImportReport

SILENT_DB = -144.0
"""dB written for a gain of exactly 0 (finite, below 24-bit resolution)."""

_AMPLITUDE_FLOOR = 1e-6  # −120 dBFS: errors below this are inaudible, whatever they are in dB


def gain_to_db(gain_linear: float) -> float:
    """``20·log10(g)``, :data:`SILENT_DB` for ``g ≤ 0`` (callers report negative gains)."""
    if gain_linear <= 0 or not math.isfinite(gain_linear):
        return SILENT_DB if gain_linear <= 0 else 0.0
    return max(20.0 * math.log10(gain_linear), SILENT_DB)


def _db_interp_error(t0: float, g0: float, t1: float, g1: float) -> float:
    """Worst error (dB, or 0 if inaudible) of a dB-linear segment against the gain-linear one."""
    d0, d1 = gain_to_db(g0), gain_to_db(g1)
    worst = 0.0
    for u in (0.25, 0.5, 0.75):
        exact = g0 + (g1 - g0) * u
        approx = 10.0 ** ((d0 + (d1 - d0) * u) / 20.0)
        if abs(exact - approx) <= _AMPLITUDE_FLOOR:
            continue
        worst = max(worst, abs(gain_to_db(exact) - gain_to_db(approx)))
    return worst


def gain_points_to_db(
    points: Iterable[tuple[float, float]],
    interpolation: str = "linear",
    tolerance_db: float = 0.05,
    max_depth: int = 16,
) -> tuple[list[tuple[float, float]], bool]:
    """Gain-linear breakpoints ``(seconds, gain)`` → dB-linear ``(seconds, gain_db)`` points.

    Parameters
    ----------
    points
        Time-ordered ``(seconds, linear gain)`` pairs.
    interpolation
        ``linear`` (gain-linear ramps, densified) or ``hold`` (steps, converted point by point).
    tolerance_db
        Largest allowed difference between the dB-linear lane and the gain-linear ramp.
    max_depth
        Bisection depth cap per segment (2**16 points at most).

    Returns
    -------
    tuple
        The dB points and whether any were added (report ``AUTOMATION_DENSIFIED``).
    """
    given = list(points)
    if interpolation == "hold" or len(given) < 2:
        return [(t, gain_to_db(g)) for t, g in given], False
    out: list[tuple[float, float]] = [(given[0][0], gain_to_db(given[0][1]))]
    added = False

    def split(t0: float, g0: float, t1: float, g1: float, depth: int) -> None:
        nonlocal added
        if depth < max_depth and t1 > t0 and _db_interp_error(t0, g0, t1, g1) > tolerance_db:
            tm, gm = (t0 + t1) / 2.0, (g0 + g1) / 2.0
            added = True
            split(t0, g0, tm, gm, depth + 1)
            split(tm, gm, t1, g1, depth + 1)
            return
        out.append((t1, gain_to_db(g1)))

    for (t0, g0), (t1, g1) in zip(given, given[1:], strict=False):
        split(t0, g0, t1, g1, 0)
    return out, added


class RouteNames:
    """Unique, valid route names in one name space (tracks, or buses).

    A DAW allows empty, repeated, padded names and ``master``; a stemprint session does not.
    Each change is reported (``NAME_CHANGED``, effect none).
    """

    def __init__(self, report: ImportReport, kind: str) -> None:
        self._report = report
        self._kind = kind
        self._used: set[str] = set()

    def take(self, name: str, fallback: str) -> str:
        """A unique valid name for ``name`` (``fallback`` when it is empty)."""
        wanted = " ".join(name.split()) or fallback
        if wanted.lower() == "master":
            wanted = f"{wanted} (DAW)"
        unique, n = wanted, 2
        while unique in self._used:
            unique, n = f"{wanted} ({n})", n + 1
        self._used.add(unique)
        if unique != name:
            self._report.add(
                "NAME_CHANGED",
                unique,
                "none",
                f"{self._kind} name {name!r} is empty, repeated, padded or reserved",
                f"named {unique!r}",
            )
        return unique


class MediaResolver:
    """Find a project's media: at its path, beside the project, in extra folders, by name.

    Parameters
    ----------
    project_dir
        The project file's folder (relative media paths start here).
    folders
        More folders to try a relative path in (REAPER's record paths), in order.
    media_root
        ``--media-root``: a folder searched recursively by basename, last.
    report
        Receives ``MEDIA_FOUND_BY_NAME`` and ``MISSING_MEDIA`` findings.
    """

    def __init__(
        self,
        project_dir: Path,
        report: ImportReport,
        folders: Iterable[Path] = (),
        media_root: Path | None = None,
    ) -> None:
        self._project_dir = project_dir
        self._folders = [project_dir, *folders]
        self._media_root = media_root
        self._report = report
        self._by_name: dict[str, list[Path]] | None = None

    def _index(self) -> dict[str, list[Path]]:
        if self._by_name is None:
            self._by_name = {}
            if self._media_root is not None and self._media_root.is_dir():
                for root, _dirs, files in os.walk(self._media_root):
                    for name in sorted(files):
                        self._by_name.setdefault(name.lower(), []).append(Path(root) / name)
        return self._by_name

    def resolve(self, recorded: str, where: str) -> Path | None:
        """The file ``recorded`` names, or ``None`` (a ``MISSING_MEDIA`` finding is added)."""
        text = recorded.replace("\\", "/")
        windows = PureWindowsPath(recorded)
        is_absolute = text.startswith("/") or bool(windows.drive)
        if is_absolute:
            candidate = Path(text)
            if not windows.drive and candidate.is_file():
                return candidate.resolve()
        else:
            for folder in self._folders:
                candidate = folder / PurePosixPath(text)
                if candidate.is_file():
                    return candidate.resolve()
        base = PurePosixPath(text).name
        for folder in self._folders:
            if (folder / base).is_file():
                return self._by_basename(recorded, (folder / base).resolve(), where)
        found = self._index().get(base.lower(), [])
        if found:
            return self._by_basename(recorded, found[0].resolve(), where)
        self._report.add(
            "MISSING_MEDIA",
            where,
            "dropped",
            f"media file {recorded!r} not found",
            "clip left out; put the file beside the project or pass --media-root DIR",
        )
        return None

    def _by_basename(self, recorded: str, path: Path, where: str) -> Path:
        self._report.add(
            "MEDIA_FOUND_BY_NAME",
            where,
            "none",
            f"media file {recorded!r} is not at its recorded path",
            f"used {path}",
        )
        return path
