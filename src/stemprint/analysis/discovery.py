"""Find the files of a stem package, their roles, and what sums to what.

A package is one directory or a list of audio files. The result is a :class:`StemPackage`: every
file with its role, and the **sum relations** to check: "these parts, summed at unity, equal that
reference".

Directory with ``manifest.json`` (the stemprint manifest, written by the render engine)::

    {"stemprint": 1, "sample_rate": 48000, "length_samples": 8640000,
     "files": [{"path": "mix.wav", "role": "mix", "name": "Mix"},
               {"path": "stems/Drums.wav", "role": "stem", "name": "Drums"},
               {"path": "premaster.wav", "role": "premaster", "name": "Mix (pre-master)"}],
     "sums": [{"name": "stems", "parts": ["stems/Drums.wav"], "reference": "premaster.wav",
               "exact": true, "why": "post-fader stems sum to the master's input"}]}

Paths are relative to the directory; extra keys are allowed; any role is accepted (``mix``,
``premaster``, ``stem``, ``stem_dry``, ``alt_mix``, ``track`` …). At most one file has role
``mix`` and at most one ``premaster``; a package may have neither.

Sum relations (invariants):

* with a ``sums`` key, exactly the relations listed are checked (``sums: []``: none). Every part
  and reference must be a file listed in ``files``; a relation has at least one part, no part
  twice, and its reference is not one of its parts. ``exact`` (default true) makes the null
  decide the verdict; ``exact: false`` is measured and reported for information only.
* without a ``sums`` key (older stemprint packages, foreign packages) the relations follow the
  roles: the ``stem`` files against the pre-master (exact) and against the mix (exact when there
  is no pre-master, else for information). No stems, or no mix and no pre-master: no relation.

Directory without a manifest: every audio file below it (``.wav``, ``.aif``/``.aiff``,
``.flac`` …, hidden files skipped) is a stem, except

* a file whose name (without extension, case-insensitive) is ``premaster``/``pre-master`` or
  contains ``_premaster``/``_pre-master``/``_pre_master`` is the pre-master;
* a file named ``mix`` or containing ``_mix`` (``Mix.wav``, ``Song_Mix.wav``,
  ``song_mix_v2.wav``) is the mix, when no ``mix`` argument is given. When ``mix`` is given,
  such files are left out of the stems (with a note) rather than summed as stems;
* a package of **one** file (``stemprint verify master.wav``) has that file as its mix: it is
  measured (and checked against a delivery profile) and nothing is null-tested.

A list of files: the same naming rules apply to the listed files.

Start times: a Broadcast WAVE file (WAV, RF64, BW64) may carry a ``bext`` chunk whose
``TimeReference`` is the sample, counted from the session's midnight, where the file starts
(EBU Tech 3285: a 64-bit count at byte 338 of the chunk). :func:`bwf_time_reference` reads it,
so files exported from different start points are found even when nothing sums them.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from stemprint.errors import InputError

from .audio import AUDIO_EXTENSIONS

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1

RelationSource = Literal["manifest", "roles"]

DERIVED_ROLES = frozenset({"ni_stem", "preview", "handoff"})
"""Manifest roles of files made from the package's audio (NI Stems, previews, DAW sessions)."""


@dataclass(frozen=True)
class PackageFile:
    """One file of the package.

    Attributes
    ----------
    path
        Absolute path.
    role
        ``mix``, ``stem``, ``premaster`` or another manifest role.
    name
        Display name (manifest ``name`` or the file name without extension).
    label
        Path as shown in messages: relative to the package directory when there is one.
    """

    path: Path
    role: str
    name: str
    label: str


@dataclass(frozen=True)
class SumRelation:
    """Parts that, summed at unity in float64, must equal a reference file.

    A part with one channel in a relation whose reference has more is added to every channel
    (a mono track at unity in a stereo sum).

    Attributes
    ----------
    name
        Short name (``stems``, ``Drums bus``), used in messages.
    parts
        The files summed, in order (the order of the float64 additions).
    reference
        What they must sum to.
    exact
        The null decides the verdict (residual peak below the threshold or the package fails);
        ``False``: measured and reported for information only.
    why
        Why the relation holds (or why it is only informational), in plain words.
    source
        ``manifest`` (listed under ``sums``) or ``roles`` (derived from the file roles).
    """

    name: str
    parts: tuple[PackageFile, ...]
    reference: PackageFile
    exact: bool = True
    why: str = ""
    source: RelationSource = "manifest"


@dataclass
class StemPackage:
    """The files of a package, sorted by role, and the sum relations to check.

    Attributes
    ----------
    root
        The package directory, or ``None`` for a list of files.
    mix
        The mix, if the package has one.
    stems
        Files with role ``stem``, in manifest or name order.
    premaster
        The pre-master mix (the stems must sum to it exactly), if any.
    others
        Manifest files with other roles.
    manifest
        The parsed manifest, if one was read.
    notes
        Remarks about how files were assigned (shown as info findings).
    sums
        The manifest's ``sums`` relations; ``None`` when it has no ``sums`` key (or there is no
        manifest): then :meth:`relations` derives them from the roles.
    """

    root: Path | None
    mix: PackageFile | None
    stems: list[PackageFile]
    premaster: PackageFile | None = None
    others: list[PackageFile] = field(default_factory=list)
    manifest: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    sums: list[SumRelation] | None = None

    @property
    def files(self) -> list[PackageFile]:
        """Mix and pre-master (if any), the stems, then files with other roles."""
        head = [f for f in (self.mix, self.premaster) if f is not None]
        return head + self.stems + self.others

    @property
    def relations_source(self) -> RelationSource:
        """Where :meth:`relations` come from: the manifest's ``sums`` or the roles."""
        return "manifest" if self.sums is not None else "roles"

    def relations(self) -> list[SumRelation]:
        """The sum relations to check: the manifest's ``sums``, else the role-based ones."""
        if self.sums is not None:
            return list(self.sums)
        return role_relations(self.stems, self.premaster, self.mix)


def is_stem_role(role: str) -> bool:
    """Whether ``role`` is a stem: ``stem`` or one of its variants (``stem_dry``,
    ``stem_pre_fader``, ``stem_via_master``, ``stem_post_fader`` …)."""
    return role == "stem" or role.startswith("stem_")


def role_relations(
    stems: list[PackageFile], premaster: PackageFile | None, mix: PackageFile | None
) -> list[SumRelation]:
    """The relations a package without ``sums`` implies: stems vs pre-master, stems vs mix.

    The pre-master null is exact; the mix null is exact only when there is no pre-master (a
    master bus that processes keeps the mix from nulling, by design).
    """
    if not stems:
        return []
    parts = tuple(stems)
    out = []
    if premaster is not None:
        out.append(
            SumRelation(
                "stems", parts, premaster, True, "the stems sum to the master's input", "roles"
            )
        )
    if mix is not None:
        why = (
            "expected when the mix has master-bus processing: the verdict uses the pre-master"
            if premaster is not None
            else "the stems sum to the mix"
        )
        out.append(SumRelation("stems", parts, mix, premaster is None, why, "roles"))
    return out


def _is_premaster_name(path: Path) -> bool:
    stem = path.stem.lower()
    return stem in {"premaster", "pre-master", "pre_master"} or any(
        tag in stem for tag in ("_premaster", "_pre-master", "_pre_master", " pre-master")
    )


def _is_mix_name(path: Path) -> bool:
    stem = path.stem.lower()
    return stem == "mix" or "_mix" in stem


def _label(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            pass
    return path.name


def discover_package(inputs: list[Path], mix: Path | None = None) -> StemPackage:
    """Work out the files, roles and sum relations of a package.

    Parameters
    ----------
    inputs
        One package directory, or a list of audio files.
    mix
        The mix file; overrides the manifest and the naming rule.

    Returns
    -------
    StemPackage

    Raises
    ------
    InputError
        No inputs, a missing path, an empty directory, a bad manifest (or ``sums``), or
        ambiguous roles (two mixes, two pre-masters).
    """
    if not inputs:
        raise InputError("no input given", fix="pass a package directory or a list of audio files")
    paths = [Path(p).expanduser() for p in inputs]
    for p in paths:
        if not p.exists():
            raise InputError("input not found", file=str(p), fix="check the path")
    mix_path = Path(mix).expanduser().resolve() if mix is not None else None
    if mix_path is not None and not mix_path.is_file():
        raise InputError("mix file not found", file=str(mix), fix="check the --mix path")

    if len(paths) == 1 and paths[0].is_dir():
        root = paths[0].resolve()
        manifest_path = root / MANIFEST_NAME
        if manifest_path.is_file():
            return _from_manifest(root, manifest_path, mix_path)
        candidates = _audio_below(root)
    else:
        root = None
        for p in paths:
            if p.is_dir():
                raise InputError(
                    "pass either one package directory or a list of files, not both",
                    file=str(p),
                    fix="list the audio files, or give the directory alone",
                )
        candidates = [p.resolve() for p in paths]
    return _from_names(root, candidates, mix_path)


def _audio_below(root: Path) -> list[Path]:
    candidates = sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in AUDIO_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if not candidates:
        raise InputError(
            "the package directory holds no audio files",
            file=str(root),
            fix="point at the folder with the audio files (WAV, AIFF or FLAC)",
        )
    return candidates


def _one(found: list[Path], what: str, where: str | None, label_root: Path | None) -> Path | None:
    """The single file of a kind, ``None`` for none; two are ambiguous."""
    if len(found) > 1:
        raise InputError(
            f"several files look like the {what}: "
            + ", ".join(_label(p, label_root) for p in found),
            file=where,
            fix=f"keep one {what}, pass the mix explicitly (mix=… / --mix), or describe the "
            "package in manifest.json",
        )
    return found[0] if found else None


def _from_names(root: Path | None, candidates: list[Path], mix_path: Path | None) -> StemPackage:
    label_root = root
    if root is None:
        names = [p.name for p in candidates] + ([mix_path.name] if mix_path else [])
        if len(set(names)) < len(names):  # same file name in two folders: label by full path
            label_root = Path("/")
    where = str(root) if root else None
    notes: list[str] = []
    if mix_path is None and len(candidates) == 1:
        # One file is a programme to measure (a master, a mix), whatever its name.
        mix_path = candidates[0].resolve()
        notes.append(
            f"{_label(mix_path, label_root)} is the only file: measured as the mix "
            "(nothing to null-test)"
        )
        alone = PackageFile(mix_path, "mix", mix_path.stem, _label(mix_path, label_root))
        return StemPackage(root, alone, [], notes=notes)
    stems: list[Path] = []
    mixes: list[Path] = []
    premasters: list[Path] = []
    for p in candidates:
        if mix_path is not None and p.resolve() == mix_path:
            continue
        if _is_premaster_name(p):
            premasters.append(p)
        elif _is_mix_name(p):
            mixes.append(p)
        else:
            stems.append(p)
    if mix_path is None:
        mix_path = _one(mixes, "mix", where, label_root)
    else:
        for m in mixes:
            notes.append(
                f"{_label(m, label_root)} is named like a mix and was not summed as a stem"
            )
    premaster = _one(premasters, "pre-master", where, label_root)

    def entry(path: Path, role: str) -> PackageFile:
        return PackageFile(path, role, path.stem, _label(path, label_root))

    return StemPackage(
        root=root,
        mix=entry(mix_path, "mix") if mix_path is not None else None,
        stems=[entry(p, "stem") for p in stems],
        premaster=entry(premaster, "premaster") if premaster is not None else None,
        notes=notes,
    )


def read_manifest(manifest_path: Path) -> dict[str, Any]:
    """Parse and check a stemprint ``manifest.json`` (its ``files``; ``sums`` is checked by
    :func:`discover_package`, against the files).

    Raises
    ------
    InputError
        Invalid JSON, wrong version, or a malformed ``files`` list.
    """
    file = str(manifest_path)
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(
            f"manifest is not valid JSON: {exc.msg}",
            file=file,
            line=exc.lineno,
            fix="fix the JSON syntax or delete the manifest",
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read manifest: {exc}", file=file, fix="check the file") from exc
    if not isinstance(data, dict):
        raise InputError(
            "manifest must be a JSON object", file=file, fix="see docs/verification.md"
        )
    version = data.get("stemprint")
    if version != MANIFEST_VERSION:
        raise InputError(
            f"unsupported manifest version {version!r} (expected {MANIFEST_VERSION})",
            file=file,
            field="stemprint",
            fix="write the manifest with this version of stemprint",
        )
    files = data.get("files")
    if not isinstance(files, list) or not files:
        raise InputError(
            "manifest has no files list"
            if not isinstance(files, list)
            else "manifest lists no files",
            file=file,
            field="files",
            fix='list the files as {"path": …, "role": …}',
        )
    for i, entry in enumerate(files):
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise InputError(
                'each file needs a "path" string',
                file=file,
                field=f"files[{i}]",
                fix="add the path relative to the package",
            )
        if not isinstance(entry.get("role", "stem"), str):
            raise InputError(
                "role must be a string",
                file=file,
                field=f"files[{i}].role",
                fix="use mix, premaster, stem, stem_dry, alt_mix, track …",
            )
    return data


def _manifest_files(root: Path, data: dict[str, Any], file: str) -> list[PackageFile]:
    out: list[PackageFile] = []
    seen: dict[Path, int] = {}
    for i, entry in enumerate(data["files"]):
        rel = entry["path"]
        path = (root / rel).resolve()
        if not path.is_file():
            raise InputError(
                f"file listed in the manifest is missing: {rel}",
                file=file,
                field=f"files[{i}].path",
                fix="restore the file or remove it from manifest.json",
            )
        if path in seen:
            raise InputError(
                f"{rel} is listed twice (files[{seen[path]}] and files[{i}])",
                file=file,
                field=f"files[{i}].path",
                fix="list every file once",
            )
        seen[path] = i
        role = str(entry.get("role", "stem"))
        if role in DERIVED_ROLES:
            continue  # encoded copies and DAW sessions made from the audio: not summed
        name = str(entry.get("name") or Path(rel).stem)
        out.append(PackageFile(path, role, name, _label(path, root)))
    return out


def _single_role(files: list[PackageFile], role: str, file: str) -> PackageFile | None:
    found = [f for f in files if f.role == role]
    if len(found) > 1:
        raise InputError(
            f'the manifest lists several files with role "{role}": '
            + ", ".join(f.label for f in found),
            file=file,
            field="files",
            fix=f'keep one file with role "{role}" (alternate mixes are "alt_mix")',
        )
    return found[0] if found else None


def _from_manifest(root: Path, manifest_path: Path, mix_path: Path | None) -> StemPackage:
    data = read_manifest(manifest_path)
    file = str(manifest_path)
    files = _manifest_files(root, data, file)
    notes: list[str] = []
    manifest_mix = _single_role(files, "mix", file)
    premaster = _single_role(files, "premaster", file)
    mix_file = manifest_mix
    if mix_path is not None:
        label = _label(mix_path, root)
        mix_file = PackageFile(mix_path, "mix", mix_path.stem, label)
        if manifest_mix is not None and manifest_mix.path != mix_path:
            notes.append(
                f"using the given mix {label} instead of the manifest's {manifest_mix.label}"
            )
    main = {mix_path} | {f.path for f in (manifest_mix, premaster) if f is not None}
    stems = [f for f in files if f.role == "stem" and f.path not in main]
    others = [f for f in files if f.role not in ("mix", "premaster", "stem") and f.path not in main]
    sums = None
    if "sums" in data:
        by_path = {f.path: f for f in files}
        if manifest_mix is not None and mix_file is not None:
            by_path[manifest_mix.path] = mix_file  # relations to the mix use the given one
        sums = _manifest_sums(root, data["sums"], by_path, file)
    return StemPackage(
        root=root,
        mix=mix_file,
        stems=stems,
        premaster=premaster,
        others=others,
        manifest=data,
        notes=notes,
        sums=sums,
    )


def _manifest_sums(
    root: Path, raw: Any, by_path: dict[Path, PackageFile], file: str
) -> list[SumRelation]:
    """Check and resolve the manifest's ``sums`` list (see the module docstring)."""
    if not isinstance(raw, list):
        raise InputError(
            "sums must be a list of relations",
            file=file,
            field="sums",
            fix='write [{"name": …, "parts": […], "reference": …, "exact": true}] or []',
        )
    return [_manifest_relation(root, rel, by_path, file, f"sums[{i}]") for i, rel in enumerate(raw)]


def _listed(
    root: Path, rel: Any, by_path: dict[Path, PackageFile], file: str, at: str
) -> PackageFile:
    if not isinstance(rel, str):
        raise InputError(
            "a sum's parts and reference are paths (strings)",
            file=file,
            field=at,
            fix="give the path relative to the package, as in files",
        )
    found = by_path.get((root / rel).resolve())
    if found is None:
        raise InputError(
            f"{rel} is not a file listed in the manifest",
            file=file,
            field=at,
            fix="list it under files, or fix the path (relative to the package)",
        )
    return found


def _manifest_relation(
    root: Path, rel: Any, by_path: dict[Path, PackageFile], file: str, at: str
) -> SumRelation:
    if not isinstance(rel, dict):
        raise InputError(
            "each sum must be an object",
            file=file,
            field=at,
            fix='{"name": …, "parts": […], "reference": …, "exact": true}',
        )
    parts_raw = rel.get("parts")
    if not isinstance(parts_raw, list) or not parts_raw:
        raise InputError(
            "a sum needs a non-empty parts list",
            file=file,
            field=f"{at}.parts",
            fix="list the files that sum to the reference",
        )
    parts = [_listed(root, p, by_path, file, f"{at}.parts[{j}]") for j, p in enumerate(parts_raw)]
    reference = _listed(root, rel.get("reference"), by_path, file, f"{at}.reference")
    labels = [p.label for p in parts]
    twice = sorted({x for x in labels if labels.count(x) > 1})
    if twice:
        raise InputError(
            f"a part is listed twice: {', '.join(twice)}",
            file=file,
            field=f"{at}.parts",
            fix="list every part once",
        )
    if reference.label in labels:
        raise InputError(
            f"{reference.label} is both a part and the reference",
            file=file,
            field=f"{at}.reference",
            fix="a file cannot sum to itself",
        )
    exact = rel.get("exact", True)
    name = rel.get("name", at)
    why = rel.get("why", "")
    for key, value, kind in (("exact", exact, bool), ("name", name, str), ("why", why, str)):
        if not isinstance(value, kind):
            raise InputError(
                f"{key} must be a {kind.__name__}",
                file=file,
                field=f"{at}.{key}",
                fix="see docs/verification.md (sum relations)",
            )
    return SumRelation(name, tuple(parts), reference, exact, why, "manifest")


#: Byte offset of ``TimeReferenceLow`` in a ``bext`` chunk (EBU Tech 3285): Description 256,
#: Originator 32, OriginatorReference 32, OriginationDate 10, OriginationTime 8.
_BEXT_TIME_REFERENCE = 338
#: Chunks read at most before giving up (a file with more is not a plausible WAV header).
_MAX_CHUNKS = 64


def bwf_time_reference(path: Path) -> int | None:
    """Where a Broadcast WAVE file starts: its ``bext`` TimeReference (samples), or ``None``.

    ``None`` when the file is not RIFF/RF64/BW64 WAVE, has no ``bext`` chunk, or the chunk is
    too short. Reads only chunk headers (the audio is skipped by seeking).
    """
    try:
        with path.open("rb") as fh:
            head = fh.read(12)
            if head[:4] not in (b"RIFF", b"RF64", b"BW64") or head[8:12] != b"WAVE":
                return None
            for _ in range(_MAX_CHUNKS):
                chunk = fh.read(8)
                if len(chunk) < 8:
                    return None
                size = struct.unpack("<I", chunk[4:])[0]
                if chunk[:4] == b"bext":
                    data = fh.read(min(size, _BEXT_TIME_REFERENCE + 8))
                    if len(data) < _BEXT_TIME_REFERENCE + 8:
                        return None
                    low, high = struct.unpack_from("<II", data, _BEXT_TIME_REFERENCE)
                    return int(low | (high << 32))
                if chunk[:4] == b"data" and size == 0xFFFFFFFF:
                    return None  # RF64: the real size is in ds64; bext is rarely after data
                fh.seek(size + (size & 1), 1)  # skip (audio unread); chunks are even-padded
    except OSError:
        return None
    return None
