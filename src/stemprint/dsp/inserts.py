"""Insert processors: build pedalboard plug-ins from session data and stream them exactly.

Pedalboard plug-ins are named by their class in snake_case (``HighpassFilter`` →
``highpass_filter``) and take the class's keyword arguments. External VST3 / Audio Unit plug-ins
are hosted only when the caller opts in (``allow_plugins``): a session from a stranger must never
run native code by default.

Streaming exactness (measured): pedalboard's output
depends on where its calls begin and end. Latent plug-ins (PitchShift, Resample, the codecs,
BrickwallLimiter's lookahead, hosted plug-ins) hold back an amount that depends on the call size;
and even zero-latency JUCE filters flush tiny state values to zero at the end of every call
(``snapToZero``), so a decaying tail differs by about 1e-8 between call sizes. :class:`InsertChain`
therefore feeds every chain in fixed chunks of :data:`CHUNK_SAMPLES`, whatever the render block
size, and reports the resulting fixed delay as its latency for the graph to compensate: the
output is bit-identical for every render block size (``dsp.chain``).
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from stemprint.errors import InputError

CHUNK_SAMPLES = 16384
"""Fixed call size for every plug-in chain, independent of the render block size.

Large, because every pedalboard call holds the GIL for its argument conversion: with 2048-sample
calls two render threads ran slower than one; with 16384 they run 1.3x faster (bench/README.md).
"""

EXTERNAL_TYPES = ("vst3", "audio_unit")

ZERO_LATENCY_TYPES = frozenset(
    {
        "bitcrush", "chorus", "clipping", "compressor", "convolution", "delay", "distortion",
        "gain", "high_shelf_filter", "highpass_filter", "invert", "ladder_filter", "limiter",
        "low_shelf_filter", "lowpass_filter", "noise_gate", "peak_filter", "phaser", "reverb",
    }
)  # fmt: skip
"""pedalboard built-ins that return every call's samples at once and keep the channel count
(no lookahead, no resampling, no codec), whatever their parameters: a stage of only these holds
nothing back, so its latency is known without probing (``dsp.chain``; tested against the probe).
Every other type is probed: the latent built-ins (``brickwall_limiter``, ``pitch_shift``,
``resample``, the codecs), any built-in not listed here, and hosted plug-ins."""

_CONTAINERS = {"Plugin", "PluginContainer", "Pedalboard", "Chain", "Mix", "ExternalPlugin"}
_EXTERNAL_CLASSES = {"VST3Plugin", "AudioUnitPlugin"}


def snake_case(name: str) -> str:
    """``HighpassFilter`` → ``highpass_filter``; ``GSMFullRateCompressor`` → ``gsm_full_rate_…``."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return name.lower()


@cache
def builtin_types() -> dict[str, type]:
    """Every hostable pedalboard built-in, by snake_case name."""
    import pedalboard

    found: dict[str, type] = {}
    for attr in dir(pedalboard):
        cls = getattr(pedalboard, attr)
        if (
            isinstance(cls, type)
            and issubclass(cls, pedalboard.Plugin)
            and attr not in _CONTAINERS
            and attr not in _EXTERNAL_CLASSES
            and not attr.startswith("_")
        ):
            found[snake_case(attr)] = cls
    return dict(sorted(found.items()))


@cache
def builtin_parameters(type_name: str) -> dict[str, Any]:
    """Keyword arguments of a built-in and their defaults (``None`` where required or unknown).

    pedalboard's classes are native and have no ``inspect`` signature; their ``__init__``
    docstring carries it (``__init__(self: …, threshold_db: float = 0, ratio: float = 1)``).
    """
    cls = builtin_types()[type_name]
    doc = getattr(cls, "__init__").__doc__ or ""  # noqa: B009 - native class.split("\n", 1)[0]
    match = re.search(r"\((.*)\)", doc)
    params: dict[str, Any] = {}
    if not match:
        return params
    depth = 0
    part = ""
    parts = []
    for ch in match.group(1):
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(part)
            part = ""
        else:
            part += ch
    parts.append(part)
    for raw in parts:
        raw = raw.strip()
        if not raw or raw.startswith("self"):
            continue
        name = raw.split(":", 1)[0].split("=", 1)[0].strip()
        default: Any = None
        if "=" in raw:
            text = raw.split("=", 1)[1].strip()
            try:
                default = float(text) if "." in text or text.lstrip("-").isdigit() else text
            except ValueError:
                default = text
        params[name] = default
    return params


# Parameters whose value is a file path, resolved relative to the session folder.
_PATH_PARAMETERS = {"impulse_response_filename"}


@dataclass(frozen=True)
class InsertSpec:
    """A validated insert, ready to build.

    Attributes
    ----------
    type
        snake_case type name (``compressor``) or ``vst3`` / ``audio_unit``.
    params
        Keyword arguments (built-ins) or parameter values (external plug-ins); paths resolved.
    where
        Human description for messages: ``track 'Snare' insert 1 (compressor)``.
    """

    type: str
    params: dict[str, Any]
    where: str
    declared_latency_samples: int = 0

    @property
    def sidechain(self) -> str | None:
        """The route this insert is keyed from (``sidechain:``), if any."""
        return str(self.params["sidechain"]) if self.params.get("sidechain") else None

    @property
    def sidechain_pre_fader(self) -> bool:
        """Take the key before the key route's fader and pan."""
        return bool(self.params.get("sidechain_pre_fader", False))

    @property
    def native(self) -> bool:
        """True for stemprint's own processors (numpy), False for pedalboard plug-ins."""
        return self.type in NATIVE_TYPES

    def describe(self) -> str:
        """``compressor(threshold_db=-18, ratio=3)`` for manifests and READMEs."""
        args = ", ".join(f"{k}={_short(v)}" for k, v in self.params.items())
        if self.declared_latency_samples:
            args += f"{', ' if args else ''}latency_samples={self.declared_latency_samples}"
        return f"{self.type}({args})"

    def build(self, sample_rate: int = 48000) -> Any:
        """Instantiate the processor (a pedalboard plug-in, or a native processor)."""
        import pedalboard

        if self.native:
            params = {k: v for k, v in self.params.items() if k not in _KEY_PARAMETERS}
            return NATIVE_TYPES[self.type](params, sample_rate)

        if self.type in EXTERNAL_TYPES:
            params = dict(self.params)
            path = params.pop("path")
            preset = params.pop("preset", None)
            try:
                plugin = pedalboard.load_plugin(str(path))
                if preset is not None:
                    # The .vstpreset bytes as the DAW stored them (DAWproject's plug-in State):
                    # the plug-in's whole state, set before the named parameters below.
                    plugin.load_preset(str(preset))  # type: ignore[attr-defined]
            except Exception as exc:  # noqa: BLE001 - native loader raises many types
                raise InputError(
                    f"cannot load plug-in {path}: {exc}",
                    field=self.where,
                    fix="check the path and that the plug-in is installed for this platform",
                ) from None
            for key, value in params.items():
                try:
                    setattr(plugin, key, value)
                except Exception as exc:  # noqa: BLE001
                    raise InputError(
                        f"plug-in parameter {key!r}: {exc}",
                        field=self.where,
                        fix="valid parameters: "
                        + ", ".join(sorted(getattr(plugin, "parameters", {}))),
                    ) from None
            return plugin
        cls = builtin_types()[self.type]
        try:
            return cls(**self.params)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise InputError(
                f"invalid parameters for {self.type}: {exc}",
                field=self.where,
                fix="valid parameters: "
                + ", ".join(f"{k}={v}" for k, v in builtin_parameters(self.type).items()),
            ) from None


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, Path):
        return value.name
    return str(value)


def validate_insert(
    type_name: str,
    params: dict[str, Any],
    where: str,
    base_dir: Path,
    allow_plugins: bool,
) -> InsertSpec:
    """Check an insert's type and parameters against pedalboard and return a buildable spec.

    Raises
    ------
    InputError
        Unknown type (with the valid choices), unknown parameter (with the valid ones), a value
        pedalboard rejects, an external plug-in without ``allow_plugins``, a missing file.
    """
    params = dict(params)
    declared = params.pop("latency_samples", 0)
    if isinstance(declared, bool) or not isinstance(declared, int) or declared < 0:
        raise InputError(
            f"latency_samples must be a whole number of samples >= 0, got {declared!r}",
            field=where,
            fix="declare the plug-in's true latency in samples, e.g. latency_samples: 64",
        )
    if type_name in NATIVE_TYPES:
        _check_native(type_name, params, where)
        return InsertSpec(type_name, params, where, declared)
    if type_name in EXTERNAL_TYPES:
        if not allow_plugins:
            raise InputError(
                f"{type_name} plug-ins run native code and are off by default",
                field=where,
                fix="pass --allow-plugins if you trust this session and its plug-ins",
            )
        if "path" not in params:
            raise InputError(
                f"{type_name} insert needs `path:`",
                field=where,
                fix="give the plug-in file",
            )
        path = (base_dir / str(params["path"])).expanduser()
        if not path.exists():
            raise InputError(f"plug-in not found: {path}", field=where, fix="check the path")
        external: dict[str, Any] = {**params, "path": path}
        if "preset" in params:
            preset = (base_dir / str(params["preset"])).expanduser()
            if not preset.is_file():
                raise InputError(
                    f"plug-in preset not found: {preset}",
                    field=f"{where}.preset",
                    fix="give a .vstpreset file (relative to the session file)",
                )
            external["preset"] = preset
        spec = InsertSpec(type_name, external, where, declared)
        spec.build()
        return spec
    types = builtin_types()
    if type_name not in types:
        choices = [*types, *NATIVE_TYPES, *EXTERNAL_TYPES]
        close = difflib.get_close_matches(type_name, choices, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise InputError(
            f"unknown insert type {type_name!r}",
            field=where,
            fix=hint + "valid types: " + ", ".join(choices),
        )
    valid = builtin_parameters(type_name)
    resolved: dict[str, Any] = {}
    for key, value in params.items():
        if key not in valid:
            raise _unknown_parameter(key, type_name, list(valid), where)
        if key in _PATH_PARAMETERS:
            path = base_dir / str(value)
            if not path.is_file():
                raise InputError(f"{key} file not found: {path}", field=where, fix="check the path")
            value = str(path)
        resolved[key] = value
    spec = InsertSpec(type_name, resolved, where, declared)
    spec.build()  # pedalboard checks the values (ranges, types)
    return spec


class SampleDelay:
    """A pure delay of a whole number of samples (stemprint's own ``sample_delay`` insert).

    Used to nudge a route in time (aligning microphones, re-creating a plug-in's latency). It
    reports no latency: the graph does not compensate it unless the insert declares
    ``latency_samples``. Exact for any call size. Follows ``dsp.chain.Processor``.
    """

    latency_samples = 0

    def __init__(self, delay_samples: int = 0) -> None:
        self.delay_samples = int(delay_samples)
        self._buffer: np.ndarray | None = None

    def process(self, block: np.ndarray, key: np.ndarray | None = None) -> np.ndarray:
        """``block`` delayed by ``delay_samples`` (zeros first)."""
        if self.delay_samples == 0:
            return block
        if self._buffer is None:
            self._buffer = np.zeros((block.shape[0], self.delay_samples), block.dtype)
        joined = np.concatenate([self._buffer, block], axis=1)
        n = block.shape[1]
        self._buffer = joined[:, n:]
        return joined[:, :n]

    def reset(self) -> None:
        """Forget the delayed samples."""
        self._buffer = None

    def anchor_to_timeline(self, lag_samples: int) -> None:
        """A delay has no control grid."""


class _SidechainStage:
    """``sidechain_compressor``: :class:`stemprint.dsp.dynamics.SidechainCompressor` as an insert
    (follows ``dsp.chain.Processor``).

    Keyed from another route when the insert names ``sidechain:``; from its own input otherwise.
    """

    def __init__(self, sample_rate: int, params: dict[str, Any]) -> None:
        from stemprint.dsp.dynamics import SidechainCompressor

        self.compressor = SidechainCompressor(
            sample_rate,
            threshold_db=float(params.get("threshold_db", 0.0)),
            ratio=float(params.get("ratio", 1.0)),
            attack_ms=float(params.get("attack_ms", 1.0)),
            release_ms=float(params.get("release_ms", 100.0)),
            knee_db=float(params.get("knee_db", 0.0)),
            makeup_db=float(params.get("makeup_db", 0.0)),
            detector=str(params.get("detector", "peak")),
        )

    latency_samples = 0

    def process(self, block: np.ndarray, key: np.ndarray | None = None) -> np.ndarray:
        """Compress ``block`` (float64) from ``key``, or from itself without one."""
        main = np.asarray(block, dtype=np.float64)
        return np.asarray(self.compressor.process(main, key), dtype=np.float64)

    def reset(self) -> None:
        """No gain reduction, the grid re-anchored."""
        self.compressor.reset()

    def anchor_to_timeline(self, lag_samples: int) -> None:
        """The stream at this insert lags the timeline by ``lag_samples``: anchor the grid."""
        self.compressor.anchor_to_timeline(lag_samples)


NATIVE_TYPES: dict[str, Any] = {
    "sample_delay": lambda params, sample_rate: SampleDelay(**params),
    "sidechain_compressor": lambda params, sample_rate: _SidechainStage(sample_rate, params),
}
#: stemprint's own processors: parameters and their defaults (the default's type is the type).
NATIVE_PARAMETERS: dict[str, dict[str, Any]] = {
    "sample_delay": {"delay_samples": 0},
    "sidechain_compressor": {
        "threshold_db": 0.0,
        "ratio": 1.0,
        "attack_ms": 1.0,
        "release_ms": 100.0,
        "knee_db": 0.0,
        "makeup_db": 0.0,
        "detector": "peak",
        "sidechain": "",
        "sidechain_pre_fader": False,
    },
}
_KEY_PARAMETERS = ("sidechain", "sidechain_pre_fader")


def _unknown_parameter(key: str, type_name: str, valid: list[str], where: str) -> InputError:
    """The error for a parameter the insert type does not have, with the closest valid one."""
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return InputError(
        f"unknown parameter {key!r} for {type_name}",
        field=where,
        fix=hint + "valid parameters: " + (", ".join(valid) or "none"),
    )


def _check_native(type_name: str, params: dict[str, Any], where: str) -> None:
    valid = NATIVE_PARAMETERS[type_name]
    for key, value in params.items():
        if key not in valid:
            raise _unknown_parameter(key, type_name, list(valid), where)
        default = valid[key]
        if isinstance(default, bool):
            ok = isinstance(value, bool)
            kind = "true or false"
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
            kind = "a whole number >= 0"
        elif isinstance(default, float):
            ok = (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value)
            )
            kind = "a finite number"
        else:
            ok = isinstance(value, str)
            kind = "text"
        if not ok:
            raise InputError(f"{key} must be {kind}, got {value!r}", field=where)
    if type_name == "sidechain_compressor":
        if params.get("ratio", 1.0) < 1.0:
            raise InputError("ratio must be >= 1", field=where)
        for key in ("attack_ms", "release_ms"):
            if params.get(key, 1.0) <= 0:
                raise InputError(f"{key} must be > 0", field=where)
        if params.get("knee_db", 0.0) < 0:
            raise InputError("knee_db must be >= 0", field=where)
        if params.get("detector", "peak") not in ("peak", "rms"):
            raise InputError("detector must be 'peak' or 'rms'", field=where)
