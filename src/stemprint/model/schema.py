"""JSON Schema of the session format, generated from the model and from pedalboard.

The model gives the structure; the insert definitions are generated from pedalboard's classes
(type names and their keyword arguments), so editors can complete insert parameters too.
"""

from __future__ import annotations

from typing import Any

from stemprint.model.session import Session


def _insert_schemas() -> list[dict[str, Any]]:
    from stemprint.dsp.inserts import (
        EXTERNAL_TYPES,
        NATIVE_PARAMETERS,
        builtin_parameters,
        builtin_types,
    )

    latency = {
        "type": "integer",
        "minimum": 0,
        "description": "Declared latency in samples, compensated by the graph (for plug-ins that "
        "report none or report it wrong).",
    }
    variants: list[dict[str, Any]] = []
    parameters = {t: builtin_parameters(t) for t in builtin_types()} | NATIVE_PARAMETERS
    for type_name, params in parameters.items():
        properties: dict[str, Any] = {"type": {"const": type_name}, "latency_samples": latency}
        for name, default in params.items():
            prop: dict[str, Any] = {}
            if isinstance(default, bool):
                prop = {"type": "boolean", "default": default}
            elif isinstance(default, int):
                prop = {"type": "integer", "minimum": 0, "default": default}
            elif isinstance(default, float):
                prop = {"type": "number", "default": default}
            properties[name] = prop
        variants.append(
            {
                "type": "object",
                "title": type_name,
                "properties": properties,
                "required": ["type"],
                "additionalProperties": False,
            }
        )
    for type_name in EXTERNAL_TYPES:
        variants.append(
            {
                "type": "object",
                "title": type_name,
                "description": "External plug-in; rendering needs --allow-plugins.",
                "properties": {
                    "type": {"const": type_name},
                    "path": {"type": "string"},
                    "preset": {
                        "type": "string",
                        "description": "A .vstpreset file loaded into the plug-in (its state).",
                    },
                    "latency_samples": latency,
                },
                "required": ["type", "path"],
                "additionalProperties": True,
            }
        )
    return variants


def session_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a session file, format version 1."""
    schema = Session.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "stemprint session (format version 1)"
    # `include:` is merged before validation (model.include), so the model has no field for it.
    schema.setdefault("properties", {})["include"] = {
        "description": "YAML files merged into this session (a path or a list, relative to "
        "this file); this file wins.",
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
    }
    defs = schema.get("$defs", {})
    # Positions and lengths are usually written as numbers (seconds) or strings ("17.1.0",
    # "480smp", "2 bars"); the model parses those before validation, so say so to editors.
    for name in ("start", "duration"):
        prop = defs.get("Clip", {}).get("properties", {}).get(name)
        if prop is not None and "anyOf" in prop:
            prop["anyOf"] = [{"type": "number"}, {"type": "string"}, *prop["anyOf"]]
    if "Insert" in defs:
        defs["Insert"] = {
            "title": "Insert",
            "description": defs["Insert"].get("description", ""),
            "oneOf": _insert_schemas(),
        }
    return schema
