"""Verify a packed package: unpack a ZIP safely, then check its checksums.

Invariants
----------
- A ZIP is data: member names with ``..``, an absolute path, a drive letter, a backslash or a
  NUL are refused, and so are links (Unix mode bits); the total uncompressed size is capped
  (:data:`MAX_UNPACKED_BYTES`), counted on the bytes actually written, so a member that lies
  about its size cannot pass; a member compressed more than :data:`MAX_RATIO` times is refused
  (a zip bomb). Everything is unpacked below a new temporary folder, never elsewhere.
- The package inside is the archive's one top folder (``song/…``); a BagIt bag's payload is its
  ``data/`` folder. Its ``checksums.sha256`` (``sha256sum`` format), or a bag's
  ``manifest-sha256.txt``, is checked file by file: a mismatch or a listed file that is missing
  is a verification error (``archive.checksum``), an unlisted file a warning.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from stemprint.analysis.findings import Finding
from stemprint.errors import InputError
from stemprint.export.manifest import sha256_file
from stemprint.zipsafe import MAX_COMPRESSION_RATIO, bomb_ratio, hostile_name, is_link

MAX_UNPACKED_BYTES = 64 * 1024**3
"""Largest total size a packed package may unpack to (64 GiB)."""

MAX_RATIO = MAX_COMPRESSION_RATIO
"""Largest compression ratio of a member over 1 MiB (``stemprint.zipsafe``)."""

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Unpacked:
    """A packed package, unpacked: its folder and what its checksums said."""

    folder: Path
    findings: list[Finding]


def is_archive(path: Path) -> bool:
    """A ``.zip`` file."""
    return path.suffix.lower() == ".zip" and path.is_file()


@contextmanager
def unpacked(archive: Path, max_bytes: int = MAX_UNPACKED_BYTES) -> Iterator[Unpacked]:
    """Unpack ``archive`` into a temporary folder (removed on exit); check its checksums."""
    temp = Path(tempfile.mkdtemp(prefix="stemprint-verify-"))
    try:
        _extract(archive, temp, max_bytes)
        folder, sums_file, prefix = _package_folder(temp, archive)
        yield Unpacked(folder, _check_sums(folder, sums_file, prefix))
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _bad(archive: Path, member: str, why: str) -> InputError:
    return InputError(
        f"unsafe archive member {member!r}: {why}",
        file=str(archive),
        field=member,
        fix="pack the package with `stemprint pack`, or unpack it yourself and verify the folder",
    )


def _check_member(archive: Path, info: zipfile.ZipInfo) -> PurePosixPath:
    name = info.filename
    why = hostile_name(name)
    if why is not None:
        raise _bad(archive, name, f"its name {why}")
    if is_link(info):
        raise _bad(archive, name, "it is a link")
    if bomb_ratio(info, MAX_RATIO) is not None:
        raise _bad(archive, name, "it is compressed more than any real file (a zip bomb)")
    return PurePosixPath(name)


def _extract(archive: Path, into: Path, max_bytes: int) -> None:
    try:
        with zipfile.ZipFile(archive) as z:
            infos = z.infolist()
            members = [(_check_member(archive, i), i) for i in infos]
            if sum(i.file_size for i in infos) > max_bytes:
                raise _bad(archive, "(all)", f"it unpacks to more than {max_bytes} bytes")
            written = 0
            for pure, info in members:
                target = into.joinpath(*pure.parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                member = 0
                with z.open(info) as source, target.open("wb") as sink:
                    while chunk := source.read(_CHUNK):
                        member += len(chunk)
                        written += len(chunk)
                        if member > info.file_size:
                            raise _bad(archive, info.filename, "it holds more than it declares")
                        if written > max_bytes:
                            raise _bad(archive, info.filename, "the archive unpacks too large")
                        sink.write(chunk)
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(
            f"not a readable ZIP archive: {exc}",
            file=str(archive),
            fix="check that the file is complete (a truncated download?)",
        ) from None


def _package_folder(temp: Path, archive: Path) -> tuple[Path, Path | None, str]:
    """The package folder, its checksum file and the prefix of the paths listed in it."""
    entries = [p for p in temp.iterdir() if not p.name.startswith(".")]
    root = entries[0] if len(entries) == 1 and entries[0].is_dir() else temp
    if (root / "bagit.txt").is_file() and (root / "data").is_dir():
        return root / "data", root / "manifest-sha256.txt", "data/"
    sums = root / "checksums.sha256"
    if not (root / "manifest.json").is_file() and not any(root.iterdir()):
        raise InputError("the archive is empty", file=str(archive), fix="pack a package")
    return root, sums if sums.is_file() else None, ""


def _check_sums(folder: Path, sums_file: Path | None, prefix: str) -> list[Finding]:
    if sums_file is None or not sums_file.is_file():
        return [Finding("info", "archive.no_checksums", "the archive holds no checksums")]
    base = folder.parent if prefix else folder
    findings: list[Finding] = []
    listed: set[str] = set()
    for line in sums_file.read_text("utf-8").splitlines():
        digest, _, name = line.partition("  ")
        if not name:
            continue
        listed.add(name)
        path = base / name
        if not path.is_file():
            findings.append(Finding("error", "archive.checksum", f"{name} is listed but missing",
                                    file=name, advice="the archive is incomplete"))  # fmt: skip
        elif sha256_file(path) != digest.strip().lower():
            findings.append(Finding("error", "archive.checksum",
                                    f"{name} does not match its SHA-256: it changed after packing",
                                    file=name, advice="ask for the package again"))  # fmt: skip
    if not findings:
        findings.append(Finding("info", "archive.checksums_ok",
                                f"all {len(listed)} checksums match"))  # fmt: skip
    return findings
