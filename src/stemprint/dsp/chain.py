"""Insert chains: a route's inserts streamed block by block, exactly, whatever the block size.

Invariants
----------
- Every processor of a chain follows one contract (:class:`Processor`): ``process(block, key)``
  returns as many samples as it was given, ``latency_samples`` late; ``reset()`` returns it to
  the start of a stream; ``anchor_to_timeline(lag)`` tells it how far its input lags the session
  timeline (for control-rate work).
- Consecutive pedalboard plug-ins form one stage fed in fixed chunks of
  :data:`~stemprint.dsp.inserts.CHUNK_SAMPLES` (pedalboard's output depends on where its calls
  begin and end): a stage's latency is ``CHUNK_SAMPLES`` plus the plug-ins' own hold-back,
  measured by probing with silence. stemprint's own processors (``sample_delay``,
  ``sidechain_compressor``) run between stages on any block size.
- A stage of only :data:`~stemprint.dsp.inserts.ZERO_LATENCY_TYPES` holds nothing back and is
  not probed; any other built-in stage is probed once per process for each set of plug-ins,
  parameters, rate, channels and call size (the hold-back does not depend on the instance);
  a stage hosting a VST3/AU is probed every time. Not probing changes no output sample: a
  stage is reset after its probe (tested). :func:`known_latency` gives a chain's latencies
  without building its plug-ins when every stage's hold-back is known.
- A chain's latency is the sum of its stages' latencies plus every latency the inserts declare
  (``latency_samples:``); ``input_latency_samples[i]`` is the latency inside the chain at insert
  ``i``'s input, so a sidechain key can be aligned with the audio at that insert.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from stemprint.dsp.inserts import CHUNK_SAMPLES, EXTERNAL_TYPES, ZERO_LATENCY_TYPES, InsertSpec
from stemprint.errors import RenderError

INSERT_CONTROL_INTERVAL = 256
"""Automated insert parameters change every 256 samples (5.3 ms at 48 kHz), on a grid anchored
to the session timeline, whatever the render block size."""

_PROBED: dict[tuple[Any, ...], tuple[int, int]] = {}
"""``(output channels, hold-back samples)`` of every built-in stage probed in this process, by
:func:`_probe_key`: the graph's compile and each render build the same stages."""


def _probe_key(
    specs: Sequence[InsertSpec], sample_rate: int, channels: int, automated: bool
) -> tuple[Any, ...] | None:
    """What a stage's hold-back depends on, or ``None`` for a hosted plug-in (never reused:
    its latency is the plug-in's own business)."""
    if any(spec.type in EXTERNAL_TYPES for spec in specs):
        return None
    plugins = tuple((spec.type, repr(sorted(spec.params.items()))) for spec in specs)
    # Automated stages are fed in control-interval pieces: another call size.
    return plugins, sample_rate, channels, automated


def _known_holdback(
    specs: Sequence[InsertSpec], sample_rate: int, channels: int, automated: bool
) -> tuple[int, int] | None:
    """A pedalboard stage's ``(output channels, hold-back)`` when known without feeding it:
    zero-latency plug-ins only, or probed before in this process; else ``None``."""
    if all(spec.type in ZERO_LATENCY_TYPES for spec in specs):
        return channels, 0
    key = _probe_key(specs, sample_rate, channels, automated)
    return _PROBED.get(key) if key is not None else None


def _stage_groups(specs: Sequence[InsertSpec], automation: dict[int, Any]) -> list[list[int]]:
    """The insert indices of each stage of a chain, in order: a native or automated insert
    alone, consecutive other pedalboard plug-ins together."""
    groups: list[list[int]] = []
    group: list[int] = []
    for index, spec in enumerate(specs):
        if spec.native or index in automation:
            groups += [group, [index]] if group else [[index]]
            group = []
        else:
            group.append(index)
    return groups + [group] if group else groups


class Processor(Protocol):
    """What every stage of an insert chain does."""

    latency_samples: int

    def process(self, block: np.ndarray, key: np.ndarray | None = None) -> np.ndarray:
        """Process ``(channels, n)`` samples (and a sidechain key block); return ``n`` samples."""

    def reset(self) -> None:
        """Return to the start of a stream."""

    def anchor_to_timeline(self, lag_samples: int) -> None:
        """The input lags the session timeline by ``lag_samples``."""


class PedalboardStage:
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
        self._lag = 0  # how far the input lags the session timeline
        self.output_channels, holdback = self._holdback(specs)
        self.holdback_samples = holdback
        self.latency_samples = CHUNK_SAMPLES + holdback
        self.reset()

    def reset(self) -> None:
        """Clear the plug-ins' state and the pending input and output."""
        self._board.reset()
        self._fed = 0  # input samples fed so far
        self._pending_in = np.zeros((self.channels, 0), np.float32)
        self._pending_out = np.zeros((self.output_channels, self.latency_samples), np.float32)

    def _holdback(self, specs: Sequence[InsertSpec]) -> tuple[int, int]:
        """``(output channels, hold-back)``: known, probed before in this process, or probed."""
        automated = bool(self._automation)
        known = _known_holdback(specs, self.sample_rate, self.channels, automated)
        if known is not None:
            return known
        probed = self._probe_holdback()
        key = _probe_key(specs, self.sample_rate, self.channels, automated)
        if key is not None:
            _PROBED[key] = probed
        return probed

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

    def process(self, block: np.ndarray, key: np.ndarray | None = None) -> np.ndarray:
        """Feed ``block`` (any size); return as many samples, ``latency_samples`` late."""
        x = block.astype(np.float32)
        if self._pending_in.shape[1]:
            x = np.concatenate([self._pending_in, x], axis=1)
        full = x.shape[1] - x.shape[1] % CHUNK_SAMPLES
        # An empty hold-back is left out: concatenating it would copy every chunk once more.
        outs = [self._pending_out] if self._pending_out.shape[1] else []
        for i in range(0, full, CHUNK_SAMPLES):
            out = self._feed(np.ascontiguousarray(x[:, i : i + CHUNK_SAMPLES]))
            if out.shape[1]:
                outs.append(out)
        self._pending_in = x[:, full:]
        if len(outs) > 1:
            y = np.concatenate(outs, axis=1)
        else:
            y = outs[0] if outs else np.zeros((self.output_channels, 0), np.float32)
        n = block.shape[1]
        if y.shape[1] < n:
            raise RenderError(
                f"{self.where}: plug-in latency changed while rendering "
                f"(measured {self.holdback_samples} samples when probed)"
            )
        self._pending_out = y[:, n:]
        return y[:, :n]


@dataclass(frozen=True)
class _Slot:
    """One stage of a chain and the insert (index) whose input it starts at."""

    first_insert: int
    processor: Processor
    keyed: bool  # takes the sidechain key of ``first_insert``


class InsertChain:
    """An ordered chain of inserts on one route, streamed block by block.

    Parameters
    ----------
    specs
        The validated inserts, in processing order.
    sample_rate
        Render sample rate in Hz.
    channels
        Channel count of the input (1 or 2).
    automation
        ``insert.<index>.<parameter>`` lanes by insert index and parameter name: an automated
        plug-in gets a stage of its own, fed at the control rate.

    Attributes
    ----------
    latency_samples
        Fixed delay of the output relative to the input, in samples.
    input_latency_samples
        By insert index, the latency inside the chain at that insert's input.
    output_channels
        Channel count the chain produces (a hosted plug-in may turn mono into stereo).
    buffering_samples
        The part of ``latency_samples`` that is stemprint's fixed-chunk feeding
        (:data:`CHUNK_SAMPLES` per pedalboard stage), not the plug-ins' own latency.
    """

    def __init__(
        self,
        specs: Sequence[InsertSpec],
        sample_rate: int,
        channels: int,
        automation: dict[int, dict[str, Any]] | None = None,
    ) -> None:
        self.specs = list(specs)
        self._slots: list[_Slot] = []
        self.input_latency_samples: dict[int, int] = {}
        self.latency_samples = 0
        self.buffering_samples = 0
        self.output_channels = channels
        automation = automation or {}
        for indices in _stage_groups(self.specs, automation):
            self._add(indices[0], indices, sample_rate, automation.get(indices[0]))

    def _add(
        self, first: int, indices: list[int], sample_rate: int, automation: dict[str, Any] | None
    ) -> None:
        """Append one stage: a native processor, or pedalboard plug-ins compensated together."""
        spec = self.specs[first]
        processor: Processor
        if spec.native:
            processor = spec.build(sample_rate)
        else:
            stage = PedalboardStage(
                [self.specs[i] for i in indices], sample_rate, self.output_channels, automation
            )
            self.output_channels = stage.output_channels
            self.buffering_samples += CHUNK_SAMPLES
            processor = stage
        for i in indices:
            self.input_latency_samples[i] = self.latency_samples
        self.latency_samples += processor.latency_samples + sum(
            self.specs[i].declared_latency_samples for i in indices
        )
        self._slots.append(_Slot(first, processor, spec.type == "sidechain_compressor"))

    def anchor_to_timeline(self, input_lag_samples: int) -> None:
        """Tell every stage how far its input lags the session timeline.

        Control grids are then anchored to the timeline, so that latency compensation upstream
        changes when they run, never what they output.
        """
        for slot in self._slots:
            lag = input_lag_samples + self.input_latency_samples[slot.first_insert]
            slot.processor.anchor_to_timeline(lag)

    def reset(self) -> None:
        """Return every stage to the start of a stream."""
        for slot in self._slots:
            slot.processor.reset()

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
        for slot in self._slots:
            key = (keys or {}).get(slot.first_insert) if slot.keyed else None
            x = slot.processor.process(x, key)
        return np.asarray(x, dtype=np.float64)


def known_latency(
    specs: Sequence[InsertSpec],
    sample_rate: int,
    channels: int,
    automation: dict[int, dict[str, Any]] | None = None,
) -> tuple[int, dict[int, int], int] | None:
    """``(latency_samples, input_latency_samples, buffering_samples)`` of the
    :class:`InsertChain` these arguments build, without building its plug-ins, when every
    pedalboard stage's hold-back is known (:data:`~stemprint.dsp.inserts.ZERO_LATENCY_TYPES`,
    or probed before in this process); ``None`` otherwise (build the chain to probe it)."""
    automation = automation or {}
    latency = buffering = 0
    inputs: dict[int, int] = {}
    for indices in _stage_groups(specs, automation):
        first = specs[indices[0]]
        if first.native:
            stage_latency = int(first.build(sample_rate).latency_samples)  # numpy, cheap
        else:
            group = [specs[i] for i in indices]
            known = _known_holdback(group, sample_rate, channels, bool(automation.get(indices[0])))
            if known is None:
                return None
            channels, holdback = known
            stage_latency = CHUNK_SAMPLES + holdback
            buffering += CHUNK_SAMPLES
        for i in indices:
            inputs[i] = latency
        latency += stage_latency + sum(specs[i].declared_latency_samples for i in indices)
    return latency, inputs, buffering


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
