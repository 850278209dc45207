"""DAWproject 1.0 (``.dawproject``) → stemprint session data and an import report.

:func:`read_dawproject` opens the container (:mod:`.archive`), walks the structure
(:mod:`.structure`), flattens the arrangement through the tempo map (:mod:`.clips`,
:mod:`.time`), reads devices (:mod:`.devices`), parameters (:mod:`.params`) and automation
(:mod:`.automation`), and builds the session (:mod:`.session`). Shared state, flattened content
and the XML attribute helpers are in :mod:`.reader`.

Invariants
----------
- The container is read only through :mod:`stemprint.importers.dawproject.archive` (checked
  member names and sizes, ``defusedxml``); embedded media and plug-in states are extracted under
  names made there. The result is plain session data (format 1) with absolute clip paths.
- Routing follows ``destination`` IDREFs (never the nesting, which only supplies a default):
  the project master is the first top-level ``master``-role channel without a destination; any
  other channel that is a destination, or has role ``master`` (a group), ``submix`` or
  ``effect``, is a bus. A bus whose track holds clips gets an implicit child track.
- Every position is converted to seconds through the tempo map before it is written; nested
  clips are flattened into plain clips, loops unrolled, so the session never needs a grid.
- Everything the DAW would play and the session cannot is a finding; nothing is dropped silently.

The formulas are stated where they are used: volume and pan in :mod:`.params`, tempo and content
timelines in :mod:`.time`, loops and warps in :mod:`.clips`, EQ frequencies in :mod:`.params`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stemprint.importers.dawproject.archive import ProjectArchive
from stemprint.importers.dawproject.clips import IDENTITY_REL_TOL as IDENTITY_REL_TOL
from stemprint.importers.dawproject.clips import MAX_LOOP_ITERATIONS as MAX_LOOP_ITERATIONS
from stemprint.importers.dawproject.params import semitones_to_hz as semitones_to_hz
from stemprint.importers.dawproject.reader import AutoPoint as AutoPoint
from stemprint.importers.dawproject.reader import Content as Content
from stemprint.importers.dawproject.reader import Piece as Piece
from stemprint.importers.dawproject.reader import _Reader
from stemprint.importers.dawproject.session import DEFAULT_SAMPLE_RATE as DEFAULT_SAMPLE_RATE
from stemprint.importers.dawproject.session import _read
from stemprint.importers.dawproject.time import DEFAULT_TEMPO_BPM as DEFAULT_TEMPO_BPM
from stemprint.importers.dawproject.time import Ctx as Ctx
from stemprint.importers.dawproject.time import TempoClock as TempoClock
from stemprint.importers.report import ImportReport


def read_dawproject(
    path: Path,
    report: ImportReport,
    *,
    extract_dir: Path,
    media_root: Path | None = None,
    plugin_map: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Read a ``.dawproject`` into stemprint session data (clip paths absolute).

    Parameters
    ----------
    path
        The ``.dawproject`` (ZIP) file.
    report
        Receives the findings, the application, the facts and the media used.
    extract_dir
        Where embedded media and plug-in states are copied (names made by stemprint).
    media_root
        Searched by basename for media not found where the project says.
    plugin_map
        VST3 ``deviceID`` or ``deviceName`` → ``.vst3`` binary.

    Returns
    -------
    dict
        Session data of format 1.

    Raises
    ------
    ProjectError
        The file is not a DAWproject, is damaged, or is hostile.
    """
    with ProjectArchive(path) as archive:
        root = archive.read_xml("project.xml")
        assert root is not None
        meta = archive.read_xml("metadata.xml", required=False)
        reader = _Reader(path, report, archive, extract_dir, media_root, plugin_map)
        return _read(reader, root, meta)
