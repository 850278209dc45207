"""Pack a package for travel: a deterministic ZIP with checksums, optionally as a BagIt bag.

Invariants
----------
- Deterministic bytes: members in sorted path order, every date 1980-01-01 00:00:00 (the ZIP
  epoch), fixed permissions (0644), audio and other compressed media stored, text deflated at
  level 9; two packs of the same package are byte-identical.
- ``checksums.sha256`` lists every file of the package (SHA-256, two spaces, the path relative
  to the package folder, sorted), so ``sha256sum -c checksums.sha256`` run inside the unpacked
  folder checks it. With ``bagit`` the ZIP holds a BagIt bag (RFC 8493): ``bagit.txt``,
  ``bag-info.txt`` (Payload-Oxum; a Bagging-Date only from ``SOURCE_DATE_EPOCH``),
  ``manifest-sha256.txt`` over ``data/`` (the package), ``tagmanifest-sha256.txt``.
- Streaming: every file is copied in chunks; memory does not grow with the package.
- The ZIP is written under a temporary name beside its target and renamed when complete; an
  existing file is replaced only with ``force`` and only when stemprint packed it (its ZIP
  comment says so).
"""

from __future__ import annotations

import hashlib
import os
import time
import zipfile
from pathlib import Path

from stemprint.errors import InputError
from stemprint.export.manifest import sha256_file

CHECKSUMS_NAME = "checksums.sha256"
ZIP_COMMENT = b"stemprint pack"
_EPOCH = (1980, 1, 1, 0, 0, 0)
_STORED_SUFFIXES = {".wav", ".flac", ".aif", ".aiff", ".mp4", ".m4a", ".mp3", ".opus", ".ogg",
                    ".png", ".zip", ".dawproject"}  # fmt: skip
_CHUNK = 1 << 20


def package_files(package: Path) -> list[str]:
    """Every regular file below ``package`` (POSIX paths relative to it), sorted; links and
    hidden staging folders are refused or skipped."""
    found = []
    for root, dirs, files in os.walk(package):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            path = Path(root) / name
            if path.is_symlink():
                raise InputError(
                    f"{path} is a symbolic link; a package to pack holds plain files only",
                    file=str(path),
                    fix="replace the link with the file it points to",
                )
            if not name.startswith("."):
                found.append(path.relative_to(package).as_posix())
    return sorted(found)


def checksum_lines(package: Path, files: list[str], prefix: str = "") -> str:
    """``sha256sum`` lines for ``files`` (paths written with ``prefix``)."""
    return "".join(f"{sha256_file(package / f)}  {prefix}{f}\n" for f in files)


def pack_package(
    package: Path, out: Path | None = None, bagit: bool = False, force: bool = False
) -> Path:
    """Write ``<package>.zip`` (or ``out``) beside the package; return its path.

    Raises
    ------
    InputError
        The package is missing or not a folder, or ``out`` exists and is not a stemprint pack
        (or ``force`` is not given).
    """
    package = package.resolve()
    if not package.is_dir():
        raise InputError("package folder not found", file=str(package), fix="give the folder")
    target = out or package.with_name(package.name + ".zip")
    _check_target(target, force)
    files = [f for f in package_files(package) if f != CHECKSUMS_NAME]
    members = _members(package, files, bagit)
    tmp = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        with zipfile.ZipFile(tmp, "w", allowZip64=True, compresslevel=9) as archive:
            archive.comment = ZIP_COMMENT
            for name, source in members:
                _add(archive, f"{package.name}/{name}", source)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return target


def _check_target(target: Path, force: bool) -> None:
    if not target.exists():
        return
    ours = False
    try:
        with zipfile.ZipFile(target) as existing:
            ours = existing.comment == ZIP_COMMENT
    except (OSError, zipfile.BadZipFile):
        ours = False
    if not force or not ours:
        raise InputError(
            f"{target} exists" + ("" if ours else " and was not written by `stemprint pack`"),
            file=str(target),
            fix="pass --force to replace an earlier pack" if ours else "choose another name",
        )


def _members(package: Path, files: list[str], bagit: bool) -> list[tuple[str, Path | bytes]]:
    """Archive member names and their content (a file, or generated text), sorted."""
    sums = checksum_lines(package, files).encode("utf-8")
    if not bagit:
        entries: list[tuple[str, Path | bytes]] = [(f, package / f) for f in files]
        return sorted([*entries, (CHECKSUMS_NAME, sums)], key=lambda m: m[0])
    payload: list[tuple[str, Path | bytes]] = [(f"data/{f}", package / f) for f in files]
    payload.append((f"data/{CHECKSUMS_NAME}", sums))
    manifest = checksum_lines(package, files, "data/") + _sha_line(sums, f"data/{CHECKSUMS_NAME}")
    octets = sum((package / f).stat().st_size for f in files) + len(sums)
    tags = {
        "bagit.txt": b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n",
        "bag-info.txt": _bag_info(octets, len(payload)),
        "manifest-sha256.txt": manifest.encode("utf-8"),
    }
    tag_manifest = "".join(_sha_line(data, name) for name, data in sorted(tags.items()))
    tags["tagmanifest-sha256.txt"] = tag_manifest.encode("utf-8")
    return sorted([*payload, *tags.items()], key=lambda m: m[0])


def _sha_line(data: bytes, name: str) -> str:
    return f"{hashlib.sha256(data).hexdigest()}  {name}\n"


def _bag_info(octets: int, streams: int) -> bytes:
    lines = ["Source-Organization: stemprint", f"Payload-Oxum: {octets}.{streams}"]
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.isdigit():
        lines.append("Bagging-Date: " + time.strftime("%Y-%m-%d", time.gmtime(int(epoch))))
    return ("\n".join(lines) + "\n").encode("utf-8")


def _add(archive: zipfile.ZipFile, name: str, source: Path | bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.external_attr = 0o100644 << 16
    info.create_system = 3  # Unix, so the permissions above are read as such
    stored = Path(name).suffix.lower() in _STORED_SUFFIXES
    info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    if isinstance(source, bytes):
        archive.writestr(info, source)
        return
    size = source.stat().st_size
    info.file_size = size
    with (
        source.open("rb") as handle,
        archive.open(info, "w", force_zip64=size >= 0xFFFFFFFF) as member,
    ):
        while chunk := handle.read(_CHUNK):
            member.write(chunk)
