"""stemprint: a headless mixing engine and stem-delivery toolkit.

Render a session's mix and every stem in one sample-accurate streaming pass, and prove the
package (stems null against the mix, levels measured against delivery profiles)::

    import stemprint

    session = stemprint.load_session("song/session.yaml")
    result = stemprint.render_package(session, "song/package")
    print(result.verification.passed, result.warnings)

    report = stemprint.verify_package("song/package", profile="stem-mastering")
    print(report.passed, [f.message for f in report.errors])

    imported, findings = stemprint.import_project("song.rpp")  # or a .dawproject
    loaded = stemprint.LoadedSession.from_session(imported, "song.rpp")

Every error stemprint raises on purpose is a :class:`StemprintError`; its ``exit_code`` is the
command line's (1 a failed check, 2 bad input, 3 internal). Nothing here prints: warnings are
returned (``RenderGraph.warnings``, ``PackageResult.warnings``), and no process-wide setting is
changed (the command line tunes the allocator for long renders; a library user may call
``stemprint.render.allocator.tune_allocator``).
"""

from stemprint._version import __version__
from stemprint.analysis import repair_package, verify_package
from stemprint.analysis.report import VerificationReport
from stemprint.batch import render_many
from stemprint.errors import (
    AudioFileError,
    InputError,
    ProjectError,
    RenderError,
    SessionError,
    StemprintError,
    VerificationFailed,
)
from stemprint.export.package import PackageResult, RenderOptions, render_package, render_regions
from stemprint.graph.compile import compile_session
from stemprint.graph.types import RenderExtent, RenderGraph
from stemprint.importers import import_project
from stemprint.importers.report import ImportReport
from stemprint.model.load import LoadedSession, load_session

__all__ = [
    "AudioFileError",
    "ImportReport",
    "InputError",
    "LoadedSession",
    "PackageResult",
    "ProjectError",
    "RenderError",
    "RenderExtent",
    "RenderGraph",
    "RenderOptions",
    "SessionError",
    "StemprintError",
    "VerificationFailed",
    "VerificationReport",
    "__version__",
    "compile_session",
    "import_project",
    "load_session",
    "render_many",
    "render_package",
    "render_regions",
    "repair_package",
    "verify_package",
]
