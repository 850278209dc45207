"""Shared state of one ``.rpp`` import: the per-track route, its sends, the context, helpers.

- Gains are linear factors: ``gain_db = 20·log10(g)``.
- A number token with a ``-1:U`` style suffix reads as its leading number; any other non-number
  is a :class:`~stemprint.errors.ProjectError` naming the file, key and line.
- ``_Route.output`` is a route index, ``"master"`` (:data:`MASTER`) or ``None`` (feeds only its
  sends: ``output: null`` in the session).
- Without a ``PANLAW`` line the project pan law is +0 dB (assumed).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stemprint.errors import ProjectError
from stemprint.importers.common import MediaResolver
from stemprint.importers.report import Effect, ImportReport
from stemprint.importers.rpp.tokens import Chunk, Line

MASTER = "master"
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_DEFAULT_PANLAW = 1.0  # REAPER projects without a PANLAW line: +0 dB (assumed)


# -- small parsing helpers ----------------------------------------------------------------------


def _float(text: str, line: Line | None, file: str) -> float:
    """A number token; ``-1:U`` style suffixes are dropped; garbage is a ProjectError."""
    try:
        value = float(text)
    except ValueError:
        match = _NUMBER.match(text)
        if match is None:
            raise ProjectError(
                f"expected a number, found {text!r}",
                file=file,
                field=f"{line.key}" if line is not None else None,
                line=line.line if line is not None else None,
                fix="the project is damaged: open it in REAPER and save it again",
            ) from None
        value = float(match.group(0))
    if not math.isfinite(value):
        raise ProjectError(
            f"expected a finite number, found {text!r}",
            file=file,
            line=line.line if line is not None else None,
            fix="the project is damaged: open it in REAPER and save it again",
        )
    return value


def _arg(line: Line | None, index: int, default: float, file: str) -> float:
    """Argument ``index`` of ``line`` as a number (``default`` when absent)."""
    if line is None or len(line.tokens) <= index + 1:
        return default
    return _float(line.tokens[index + 1], line, file)


def _text(line: Line | None, index: int = 0, default: str = "") -> str:
    if line is None or len(line.tokens) <= index + 1:
        return default
    return line.tokens[index + 1]


def _first(children: list[Line | Chunk], key: str) -> Line | None:
    for child in children:
        if isinstance(child, Line) and child.tokens[0] == key:
            return child
    return None


def _sub(children: list[Line | Chunk], tag: str) -> Chunk | None:
    for child in children:
        if isinstance(child, Chunk) and child.tag == tag:
            return child
    return None


# -- data gathered per REAPER track -----------------------------------------------------------


@dataclass
class _Send:
    target: int
    level_db: float
    pan: float = 0.0
    pre_fader: bool = False
    pre_inserts: bool = False
    invert: bool = False
    lane: list[tuple[float, float]] | None = None  # dB points (seconds, gain_db)
    lane_interpolation: str = "linear"


@dataclass
class _Route:
    index: int
    label: str  # the REAPER name for findings ("Track 3" when empty)
    depth_delta: int = 0
    parent: int | None = None
    children: list[int] = field(default_factory=list)
    mainsend: bool = True
    gain_db: float = 0.0
    pan: float = 0.0
    pan_law: str = "balance"
    mute: bool = False
    invert: bool = False
    inserts: list[dict[str, Any]] = field(default_factory=list)
    lanes: dict[str, dict[str, Any]] = field(default_factory=dict)
    clips: list[dict[str, Any]] = field(default_factory=list)
    channels: set[int] = field(default_factory=set)
    sends: list[_Send] = field(default_factory=list)
    output: int | str | None = MASTER  # route index, "master", or None (feeds nothing)
    pan_note: str = ""
    bus: bool = False
    name: str = ""
    child_name: str = ""


@dataclass
class _Context:
    file: str
    project_dir: Path
    report: ImportReport
    plugin_map: Mapping[str, str]
    media: MediaResolver | None = None
    sample_rate: int = 48000
    pan_law_gain: float = _DEFAULT_PANLAW
    pan_mode: int = 3
    infos: dict[Path, Any] = field(default_factory=dict)
    found: dict[str, Path] = field(default_factory=dict)

    def add(self, code: str, where: str, effect: Effect, message: str, action: str) -> None:
        self.report.add(code, where, effect, message, action)
