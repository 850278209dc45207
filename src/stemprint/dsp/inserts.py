"""Insert processors: build pedalboard plug-ins from session data and stream them exactly.

Pedalboard plug-ins are named by their class in snake_case (``HighpassFilter`` →
``highpass_filter``) and take the class's keyword arguments. External VST3 / Audio Unit plug-ins
are hosted only when the caller opts in (``allow_plugins``): a session from a stranger must never
run native code by default.

Streaming exactness (measured, see ``shared/reference/libraries.md``): pedalboard's output
depends on where its calls begin and end. Latent plug-ins (PitchShift, Resample, the codecs,
BrickwallLimiter's lookahead, hosted plug-ins) hold back an amount that depends on the call size;
and even zero-latency JUCE filters flush tiny state values to zero at the end of every call
(``snapToZero``), so a decaying tail differs by about 1e-8 between call sizes. :class:`InsertChain`
therefore feeds every chain in fixed chunks of :data:`CHUNK_SAMPLES`, whatever the render block
size, and reports the resulting fixed delay as its latency for the graph to compensate: the
output is bit-identical for every render block size.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from stemprint.errors import InputError, RenderError

CHUNK_SAMPLES = 16384
"""Fixed call size for every plug-in chain, independent of the render block size.

Large, because every pedalboard call holds the GIL for its argument conversion: with 2048-sample
calls two render threads ran slower than one; with 16384 they run 1.3x faster (bench/README.md).
"""

EXTERNAL_TYPES = ("vst3", "audio_unit")
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
            try:
                plugin = pedalboard.load_plugin(str(path))
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
        spec = InsertSpec(type_name, {**params, "path": path}, where, declared)
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
    ``latency_samples``. Exact for any call size.
    """

    def __init__(self, delay_samples: int = 0) -> None:
        self.delay_samples = int(delay_samples)
        self._buffer: np.ndarray | None = None

    def __call__(self, block: np.ndarray) -> np.ndarray:
        if self.delay_samples == 0:
            return block
        if self._buffer is None:
            self._buffer = np.zeros((block.shape[0], self.delay_samples), block.dtype)
        joined = np.concatenate([self._buffer, block], axis=1)
        n = block.shape[1]
        self._buffer = joined[:, n:]
        return joined[:, :n]


class _SidechainStage:
    """``sidechain_compressor``: :class:`stemprint.dsp.dynamics.SidechainCompressor` as an insert.

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

    def __call__(self, block: np.ndarray, key: np.ndarray | None = None) -> np.ndarray:
        return np.asarray(self.compressor.process(block, key), dtype=np.float64)

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


INSERT_CONTROL_INTERVAL = 256
"""Automated insert parameters change every 256 samples (5.3 ms at 48 kHz), on a grid anchored
to the session timeline, whatever the render block size."""


class _PedalboardStage:
    """Consecutive pedalboard plug-ins, fed in fixed chunks of :data:`CHUNK_SAMPLES`.

    With ``automation`` (one plug-in, ``{parameter: AutomationLane}``), each chunk is fed in
    :data:`INSERT_CONTROL_INTERVAL` pieces, the parameters set from the lanes at each piece's
    first timeline sample.
    """

    def __init__(
        self,
        specs: Sequence[InsertSpec],
        sample_rate: int,
        channels: int,
        automation: dict[str, Any] | None = None,
    ) -> None:
        import pedalboard

        self.where = specs[0].where
        self.sample_rate = sample_rate
        self.channels = channels
        self._board = pedalboard.Pedalboard([s.build() for s in specs])
        self._automation = automation or {}
        self._fed = 0  # input samples fed so far
        self._lag = 0  # how far the input lags the session timeline
        self.output_channels, holdback = self._probe_holdback()
        self.holdback_samples = holdback
        self.latency_samples = CHUNK_SAMPLES + holdback
        # Input not yet fed (less than one chunk) and output not yet taken.
        self._pending_in = np.zeros((channels, 0), np.float32)
        self._pending_out = np.zeros((self.output_channels, self.latency_samples), np.float32)

    def _probe_holdback(self) -> tuple[int, int]:
        """Feed silence in fixed chunks and measure how many samples the plug-ins hold back."""
        fed = returned = 0
        holdback = 0
        channels_out = self.channels
        silence = np.zeros((self.channels, CHUNK_SAMPLES), np.float32)
        stable = 0
        for _ in range(400):
            out = self._feed(silence, automate=False)
            fed += CHUNK_SAMPLES
            returned += out.shape[1]
            if out.shape[1]:
                channels_out = int(out.shape[0])
            if fed - returned > holdback:
                holdback, stable = fed - returned, 0
            elif returned:
                stable += 1
                if stable >= 4:
                    break
        self._board.reset()
        return channels_out, holdback

    def anchor_to_timeline(self, lag_samples: int) -> None:
        """The stage's input lags the session timeline by ``lag_samples`` (for automation)."""
        self._lag = lag_samples

    def _feed(self, chunk: np.ndarray, automate: bool = True) -> np.ndarray:
        if not self._automation:
            return np.asarray(self._board(chunk, self.sample_rate, reset=False))
        plugin = self._board[0]
        outs = []
        for i in range(0, chunk.shape[1], INSERT_CONTROL_INTERVAL):
            if automate:
                timeline = self._fed + i - self._lag
                for name, lane in self._automation.items():
                    setattr(plugin, name, float(lane.values(timeline, 1)[0]))
            piece = np.ascontiguousarray(chunk[:, i : i + INSERT_CONTROL_INTERVAL])
            outs.append(self._board(piece, self.sample_rate, reset=False))
        if automate:
            self._fed += chunk.shape[1]
        outs = [o for o in outs if o.shape[1]]
        return np.concatenate(outs, axis=1) if outs else np.zeros((self.channels, 0), np.float32)

    def __call__(self, block: np.ndarray) -> np.ndarray:
        x = block.astype(np.float32)
        if self._pending_in.shape[1]:
            x = np.concatenate([self._pending_in, x], axis=1)
        full = x.shape[1] - x.shape[1] % CHUNK_SAMPLES
        outs = [self._pending_out]
        for i in range(0, full, CHUNK_SAMPLES):
            chunk = np.ascontiguousarray(x[:, i : i + CHUNK_SAMPLES])
            out = self._feed(chunk)
            if out.shape[1]:
                outs.append(out)
        self._pending_in = x[:, full:]
        y = np.concatenate(outs, axis=1) if len(outs) > 1 else outs[0]
        n = block.shape[1]
        if y.shape[1] < n:
            raise RenderError(
                f"{self.where}: plug-in latency changed while rendering "
                f"(measured {self.holdback_samples} samples when probed)"
            )
        self._pending_out = y[:, n:]
        return y[:, :n]


class InsertChain:
    """An ordered chain of inserts on one route, streamed block by block.

    Consecutive pedalboard plug-ins form one stage fed in fixed chunks; stemprint's own
    processors run between them on any block size.

    Parameters
    ----------
    specs
        The validated inserts, in processing order.
    sample_rate
        Render sample rate in Hz.
    channels
        Channel count of the input (1 or 2).

    Attributes
    ----------
    latency_samples
        Fixed delay of the output relative to the input, in samples: per pedalboard stage
        ``CHUNK_SAMPLES`` plus the plug-ins' own hold-back (measured by probing with silence),
        plus every latency the inserts declare (``latency_samples:``).
    output_channels
        Channel count the chain produces (a hosted plug-in may turn mono into stereo).
    """

    def __init__(
        self,
        specs: Sequence[InsertSpec],
        sample_rate: int,
        channels: int,
        automation: dict[int, dict[str, Any]] | None = None,
    ) -> None:
        self.specs = list(specs)
        automation = automation or {}
        # (insert index of a native stage or None for a pedalboard group, stage)
        self.stages: list[tuple[int | None, Any]] = []
        self.input_latency_samples: dict[int, int] = {}
        latency = 0
        current = channels
        group: list[tuple[int, InsertSpec]] = []

        def flush() -> None:
            """Turn the pending consecutive pedalboard plug-ins into one stage."""
            nonlocal latency, current, group
            if not group:
                return
            stage = _PedalboardStage([s for _, s in group], sample_rate, current)
            self.stages.append((None, stage))
            # Inside one pedalboard stage the plug-ins are compensated together.
            for i, _ in group:
                self.input_latency_samples[i] = latency
            latency += stage.latency_samples + sum(s.declared_latency_samples for _, s in group)
            current = stage.output_channels
            group = []

        for index, spec in enumerate(self.specs):
            if spec.native:
                flush()
                self.input_latency_samples[index] = latency
                self.stages.append((index, spec.build(sample_rate)))
                latency += spec.declared_latency_samples
            elif index in automation:
                # An automated plug-in gets a stage of its own (fed at the control rate).
                flush()
                own = _PedalboardStage([spec], sample_rate, current, automation[index])
                self.stages.append((-1 - index, own))
                self.input_latency_samples[index] = latency
                latency += own.latency_samples + spec.declared_latency_samples
                current = own.output_channels
            else:
                group.append((index, spec))
        flush()
        self.latency_samples = latency
        self.output_channels = current

    def anchor_to_timeline(self, input_lag_samples: int) -> None:
        """Tell control-rate processors how far this chain's input lags the session timeline.

        Their control grids are then anchored to the timeline, so that latency compensation
        upstream changes when they run, never what they output.
        """
        for index, stage in self.stages:
            if index is not None and hasattr(stage, "anchor_to_timeline"):
                insert = index if index >= 0 else -1 - index  # automated stages: -1 - index
                stage.anchor_to_timeline(input_lag_samples + self.input_latency_samples[insert])

    def process(self, block: np.ndarray, keys: dict[int, np.ndarray] | None = None) -> np.ndarray:
        """Process one block.

        Parameters
        ----------
        block
            ``(channels, n)`` float64.
        keys
            Sidechain key blocks by insert index, already aligned with that insert's input.

        Returns
        -------
        numpy.ndarray
            ``(output_channels, n)`` float64: the chain's output, ``latency_samples`` late.
        """
        x = block
        for index, stage in self.stages:
            if index is not None and isinstance(stage, _SidechainStage):
                x = stage(np.asarray(x, dtype=np.float64), (keys or {}).get(index))
            else:
                x = stage(x)
        return np.asarray(x, dtype=np.float64)


def measure_latency(
    specs: Sequence[InsertSpec],
    sample_rate: int,
    channels: int,
    level_db: float = -30.0,
    max_lag_samples: int | None = None,
) -> int | None:
    """Measure how late a chain's output really is, by cross-correlating a noise burst.

    The chain is built afresh, fed a burst of white noise at ``level_db`` (low, so dynamics
    processors stay linear) and silence after it, and the lag that maximises the
    cross-correlation between input and output is the measured latency, after subtracting the
    latency the chain reports (``InsertChain.latency_samples``). Zero means the reported latency is
    right; a plug-in that reports its latency wrong shows the error here.

    Parameters
    ----------
    specs
        The chain's inserts.
    sample_rate
        Hz.
    channels
        Input channels.
    level_db
        Burst level in dBFS.
    max_lag_samples
        Largest error searched for (default: one second).

    Returns
    -------
    int or None
        Measured latency error in samples (output later than reported is positive), or ``None``
        when the output does not correlate with the input (a reverb, a pitch shifter, silence).
    """
    chain = InsertChain(specs, sample_rate, channels)
    max_lag = max_lag_samples if max_lag_samples is not None else sample_rate
    burst_length = 8192
    rng = np.random.default_rng(1770)
    burst = rng.uniform(-1.0, 1.0, (channels, burst_length)) * 10 ** (level_db / 20)
    total = chain.latency_samples + burst_length + 2 * max_lag
    total += -total % 1024
    signal = np.zeros((channels, total))
    signal[:, max_lag : max_lag + burst_length] = burst
    outputs = [chain.process(signal[:, i : i + 1024]) for i in range(0, total, 1024)]
    output = np.concatenate(outputs, axis=1)[:, chain.latency_samples :]
    x = signal[0, : output.shape[1]]
    y = output[0]
    if not np.any(y):
        return None
    size = 1 << int(np.ceil(np.log2(2 * x.size)))
    correlation = np.fft.irfft(np.fft.rfft(y, size) * np.conj(np.fft.rfft(x, size)), size)
    lags = np.concatenate([correlation[: max_lag + 1], correlation[-max_lag:]])
    best = int(np.argmax(np.abs(lags)))
    peak = float(np.abs(lags[best]))
    # Correlation coefficient at the best lag: below 0.5 the chain does not preserve the signal.
    if peak < 0.5 * float(np.sqrt(np.sum(x * x) * np.sum(y * y))):
        return None
    return best if best <= max_lag else best - 2 * max_lag - 1
