"""Find the mix, the stems and the optional pre-master of a stem package.

A package is either one directory or a list of stem files.

Directory with ``manifest.json`` (the stemprint manifest, written by the render engine)::

    {"stemprint": 1, "sample_rate": 48000, "length_samples": 8640000,
     "files": [{"path": "mix.wav", "role": "mix", "name": "Mix"},
               {"path": "stems/Drums.wav", "role": "stem", "name": "Drums"},
               {"path": "premaster.wav", "role": "premaster", "name": "Mix (pre-master)"}]}

Paths are relative to the directory; extra keys are allowed; roles other than ``mix``, ``stem``
and ``premaster`` are listed but take no part in the null test.

Directory without a manifest: every audio file below it (``.wav``, ``.aif``/``.aiff``,
``.flac`` …, hidden files skipped) is a stem, except

* a file whose name (without extension, case-insensitive) is ``premaster``/``pre-master`` or
  contains ``_premaster``/``_pre-master``/``_pre_master`` is the pre-master;
* a file named ``mix`` or containing ``_mix`` (``Mix.wav``, ``Song_Mix.wav``,
  ``song_mix_v2.wav``) is the mix, when no ``mix`` argument is given. When ``mix`` is given,
  such files are left out of the stems (with a note) rather than summed as stems.

A list of files: the same naming rules apply to the listed files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stemprint.errors import InputError

from .audio import AUDIO_EXTENSIONS

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


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


@dataclass
class StemPackage:
    """The files of a package, sorted by role.

    Attributes
    ----------
    root
        The package directory, or ``None`` for a list of files.
    mix
        The mix.
    stems
        The stems, in manifest or name order.
    premaster
        The pre-master mix (the stems must sum to it exactly), if any.
    others
        Manifest files with other roles.
    manifest
        The parsed manifest, if one was read.
    notes
        Remarks about how files were assigned (shown as info findings).
    """

    root: Path | None
    mix: PackageFile
    stems: list[PackageFile]
    premaster: PackageFile | None = None
    others: list[PackageFile] = field(default_factory=list)
    manifest: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def files(self) -> list[PackageFile]:
        """Mix, pre-master (if any), the stems, then files with other roles."""
        head = [self.mix] + ([self.premaster] if self.premaster else [])
        return head + self.stems + self.others


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
    """Work out the mix, stems and pre-master of a package.

    Parameters
    ----------
    inputs
        One package directory, or a list of stem files.
    mix
        The mix file; overrides the manifest and the naming rule.

    Returns
    -------
    StemPackage

    Raises
    ------
    InputError
        No inputs, a missing path, a bad manifest, no stems, or no mix.
    """
    if not inputs:
        raise InputError("no input given", fix="pass a package directory or a list of stem files")
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
                fix="point at the folder with the stems (WAV, AIFF or FLAC)",
            )
    else:
        root = None
        for p in paths:
            if p.is_dir():
                raise InputError(
                    "pass either one package directory or a list of files, not both",
                    file=str(p),
                    fix="list the stem files, or give the directory alone",
                )
        candidates = [p.resolve() for p in paths]
    return _from_names(root, candidates, mix_path)


def _from_names(root: Path | None, candidates: list[Path], mix_path: Path | None) -> StemPackage:
    label_root = root
    if root is None:
        names = [p.name for p in candidates] + ([mix_path.name] if mix_path else [])
        if len(set(names)) < len(names):  # same file name in two folders: label by full path
            label_root = Path("/")
    notes: list[str] = []
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
        if not mixes:
            raise InputError(
                "no mix found: no file is named like a mix (mix.wav, *_mix*.wav)",
                file=str(root) if root else None,
                fix="pass the mix explicitly (mix=… / --mix) or add a manifest.json",
            )
        if len(mixes) > 1:
            raise InputError(
                "several files look like the mix: "
                + ", ".join(_label(m, label_root) for m in mixes),
                file=str(root) if root else None,
                fix="pass the mix explicitly (mix=… / --mix)",
            )
        mix_path = mixes[0]
    else:
        for m in mixes:
            notes.append(
                f"{_label(m, label_root)} is named like a mix and was not summed as a stem"
            )
    if len(premasters) > 1:
        raise InputError(
            "several files look like the pre-master: "
            + ", ".join(_label(p, label_root) for p in premasters),
            file=str(root) if root else None,
            fix="keep one pre-master, or describe the package in manifest.json",
        )
    if not stems:
        raise InputError(
            "no stems found",
            file=str(root) if root else None,
            fix="pass the stem files (every file that is not the mix is a stem)",
        )
    premaster = premasters[0] if premasters else None
    return StemPackage(
        root=root,
        mix=PackageFile(mix_path, "mix", mix_path.stem, _label(mix_path, label_root)),
        stems=[PackageFile(p, "stem", p.stem, _label(p, label_root)) for p in stems],
        premaster=(
            PackageFile(premaster, "premaster", premaster.stem, _label(premaster, label_root))
            if premaster
            else None
        ),
        notes=notes,
    )


def read_manifest(manifest_path: Path) -> dict[str, Any]:
    """Parse and check a stemprint ``manifest.json``.

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
    if not isinstance(files, list):
        raise InputError(
            "manifest has no files list",
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
                fix="use mix, stem or premaster",
            )
    return data


def _from_manifest(root: Path, manifest_path: Path, mix_path: Path | None) -> StemPackage:
    data = read_manifest(manifest_path)
    file = str(manifest_path)
    mixes: list[PackageFile] = []
    premasters: list[PackageFile] = []
    stems: list[PackageFile] = []
    others: list[PackageFile] = []
    for i, entry in enumerate(data["files"]):
        rel = entry["path"]
        path = (root / rel).resolve()
        role = str(entry.get("role", "stem"))
        name = str(entry.get("name") or Path(rel).stem)
        if not path.is_file():
            raise InputError(
                f"file listed in the manifest is missing: {rel}",
                file=file,
                field=f"files[{i}].path",
                fix="restore the file or remove it from manifest.json",
            )
        pf = PackageFile(path, role, name, _label(path, root))
        {"mix": mixes, "premaster": premasters, "stem": stems}.get(role, others).append(pf)
    notes: list[str] = []
    if mix_path is not None:
        label = _label(mix_path, root)
        mix_file = PackageFile(mix_path, "mix", mix_path.stem, label)
        stems = [s for s in stems if s.path != mix_path]
        if mixes:
            notes.append(f"using the given mix {label} instead of the manifest's {mixes[0].label}")
    elif len(mixes) == 1:
        mix_file = mixes[0]
    elif not mixes:
        raise InputError(
            'the manifest lists no file with role "mix"',
            file=file,
            field="files",
            fix="add the mix to manifest.json or pass it explicitly (mix=… / --mix)",
        )
    else:
        raise InputError(
            'the manifest lists several files with role "mix"',
            file=file,
            field="files",
            fix="keep one mix in manifest.json",
        )
    if len(premasters) > 1:
        raise InputError(
            "the manifest lists several pre-masters",
            file=file,
            field="files",
            fix='keep one file with role "premaster"',
        )
    if not stems:
        raise InputError(
            "the manifest lists no stems",
            file=file,
            field="files",
            fix='list the stems with role "stem"',
        )
    for o in others:
        notes.append(f"{o.label} has role {o.role!r}; it is measured but not null-tested")
    return StemPackage(
        root=root,
        mix=mix_file,
        stems=stems,
        premaster=premasters[0] if premasters else None,
        others=others,
        manifest=data,
        notes=notes,
    )
