"""Check a Native Instruments Stems file (``.stem.mp4``) by the rules its players apply.

Rules (errors unless marked), from Mixxx's source and NI's Stem File Specification
----------------------------------------------------------------------------------
Mixxx ``src/track/steminfoimporter.cpp`` (reads the stem manifest):

- the top-level boxes are walked to ``moov``, then ``udta``, then ``stem``: the box must exist
  at exactly that path (``ni_stem.stem_box``);
- its payload, trailing NUL bytes stripped, is a JSON object (``ni_stem.json``) whose
  ``version`` is an integer ≥ 1 (above 1: a warning, Mixxx "tries anyway") and whose
  ``stems`` is an array of objects (``ni_stem.version``, ``ni_stem.stems``); a stem's
  ``color`` that is not a colour or an empty ``name`` falls back to a default (a warning);
- ``mastering_dsp`` (compressor, limiter) is read but not applied (info).

Mixxx ``src/sources/soundsourcestem.cpp`` (opens the streams with FFmpeg):

- only ``stem.mp4`` / ``stem.m4a`` files are opened as stems (``ni_stem.extension``);
- every audio stream is stereo (``ni_stem.stereo``);
- the first audio stream is the mix, never decoded; exactly four audio streams follow it
  (``ni_stem.stream_count``), each with the first stream's codec and sample rate
  (``ni_stem.codec_mismatch``, ``ni_stem.rate_mismatch``), and a known duration
  (``ni_stem.duration``); playback is the sum of the four.

NI's Stem File Specification:

- a valid MP4 (ISO/IEC 14496-12) named ``*.stem.mp4`` (``.stem.m4a``: a warning);
- four stems in the manifest (``ni_stem.stems``), codec ALAC or AAC (``ni_stem.codec``);
- as NI's own files have them (warnings): track 1 enabled and tracks 2–5 disabled (``tkhd``
  flags 0x1, 0x0), which FFmpeg reports as the default disposition of stream 0 only; the
  ``ftyp`` major brand ``M4A `` is reported (info).

The streams are read with FFmpeg's demuxer (through PyAV), as Mixxx reads them; the boxes with
:mod:`stemprint.export.mp4box`, walked the way Mixxx walks them.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stemprint.analysis.findings import Finding
from stemprint.errors import InputError, VerificationFailed
from stemprint.export import mp4box

REQUIRED_STEMS = 4
"""Stem streams after the mix, and entries of the manifest's ``stems``."""

NI_CODECS = frozenset({"alac", "aac"})
"""The codecs NI's specification allows."""

_COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")


@dataclass(frozen=True)
class StreamInfo:
    """One audio stream as FFmpeg's demuxer sees it.

    Attributes
    ----------
    index
        Stream index in the file.
    codec
        FFmpeg codec name (``alac``, ``aac`` …).
    channels
        Channel count.
    sample_rate
        Hz.
    default
        Disposition ``default`` (from the track's ``tkhd`` enabled flag).
    has_duration
        FFmpeg knows the stream's duration.
    name
        The track's handler name, if any.
    """

    index: int
    codec: str
    channels: int
    sample_rate: int
    default: bool
    has_duration: bool
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class NiStemCheck:
    """The result of checking one file.

    Attributes
    ----------
    path
        The file checked.
    findings
        What was found, errors first in rule order.
    streams
        The audio streams read.
    manifest
        The ``stem`` box's JSON object, when it parsed.
    """

    path: Path
    findings: tuple[Finding, ...]
    streams: tuple[StreamInfo, ...] = ()
    manifest: dict[str, Any] | None = field(default=None)

    @property
    def passed(self) -> bool:
        """No error finding."""
        return not any(f.severity == "error" for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict with stable keys."""
        return {
            "file": str(self.path),
            "passed": self.passed,
            "streams": [s.to_dict() for s in self.streams],
            "manifest": self.manifest,
            "findings": [f.to_dict() for f in self.findings],
        }


class _Rules:
    """Collects findings about one file."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.found: list[Finding] = []

    def add(self, severity: Any, code: str, message: str, advice: str | None = None) -> None:
        self.found.append(Finding(severity, code, message, self.label, advice))


def check_ni_stem(path: Path) -> NiStemCheck:
    """Check ``path`` by Mixxx's rules and NI's specification (see the module docstring)."""
    rules = _Rules(path.name)
    _extension_rule(rules, path)
    try:
        moov = mp4box.read_moov(path)
        boxes = mp4box.read_boxes(moov) if moov else ()
    except (InputError, OSError) as error:
        rules.add("error", "ni_stem.container", f"{path.name} is not a readable MP4: {error}")
        return NiStemCheck(path, tuple(rules.found))
    manifest = _manifest_rules(rules, boxes, moov)
    streams = _read_streams(rules, path)
    if streams is not None:
        _stream_rules(rules, streams)
        _track_flag_rule(rules, moov)
    brand = _major_brand(path)
    if brand != "M4A ":
        rules.add("info", "ni_stem.brand", f"ftyp major brand {brand!r} (NI's files: 'M4A ')")
    ordered = sorted(rules.found, key=lambda f: {"error": 0, "warning": 1, "info": 2}[f.severity])
    return NiStemCheck(path, tuple(ordered), tuple(streams or ()), manifest)


def _major_brand(path: Path) -> str | None:
    """The ``ftyp`` major brand, when the file starts with an ``ftyp`` box."""
    with path.open("rb") as handle:
        head = handle.read(12)
    return head[8:12].decode("latin-1") if head[4:8] == b"ftyp" else None


def _extension_rule(rules: _Rules, path: Path) -> None:
    name = path.name.lower()
    if name.endswith(".stem.m4a"):
        rules.add(
            "warning",
            "ni_stem.extension",
            f"{path.name}: Mixxx opens .stem.m4a, but NI's specification names .stem.mp4",
            "rename it to .stem.mp4",
        )
    elif not name.endswith(".stem.mp4"):
        rules.add(
            "error",
            "ni_stem.extension",
            f"{path.name} is not named *.stem.mp4: players do not open it as a stems file",
            "rename it to <name>.stem.mp4",
        )


def _manifest_rules(
    rules: _Rules, boxes: Sequence[mp4box.Box], moov: bytes
) -> dict[str, Any] | None:
    """The ``moov/udta/stem`` rules; the JSON object when it parses."""
    stem = mp4box.find_box(boxes, "moov/udta/stem")
    if stem is None:
        rules.add(
            "error",
            "ni_stem.stem_box",
            "no moov/udta/stem box: players see an ordinary MP4, not a stems file",
            "write the stem manifest box (stemprint writes it with delivery.ni_stem)",
        )
        return None
    raw = stem.payload(moov).rstrip(b"\0")
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        rules.add("error", "ni_stem.json", f"the stem box does not hold JSON: {error}")
        return None
    if not isinstance(document, dict):
        rules.add("error", "ni_stem.json", "the stem box's JSON is not an object")
        return None
    _version_rule(rules, document.get("version"))
    _stems_rule(rules, document.get("stems"))
    _dsp_rule(rules, document.get("mastering_dsp"))
    return document


def _version_rule(rules: _Rules, version: Any) -> None:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        rules.add(
            "error",
            "ni_stem.version",
            f"stem manifest version is {version!r}: Mixxx needs an integer >= 1",
            'write "version": 1',
        )
    elif version > 1:
        rules.add(
            "warning",
            "ni_stem.version",
            f"stem manifest version {version}: Mixxx supports 1 and only tries above it",
        )


def _stems_rule(rules: _Rules, stems: Any) -> None:
    if not isinstance(stems, list) or not all(isinstance(s, dict) for s in stems):
        rules.add(
            "error",
            "ni_stem.stems",
            "the stem manifest's stems is not an array of objects",
            'write "stems": [{"name": ..., "color": "#RRGGBB"}, ...] with four entries',
        )
        return
    if len(stems) != REQUIRED_STEMS:
        rules.add(
            "error",
            "ni_stem.stems",
            f"the stem manifest lists {len(stems)} stems; NI Stems have exactly four",
        )
    for number, stem in enumerate(stems, start=1):
        name, color = stem.get("name"), stem.get("color")
        if not isinstance(name, str) or not name:
            rules.add(
                "warning", "ni_stem.stem_name", f"stem {number} has no name (shown as a default)"
            )
        if not isinstance(color, str) or not _COLOR.match(color):
            rules.add(
                "warning",
                "ni_stem.stem_color",
                f"stem {number} colour {color!r} is not #RRGGBB (a default colour is shown)",
            )


def _dsp_rule(rules: _Rules, dsp: Any) -> None:
    if not isinstance(dsp, dict):
        rules.add("info", "ni_stem.mastering_dsp", "no mastering_dsp: no processing of the sum")
        return
    enabled = [
        name
        for name in ("compressor", "limiter")
        if isinstance(dsp.get(name), dict) and dsp[name].get("enabled") is True
    ]
    text = ", ".join(enabled) if enabled else "none"
    rules.add(
        "info",
        "ni_stem.mastering_dsp",
        f"mastering_dsp enabled: {text} (Traktor applies it to the sum; Mixxx does not)",
    )


def _read_streams(rules: _Rules, path: Path) -> list[StreamInfo] | None:
    """The audio streams, read by FFmpeg's demuxer as Mixxx reads them."""
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as error:
        rules.add("error", "ni_stem.container", f"FFmpeg cannot open {path.name}: {error}")
        return None
    with container:
        found = []
        for stream in container.streams.audio:  # Mixxx skips every other stream type
            context = stream.codec_context
            found.append(
                StreamInfo(
                    index=stream.index,
                    codec=str(context.codec.canonical_name),  # by codec id, as Mixxx
                    channels=int(context.channels),
                    sample_rate=int(context.sample_rate),
                    default=bool(int(stream.disposition) & 1),
                    has_duration=stream.duration is not None,
                    name=stream.metadata.get("handler_name"),
                )
            )
    return found


def _stream_rules(rules: _Rules, streams: Sequence[StreamInfo]) -> None:
    if not streams:
        rules.add("error", "ni_stem.stream_count", "no audio stream")
        return
    for s in streams:
        if s.channels != 2:
            rules.add(
                "error",
                "ni_stem.stereo",
                f"stream {s.index} ({s.name or s.codec}) has {s.channels} channel(s); "
                "every stream of a stems file must be stereo",
                "write it as stereo (a mono signal on both channels)",
            )
        if not s.has_duration:
            rules.add("error", "ni_stem.duration", f"stream {s.index} has no known duration")
    mix, stems = streams[0], streams[1:]
    if len(stems) != REQUIRED_STEMS:
        rules.add(
            "error",
            "ni_stem.stream_count",
            f"{len(stems)} stem stream(s) after the mix; a stems file has exactly four",
        )
    for s in stems:
        if s.codec != mix.codec:
            rules.add(
                "error",
                "ni_stem.codec_mismatch",
                f"stream {s.index} is {s.codec}, the mix (stream {mix.index}) {mix.codec}: "
                "every stream must use one codec",
            )
        if s.sample_rate != mix.sample_rate:
            rules.add(
                "error",
                "ni_stem.rate_mismatch",
                f"stream {s.index} is at {s.sample_rate} Hz, the mix at {mix.sample_rate} Hz: "
                "every stream must have one sample rate",
            )
    for codec in sorted({s.codec for s in streams} - NI_CODECS):
        rules.add(
            "error",
            "ni_stem.codec",
            f"codec {codec}: NI Stems allow ALAC or AAC only",
            "encode as ALAC (lossless) or AAC 256 kb/s",
        )
    names = ", ".join(s.name or "?" for s in streams)
    rules.add(
        "info",
        "ni_stem.streams",
        f"{len(streams)} audio streams, {mix.codec} {mix.sample_rate} Hz: {names}",
    )


def _track_flag_rule(rules: _Rules, moov: bytes) -> None:
    flags = mp4box.track_flags(moov)
    enabled = [bool(value & 0x1) for value in flags]
    if enabled and (not enabled[0] or any(enabled[1:])):
        shown = ", ".join(f"0x{value:X}" for value in flags)
        rules.add(
            "warning",
            "ni_stem.track_flags",
            f"tkhd flags {shown}: NI's files enable track 1 only (0x1, then 0x0), so that "
            "ordinary players play the mix alone",
            "disable every stem track",
        )


def _expand(inputs: Sequence[Path]) -> list[Path]:
    """The files to check: each file given, and every ``*.stem.mp4`` in a folder given."""
    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found = sorted(item.glob("*.stem.mp4"))
            if not found:
                raise InputError(
                    f"{item} holds no .stem.mp4 file",
                    fix="render with delivery.ni_stem, or pass the .stem.mp4 file itself",
                )
            files += found
        elif item.is_file():
            files.append(item)
        else:
            raise InputError(f"{item}: no such file or folder")
    return files


def verify_ni_stem_files(inputs: Sequence[Path], as_json: bool = False) -> list[NiStemCheck]:
    """``stemprint verify --profile ni-stem``: check every file, print the result.

    Raises
    ------
    VerificationFailed
        When any file fails (exit code 1).
    InputError
        When an input does not exist, or a folder holds no ``.stem.mp4`` (exit code 2).
    """
    checks = [check_ni_stem(path) for path in _expand(inputs)]
    if as_json:
        document = {
            "profile": "ni-stem",
            "passed": all(c.passed for c in checks),
            "files": [c.to_dict() for c in checks],
        }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        _print_checks(checks)
    failed = [c.path.name for c in checks if not c.passed]
    if failed:
        raise VerificationFailed(f"not a valid NI Stems file: {', '.join(failed)}")
    return checks


def _print_checks(checks: Sequence[NiStemCheck]) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False)
    for check in checks:
        errors = sum(f.severity == "error" for f in check.findings)
        warnings = sum(f.severity == "warning" for f in check.findings)
        verdict = "[bold green]PASS[/]" if check.passed else "[bold red]FAIL[/]"
        console.print(
            f"{verdict} {escape(str(check.path))}: {errors} error(s), {warnings} warning(s), "
            "profile ni-stem",
            soft_wrap=True,
        )
        for finding in check.findings:
            mark = {"error": "[red]✗[/]", "warning": "[yellow]![/]", "info": "·"}
            line = f"{mark[finding.severity]} {escape(finding.message)}"
            if finding.advice:
                line += f" → {escape(finding.advice)}"
            console.print(line, soft_wrap=True)


__all__ = [
    "NiStemCheck",
    "StreamInfo",
    "check_ni_stem",
    "verify_ni_stem_files",
]
