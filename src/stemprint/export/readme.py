"""The package README (``README.md``): what a person needs to use the files.

Invariants: it says only what the manifest says (the same roles, sums, lengths and tail), in
words: how to import and sum the stems, what each file holds and what is printed in it.
"""

from __future__ import annotations

from typing import Any

from stemprint.model.load import LoadedSession

_ROLE_TEXT = {
    "stem": "Post-fader output of its routes, before the master bus; the stems together sum "
    "to {sums_to}.",
    "stem_post_fader": "Post-fader output of its routes, before the master bus; the stem set "
    "does not sum exactly to the mix (see `sums` in manifest.json for why).",
    "stem_pre_fader": "Its routes before their faders and pans (does not sum to the mix).",
    "stem_dry": "Its tracks without any insert or send, faders and pans kept (for remixers; "
    "does not sum to the mix).",
    "stem_via_master": "The stem alone through the master bus (for performance and DJ use; does "
    "not sum to the mix).",
    "alt_mix": "An alternate mix through the master bus.",
    "track": "One track on its own (multitrack).",
}


def _send_tap(send: dict[str, Any]) -> str:
    if send.get("pre_inserts"):
        return "pre-FX"
    return "pre" if send["pre_fader"] else "post"


def _strip_line(strip: dict[str, Any]) -> str:
    chain = " → ".join(strip["inserts"]) or "no inserts"
    if strip["kind"] == "master":
        extra = (f"; balance {strip['pan']:+.2f}" if strip.get("pan") else "") + (
            "; muted" if strip.get("mute") else ""
        )
        return f"- master: {chain}; gain {strip['gain_db']:+g} dB{extra}"
    sends = ", ".join(
        f"{s['to']} {s['level_db']:+g} dB {_send_tap(s)}"
        + (f" pan {s['pan']:+.2f}" if s.get("pan") else "")
        for s in strip.get("sends", [])
    )
    return (
        f"- {strip['kind']} **{strip['route']}**: {chain}; fader {strip['gain_db']:+g} dB; "
        f"pan {strip['pan']:+.2f}"
        + ("; polarity inverted" if strip.get("invert_polarity") else "")
        + (f"; sends: {sends}" if sends else "")
        + f"; → {strip['output']}"
    )


def package_readme(loaded: LoadedSession, manifest: dict[str, Any]) -> str:
    """The package README: how to use the files and what each one holds, for a person."""
    session = loaded.session
    rate = manifest["sample_rate"]
    length = manifest["length_samples"]
    delivery = manifest["delivery"]
    lines = [
        f"# {session.name} — stem package",
        "",
        f"Rendered by {manifest['generator']} from `{loaded.path.name}` in one pass"
        + (f" (preset `{delivery['preset']}`)" if delivery["preset"] else "")
        + ".",
        "",
        f"- Sample rate: {rate} Hz; bit depth: {manifest['bit_depth']}"
        + (" (float)" if manifest["bit_depth"] == "32f" else "-bit")
        + f"; {delivery['format'].upper()}.",
        f"- Every file starts at timeline 0 and is {length} samples long "
        f"({length / rate:.3f} s, including {manifest['tail_seconds']:g} s of tail).",
        f"- Shared returns: {delivery['returns']}"
        + (
            " (each stem carries its own share of the reverbs and delays)."
            if delivery["returns"] == "split"
            else " (each return is its own stem)."
        ),
        "",
        "## How to use it",
        "",
        "Import every file whose role is `stem` (see below) into a new session at the same "
        "sample rate, all starting at 0, every fader at unity (0 dB), pans centred, no "
        "processing. Their sum equals "
        + (
            "`premaster.wav`, the mix before the master bus processing; `mix.wav` is that sum "
            "through the master chain."
            if manifest["stems_sum_to"] == "premaster"
            else "`mix.wav` (the master bus has no processing)."
        ),
        "",
        "## Files",
        "",
    ]
    for entry in manifest["files"]:
        peak = entry["peak_dbfs"]
        peak_text = "silent" if peak is None else f"peak {peak:.2f} dBFS"
        lines.append(f"### `{entry['path']}` — {entry['name']} ({entry['role']}, {peak_text})")
        lines.append("")
        if entry["role"] == "mix":
            lines.append("The full mix, through the master bus.")
        elif entry["role"] == "premaster":
            lines.append("The master's input: every stem summed, before the master bus.")
        else:
            if entry.get("muted"):
                lines.append("Its routes are muted in the session: the file is silent.")
            sums_to = "`premaster.wav`" if manifest["stems_sum_to"] == "premaster" else "the mix"
            lines.append(_ROLE_TEXT.get(entry["role"], "").format(sums_to=sums_to))
            if entry.get("tracks") is not None:
                lines.append(f"Tracks: {', '.join(entry['tracks']) or 'none'}.")
        if entry.get("processing"):
            lines += ["", "Printed in, in signal order:", ""]
            lines += [_strip_line(strip) for strip in entry["processing"]]
        if entry["clipped_samples"]:
            lines.append(
                f"\n**Warning:** {entry['clipped_samples']} samples clipped when quantized."
            )
        elif entry["overs"]:
            lines.append(
                f"\n**Note:** {entry['overs']} samples over full scale, kept unclipped (float)."
            )
        lines.append("")
    if manifest["warnings"]:
        lines += ["## Warnings", ""] + [f"- {w}" for w in manifest["warnings"]] + [""]
    lines += _import_lines(manifest.get("import"))
    lines += [
        "`manifest.json` lists every file with its role, contents, tap point, processing, peak, "
        "overs and SHA-256; `verification.json` (when present) is `stemprint verify`'s report.",
        "",
    ]
    return "\n".join(lines)


def _import_lines(entry: dict[str, Any] | None) -> list[str]:
    """What the DAW import could not carry across (``import-report.json`` has every finding)."""
    if not entry:
        return []
    source = entry.get("application") or "a DAW"
    lines = [
        "## Imported from a DAW project",
        "",
        f"The session was imported from `{entry['project']}` ({entry['format']}, {source}).",
    ]
    changed = entry.get("changed") or []
    if changed:
        lines += [
            f"{len(changed)} findings change the audio against what the DAW plays "
            f"(`{entry['path']}` says how):",
            "",
            *[f"- {item}" for item in changed],
        ]
    else:
        lines.append("Nothing in the import changes the audio against what the DAW plays.")
    return [*lines, ""]
