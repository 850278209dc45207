"""The package report: one self-contained HTML page people look at and listen to.

``write_package_report(package, manifest, verification)`` writes ``report.html`` into a package
folder (``stemprint render`` does it by default; ``stemprint report PACKAGE`` for any package).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPORT_NAME = "report.html"
"""File name of the report inside a package."""


def write_package_report(
    package: Path,
    manifest: dict[str, Any] | None,
    verification: Any | None,
    out: Path | None = None,
    audio: str = "embed",
) -> Path:
    """Write the report of ``package`` (default ``package/report.html``); return its path."""
    raise NotImplementedError("the HTML report is being built")
