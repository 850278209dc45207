"""The stem player's markup: one lane per stem, the mix for A/B, the transport, the null check.

Invariants
----------
* The markup works before the script runs (names, lanes, the verification's residual); the
  script (:data:`~.assets.PLAYER_JS`) only enables it. Row ``data-stem="i"`` is the ``i``-th
  stem of ``player-data``.
* Lanes show each file's peak envelope on a square-root scale (full scale fills the lane, a
  stem at −20 dBFS a third of it), :data:`LANE_POINTS` wide, drawn here as one SVG polygon.
* ``player-data`` is JSON with ``</`` escaped; the audio is base64 text in
  ``<script type="application/octet-stream" id="audio-N">`` elements, a type browsers never
  run.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .analysis import Analysis
from .embed import PlayerAudio, PlayerTrack, base64_text
from .inputs import ReportInputs
from .markup import esc, num, swatch

LANE_POINTS = 600
"""Points across a lane."""
_TICK_STEPS = (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600)


def lane_svg(analysis: Analysis, label: str, colour: str) -> str:
    """A file's envelope as a small SVG (square-root scale, module header)."""
    curves = analysis.files.get(label)
    if curves is None:
        return ""
    amp = np.maximum(np.abs(curves.wave_min), np.abs(curves.wave_max)).max(axis=0)
    amp = np.nan_to_num(amp, posinf=0.0, neginf=0.0)
    groups = np.array_split(amp, min(LANE_POINTS, amp.shape[0]))
    peaks = np.array([g.max() for g in groups])
    height = np.sqrt(np.clip(peaks, 0.0, 1.0)) * 15.0
    n = peaks.shape[0]
    xs = (np.arange(n) + 0.5) * LANE_POINTS / n
    top = " ".join(f"{x:.1f},{16 - h:.1f}" for x, h in zip(xs, height, strict=True))
    bottom = " ".join(f"{x:.1f},{16 + h:.1f}" for x, h in zip(xs[::-1], height[::-1], strict=True))
    return (
        f'<svg viewBox="0 0 {LANE_POINTS} 32" preserveAspectRatio="none" aria-hidden="true">'
        f'<polygon points="{top} {bottom}" fill="{esc(colour)}"/></svg>'
    )


def _duration(audio: PlayerAudio) -> float:
    return max((t.file.length / t.file.sample_rate for t in audio.tracks), default=0.0)


def player_data(audio: PlayerAudio) -> dict[str, Any]:
    """What the script needs: mode, rate, duration, the stems, the mix and the reference."""

    def ref(t: PlayerTrack | None) -> dict[str, str] | None:
        return None if t is None else {"name": t.file.label, "src": t.src}

    return {
        "mode": audio.mode,
        "codec": audio.codec,
        "rate": audio.tracks[0].file.sample_rate if audio.tracks else 48000,
        "duration": _duration(audio),
        "files": len(audio.tracks),
        "stems": [{"name": t.file.name, "label": t.file.label, "src": t.src} for t in audio.stems],
        "mix": ref(audio.mix),
        "reference": ref(audio.reference),
    }


def _clock(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes}:{seconds - 60 * minutes:05.2f}"


def player_section(audio: PlayerAudio, inputs: ReportInputs, analysis: Analysis) -> str:
    """The player ``<section>`` (empty for ``none``)."""
    if audio.mode == "none":
        return ""
    duration = _duration(audio)
    top_db = 0 if audio.mode == "link" else 6
    rows = []
    for i, t in enumerate(audio.stems):
        f = t.file
        rows.append(
            f'<div class="pl-row" data-stem="{i}"><div class="pl-ctl">{swatch(f.colour)}'
            f'<span class="pl-name" title="{esc(f.label)}">{esc(f.name)}</span>'
            '<button class="pl-m" aria-pressed="false" title="mute">M</button>'
            '<button class="pl-s" aria-pressed="false" title="solo">S</button>'
            f'<input class="pl-level" type="range" min="-30" max="{top_db}" step="0.5" '
            f'value="0" aria-label="level of {esc(f.name)}"><span class="pl-db">0.0 dB</span>'
            f'</div><div class="pl-lane" title="{esc(f.label)}">'
            f"{lane_svg(analysis, f.label, f.colour)}</div></div>"
        )
    if audio.mix is not None:
        m = audio.mix.file
        rows.append(
            '<div class="pl-row mix"><div class="pl-ctl"><span class="pl-name" '
            f'title="{esc(m.label)}">A/B: {esc(m.label)}</span>'
            '<button data-listen="stems" aria-pressed="true">Stems</button>'
            '<button data-listen="mix" aria-pressed="false">Mix</button></div>'
            f'<div class="pl-lane" title="{esc(m.label)}">'
            f"{lane_svg(analysis, m.label, m.colour)}</div></div>"
        )
    return (
        '<section id="player"><h2>Stem player</h2>'
        + _transport(duration)
        + '<div class="pl-lanes">' + _ruler(duration) + "".join(rows)
        + '<div id="pl-shade" hidden></div><div id="pl-head"></div></div>'
        + _null_block(audio, inputs)
        + "".join(f'<p class="note">{esc(n)}</p>' for n in audio.notes)
        + '<p class="note" id="pl-status">The player needs JavaScript.</p></section>'
    )  # fmt: skip


def _ruler(duration: float) -> str:
    """Time marks over the lanes (at most ten)."""
    step = next((s for s in _TICK_STEPS if duration / s <= 10), _TICK_STEPS[-1])
    marks = []
    t = 0.0
    while duration > 0 and t <= duration * 0.96:
        label = _clock(t)[:-3] if duration >= 60 else f"{t:g} s"
        marks.append(f'<span style="left:{100 * t / duration:.3f}%">{label}</span>')
        t += step
    return (
        '<div class="pl-row pl-ruler"><div class="pl-ctl"></div>'
        f'<div class="pl-ticks">{"".join(marks)}</div></div>'
    )


def _transport(duration: float) -> str:
    end = f"{duration:.2f}"
    return (
        '<div class="pl-bar"><button id="pl-play" disabled>▶ Play</button>'
        f'<span><span id="pl-pos">0:00.00</span> / {_clock(duration)}</span>'
        f'<input id="pl-seek" type="range" min="0" max="{end}" step="0.01" value="0" '
        'aria-label="position">'
        '<label><input id="pl-loop" type="checkbox"> loop</label>'
        '<input id="pl-loop-a" type="number" min="0" step="0.1" value="0" aria-label="loop start">'
        f'–<input id="pl-loop-b" type="number" min="0" step="0.1" value="{end}" '
        'aria-label="loop end"> s</div>'
    )


def _null_block(audio: PlayerAudio, inputs: ReportInputs) -> str:
    relation = inputs.verdict_relation
    if audio.mode == "link":
        return (
            '<p class="note">Linked to the package\'s own files. A page opened from file:// '
            "cannot read them into Web Audio (the browser blocks it), so they play through "
            "&lt;audio&gt; elements started together, not sample-locked, and there is no "
            "null check here. <code>stemprint report PACKAGE --audio embed</code> makes the "
            "sample-aligned player.</p>"
        )
    if audio.reference is None or relation is None:
        return '<p class="note">No sum relation: nothing to null-test in the page.</p>'
    measured = num(
        relation.null.get("residual_peak_dbfs"), "v", f"nulls.{relation.index}.residual_peak_dbfs"
    )
    return (
        '<p id="null-out" data-state="idle">Null check: waiting for the decoded audio…</p>'
        f'<p class="note">The audible stems at their levels, summed in this browser '
        f"(OfflineAudioContext) from the embedded audio, minus {esc(audio.reference.file.label)}"
        f"; the verification measured {measured} dBFS from the files. Mute a stem and the "
        'residual becomes that stem. <button id="pl-null">Run again</button></p>'
    )


def audio_elements(audio: PlayerAudio) -> str:
    """The ``player-data`` JSON and the base64 audio elements (end of the body)."""
    if audio.mode == "none":
        return ""
    data = json.dumps(player_data(audio), sort_keys=True, ensure_ascii=False)
    out = [
        '<script type="application/json" id="player-data">'
        + data.replace("</", "<\\/")
        + "</script>"
    ]
    for src, blob in sorted(audio.blobs.items()):
        out.append(
            f'<script type="application/octet-stream" id="{esc(src)}" '
            f'data-codec="{esc(audio.codec)}">{base64_text(blob)}</script>'
        )
    return "\n".join(out)
