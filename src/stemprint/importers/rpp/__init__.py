"""REAPER project (``.rpp``) → stemprint session data (format 1) and import findings.

:func:`read_rpp` tokenizes the file (:mod:`.tokens`), reads every ``<TRACK`` into a route
(:mod:`.tracks`, with its items in :mod:`.items`, envelopes in :mod:`.envelopes` and FX chain in
:mod:`.fx`), resolves folders, receives and the main outputs, prunes what feeds nothing and builds
the session dict (:mod:`.session`). Shared state and small parsing helpers are in
:mod:`.context`.

Invariants
----------
- Every clip ``file`` is an absolute path; every media path used is in ``report.media``.
- Nothing REAPER would play is left out without a finding whose effect is ``dropped``.
- A damaged project raises :class:`~stemprint.errors.ProjectError` with the file and line.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stemprint.importers.report import ImportReport
from stemprint.importers.rpp.context import MASTER as MASTER
from stemprint.importers.rpp.context import _Context
from stemprint.importers.rpp.session import _assemble, _facts, _master, _project_settings
from stemprint.importers.rpp.tokens import parse_project, read_project_text
from stemprint.importers.rpp.tracks import (
    _break_cycles,
    _folders,
    _main_output,
    _pan_findings,
    _prune,
    _read_track,
    _receives,
)

# -- entry point -------------------------------------------------------------------------------


def read_rpp(
    path: Path,
    report: ImportReport,
    *,
    media_root: Path | None = None,
    plugin_map: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Read a REAPER project into stemprint session data (clip paths absolute).

    Parameters
    ----------
    path
        The ``.rpp`` (or ``.rpp-bak``) file.
    report
        Receives the findings, the application, the facts and the media used.
    media_root
        A folder searched by basename for media not found at its recorded path.
    plugin_map
        VST3 plug-in name or class ID → ``.vst3`` path.

    Returns
    -------
    dict
        Session data of format 1.

    Raises
    ------
    ProjectError
        The file is unreadable, not a project, truncated or damaged.
    """
    text = read_project_text(path)
    root = parse_project(text, str(path))
    ctx = _Context(str(path), path.parent.resolve(), report, dict(plugin_map or {}))
    report.application = "REAPER " + (root.args[1] if len(root.args) > 1 else "(version unknown)")
    settings = _project_settings(root, ctx, media_root)
    tracks = root.chunks("TRACK")
    routes = [_read_track(chunk, index, ctx) for index, chunk in enumerate(tracks)]
    _folders(routes, ctx)
    for index, chunk in enumerate(tracks):
        _receives(chunk, index, routes, ctx)
    for route in routes:
        _main_output(route, routes, ctx)
    _break_cycles(routes, ctx)
    kept = _prune(routes, ctx)
    _pan_findings(kept, ctx)
    session = _assemble(kept, routes, ctx, settings)
    session["master"] = _master(root, ctx)
    _facts(session, report)
    return session
