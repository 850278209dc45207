"""Seeded stem material and planted faults for the null-diagnosis tests.

Every stem is float64 ``(channels, samples)`` at 48 kHz with its peak between about −18 and
−10 dBFS, so five of them sum below full scale. The materials are the hard cases of a lag
search: transients (one sharp correlation peak), a chord of integer frequencies (exactly
periodic every second), a pure 55 Hz tone (exactly periodic every 0.2 s, and inverted by a shift
of half a period), stationary noise, and a stem that is silent most of the time.

A planted fault is what a DAW export gets wrong: a stem printed late (``offset``, zero-filled, its
end cut at the file length) or early, at the wrong level (``gain``), inverted (``polarity``), left
out of the package (``missing``), or a limiter on the master (``limiter``: the mix is the limited
sum). :func:`expected_codes` says which diagnoses a correct verifier states for each.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
from analysis_synth import gain_computer_limiter

FS = 48000
#: Materials, one stem each, in package order.
MATERIALS = ("drums", "chord", "tone", "noise", "sparse")
#: Stem names used for the materials.
NAMES = {"drums": "Drums", "chord": "Keys", "tone": "Bass", "noise": "Pad", "sparse": "Vox"}


def _lowpass(x: np.ndarray, width: int) -> np.ndarray:
    kernel = np.ones(width) / width
    return np.stack([np.convolve(ch, kernel, mode="same") for ch in x])


def material(kind: str, seconds: float, channels: int, seed: int) -> np.ndarray:
    """One stem of ``kind`` (:data:`MATERIALS`, ``kick``, ``bassline``,
    ``harmonic_bass``, ``sung``), float64
    ``(channels, samples)``."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FS)
    t = np.arange(n) / FS
    if kind == "drums":
        hits = np.zeros(n)
        for start in np.arange(0.05, seconds - 0.05, 0.25):
            k = int((start + rng.uniform(-0.01, 0.01)) * FS)
            hits[k] = rng.uniform(0.5, 1.0)
        env = np.convolve(hits, np.exp(-np.arange(int(0.06 * FS)) / (0.012 * FS)))[:n]
        x = env * rng.standard_normal((channels, n)) * 0.12
    elif kind == "chord":
        # integer frequencies: exactly periodic every second, steady level, no fades
        wave = sum(np.sin(2 * np.pi * f * t + p) for f, p in ((220, 0.0), (277, 1.0), (330, 2.0)))
        x = np.stack([wave * (0.06 if c == 0 else 0.05) for c in range(channels)])
    elif kind == "tone":
        x = np.tile(0.25 * np.sin(2 * np.pi * 55.0 * t), (channels, 1))
    elif kind == "noise":
        x = _lowpass(rng.standard_normal((channels, n)), 6) * 0.1
    elif kind == "kick":
        # a pitch-dropping low sine on every beat (120 BPM): correlated with the bass line
        x1 = np.zeros(n)
        m = int(0.25 * FS)
        tk = np.arange(m) / FS
        hit = np.sin(2 * np.pi * (45 * tk + 40 * (1 - np.exp(-tk / 0.03)) * 0.03)) * np.exp(
            -tk / 0.08
        )
        for start in np.arange(0.0, seconds - 0.25, 0.5):
            k = int(start * FS)
            x1[k : k + m] += hit * rng.uniform(0.6, 0.8)
        x = np.tile(x1, (channels, 1)) * 0.5
    elif kind == "bassline":
        # sine notes on the beats (55, 73.4, 82.4 Hz), each with a short attack and a decay
        x1 = np.zeros(n)
        m = int(0.5 * FS)
        tk = np.arange(m) / FS
        env = np.minimum(tk / 0.005, 1) * np.exp(-tk / 0.35)
        for j, start in enumerate(np.arange(0.0, seconds - 0.5, 0.5)):
            f = (55.0, 73.42, 82.41)[rng.integers(3) if j % 4 else 0]
            k = int(start * FS)
            x1[k : k + m] += 0.3 * env * np.sin(2 * np.pi * f * tk)
        x = np.tile(x1, (channels, 1))
    elif kind == "harmonic_bass":
        # a sustained A1 (55 Hz and its first harmonics: 110 Hz is the sung A2's fundamental)
        wave = sum(np.sin(2 * np.pi * 55.0 * h * t + 0.5 * h) / h for h in range(1, 5))
        x = np.tile(0.15 * wave, (channels, 1))
    elif kind == "sung":
        # a sung A2 (110 Hz and harmonics) in syllables: one period is 436.4 samples
        syllables = np.clip(np.sin(2 * np.pi * 2.0 * t), 0, None) ** 2
        wave = sum(np.sin(2 * np.pi * 110.0 * h * t + h) / h for h in range(1, 6))
        x = np.tile(0.12 * wave * syllables, (channels, 1))
    elif kind == "sparse":
        x = np.zeros((channels, n))
        for start in rng.uniform(0.2, seconds - 0.5, 2):
            k, m = int(start * FS), int(0.3 * FS)
            env = np.sin(np.pi * np.arange(m) / m) ** 2
            burst = _lowpass(rng.standard_normal((channels, m)), 3) * 0.15 + 0.1 * np.sin(
                2 * np.pi * 440 * np.arange(m) / FS
            )
            x[:, k : k + m] += burst * env
    else:
        raise ValueError(kind)
    return np.asarray(x, dtype=np.float64)


def stem_set(
    seconds: float, channels: int, seed: int, mono: tuple[str, ...] = ()
) -> dict[str, np.ndarray]:
    """One stem of every material, named by :data:`NAMES`; the stems named in ``mono`` have one
    channel (a fresh dict of shared, read-only arrays: faults make new arrays, never write into
    these)."""
    return dict(_stem_set(seconds, channels, seed, mono))


@lru_cache(maxsize=64)
def _stem_set(
    seconds: float, channels: int, seed: int, mono: tuple[str, ...]
) -> dict[str, np.ndarray]:
    out = {}
    for j, kind in enumerate(MATERIALS):
        name = NAMES[kind]
        x = material(kind, seconds, 1 if name in mono else channels, seed * 10 + j)
        x.flags.writeable = False
        out[name] = x
    return out


def mix_of(stems: dict[str, np.ndarray]) -> np.ndarray:
    """Σ stems with the most channels among them; a one-channel stem goes to every channel."""
    channels = max(x.shape[0] for x in stems.values())
    total = np.zeros((channels, next(iter(stems.values())).shape[1]))
    for x in stems.values():
        total += x
    return total


def shifted(x: np.ndarray, late_samples: int) -> np.ndarray:
    """``x`` printed ``late_samples`` late (negative: early), zero-filled, same length."""
    y = np.zeros_like(x)
    d = late_samples
    if d > 0:
        y[:, d:] = x[:, :-d]
    elif d < 0:
        y[:, :d] = x[:, -d:]
    else:
        y[:] = x
    return y


@dataclass(frozen=True)
class Fault:
    """One planted fault: ``kind`` in ``offset``, ``gain``, ``polarity``, ``missing``,
    ``limiter``; ``stem`` the stem name (none for ``limiter``); ``amount`` samples (offset,
    positive = late) or dB (gain, positive = printed hot)."""

    kind: str
    stem: str | None = None
    amount: float = 0.0

    def label(self) -> str:
        amount = f"{self.amount:+g}" if self.kind in ("offset", "gain") else ""
        return f"{self.kind}{amount}:{self.stem}" if self.stem else self.kind


@dataclass
class Case:
    """A package to write: stems, the planted faults, the encoding."""

    stems: dict[str, np.ndarray]
    faults: list[Fault] = field(default_factory=list)
    subtype: str = "PCM_24"

    @property
    def label(self) -> str:
        faults = "+".join(f.label() for f in self.faults) or "clean"
        layout = "".join(str(x.shape[0]) for x in self.stems.values())
        return f"{faults}/{self.subtype}/{layout}"


def build(case: Case) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The files of ``case``: the printed stems (faults applied) and the mix."""
    total = mix_of(case.stems)
    printed = dict(case.stems)
    mix = total
    for fault in case.faults:
        name = fault.stem
        if fault.kind == "offset" and name:
            printed[name] = shifted(printed[name], int(fault.amount))
        elif fault.kind == "gain" and name:
            printed[name] = printed[name] * 10 ** (fault.amount / 20)
        elif fault.kind == "polarity" and name:
            printed[name] = -printed[name]
        elif fault.kind == "missing" and name:
            printed.pop(name)
        elif fault.kind == "limiter":
            mix = gain_computer_limiter(total, 0.5 * float(np.abs(total).max()))
        else:
            raise ValueError(fault)
    return printed, mix


def write_case(root: Path, case: Case) -> Path:
    """Write ``case`` as a package directory with a manifest (mix.wav, stems/*.wav)."""
    printed, mix = build(case)
    (root / "stems").mkdir(parents=True, exist_ok=True)
    files = [{"path": "mix.wav", "role": "mix", "name": "Mix"}]
    sf.write(str(root / "mix.wav"), mix.T, FS, subtype=case.subtype)
    for name, x in printed.items():
        sf.write(str(root / "stems" / f"{name}.wav"), x.T, FS, subtype=case.subtype)
        files.append({"path": f"stems/{name}.wav", "role": "stem", "name": name})
    manifest = {
        "stemprint": 1,
        "sample_rate": FS,
        "length_samples": int(mix.shape[1]),
        "files": files,
    }
    (root / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return root


def label_of(name: str) -> str:
    """The report's label of stem ``name``."""
    return f"stems/{name}.wav"


def expected_codes(faults: list[Fault]) -> set[tuple[str, str | None]]:
    """``(code, file)`` of the diagnoses a correct verifier states for ``faults``."""
    out: set[tuple[str, str | None]] = set()
    for fault in faults:
        file = label_of(fault.stem) if fault.stem else None
        code = {
            "offset": "null.time_offset",
            "gain": "null.stem_gain",
            "polarity": "null.polarity",
            "missing": "null.missing_stem",
            "limiter": "null.master_dynamics",
        }[fault.kind]
        out.add((code, "mix.wav" if fault.kind in ("missing", "limiter") else file))
    return out
