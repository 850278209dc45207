"""Folder names of a batch's packages under ``ROOT``: safe, unique, stable.

Rules
-----
- A session's package is named after its file without the suffix (``song1.yaml`` → ``song1``,
  ``Reel 2.rpp`` → ``Reel 2``), made safe on every file system (``export.paths.safe_file_name``).
- Sessions whose names collide (compared case-insensitively, as macOS and Windows do) take as
  many of their parent folders as tell them apart, joined by ``-``
  (``album/a/session.yaml``, ``album/b/session.yaml`` → ``a-session``, ``b-session``).
- What still collides (the same file given twice) is numbered: ``song1``, ``song1 2``.
- A name never starts with a dot (hidden folders are staging folders) and is never
  ``batch.json``.
- A region's package is ``<name>/<region>`` (the region's safe name), as ``stemprint render
  --all-regions`` lays out its folder.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from stemprint.export.paths import safe_file_name

SUMMARY_NAME = "batch.json"


def package_names(sessions: Sequence[Path]) -> list[str]:
    """One unique folder name per session, in order (see the module rules)."""
    parts = [_parts(path) for path in sessions]
    depth = [1] * len(parts)
    while True:
        names = [_joined(p, d) for p, d in zip(parts, depth, strict=True)]
        deeper = False
        for group in _collisions(names):
            if len({_full(parts[i]) for i in group}) == 1:
                continue  # the same file given twice: numbered below
            for i in group:
                if depth[i] < len(parts[i]):
                    depth[i] += 1
                    deeper = True
        if not deeper:
            return _numbered(names)


def region_folder(region: str) -> str:
    """A region's folder inside its session's package folder."""
    return safe_file_name(region)


def _parts(path: Path) -> list[str]:
    """The path's folder names and its file name without suffix, outermost first."""
    absolute = path.absolute()
    names = [p for p in absolute.parent.parts if p not in (absolute.anchor, "")]
    return [*names, absolute.stem]


def _full(parts: list[str]) -> str:
    return "/".join(parts).casefold()


def _joined(parts: list[str], depth: int) -> str:
    name = "-".join(safe_file_name(p) for p in parts[-depth:])
    name = name.lstrip(".") or "_"
    return "_" + name if name.casefold() == SUMMARY_NAME else name


def _collisions(names: list[str]) -> list[list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, name in enumerate(names):
        groups[name.casefold()].append(i)
    return [group for group in groups.values() if len(group) > 1]


def _numbered(names: list[str]) -> list[str]:
    taken: set[str] = set()
    out = []
    for name in names:
        candidate, number = name, 2
        while candidate.casefold() in taken:
            candidate, number = f"{name} {number}", number + 1
        taken.add(candidate.casefold())
        out.append(candidate)
    return out


__all__ = ["SUMMARY_NAME", "package_names", "region_folder"]
