"""Device chains: plug-ins (VST3 via the plug-in map, others reported) and built-in devices.

- Built-in ``Equalizer``, ``Compressor``, ``Limiter`` and ``NoiseGate`` become session inserts
  with their parameters in session units (:mod:`.params`); EQ frequency ``unit="semitones"``:
  ``Hz = 440·2^((st − 69)/12)``.
- A device the session cannot run is a finding; nothing is dropped silently.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

from stemprint.importers.dawproject.params import _param_value, _to_db, _to_hz, _to_ms
from stemprint.importers.dawproject.reader import _bool, _Reader

_PLUGIN_TAGS = ("Vst2Plugin", "Vst3Plugin", "ClapPlugin", "AuPlugin", "BuiltinDevice", "Device")
_BUILTIN_TAGS = ("Equalizer", "Compressor", "Limiter", "NoiseGate")


# -- devices -------------------------------------------------------------------------------------


def _devices(
    reader: _Reader, channel: Element, where: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """The insert chain and the names of instruments (MIDI, reported by the caller)."""
    inserts: list[dict[str, Any]] = []
    instruments: list[str] = []
    devices = channel.find("Devices")
    for n, dev in enumerate(devices if devices is not None else [], 1):
        w = f"{where} › insert {n}"
        name = dev.get("deviceName") or dev.get("name") or dev.tag
        role = dev.get("deviceRole", "audioFX")
        if not _bool(dev.find("Enabled"), "value", True) or not _bool(dev, "loaded", True):
            reader.add(
                "DEVICE_BYPASSED",
                w,
                "none",
                f"{dev.tag} {name!r} is bypassed or not loaded in the DAW",
                "left out, as the DAW plays it",
            )
            continue
        if role == "instrument":
            instruments.append(f"{dev.tag} {name!r}")
            continue
        if role in ("noteFX", "analyzer"):
            continue  # no effect on the audio
        if dev.tag == "Vst3Plugin":
            inserts.extend(_vst3(reader, dev, name, w))
        elif dev.tag in _BUILTIN_TAGS:
            inserts.extend(_builtin(reader, dev, name, w))
        else:
            _unavailable(reader, dev, name, w)
    return inserts, instruments


def _plugin_details(reader: _Reader, dev: Element, name: str) -> str:
    vendor = dev.get("deviceVendor") or "unknown vendor"
    text = f"{dev.tag} {name!r} ({vendor}, id {dev.get('deviceID') or 'none'})"
    state = dev.find("State")
    if state is not None:
        member = reader.archive.member(state.get("path", ""))
        digest = reader.archive.sha256(member) if member else "not in the archive"
        text += f", state {state.get('path')} (SHA-256 {digest})"
    return text


def _unavailable(reader: _Reader, dev: Element, name: str, where: str) -> None:
    why = {
        "Vst2Plugin": "VST2 plug-ins cannot be hosted here",
        "ClapPlugin": "CLAP plug-ins cannot be hosted here",
        "AuPlugin": "Audio Units cannot be hosted here",
    }.get(dev.tag, "a DAW's own device has no equivalent here")
    reader.add(
        "PLUGIN_UNAVAILABLE",
        where,
        "dropped",
        f"{_plugin_details(reader, dev, name)}: {why}",
        "left out; render the effect into the audio in the DAW (bounce) and export again",
    )


def _vst3(reader: _Reader, dev: Element, name: str, where: str) -> list[dict[str, Any]]:
    keys = [k for k in (dev.get("deviceID"), dev.get("deviceName"), dev.get("name")) if k]
    binary = next((reader.plugin_map[k] for k in keys if k in reader.plugin_map), None)
    if binary is None:
        reader.add(
            "PLUGIN_UNAVAILABLE",
            where,
            "dropped",
            f"{_plugin_details(reader, dev, name)}: no binary for it in the plug-in map",
            "left out; pass --plugin-map FILE naming its .vst3 to render it",
        )
        return []
    insert: dict[str, Any] = {"type": "vst3", "path": str(Path(binary).expanduser())}
    state = dev.find("State")
    member = reader.archive.member(state.get("path", "")) if state is not None else None
    if member is not None:
        insert["preset"] = str(reader.archive.extract(member, reader.extract_dir, "plugins"))
    reader.add(
        "PLUGIN_MAPPED",
        where,
        "approximate",
        f"VST3 {name!r} mapped to {binary}"
        + ("" if member else " (no state stored: the plug-in's defaults)"),
        "hosted from the map with its stored state; renders need --allow-plugins",
    )
    return [insert]


def _builtin(reader: _Reader, dev: Element, name: str, where: str) -> list[dict[str, Any]]:
    mapper = {
        "Equalizer": _equalizer,
        "Compressor": _compressor,
        "Limiter": _limiter,
        "NoiseGate": _noise_gate,
    }[dev.tag]
    inserts, notes = mapper(reader, dev)
    in_gain = _to_db(*_param_value(reader, dev.find("InputGain"), 0.0))
    out_gain = _to_db(*_param_value(reader, dev.find("OutputGain"), 0.0))
    if dev.find("InputGain") is not None and in_gain != 0.0:
        inserts.insert(0, {"type": "gain", "gain_db": in_gain})
    if dev.find("OutputGain") is not None and out_gain != 0.0:
        inserts.append({"type": "gain", "gain_db": out_gain})
    kinds = ", ".join(i["type"] for i in inserts) or "nothing"
    reader.add(
        "BUILTIN_DEVICE_APPROXIMATED",
        where,
        "approximate",
        f"{dev.tag} {name!r} is the DAW's own processor" + (f" ({notes})" if notes else ""),
        f"stood in for by pedalboard built-ins: {kinds}",
    )
    return inserts


_EQ_TYPES = {
    "bell": "peak_filter",
    "lowShelf": "low_shelf_filter",
    "highShelf": "high_shelf_filter",
    "highPass": "highpass_filter",
    "lowPass": "lowpass_filter",
    "notch": "peak_filter",
}


def _equalizer(reader: _Reader, dev: Element) -> tuple[list[dict[str, Any]], str]:
    inserts: list[dict[str, Any]] = []
    notes: list[str] = []
    for band in dev.findall("Band"):
        if not _bool(band.find("Enabled"), "value", True):
            continue
        kind = band.get("type", "bell")
        hz = _to_hz(*_param_value(reader, band.find("Freq"), 1000.0))
        gain_db = _to_db(*_param_value(reader, band.find("Gain"), 0.0))
        q = _param_value(reader, band.find("Q"), 0.7071)[0]
        order = band.get("order")
        if kind in ("highPass", "lowPass"):
            inserts.append({"type": _EQ_TYPES[kind], "cutoff_frequency_hz": hz})
            notes.append(f"{kind} order {order or '?'} as a first-order filter")
        elif kind == "bandPass":
            inserts.append({"type": "highpass_filter", "cutoff_frequency_hz": hz})
            inserts.append({"type": "lowpass_filter", "cutoff_frequency_hz": hz})
            notes.append("bandPass as a first-order high-pass and low-pass pair")
        elif kind in _EQ_TYPES:
            if kind == "notch":
                gain_db = -60.0
                notes.append("notch as a −60 dB bell")
            inserts.append(
                {
                    "type": _EQ_TYPES[kind],
                    "cutoff_frequency_hz": hz,
                    "gain_db": gain_db,
                    "q": q if q > 0 else 0.7071,
                }
            )
        else:
            notes.append(f"band type {kind!r} left out")
    return inserts, "; ".join(notes)


def _dynamics_params(reader: _Reader, dev: Element) -> dict[str, float]:
    params: dict[str, float] = {}
    threshold, unit = _param_value(reader, dev.find("Threshold"), 0.0)
    if dev.find("Threshold") is not None:
        params["threshold_db"] = _to_db(threshold, unit)
    for tag, key in (("Attack", "attack_ms"), ("Release", "release_ms")):
        if dev.find(tag) is not None:
            params[key] = _to_ms(*_param_value(reader, dev.find(tag), 0.0))
    ratio, _unit = _param_value(reader, dev.find("Ratio"), 1.0)
    if dev.find("Ratio") is not None and ratio >= 1.0 and math.isfinite(ratio):
        params["ratio"] = ratio
    return params


def _compressor(reader: _Reader, dev: Element) -> tuple[list[dict[str, Any]], str]:
    params = _dynamics_params(reader, dev)
    auto = _bool(dev.find("AutoMakeup"), "value", False)
    return [{"type": "compressor", **params}], "auto make-up left out" if auto else ""


def _limiter(reader: _Reader, dev: Element) -> tuple[list[dict[str, Any]], str]:
    params = _dynamics_params(reader, dev)
    params.pop("attack_ms", None)
    params.pop("ratio", None)
    return [{"type": "limiter", **params}], "its attack is not adjustable here"


def _noise_gate(reader: _Reader, dev: Element) -> tuple[list[dict[str, Any]], str]:
    params = _dynamics_params(reader, dev)
    note = "its range is not adjustable here" if dev.find("Range") is not None else ""
    return [{"type": "noise_gate", **params}], note
