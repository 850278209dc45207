"""What makes a ZIP member unsafe to unpack: one set of rules for every archive stemprint reads
(a DAWproject, a packed package).

Rules
-----
- A member name is a plain relative POSIX path: no backslash, no NUL, no leading ``/``, no drive
  letter, no ``..`` part (it could write outside the folder it is unpacked into).
- A member is not a link (Unix mode bits in ``external_attr``).
- A member over :data:`RATIO_FLOOR_BYTES` does not claim a compression ratio above
  :data:`MAX_COMPRESSION_RATIO`: deflate cannot pass about 1032:1, so a higher claim is a zip
  bomb or a lying header.
"""

from __future__ import annotations

import re
import stat
import zipfile

MAX_COMPRESSION_RATIO = 1100.0
"""Largest uncompressed/compressed ratio of a member over :data:`RATIO_FLOOR_BYTES`."""

RATIO_FLOOR_BYTES = 1 << 20
"""Members up to this size are not ratio-checked (tiny files compress arbitrarily well)."""

_DRIVE = re.compile(r"^[A-Za-z]:")


def hostile_name(name: str) -> str | None:
    """Why a member name is unsafe, or ``None`` when it is a plain relative path."""
    if "\\" in name:
        return "contains a backslash"
    if "\x00" in name:
        return "contains a NUL character"
    if name.startswith("/"):
        return "is an absolute path"
    if _DRIVE.match(name):
        return "starts with a drive letter"
    if any(part == ".." for part in name.split("/")):
        return "climbs out of the archive with '..'"
    return None


def is_link(info: zipfile.ZipInfo) -> bool:
    """The member is a symbolic link."""
    return stat.S_ISLNK(info.external_attr >> 16)


def bomb_ratio(info: zipfile.ZipInfo, max_ratio: float = MAX_COMPRESSION_RATIO) -> float | None:
    """The member's claimed compression ratio when it is above ``max_ratio``, else ``None``."""
    ratio = info.file_size / max(info.compress_size, 1)
    return ratio if info.file_size > RATIO_FLOOR_BYTES and ratio > max_ratio else None
