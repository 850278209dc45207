"""What a report is built from: the manifest, the verification, the files and their sums.

Invariants
----------
* Every figure printed on the page comes from ``verification`` (the dict of
  ``VerificationReport.to_dict(reproducible=True)``, what ``verification.json`` holds) or from
  the manifest; the audio pass only draws (:mod:`.analysis`).
* The files are the verification's ``files`` in its order; each is found at
  ``package / label`` and paired with the manifest entry whose ``path`` is its label.
* A ``verification.json`` read from disk is used only when every file's SHA-256 still equals
  the manifest's (and a manifest exists): otherwise the package is verified again for the
  report, and the page says so (:attr:`ReportInputs.notes`).
* Stem colours are assigned in file order to stem-like roles (``stem``, ``stem_*``, ``track``)
  from :data:`STEM_COLOURS`; every other file is drawn in :data:`NEUTRAL_COLOUR`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stemprint.analysis.discovery import MANIFEST_NAME, is_stem_role
from stemprint.analysis.meters import loudness_channel_names

VERIFICATION_NAME = "verification.json"
"""The package's own verification report."""

STEM_COLOURS = (
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
    "#bcbd22", "#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3",
)  # fmt: skip
"""Colours of the stems, in file order (cycled), shared by the plots, routing and player."""

NEUTRAL_COLOUR = "#38404a"
"""Colour of the mix, the pre-master and every other file that is not a stem."""


@dataclass(frozen=True)
class ReportFile:
    """One file of the report.

    Attributes
    ----------
    index
        Position in the verification's ``files`` (``v:files.<index>…`` on the page).
    label
        Path relative to the package.
    path
        The file on disk.
    facts
        The verification's dict of this file.
    manifest_index
        Position of its entry in the manifest's ``files``, or ``None``.
    colour
        Its colour in every plot (a stem colour or :data:`NEUTRAL_COLOUR`).
    """

    index: int
    label: str
    path: Path
    facts: dict[str, Any]
    manifest_index: int | None
    colour: str

    @property
    def role(self) -> str:
        """The file's role (``mix``, ``premaster``, ``stem`` …)."""
        return str(self.facts.get("role") or "")

    @property
    def name(self) -> str:
        """Display name."""
        return str(self.facts.get("name") or Path(self.label).stem)

    @property
    def channels(self) -> int:
        """Channel count."""
        return int(self.facts["channels"])

    @property
    def sample_rate(self) -> int:
        """Hz."""
        return int(self.facts["sample_rate"])

    @property
    def length(self) -> int:
        """Samples per channel."""
        return int(self.facts["length_samples"])

    @property
    def channel_names(self) -> tuple[str, ...]:
        """Names of the channels by layout (``L R C LFE Ls Rs``), else ``1 2 3 …``."""
        names = loudness_channel_names(self.channels)
        return names if names else tuple(str(k + 1) for k in range(self.channels))


@dataclass(frozen=True)
class Relation:
    """One sum relation of the verification (``v:nulls.<index>``).

    Attributes
    ----------
    index
        Position in the verification's ``nulls``.
    name
        The relation's name.
    parts
        Labels of the parts.
    reference
        Label of the reference.
    null
        The verification's dict of the null.
    """

    index: int
    name: str
    parts: tuple[str, ...]
    reference: str
    null: dict[str, Any]

    @property
    def decides(self) -> bool:
        """Whether this null decides the verdict."""
        return bool(self.null.get("decides_verdict"))


@dataclass
class ReportInputs:
    """Everything the page is built from.

    Attributes
    ----------
    package
        The package folder.
    manifest
        The manifest, or ``None`` (a package from elsewhere).
    verification
        The verification's reproducible dict.
    files
        The files, in the verification's order.
    relations
        The sum relations checked, in the verification's order.
    notes
        Remarks about how the report was made (shown at the top of the page).
    """

    package: Path
    manifest: dict[str, Any] | None
    verification: dict[str, Any]
    files: list[ReportFile]
    relations: list[Relation]
    notes: list[str] = field(default_factory=list)

    def file(self, label: str) -> ReportFile | None:
        """The file with this label, or ``None``."""
        return next((f for f in self.files if f.label == label), None)

    @property
    def sample_rate(self) -> int:
        """The package's sample rate (its first file's)."""
        return self.files[0].sample_rate if self.files else 48000

    @property
    def verdict_relation(self) -> Relation | None:
        """The relation that decides the verdict and ran, else the first that ran."""
        ran = [r for r in self.relations if not r.null.get("skipped_reason")]
        return next((r for r in ran if r.decides), ran[0] if ran else None)


def gather(
    package: Path, manifest: dict[str, Any] | None, verification: Any | None
) -> ReportInputs:
    """Collect the inputs of the report of ``package``.

    Parameters
    ----------
    package
        The package folder.
    manifest
        Its manifest (``None``: ``manifest.json`` is read when present).
    verification
        A :class:`~stemprint.analysis.report.VerificationReport`, its reproducible dict, or
        ``None``: ``verification.json`` is read when present and current, else the package is
        verified for the report.
    """
    notes: list[str] = []
    from_disk = manifest is None and verification is None
    if manifest is None:
        manifest = _read_json(package / MANIFEST_NAME)
    data = _verification_dict(verification)
    if data is None:
        data = _current_verification(package, manifest, notes) if from_disk else None
    if data is None:
        data = _verify(package, notes)
    return _assemble(package, manifest, data, notes)


def _verification_dict(verification: Any | None) -> dict[str, Any] | None:
    if verification is None:
        return None
    if isinstance(verification, dict):
        return verification
    result: dict[str, Any] = verification.to_dict(reproducible=True)
    return result


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else None


def _current_verification(
    package: Path, manifest: dict[str, Any] | None, notes: list[str]
) -> dict[str, Any] | None:
    """``verification.json`` when the manifest's checksums prove it describes these files."""
    data = _read_json(package / VERIFICATION_NAME)
    if data is None:
        notes.append(f"the package has no {VERIFICATION_NAME}: verified for this report")
        return None
    if manifest is None:
        notes.append(f"no {MANIFEST_NAME} to prove {VERIFICATION_NAME} current: verified again")
        return None
    changed = [
        str(entry["path"])
        for entry in manifest.get("files", [])
        if entry.get("sha256") and _changed(package / str(entry["path"]), str(entry["sha256"]))
    ]
    if changed:
        notes.append(
            f"{', '.join(changed)} no longer match the manifest's SHA-256: verified again for "
            "this report"
        )
        return None
    return data


def _changed(path: Path, sha256: str) -> bool:
    if not path.is_file():
        return True
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest() != sha256


def _verify(package: Path, notes: list[str]) -> dict[str, Any]:
    from stemprint.analysis.verify import verify_package

    report = verify_package([package])
    if not notes:
        notes.append("verified for this report")
    result: dict[str, Any] = report.to_dict(reproducible=True)
    return result


def _assemble(
    package: Path, manifest: dict[str, Any] | None, data: dict[str, Any], notes: list[str]
) -> ReportInputs:
    by_path = {
        str(entry.get("path")): k for k, entry in enumerate((manifest or {}).get("files", []))
    }
    files: list[ReportFile] = []
    stems = 0
    for index, facts in enumerate(data.get("files", [])):
        label = str(facts.get("label") or facts.get("path"))
        role = str(facts.get("role") or "")
        colour = NEUTRAL_COLOUR
        if is_stem_role(role) or role == "track":
            colour = STEM_COLOURS[stems % len(STEM_COLOURS)]
            stems += 1
        files.append(ReportFile(index, label, package / label, facts, by_path.get(label), colour))
    relations = [_relation(k, null, data) for k, null in enumerate(data.get("nulls", []))]
    return ReportInputs(package, manifest, data, files, relations, notes)


def _relation(index: int, null: dict[str, Any], data: dict[str, Any]) -> Relation:
    parts = null.get("parts")
    if parts is None:  # an older report: the stems of the package
        parts = [f["label"] for f in data.get("files", []) if is_stem_role(str(f.get("role")))]
    name = str(null.get("name") or "stems")
    return Relation(index, name, tuple(str(p) for p in parts), str(null["reference"]), null)
