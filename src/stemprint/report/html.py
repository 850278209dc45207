"""The page: header and verdict, player, findings, null tests, routing, files.

Invariants
----------
* One self-contained document: the only script is :data:`~.assets.PLAYER_JS`, allowed by its
  SHA-256 in the Content-Security-Policy (``default-src 'none'``: no connection, no frame, no
  font, no remote image); images are ``data:`` URIs, media ``data:``/``blob:`` (and the
  package's files for ``--audio link``).
* Figures copied from the JSON are marked (:mod:`.markup`); the order of sections and rows
  follows the verification's and the manifest's lists, so the same inputs give the same page.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from .analysis import Analysis
from .assets import CSS, PLAYER_JS
from .embed import PlayerAudio
from .inputs import ReportFile, ReportInputs
from .markup import LOUDNESS_COLOURS, esc, num, peak_class, swatch, text
from .player import audio_elements, player_section
from .routing import stems_of


def csp(link: bool) -> str:
    """The page's Content-Security-Policy."""
    digest = base64.b64encode(hashlib.sha256(PLAYER_JS.encode("utf-8")).digest()).decode()
    media = "data: blob:" + (" 'self' file:" if link else "")
    return (
        f"default-src 'none'; img-src data:; media-src {media}; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"
    )


def page(
    inputs: ReportInputs,
    analysis: Analysis,
    audio: PlayerAudio,
    figures: Mapping[str, str],
    residuals: str | None,
    routing: str | None,
) -> str:
    """The whole HTML document."""
    title = _title(inputs)
    body = [
        _header(inputs, title),
        player_section(audio, inputs, analysis),
        _findings(inputs),
        _nulls(inputs, residuals),
        _routing(inputs, routing),
        _files(inputs, figures),
    ]
    script = f"<script>{PLAYER_JS}</script>" if audio.mode != "none" else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
        f'<meta http-equiv="Content-Security-Policy" content="{csp(audio.mode == "link")}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)} · stemprint report</title>\n<style>{CSS}</style></head>\n"
        "<body><main>\n" + "\n".join(b for b in body if b) + "\n</main>\n"
        + audio_elements(audio) + "\n" + script + "\n</body></html>\n"
    )  # fmt: skip


def _title(inputs: ReportInputs) -> str:
    session = (inputs.manifest or {}).get("session")
    return str(session) if session else inputs.package.resolve().name


def _header(inputs: ReportInputs, title: str) -> str:
    v = inputs.verification
    passed = bool(v.get("passed"))
    counts = v.get("counts", {})
    manifest = inputs.manifest or {}
    name = text(title, "m", "session") if manifest.get("session") else esc(title)
    parts = [
        f'<header class="top"><h1>{name}</h1>',
        f'<span class="verdict {"pass" if passed else "fail"}" data-src="v" data-path="passed" '
        f'data-bool="PASS|FAIL">{"PASS" if passed else "FAIL"}</span>',
        f'<span class="sub">{num(counts.get("error"), "v", "counts.error", 0)} errors · '
        f"{num(counts.get('warning'), 'v', 'counts.warning', 0)} warnings · "
        f"{num(counts.get('info'), 'v', 'counts.info', 0)} info</span>",
    ]
    if v.get("profile"):
        parts.append(f'<span class="sub">profile {text(v["profile"], "v", "profile")}</span>')
    if manifest.get("generator"):
        parts.append(f'<span class="sub">{text(manifest["generator"], "m", "generator")}</span>')
    parts.append("</header>")
    relation = inputs.verdict_relation
    if relation is not None:
        parts.append(f'<p class="lead">{_relation_sentence(relation.index, relation.null)}</p>')
    if inputs.notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{esc(n)}</li>" for n in inputs.notes))
        parts.append("</ul>")
    parts.append(
        '<nav><a href="#player">Player</a><a href="#findings">Findings</a>'
        '<a href="#nulls">Null tests</a><a href="#routing">Routing</a>'
        '<a href="#files">Files</a></nav>'
    )
    return "".join(parts)


def _relation_sentence(index: int, null: Mapping[str, Any]) -> str:
    p = f"nulls.{index}"
    name = text(null.get("name", "stems"), "v", f"{p}.name")
    ref = text(null.get("reference"), "v", f"{p}.reference")
    if null.get("skipped_reason"):
        why = text(null["skipped_reason"], "v", p + ".skipped_reason")
        return f"{name} vs {ref}: not run ({why})"
    state = "nulls" if null.get("passed") else "does not null"
    return (
        f"<b>{name}</b> vs <b>{ref}</b> {state}: residual peak "
        f"<b>{num(null.get('residual_peak_dbfs'), 'v', p + '.residual_peak_dbfs')} dBFS</b>, "
        f"RMS {num(null.get('residual_rms_dbfs'), 'v', p + '.residual_rms_dbfs')} dBFS "
        f"(threshold {num(null.get('threshold_dbfs'), 'v', p + '.threshold_dbfs')} dBFS)"
    )


def _findings(inputs: ReportInputs) -> str:
    rows = []
    for k, f in enumerate(inputs.verification.get("findings", [])):
        p = f"findings.{k}"
        advice = f.get("advice")
        rows.append(
            f'<tr><td><span class="sev {esc(f.get("severity"))}">'
            f'{text(f.get("severity"), "v", p + ".severity")}</span></td>'
            f'<td class="mono">{text(f.get("code"), "v", p + ".code")}</td>'
            f'<td>{text(f.get("message"), "v", p + ".message")}'
            + (f'<br><span class="advice">→ {text(advice, "v", p + ".advice")}</span>'
               if advice else "")
            + "</td></tr>"
        )  # fmt: skip
    table = (
        "<table><tr><th>severity</th><th>code</th><th>finding and advice</th></tr>"
        + "".join(rows) + "</table>"
        if rows else '<p class="note">No findings.</p>'
    )  # fmt: skip
    return f'<section id="findings"><h2>Verdict and findings</h2>{table}</section>'


def _nulls(inputs: ReportInputs, residuals: str | None) -> str:
    v = inputs.verification
    rows = []
    for relation in inputs.relations:
        n, p = relation.null, f"nulls.{relation.index}"
        state = "not run" if n.get("skipped_reason") else ("nulls" if n.get("passed") else "fails")
        role = "decides the verdict" if n.get("decides_verdict") else "for information"
        parts = "<br>".join(
            text(part, "v", f"{p}.parts.{i}") for i, part in enumerate(n.get("parts") or [])
        )
        rows.append(
            f"<tr><td><b>{text(relation.name, 'v', p + '.name')}</b><br>{role}</td>"
            f"<td class=\"mono\">{parts}</td>"
            f"<td class=\"mono\">{text(n.get('reference'), 'v', p + '.reference')}</td>"
            f"<td class=\"r\">{num(n.get('residual_peak_dbfs'), 'v', p + '.residual_peak_dbfs')}"
            f"</td><td class=\"r\">{num(n.get('residual_rms_dbfs'), 'v', p + '.residual_rms_dbfs')}"
            f"</td><td class=\"r\">{num(n.get('threshold_dbfs'), 'v', p + '.threshold_dbfs')}</td>"
            f"<td>{state}</td></tr>"
            + _diagnoses(n, p)
        )  # fmt: skip
    if rows:
        body = (
            "<table><tr><th>sum</th><th>parts</th><th>reference</th>"
            '<th class="r">residual peak dBFS</th><th class="r">RMS dBFS</th>'
            '<th class="r">threshold dBFS</th><th>result</th></tr>' + "".join(rows) + "</table>"
        )
    else:
        reason = v.get("no_sums_reason")
        body = (
            '<p class="note">Nothing was null-tested'
            + (f": {text(reason, 'v', 'no_sums_reason')}" if reason else "")
            + ".</p>"
        )
    unrelated = v.get("unrelated_files") or []
    if unrelated:
        body += (
            '<p class="note">In no sum (measured only): '
            + ", ".join(text(u, "v", f"unrelated_files.{i}") for i, u in enumerate(unrelated))
            + "</p>"
        )
    if residuals:
        body += "<h3>Residual over time (reference − Σ parts, peak per slice)</h3>" + residuals
    return f'<section id="nulls"><h2>Null tests</h2>{body}</section>'


def _diagnoses(null: Mapping[str, Any], p: str) -> str:
    items = []
    for k, d in enumerate(null.get("diagnoses") or []):
        q = f"{p}.diagnoses.{k}"
        advice = d.get("advice")
        items.append(
            f"<li>{text(d.get('message'), 'v', q + '.message')}"
            + (f' <span class="advice">→ {text(advice, "v", q + ".advice")}</span>'
               if advice else "")
            + "</li>"
        )  # fmt: skip
    return f'<tr><td></td><td colspan="6"><ul>{"".join(items)}</ul></td></tr>' if items else ""


def _routing(inputs: ReportInputs, routing: str | None) -> str:
    if inputs.manifest is None:
        return (
            '<section id="routing"><h2>Routing</h2><p class="note">The package has no '
            "manifest.json, so its routing and processing are unknown.</p></section>"
        )
    stems = stems_of(inputs.files, inputs.manifest)
    legend = (
        '<div class="legend">'
        + "".join(f"<span>{swatch(s.colour)}{esc(s.name)}</span>" for s in stems)
        + "<span>solid: output · dashed: send</span></div>"
    )
    diagram = f'<div class="scroll">{routing}</div>' if routing else ""
    return (
        '<section id="routing"><h2>Routing</h2>' + legend + diagram
        + "<h3>What each file has printed in it</h3>" + _printed(inputs) + "</section>"
    )  # fmt: skip


def _printed(inputs: ReportInputs) -> str:
    entries = (inputs.manifest or {}).get("files", [])
    rows = []
    for f in inputs.files:
        if f.manifest_index is None:
            continue
        entry = entries[f.manifest_index]
        processing = entry.get("processing") or []
        if not processing and not entry.get("routes"):
            continue
        j = f.manifest_index
        steps = "".join(_step(p, f"files.{j}.processing.{q}") for q, p in enumerate(processing))
        tap = entry.get("tap_point")
        head = f"{swatch(f.colour)}<b>{esc(f.name)}</b>"
        if tap:
            head += f"<br>tap {text(tap, 'm', f'files.{j}.tap_point')}"
        if entry.get("muted"):
            head += "<br><b>muted in the session</b>"
        rows.append(f'<tr><td>{head}</td><td><ul class="proc">{steps}</ul></td></tr>')
    return "<table>" + "".join(rows) + "</table>" if rows else '<p class="note">–</p>'


def _step(p: Mapping[str, Any], path: str) -> str:
    kind = str(p.get("kind") or "")
    bits = []
    inserts = p.get("inserts") or []
    if inserts:
        bits.append(
            "inserts "
            + ", ".join(
                f'<span class="mono">{text(i, "m", f"{path}.inserts.{k}")}</span>'
                for k, i in enumerate(inserts)
            )
        )
    if p.get("gain_db") is not None:
        bits.append(f"fader {num(p['gain_db'], 'm', path + '.gain_db')} dB")
    if p.get("pan") is not None:
        bits.append(f"pan {num(p['pan'], 'm', path + '.pan', 2)}")
    if p.get("invert_polarity"):
        bits.append("polarity inverted")
    if p.get("mute"):
        bits.append("muted")
    for k, s in enumerate(p.get("sends") or []):
        where = "pre-fader" if s.get("pre_fader") else "post-fader"
        where = "pre-FX" if s.get("pre_inserts") else where
        bits.append(
            f"send → {text(s.get('to'), 'm', f'{path}.sends.{k}.to')} "
            f"{num(s.get('level_db'), 'm', f'{path}.sends.{k}.level_db')} dB ({where})"
        )
    automated = p.get("automated") or []
    if automated:
        bits.append("automated " + ", ".join(esc(a) for a in automated))
    if p.get("output") and p.get("output") != "master":
        bits.append(f"→ {text(p['output'], 'm', path + '.output')}")
    route = text(p.get("route"), "m", path + ".route")
    return f"<li><b>{route}</b> ({esc(kind)}): {'; '.join(bits) or 'as it is'}</li>"


_SUMMARY_COLUMNS = (
    ("peak dBFS", "sample_peak_dbfs"),
    ("true peak dBTP", "true_peak_dbtp"),
    ("LUFS", "loudness_lufs"),
    ("LRA LU", "loudness_range_lu"),
    ("M max", "max_momentary_lufs"),
    ("S max", "max_short_term_lufs"),
)


def _files(inputs: ReportInputs, figures: Mapping[str, str]) -> str:
    head = "".join(f'<th class="r">{esc(t)}</th>' for t, _ in _SUMMARY_COLUMNS)
    rows = [
        "<table><tr><th>file</th><th>role</th><th>format</th>"
        f'<th class="r">Hz</th><th class="r">s</th><th class="r">ch</th>{head}</tr>'
    ]
    for f in inputs.files:
        p = f"files.{f.index}"
        levels = f.facts.get("levels") or {}
        cells = "".join(
            f'<td class="r">{_level(levels, key, p)}</td>' for _t, key in _SUMMARY_COLUMNS
        )
        rows.append(
            f'<tr><td>{swatch(f.colour)}<a href="#file-{f.index}">'
            f"{text(f.label, 'v', p + '.label')}</a></td>"
            f"<td>{text(f.role, 'v', p + '.role')}</td>"
            f"<td>{text(f.facts.get('subtype'), 'v', p + '.subtype')}</td>"
            f'<td class="r">{num(f.sample_rate, "v", p + ".sample_rate", 0)}</td>'
            f'<td class="r">{num(f.facts.get("duration_seconds"), "v", p + ".duration_seconds", 2)}'
            f'</td><td class="r">{num(f.channels, "v", p + ".channels", 0)}</td>{cells}</tr>'
        )
    rows.append("</table>")
    cards = [_card(inputs, f, figures.get(f.label), len(inputs.files)) for f in inputs.files]
    return (
        '<section id="files"><h2>Files</h2>' + "".join(rows) + _PLOT_KEY + "".join(cards)
        + "</section>"
    )  # fmt: skip


_PLOT_KEY = (
    '<p class="note">Each file: its waveform per channel (linear, full scale ±1; '
    '<span class="red">▼</span> where the true peak reaches -1 dBTP), a spectrogram of the '
    "channels' mean (20 Hz to 20 kHz, log scale; the colours span the range in its corner) "
    "and its loudness over time:"
    f'<span class="key" style="border-color:{LOUDNESS_COLOURS[0]}"></span>momentary (400 ms)'
    f'<span class="key" style="border-color:{LOUDNESS_COLOURS[1]}"></span>short-term (3 s)'
    f'<span class="key" style="border-color:{LOUDNESS_COLOURS[2]};border-top-style:dashed">'
    "</span>integrated so far"
    f'<span class="key" style="border-color:{LOUDNESS_COLOURS[2]};border-top-style:dotted">'
    "</span>integrated (the file's).</p>"
)


def _level(levels: Mapping[str, Any], key: str, p: str) -> str:
    value = levels.get(key)
    cls = peak_class(value) if key in ("true_peak_dbtp", "sample_peak_dbfs") else ""
    return num(value, "v", f"{p}.levels.{key}", 1, cls)


def _card(inputs: ReportInputs, f: ReportFile, figure: str | None, count: int) -> str:
    p = f"files.{f.index}"
    facts = f.facts
    levels = facts.get("levels") or {}
    entry = _manifest_entry(inputs, f)
    sha = (
        text(entry.get("sha256"), "m", f"files.{f.manifest_index}.sha256", "mono")
        if entry and entry.get("sha256")
        else f'<span class="mono">{esc(_sha256(f))}</span>'
    )
    grid = [
        f"<div><b>format</b>{text(facts.get('format'), 'v', p + '.format')} "
        f"{text(facts.get('subtype'), 'v', p + '.subtype')}</div>",
        f"<div><b>rate</b>{num(f.sample_rate, 'v', p + '.sample_rate', 0)} Hz</div>",
        f"<div><b>duration</b>{num(facts.get('duration_seconds'), 'v', p + '.duration_seconds', 3)}"
        f" s ({num(f.length, 'v', p + '.length_samples', 0)} samples)</div>",
        f"<div><b>channels</b>{num(f.channels, 'v', p + '.channels', 0)} "
        f"({esc(' '.join(f.channel_names))})</div>",
    ]
    grid += [
        f"<div><b>{esc(title)}</b>{_level(levels, key, p)}</div>" for title, key in _SUMMARY_COLUMNS
    ]
    grid.append(f'<div class="wide"><b>SHA-256</b>{sha}</div>')
    grid += _extras(f, levels, p)
    open_attr = " open" if count <= 8 else ""
    return (
        f'<details class="file" id="file-{f.index}"{open_attr}><summary>{swatch(f.colour)}'
        f"{esc(f.name)}<span class=\"sub\">{esc(f.label)} · {esc(f.role)}</span></summary>"
        f'<div class="facts">{"".join(grid)}</div>{_channels(f, levels, p)}'
        + (figure or '<p class="note">The file is missing: nothing to draw.</p>')
        + "</details>"
    )  # fmt: skip


def _manifest_entry(inputs: ReportInputs, f: ReportFile) -> Mapping[str, Any] | None:
    if inputs.manifest is None or f.manifest_index is None:
        return None
    entry: Mapping[str, Any] = inputs.manifest["files"][f.manifest_index]
    return entry


def _sha256(f: ReportFile) -> str:
    if not f.path.is_file():
        return "–"
    with f.path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _extras(f: ReportFile, levels: Mapping[str, Any], p: str) -> list[str]:
    out = []
    dg = f.facts.get("dialogue_gated")
    if dg:
        out.append(
            f'<div class="wide"><b>{text(dg.get("label"), "v", p + ".dialogue_gated.label")}'
            f"</b>{num(dg.get('loudness_lufs'), 'v', p + '.dialogue_gated.loudness_lufs')} LUFS"
            "</div>"
        )
    if levels.get("clipped_run_count"):
        out.append(
            f'<div class="red"><b>clipped runs</b>'
            f"{num(levels['clipped_run_count'], 'v', p + '.levels.clipped_run_count', 0)}</div>"
        )
    if levels.get("channel_correlation") is not None:
        out.append(
            "<div><b>correlation</b>"
            f"{num(levels['channel_correlation'], 'v', p + '.levels.channel_correlation', 2)}</div>"
        )
    return out


def _channels(f: ReportFile, levels: Mapping[str, Any], p: str) -> str:
    """Per-channel sample and true peak, named by layout."""
    rows = []
    for title, key in (
        ("sample peak dBFS", "sample_peak_dbfs_per_channel"),
        ("true peak dBTP", "true_peak_dbtp_per_channel"),
    ):
        values: Sequence[Any] = levels.get(key) or []
        cells = "".join(
            f'<td class="r">{num(v, "v", f"{p}.levels.{key}.{k}", 1, peak_class(v))}</td>'
            for k, v in enumerate(values)
        )
        rows.append(f"<tr><th>{title}</th>{cells}</tr>")
    names = "".join(f'<th class="r">{esc(n)}</th>' for n in f.channel_names)
    return f'<table class="channels"><tr><th>channel</th>{names}</tr>{"".join(rows)}</table>'
