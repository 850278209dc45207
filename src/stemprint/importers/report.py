"""The import report: the honest account of what a DAW project import did to the audio.

Invariants
----------
- Every finding has a stable ``code`` (upper snake case, listed in :data:`CODES`), a ``where``
  (``track › clip 3``, ``track › insert 1``, ``master``, ``project``), an ``effect`` on the
  rendered audio and the ``action`` taken. Codes never change meaning; new ones are added.
- ``effect`` is one of ``none`` (the render is what the DAW plays), ``approximate`` (close, not
  exact: an assumed pan law, a built-in EQ standing in for the DAW's) or ``dropped`` (something
  the DAW would play is not rendered: a MIDI track, a missing file). Nothing a DAW would play is
  dropped without a ``dropped`` finding.
- ``--strict`` fails the import when any finding's effect is not ``none``
  (:meth:`ImportReport.changes_audio`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

Effect = Literal["none", "approximate", "dropped"]

CODES: dict[str, str] = {
    "AUTOMATION_DENSIFIED": "a gain-linear or curved automation ramp was resampled into "
    "dB-linear points (within 0.05 dB)",
    "AUTOMATION_UNSUPPORTED": "an automation lane stemprint cannot render",
    "BUILTIN_DEVICE_APPROXIMATED": "a DAW's generic EQ/compressor/limiter/gate mapped to a "
    "pedalboard built-in",
    "CLIP_LAUNCHER": "clip launcher scenes or slots (not part of the arrangement)",
    "CLIP_MUTED": "a muted (disabled) clip, left out as the DAW does",
    "CROSSFADE": "an overlap crossfade rendered as equal-power fades",
    "FADE_SHAPE_APPROXIMATED": "a fade curve mapped to the nearest stemprint shape",
    "DEVICE_BYPASSED": "a bypassed, disabled or unloaded device, left out as the DAW plays it",
    "EMPTY_TRACK": "a track left out because nothing audible comes from it",
    "FEEDBACK_ROUTING": "the project allows feedback routing",
    "FOLDER_WITH_CLIPS": "a folder or group bus with clips of its own: an implicit child track",
    "FROZEN_TRACK": "a frozen track, imported as its rendered audio",
    "HARDWARE_OUTPUT": "a hardware output (not part of the mix)",
    "INACTIVE_TRACK": "a deactivated track, left out as the DAW does",
    "LOOP_UNROLLED": "a looped clip unrolled into consecutive clips",
    "MEDIA_FOUND_BY_NAME": "a media file found by its basename, not at its recorded path",
    "MISSING_MEDIA": "a media file that could not be found",
    "MIDI_TRACK": "a MIDI or instrument track (freeze or bounce it in the DAW)",
    "MULTICHANNEL_ROUTING": "routing beyond stereo pairs",
    "NAME_CHANGED": "a track or bus name made unique or valid",
    "PAN_LAW_ASSUMED": "the DAW's pan law is unknown or differs: the stated law is used",
    "PITCH_SHIFT": "pitch shift",
    "PLUGIN_UNAVAILABLE": "a plug-in that cannot run here (format, platform or missing binary)",
    "PLUGIN_MAPPED": "a plug-in mapped to a binary (plug-in map), rendered with --allow-plugins",
    "POLARITY_PER_CLIP": "a per-clip polarity or channel mode stemprint cannot render",
    "SAMPLE_RATE_CONVERTED": "a media file at another sample rate (resampled when rendered)",
    "SEND_UNSUPPORTED": "a send stemprint cannot render as the DAW does",
    "SOLO_IGNORED": "solo states in the project (rendered as if nothing were soloed)",
    "TAKE_FX": "take or clip effects",
    "TAKE_PAN": "a per-take (per-clip) pan stemprint cannot render",
    "TEMPO_CHANGES": "tempo or meter changes: positions converted exactly, the grid keeps the "
    "first",
    "TEMPO_RAMP": "a linear tempo ramp (positions converted, grid approximated)",
    "TIME_STRETCH": "time-stretched or warped audio",
    "UNSUPPORTED_ELEMENT": "a project element stemprint does not read",
    "VCA": "a VCA fader",
    "VOLUME_UNIT": "a gain in a unit stemprint cannot read exactly (a normalized fader)",
}
"""Every finding code and what it means."""


@dataclass(frozen=True)
class Finding:
    """One thing the import could not carry across exactly (or chose to tell).

    Attributes
    ----------
    code
        A key of :data:`CODES`.
    where
        Location in the project: ``Track name › clip 2``, ``Bus › insert 0``, ``master``.
    effect
        ``none``, ``approximate`` or ``dropped``: what it does to the rendered audio.
    message
        What was found.
    action
        What stemprint did about it (and what the user can do).
    """

    code: str
    where: str
    effect: Effect
    message: str
    action: str

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unknown import finding code {self.code!r}")

    def to_dict(self) -> dict[str, str]:
        """Plain data for JSON."""
        return {
            "code": self.code,
            "where": self.where,
            "effect": self.effect,
            "message": self.message,
            "action": self.action,
        }


@dataclass
class ImportReport:
    """What one import read and what it could not reproduce.

    Attributes
    ----------
    project
        The project file.
    format
        ``dawproject`` or ``rpp``.
    application
        The exporting application and version, when the file says.
    findings
        Every finding, in project order.
    media
        Media files the session uses (absolute paths), in first-use order.
    facts
        Numbers for the summary (tracks, buses, clips, sends, inserts).
    """

    project: str
    format: str
    application: str = ""
    findings: list[Finding] = field(default_factory=list)
    media: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def add(self, code: str, where: str, effect: Effect, message: str, action: str) -> None:
        """Record one finding."""
        self.findings.append(Finding(code, where, effect, message, action))

    def changes_audio(self) -> list[Finding]:
        """Findings whose effect is not ``none`` (what ``--strict`` refuses)."""
        return [f for f in self.findings if f.effect != "none"]

    def codes(self) -> Counter[str]:
        """How many findings of each code."""
        return Counter(f.code for f in self.findings)

    def summary_lines(self) -> list[str]:
        """A short summary for the terminal: counts, then one line per code."""
        facts = ", ".join(f"{v} {k}" for k, v in self.facts.items())
        lines = [f"{self.format} from {self.application or 'an unknown application'}: {facts}"]
        by_code: dict[str, list[Finding]] = {}
        for finding in self.findings:
            by_code.setdefault(finding.code, []).append(finding)
        for code, found in by_code.items():
            effects = sorted({f.effect for f in found})
            first = found[0]
            more = f" (+{len(found) - 1} more)" if len(found) > 1 else ""
            lines.append(f"{code} [{'/'.join(effects)}] {first.where}: {first.message}{more}")
        return lines

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--report report.json``."""
        return {
            "stemprint_import": 1,
            "project": self.project,
            "format": self.format,
            "application": self.application,
            "facts": dict(self.facts),
            "changes_audio": bool(self.changes_audio()),
            "codes": dict(sorted(self.codes().items())),
            "findings": [f.to_dict() for f in self.findings],
            "media": list(self.media),
        }
