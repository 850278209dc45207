"""DAW project import: DAWproject and REAPER ``.rpp`` → a stemprint session and an import report.

Invariants
----------
- A project file is data: it is parsed (``defusedxml`` for XML, a tokenizer for RPP), never
  executed; a ZIP is read member by member with path and size checks; nothing inside a project
  chooses where stemprint writes (embedded files go into ``extract_dir`` under names stemprint
  makes).
- Each reader returns plain session data (format 1) whose clip ``file`` paths are absolute; the
  session is validated here, so a reader can never produce a session the engine would reject
  silently.
- Every difference between what the DAW plays and what the session renders is a finding in the
  :class:`~stemprint.importers.report.ImportReport`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from stemprint.errors import InputError, ProjectError
from stemprint.importers.report import CODES, Finding, ImportReport
from stemprint.model.session import Session

if TYPE_CHECKING:
    from stemprint.model.load import LoadedSession

PROJECT_SUFFIXES = {".dawproject": "dawproject", ".rpp": "rpp", ".rpp-bak": "rpp"}
"""File suffixes (lower case) of the project formats stemprint imports, and their format."""

__all__ = [
    "CODES",
    "PROJECT_SUFFIXES",
    "Finding",
    "ImportReport",
    "PluginMap",
    "check_strict",
    "import_project",
    "is_project",
    "load_plugin_map",
    "open_project",
    "read_project",
    "validate_imported",
]


def is_project(path: str | Path) -> bool:
    """True when ``path`` names a DAW project stemprint imports (by its suffix)."""
    return Path(path).suffix.lower() in PROJECT_SUFFIXES


def read_project(
    path: str | Path,
    *,
    extract_dir: Path,
    media_root: str | Path | None = None,
    plugin_map: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], ImportReport]:
    """Read a project into session data (absolute clip paths) and its import report."""
    project = Path(path)
    kind = PROJECT_SUFFIXES.get(project.suffix.lower())
    if kind is None:
        raise ProjectError(
            f"not a DAW project stemprint can import (suffix {project.suffix!r})",
            file=str(project),
            fix="give a .dawproject or a REAPER .rpp file",
        )
    if not project.is_file():
        raise ProjectError(
            "project file not found", file=str(project), fix="check the path and the name"
        )
    report = ImportReport(project=str(project), format=kind)
    root = Path(media_root) if media_root is not None else None
    if plugin_map is not None and not isinstance(plugin_map, PluginMap):
        plugin_map = PluginMap(plugin_map)
    if kind == "rpp":
        from stemprint.importers.rpp import read_rpp

        data = read_rpp(project, report, media_root=root, plugin_map=plugin_map)
    else:
        from stemprint.importers.dawproject import read_dawproject

        data = read_dawproject(
            project, report, extract_dir=extract_dir, media_root=root, plugin_map=plugin_map
        )
    return data, report


def import_project(
    path: str | Path,
    *,
    media_root: str | Path | None = None,
    plugin_map: Mapping[str, str] | None = None,
    extract_dir: str | Path | None = None,
) -> tuple[Session, ImportReport]:
    """Import a DAWproject or REAPER project as a stemprint session.

    Parameters
    ----------
    path
        The ``.dawproject`` or ``.rpp`` file.
    media_root
        A folder searched by basename for media not found at its recorded path.
    plugin_map
        Plug-in identifier or name → plug-in binary (``.vst3``); mapped plug-ins become
        ``vst3`` inserts (rendering them needs ``--allow-plugins``).
    extract_dir
        Where media and plug-in states embedded in a DAWproject are extracted (default: a new
        temporary folder, kept; its path is in the clip paths).

    Returns
    -------
    tuple
        The validated :class:`~stemprint.model.session.Session` (clip paths absolute) and the
        :class:`~stemprint.importers.report.ImportReport`.

    Raises
    ------
    ProjectError
        The project is missing, unreadable, corrupt or hostile.
    """
    target = Path(extract_dir) if extract_dir is not None else None
    if target is None:
        target = Path(tempfile.mkdtemp(prefix="stemprint-import-"))
    data, report = read_project(
        path, extract_dir=target, media_root=media_root, plugin_map=plugin_map
    )
    return validate_imported(data, Path(path)), report


def validate_imported(data: dict[str, Any], project: Path) -> Session:
    """The reader's session data as a :class:`Session` (a failure here is a reader bug)."""
    try:
        return Session.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ProjectError(
            f"the imported session is invalid at {where}: {first['msg']}",
            file=str(project),
            field=where,
            fix="please report this project: the importer produced a session it should not",
        ) from None


def check_strict(report: ImportReport) -> None:
    """``--strict``: refuse an import that changes the audio (any finding with an effect)."""
    changed = report.changes_audio()
    if not changed:
        return
    codes = sorted({f.code for f in changed})
    raise ProjectError(
        f"the import changes the audio ({len(changed)} findings: {', '.join(codes)})",
        file=report.project,
        field=changed[0].where,
        fix="write the import report with --report FILE and fix those in the DAW (freeze or "
        "bounce instrument tracks, collect media, install plug-ins), or drop --strict",
    )


class PluginMap(Mapping[str, str]):
    """Plug-in identifier or name → plug-in file, looked up case-insensitively."""

    def __init__(self, entries: Mapping[str, str] | None = None) -> None:
        self._entries = {k.strip().lower(): v for k, v in (entries or {}).items()}

    def __getitem__(self, key: str) -> str:
        return self._entries[key.strip().lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


def load_plugin_map(path: str | Path | None) -> PluginMap:
    """Read a plug-in map: a YAML mapping of plug-in identifier or name → ``.vst3`` path.

    Identifiers are what the project stores (a VST3 class UID, a REAPER plug-in name); relative
    paths are relative to the map file. Keys are matched case-insensitively.
    """
    if path is None:
        return PluginMap()
    where = Path(path)
    try:
        data = yaml.safe_load(where.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read the plug-in map: {exc}", file=str(where)) from None
    except yaml.YAMLError as exc:
        raise InputError(f"the plug-in map is not YAML: {exc}", file=str(where)) from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise InputError(
            "the plug-in map must map plug-in names or IDs to plug-in files",
            file=str(where),
            fix='write lines such as `"Pro-Q 3": /usr/lib/vst3/FabFilter Pro-Q 3.vst3`',
        )
    return PluginMap({k: str((where.parent / v).expanduser()) for k, v in data.items()})


@contextmanager
def open_project(
    path: str | Path,
    *,
    media_root: str | Path | None = None,
    plugin_map: Mapping[str, str] | None = None,
    strict: bool = False,
) -> Iterator[tuple[LoadedSession, ImportReport]]:
    """Import a project for one render or validation; extracted media live until the exit.

    Yields
    ------
    tuple
        A :class:`~stemprint.model.load.LoadedSession` (its ``path`` is the project, clip paths
        absolute) and the import report.
    """
    from stemprint.model.load import LoadedSession

    project = Path(path).resolve()
    with tempfile.TemporaryDirectory(prefix="stemprint-import-") as extract:
        data, report = read_project(
            project, extract_dir=Path(extract), media_root=media_root, plugin_map=plugin_map
        )
        if strict:
            check_strict(report)
        yield LoadedSession.from_session(validate_imported(data, project), project), report
