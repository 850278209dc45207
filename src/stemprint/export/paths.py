"""File names of a package: every output's path inside ``OUT``, from the delivery's template.

Invariants
----------
- Names are valid on Windows, macOS and Linux (:func:`safe_file_name`); two outputs never get
  the same path, compared case-insensitively (macOS and Windows file systems): a collision is
  an error naming both, never an overwrite.
- ``mix`` and ``premaster`` keep their names; stems go to ``stems/``, alternate mixes to
  ``mixes/``, multitrack tracks to ``multitrack/``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from stemprint.errors import InputError
from stemprint.graph.outputs import ResolvedDelivery
from stemprint.render.taps import Tap

_UNSAFE = re.compile(r"[^A-Za-z0-9 ._()\-+&,]")
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10))} | {
    f"lpt{i}" for i in range(10)
}

EXTENSIONS = {"wav": "wav", "aiff": "aif", "flac": "flac"}
"""File extension of each delivery format."""


def safe_file_name(name: str) -> str:
    """A file name that is valid on Windows, macOS and Linux, derived from a route name."""
    cleaned = _UNSAFE.sub("_", name).strip(" .")
    if not cleaned:
        cleaned = "_"
    if cleaned.split(".")[0].lower() in _WINDOWS_RESERVED:
        cleaned = "_" + cleaned
    return cleaned[:120]


_FOLDERS = {"stem": "stems", "alt_mix": "mixes", "track": "multitrack"}


ASSET_TYPES = {"DX": "DIASTEM", "MX": "MXSTEM", "FX": "FXSTEM"}
"""``{type}`` of the dialogue, music and effects stems (the streaming platforms' asset names);
another stem is ``<NAME>STEM``, the mix ``PM`` (printmaster), an alternate mix its name."""


def asset_type(role: str, name: str) -> str:
    """The ``{type}`` placeholder of one file (upper case, no spaces)."""
    if role == "mix":
        return "PM"
    if role == "premaster":
        return "PREMASTER"
    compact = "".join(ch for ch in name.upper() if ch.isalnum())
    if role == "stem":
        return ASSET_TYPES.get(name.upper(), f"{compact}STEM")
    return compact


def frame_rate_text(frame_rate: str | None) -> str:
    """``{fps}``: ``23.976`` → ``23976``, ``29.97df`` → ``2997DF``, none → empty."""
    return (frame_rate or "").replace(".", "").upper()


def _tidy(name: str) -> str:
    """A filled template without the separators of empty placeholders."""
    name = re.sub(r"_{2,}", "_", name)
    return name.strip("_- ") or "untitled"


def file_paths(
    taps: Sequence[Tap],
    delivery: ResolvedDelivery,
    session_name: str,
    file_rate: int,
    region: str | None = None,
    names: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Relative file path of every tap, from the delivery's name template; collisions raise.

    ``names`` fills ``{title}``, ``{version}`` and ``{fps}``. A template with ``{type}`` (the
    ``dme`` preset's) names every file, the mix and the alternate mixes included.
    """
    extension = EXTENSIONS[delivery.format]
    paths: dict[str, str] = {}
    seen: dict[str, str] = {}
    counters: dict[str, int] = {}
    every_file = "{type}" in delivery.file_name
    for tap in taps:
        if tap.spec.role in ("mix", "premaster") and not every_file:
            path = f"{tap.spec.role}.{extension}"
            if region is not None:
                path = f"{tap.spec.role} - {safe_file_name(region)}.{extension}"
        else:
            counters[tap.spec.role] = counters.get(tap.spec.role, 0) + 1
            template = delivery.file_name if tap.spec.role == "stem" or every_file else "{stem}"
            if region is not None and "{region}" not in template:
                template += " - {region}"
            try:
                stem_name = template.format(
                    session=session_name,
                    stem=tap.name,
                    index=f"{counters[tap.spec.role]:02d}",
                    sample_rate=file_rate,
                    bit_depth=delivery.bit_depth,
                    preset=delivery.preset or "custom",
                    tap=tap.spec.tap_point,
                    region=region or "",
                    title=(names or {}).get("title", session_name),
                    version=(names or {}).get("version", ""),
                    fps=frame_rate_text((names or {}).get("frame_rate")),
                    type=asset_type(tap.spec.role, tap.name),
                    channels=tap.spec.channels,
                    khz=f"{file_rate / 1000:g}",
                    bits=delivery.bit_depth.rstrip("f"),
                )
                if "{version}" in template or "{fps}" in template:
                    stem_name = _tidy(stem_name)  # an empty version or frame rate
            except (KeyError, IndexError, ValueError) as exc:
                raise InputError(
                    f"bad file name template {template!r}: {exc}",
                    field="delivery.file_name",
                    fix="use the placeholders {session} {stem} {index} {sample_rate} "
                    "{bit_depth} {preset} {tap} {title} {version} {type} {channels} {khz} "
                    "{bits} {fps}",
                ) from None
            folder = _FOLDERS.get(tap.spec.role)
            path = f"{folder + '/' if folder else ''}{safe_file_name(stem_name)}.{extension}"
        key = path.lower()  # case-insensitive file systems (macOS, Windows)
        if key in seen:
            raise InputError(
                f"{seen[key]!r} and {tap.name!r} would both be written as {path}",
                field="tracks/buses/stems name, or delivery.file_name",
                fix="rename one of them, or put {stem} or {index} in the file name template",
            )
        seen[key] = tap.name
        paths[tap.key] = path
    return paths
