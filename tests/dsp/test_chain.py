"""Insert chains: stages whose latency is known are not probed, and that changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

from stemprint.dsp import chain
from stemprint.dsp.chain import PedalboardStage
from stemprint.dsp.inserts import CHUNK_SAMPLES, ZERO_LATENCY_TYPES, InsertSpec, builtin_types
from tests.conftest import write_wav

RATE = 48000


@pytest.fixture(scope="module")
def impulse_response(tmp_path_factory) -> str:
    """A short decaying stereo noise burst, as a convolution's impulse response."""
    rng = np.random.default_rng(11)
    n = 4800
    ir = rng.uniform(-1, 1, (2, n)) * np.exp(-np.arange(n) / 600.0)
    return str(write_wav(tmp_path_factory.mktemp("ir") / "ir.wav", ir, RATE, "FLOAT"))


def _spec(type_name: str, impulse_response: str, **params: object) -> InsertSpec:
    if type_name == "convolution":
        params.setdefault("impulse_response_filename", impulse_response)
    return InsertSpec(type_name, dict(params), f"test {type_name}")


def _render(stage: PedalboardStage, signal: np.ndarray) -> np.ndarray:
    """``signal`` through ``stage`` in uneven blocks, with the stage's latency dropped."""
    padded = np.concatenate([signal, np.zeros((signal.shape[0], stage.latency_samples))], axis=1)
    edges = [0, 1000, 17000, 40000, padded.shape[1]]
    out = np.concatenate(
        [stage.process(padded[:, a:b]) for a, b in zip(edges, edges[1:], strict=False)], axis=1
    )
    return out[:, stage.latency_samples :]


def test_zero_latency_types_are_builtins():
    assert ZERO_LATENCY_TYPES <= set(builtin_types())


@pytest.mark.parametrize("type_name", sorted(ZERO_LATENCY_TYPES))
@pytest.mark.parametrize("channels", [1, 2])
def test_zero_latency_types_hold_nothing_back_when_probed(type_name, channels, impulse_response):
    stage = PedalboardStage([_spec(type_name, impulse_response)], RATE, channels)
    assert (stage.output_channels, stage.holdback_samples) == (channels, 0)
    assert stage._probe_holdback() == (channels, 0)  # the probe the known value replaces


@pytest.mark.parametrize(
    "specs",
    [
        [("compressor", {"threshold_db": -30.0, "ratio": 4.0, "attack_ms": 2.0})],
        [("delay", {"delay_seconds": 0.01, "feedback": 0.5, "mix": 0.5})],
        [("convolution", {"mix": 0.7})],
        [("chorus", {}), ("phaser", {}), ("reverb", {})],
        [("highpass_filter", {"cutoff_frequency_hz": 200.0}), ("limiter", {})],
        [("brickwall_limiter", {"ceiling_db": -6.0, "lookahead_ms": 2.0})],
    ],
    ids=lambda specs: "+".join(name for name, _ in specs),
)
def test_a_stage_not_probed_renders_as_a_probed_one(specs, impulse_response):
    inserts = [_spec(name, impulse_response, **params) for name, params in specs]
    signal = 0.5 * np.random.default_rng(3).uniform(-1, 1, (2, 50000))
    chain._PROBED.clear()
    fresh = PedalboardStage(inserts, RATE, 2)  # known or probed (and remembered)
    reused = PedalboardStage(inserts, RATE, 2)  # known or remembered: never fed before
    probed = PedalboardStage(inserts, RATE, 2)
    assert probed._probe_holdback() == (probed.output_channels, probed.holdback_samples)
    probed.reset()  # as a probed stage always was
    expected = _render(probed, signal)
    assert np.array_equal(_render(fresh, signal), expected)
    assert np.array_equal(_render(reused, signal), expected)


def test_a_latent_stage_is_probed_once_per_kind(monkeypatch, impulse_response):
    chain._PROBED.clear()
    probes: list[int] = []
    original = PedalboardStage._probe_holdback

    def counted(self: PedalboardStage) -> tuple[int, int]:
        probes.append(self.channels)
        return original(self)

    monkeypatch.setattr(PedalboardStage, "_probe_holdback", counted)
    limiter = [_spec("brickwall_limiter", impulse_response, lookahead_ms=5.0)]
    first = PedalboardStage(limiter, RATE, 2)
    again = PedalboardStage(limiter, RATE, 2)
    assert first.latency_samples == again.latency_samples == CHUNK_SAMPLES + 240
    PedalboardStage(limiter, RATE, 1)  # other channels: probed
    PedalboardStage([_spec("brickwall_limiter", impulse_response, lookahead_ms=2.0)], RATE, 2)
    PedalboardStage([_spec("gain", impulse_response)], RATE, 2)  # known: never probed
    assert probes == [2, 1, 2]


def test_hosted_plugins_are_never_remembered():
    hosted = InsertSpec("vst3", {"path": "/plugins/x.vst3"}, "test vst3")
    assert chain._probe_key([hosted], RATE, 2, False) is None
    builtin = InsertSpec("pitch_shift", {"semitones": 2.0}, "test")
    assert chain._probe_key([builtin], RATE, 2, False) != chain._probe_key([builtin], RATE, 2, True)


_CHAINS = {
    "filters": [("highpass_filter", {}), ("compressor", {"ratio": 3.0})],
    "native-between": [
        ("sample_delay", {"delay_samples": 100}),
        ("gain", {}),
        ("sidechain_compressor", {}),
        ("convolution", {}),
    ],
    "latent": [("gain", {}), ("brickwall_limiter", {}), ("sample_delay", {}), ("delay", {})],
    "automated": [("gain", {}), ("lowpass_filter", {}), ("compressor", {})],
}


@pytest.mark.parametrize("name", sorted(_CHAINS))
@pytest.mark.parametrize("channels", [1, 2])
def test_known_latency_is_the_built_chains(name, channels, impulse_response):
    specs = [
        InsertSpec(spec.type, spec.params, spec.where, 100 if spec.type == "sample_delay" else 0)
        for spec in (_spec(t, impulse_response, **p) for t, p in _CHAINS[name])
    ]
    # An automated insert is a stage of its own (its lanes are only read while rendering).
    automation = {1: {"cutoff_frequency_hz": object()}} if name == "automated" else None
    chain._PROBED.clear()
    if name == "latent":
        assert chain.known_latency(specs, RATE, channels, automation) is None  # not probed yet
    built = chain.InsertChain(specs, RATE, channels, automation)
    expected = (built.latency_samples, built.input_latency_samples, built.buffering_samples)
    assert chain.known_latency(specs, RATE, channels, automation) == expected
