"""Safe reading of a DAWproject container: a ZIP holding ``project.xml``, media and states.

Invariants
----------
- The archive is checked as a whole before anything is read: every member name is a plain
  relative POSIX path (no ``..`` part, no leading ``/``, no drive letter, no backslash, no NUL),
  no member is a symbolic link, the declared uncompressed sizes sum to at most
  :data:`MAX_TOTAL_BYTES`, and no member claims a compression ratio above
  :data:`MAX_COMPRESSION_RATIO` (a zip bomb). A violation is a :class:`ProjectError` for the
  whole file: no exporter writes such members.
- Nothing inside the archive chooses where stemprint writes: members are copied into
  ``extract_dir`` under names made here (``media/<n>-<safe basename>``), streamed in chunks with
  the size cap enforced on the bytes actually read (a member that lies about its size is
  stopped, not trusted).
- XML is parsed with ``defusedxml`` with DTDs forbidden: entity expansion ("billion laughs")
  and external entities never run; such a file, and any malformed XML, is a
  :class:`ProjectError` naming the member and, when known, the line.

Formulas
--------
- compression ratio of a member = ``file_size / max(compress_size, 1)``; deflate cannot exceed
  about 1032:1, so a larger claim is a bomb or a lie.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import IO, Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml
import defusedxml.ElementTree as SafeET

from stemprint.errors import ProjectError
from stemprint.zipsafe import MAX_COMPRESSION_RATIO as ZIP_MAX_RATIO
from stemprint.zipsafe import bomb_ratio, hostile_name, is_link

MAX_TOTAL_BYTES = 4 * 1024**3
"""Cap on the summed uncompressed size of every member (4 GiB)."""

MAX_COMPRESSION_RATIO = ZIP_MAX_RATIO
"""Largest accepted ``uncompressed / compressed`` size of a member (deflate's limit is ~1032)."""

MAX_XML_BYTES = 256 * 1024**2
"""Cap on the uncompressed size of ``project.xml`` or ``metadata.xml`` (256 MiB)."""

_CHUNK_BYTES = 1 << 20
_SAFE_CHARS = re.compile(r"[^A-Za-z0-9._ -]+")


def safe_basename(name: str, limit: int = 80) -> str:
    """A file name made of safe characters from the last part of ``name`` (never empty)."""
    base = PurePosixPath(name.replace("\\", "/")).name
    cleaned = _SAFE_CHARS.sub("_", base).strip(" .") or "file"
    return cleaned[-limit:]


class ProjectArchive:
    """A DAWproject ZIP opened for checked reading.

    Parameters
    ----------
    path
        The ``.dawproject`` file.
    max_total_bytes
        Cap on the summed uncompressed size (default :data:`MAX_TOTAL_BYTES`).

    Raises
    ------
    ProjectError
        The file is not a ZIP, is truncated or corrupt, or holds a hostile member.
    """

    def __init__(self, path: Path, *, max_total_bytes: int | None = None) -> None:
        self.path = path
        self._cap = MAX_TOTAL_BYTES if max_total_bytes is None else max_total_bytes
        self._extracted: dict[str, Path] = {}
        self._read_bytes = 0
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            raise self.error(
                f"not a readable DAWproject ZIP archive ({exc})",
                fix="export the project again from the DAW; a .dawproject is a ZIP file",
            ) from None
        try:
            self._members = self._check_members()
        except ProjectError:
            self._zip.close()
            raise

    def error(
        self, message: str, *, member: str | None = None, line: int | None = None, fix: str
    ) -> ProjectError:
        """A :class:`ProjectError` about this archive (``member`` is the field)."""
        return ProjectError(message, file=str(self.path), field=member, line=line, fix=fix)

    def _check_members(self) -> dict[str, zipfile.ZipInfo]:
        members: dict[str, zipfile.ZipInfo] = {}
        total = 0
        for info in self._zip.infolist():
            why = hostile_name(info.filename)
            if why is not None:
                raise self.error(
                    f"archive member name {info.filename!r} {why}",
                    member=info.filename,
                    fix="do not open this file: a DAW never writes such names; export again",
                )
            if is_link(info):
                raise self.error(
                    f"archive member {info.filename!r} is a symbolic link",
                    member=info.filename,
                    fix="do not open this file: a DAW never writes links; export again",
                )
            ratio = bomb_ratio(info, MAX_COMPRESSION_RATIO)
            if ratio is not None:
                raise self.error(
                    f"archive member {info.filename!r} claims a compression ratio of "
                    f"{ratio:.0f}:1 (a zip bomb)",
                    member=info.filename,
                    fix="do not open this file; export the project again from the DAW",
                )
            total += info.file_size
            if total > self._cap:
                raise self.error(
                    f"the archive unpacks to more than {self._cap} bytes",
                    member=info.filename,
                    fix="remove unused media from the project, or export it without "
                    "embedding the audio",
                )
            if not info.is_dir():
                members[info.filename.removeprefix("./")] = info
        return members

    def __enter__(self) -> ProjectArchive:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the ZIP file."""
        self._zip.close()

    @property
    def names(self) -> list[str]:
        """Member file names, in archive order."""
        return list(self._members)

    def member(self, reference: str) -> str | None:
        """The member a project ``FileReference`` path names (``./`` stripped), or ``None``."""
        name = reference.removeprefix("./")
        if hostile_name(name) is not None:
            return None
        return name if name in self._members else None

    def _open(self, name: str) -> IO[bytes]:
        try:
            return self._zip.open(self._members[name])
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError) as exc:
            raise self.error(
                f"cannot read archive member ({exc})",
                member=name,
                fix="export the project again from the DAW; the archive is damaged",
            ) from None

    def _stream(self, name: str, sink: IO[bytes] | None, digest: Any) -> int:
        """Copy a member to ``sink`` / ``digest`` in chunks under the cap; bytes copied."""
        copied = 0
        with self._open(name) as source:
            while True:
                try:
                    chunk = source.read(_CHUNK_BYTES)
                except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
                    raise self.error(
                        f"archive member is truncated or corrupt ({exc})",
                        member=name,
                        fix="export the project again from the DAW; the archive is damaged",
                    ) from None
                if not chunk:
                    return copied
                copied += len(chunk)
                self._read_bytes += len(chunk)
                if self._read_bytes > self._cap:
                    raise self.error(
                        f"the archive unpacks to more than {self._cap} bytes",
                        member=name,
                        fix="remove unused media from the project, or export it without "
                        "embedding the audio",
                    )
                if sink is not None:
                    sink.write(chunk)
                if digest is not None:
                    digest.update(chunk)

    def read_bytes(self, name: str, limit: int = MAX_XML_BYTES) -> bytes:
        """A member's bytes (at most ``limit``)."""
        info = self._members[name]
        if info.file_size > limit:
            raise self.error(
                f"archive member is {info.file_size} bytes, more than the {limit} allowed",
                member=name,
                fix="this is not a project file a DAW writes; export again",
            )
        buffer = io.BytesIO()
        self._stream(name, buffer, None)
        return buffer.getvalue()

    def read_xml(self, name: str, *, required: bool = True) -> Element | None:
        """Parse a member as XML with ``defusedxml`` (no DTD, no entities).

        Returns ``None`` when the member is absent and not ``required``.
        """
        if name not in self._members:
            if not required:
                return None
            raise self.error(
                f"the archive has no {name}",
                member=name,
                fix="give a .dawproject exported by a DAW (it holds project.xml)",
            )
        return parse_xml(self.read_bytes(name), file=str(self.path), member=name)

    def sha256(self, name: str) -> str:
        """SHA-256 (hex) of a member's bytes, streamed."""
        digest = hashlib.sha256()
        self._stream(name, None, digest)
        return digest.hexdigest()

    def extract(self, name: str, extract_dir: Path, folder: str = "media") -> Path:
        """Copy a member to ``extract_dir/<folder>/<n>-<safe basename>``; the same member once.

        The target name is made here from a counter and the member's basename; the member name
        never becomes a path.
        """
        if name in self._extracted:
            return self._extracted[name]
        target_dir = extract_dir / folder
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / f"{len(self._extracted) + 1}-{safe_basename(name)}"
        try:
            with target.open("wb") as sink:
                self._stream(name, sink, None)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        path = target.resolve()
        self._extracted[name] = path
        return path


def parse_xml(data: bytes, *, file: str, member: str) -> Element:
    """Parse XML bytes with ``defusedxml``, DTDs forbidden; errors are :class:`ProjectError`."""
    try:
        root: Element = SafeET.fromstring(data, forbid_dtd=True)
    except defusedxml.DTDForbidden:
        raise ProjectError(
            f"{member} declares a DTD (entity definitions), which a DAWproject never has",
            file=file,
            field=member,
            fix="do not open this file: entity definitions can expand without bound or read "
            "other files; export the project again",
        ) from None
    except defusedxml.DefusedXmlException as exc:
        raise ProjectError(
            f"{member} uses a forbidden XML feature ({type(exc).__name__})",
            file=file,
            field=member,
            fix="do not open this file; export the project again from the DAW",
        ) from None
    except ParseError as exc:
        line = exc.position[0] if getattr(exc, "position", None) else None
        raise ProjectError(
            f"{member} is not well-formed XML ({exc})",
            file=file,
            field=member,
            line=line,
            fix="export the project again from the DAW; the file is truncated or damaged",
        ) from None
    return root
