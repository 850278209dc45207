"""FX chain inventory of a track or the master: plug-in slots, identities and the plug-in map.

- A slot is one plug-in chunk (``VST``, ``JS``, ``CLAP``, ``AU``, ``LV2``, ``DX``,
  ``VIDEO_EFFECT``, ``CONTAINER``) with the ``BYPASS`` / ``WET`` / ``PARMENV`` lines
  around it; its label ``format: name (vendor)``
  gives the identity. A VST3 plug-in whose name or class ID is in the plug-in map becomes an
  insert with that ``.vst3`` path; every other one is reported.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from stemprint.importers.rpp.context import _arg, _Context
from stemprint.importers.rpp.envelopes import _active
from stemprint.importers.rpp.tokens import Chunk, Line

# -- plug-ins ------------------------------------------------------------------------------------

_PLUGIN_TAGS = {"VST", "JS", "CLAP", "AU", "LV2", "DX", "VIDEO_EFFECT", "CONTAINER"}
_LABEL = re.compile(r"^(?P<format>[A-Za-z0-9]+i?):\s*(?P<name>.*?)(?:\s*\((?P<vendor>[^()]*)\))?$")


@dataclass
class _Slot:
    chunk: Chunk
    bypass: bool = False
    offline: bool = False
    wet: float = 1.0
    automated: bool = False


def _slots(fxchain: Chunk, ctx: _Context) -> list[_Slot]:
    """Plug-in chunks of an FX chain with the BYPASS / WET / PARMENV lines around them."""
    slots: list[_Slot] = []
    pending: tuple[bool, bool] = (False, False)
    for child in fxchain.children:
        if isinstance(child, Line):
            if child.tokens[0] == "BYPASS":
                pending = (_arg(child, 0, 0.0, ctx.file) != 0, _arg(child, 1, 0.0, ctx.file) != 0)
            elif child.tokens[0] == "WET" and slots:
                slots[-1].wet = _arg(child, 0, 1.0, ctx.file)
        elif child.tag in _PLUGIN_TAGS:
            slots.append(_Slot(child, *pending))
            pending = (False, False)
        elif child.tag == "PARMENV" and slots:
            slots[-1].automated = slots[-1].automated or _active(child, ctx)
    return slots


def _identity(chunk: Chunk) -> dict[str, str]:
    """Format, name, vendor, id and state summary of one plug-in chunk."""
    label = chunk.args[0] if chunk.args else chunk.tag
    match = _LABEL.match(label)
    kind, name, vendor = chunk.tag, label, ""
    if match is not None and chunk.tag in ("VST", "CLAP", "AU", "LV2", "DX"):
        kind, name, vendor = match["format"], match["name"], match["vendor"] or ""
    ident = ""
    joined = " ".join(chunk.args[1:])
    fuid = re.search(r"\{([0-9A-Fa-f]{32})\}", joined)
    if fuid is not None:
        ident = fuid.group(1).upper()
    elif chunk.tag == "VST" and len(chunk.args) > 4:
        ident = chunk.args[4]
    elif chunk.tag == "JS":
        ident = label
    elif len(chunk.args) > 1:
        ident = chunk.args[1]
    state = "".join(
        c.tokens[0] for c in chunk.children if isinstance(c, Line) and len(c.tokens) == 1
    )
    try:
        raw = base64.b64decode(state, validate=False)
    except (binascii.Error, ValueError):
        raw = state.encode()
    digest = hashlib.sha256(raw).hexdigest()[:16]
    file_name = chunk.args[1] if chunk.tag == "VST" and len(chunk.args) > 1 else ""
    return {
        "format": kind,
        "name": name,
        "vendor": vendor,
        "id": ident,
        "file": file_name,
        "state": f"{len(raw)} bytes, sha256 {digest}…",
    }


def _fx_chain(fxchain: Chunk, where: str, fx_on: bool, ctx: _Context) -> list[dict[str, Any]]:
    """Inserts of an FX chain: mapped VST3 plug-ins; every other slot is reported."""
    inserts: list[dict[str, Any]] = []
    for number, slot in enumerate(_slots(fxchain, ctx), start=1):
        ident = _identity(slot.chunk)
        at = f"{where} › insert {number}"
        desc = (
            f"{ident['format']} {ident['name']!r}"
            + (f" by {ident['vendor']}" if ident["vendor"] else "")
            + (f", id {ident['id']}" if ident["id"] else "")
            + f", state {ident['state']}"
        )
        if slot.bypass or slot.offline or not fx_on:
            state = "offline" if slot.offline else "bypassed"
            ctx.add("DEVICE_BYPASSED", at, "none", f"{desc} is {state}", "skipped, as REAPER does")
            continue
        path = _mapped(ident, ctx) if ident["format"] == "VST3" else None
        if path is None:
            role = "an instrument" if ident["format"].endswith("i") else "an effect"
            why = (
                "not in the plug-in map"
                if ident["format"] == "VST3"
                else f"{ident['format']} plug-ins cannot run here"
            )
            ctx.add(
                "PLUGIN_UNAVAILABLE",
                at,
                "dropped",
                f"{desc} ({role}): {why}",
                "rendered without it; map a VST3 with --plugin-map, or print the effect in REAPER",
            )
            continue
        inserts.append({"type": "vst3", "path": path})
        ctx.add(
            "PLUGIN_MAPPED",
            at,
            "approximate",
            f"{desc} mapped to {path}",
            "rendered with --allow-plugins at its default state: REAPER's plug-in state is "
            "not carried across",
        )
        if slot.wet != 1.0:
            ctx.add(
                "PLUGIN_MAPPED",
                at,
                "approximate",
                f"the plug-in's wet/dry mix is {slot.wet:g}",
                "rendered 100 % wet",
            )
        if slot.automated:
            ctx.add(
                "AUTOMATION_UNSUPPORTED",
                at,
                "approximate",
                "the plug-in's parameters are automated",
                "rendered without the automation",
            )
    return inserts


def _mapped(ident: dict[str, str], ctx: _Context) -> str | None:
    label = f"VST3: {ident['name']}" + (f" ({ident['vendor']})" if ident["vendor"] else "")
    for key in (ident["id"], "{" + ident["id"] + "}", ident["name"], label, ident["file"]):
        if key and key in ctx.plugin_map:
            return str(ctx.plugin_map[key])
    lowered = {k.lower(): v for k, v in ctx.plugin_map.items()}
    for key in (ident["id"], ident["name"]):
        if key and key.lower() in lowered:
            return str(lowered[key.lower()])
    return None
