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

Invariants
----------
- ``import stemprint`` is cheap: the errors and the version are bound at once, every other name
  of ``__all__`` is imported on first use (module ``__getattr__``), so the command line and the
  helper processes (``python -m stemprint....``) load only what they run. Type checkers see the
  real imports (``TYPE_CHECKING``).
- ``__all__`` is sorted and every name in it resolves (``tests/test_api.py``).
"""

import typing as _typing

from stemprint._lazy import lazy_names as _lazy_names
from stemprint._version import __version__
from stemprint.errors import (
    AudioFileError,
    InputError,
    ProjectError,
    RenderError,
    SessionError,
    StemprintError,
    VerificationFailed,
)

if _typing.TYPE_CHECKING:
    from stemprint.analysis import repair_package, verify_package
    from stemprint.analysis.report import VerificationReport
    from stemprint.batch import render_many
    from stemprint.export.package import (
        PackageResult,
        RenderOptions,
        render_package,
        render_regions,
    )
    from stemprint.graph.compile import compile_session
    from stemprint.graph.types import RenderExtent, RenderGraph
    from stemprint.importers import import_project
    from stemprint.importers.report import ImportReport
    from stemprint.model.load import LoadedSession, load_session

_LAZY = {
    "ImportReport": "stemprint.importers.report",
    "LoadedSession": "stemprint.model.load",
    "PackageResult": "stemprint.export.package",
    "RenderExtent": "stemprint.graph.types",
    "RenderGraph": "stemprint.graph.types",
    "RenderOptions": "stemprint.export.package",
    "VerificationReport": "stemprint.analysis.report",
    "compile_session": "stemprint.graph.compile",
    "import_project": "stemprint.importers",
    "load_session": "stemprint.model.load",
    "render_many": "stemprint.batch",
    "render_package": "stemprint.export.package",
    "render_regions": "stemprint.export.package",
    "repair_package": "stemprint.analysis.repair",
    "verify_package": "stemprint.analysis.verify",
}
"""Where each lazily bound name of the API lives."""


# Hidden from type checkers, which see the imports above: a misspelt name stays an error.
if not _typing.TYPE_CHECKING:
    __getattr__, __dir__ = _lazy_names(globals(), _LAZY)


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
