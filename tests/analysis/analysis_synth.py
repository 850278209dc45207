"""Signal and package synthesis for the analysis tests (seeded; imported by conftest and tests).

A uniquely named module rather than ``conftest`` so that tests can import it unambiguously."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

FS = 48000
STEM_NAMES = ("Drums", "Bass", "Keys", "Vox")


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Moving average along the last axis (a crude low-pass), same length."""
    kernel = np.ones(width) / width
    return np.stack([np.convolve(ch, kernel, mode="same") for ch in np.atleast_2d(x)])


def synth_stems(seconds: float = 4.0, seed: int = 7, fs: int = FS) -> dict[str, np.ndarray]:
    """Four stereo stems of noise-like and tonal material, float64 ``(2, samples)``.

    Peaks stay around −12 … −8 dBFS so that the sum stays below full scale.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * fs)
    t = np.arange(n) / fs
    # Drums: decaying noise bursts every 0.5 s (transients: sharp correlation peaks)
    env = np.exp(-((t % 0.5) / 0.06))
    drums = rng.standard_normal((2, n)) * env * 0.08
    # Bass: 55 Hz + 110 Hz tones plus low-passed noise
    bass = 0.12 * np.sin(2 * np.pi * 55 * t) + 0.05 * np.sin(2 * np.pi * 110 * t + 0.3)
    bass = np.stack([bass, bass]) + 0.2 * _smooth(rng.standard_normal((2, n)), 24)
    # Keys: a chord with slow tremolo and a little noise
    chord = sum(np.sin(2 * np.pi * f * t + p) for f, p in ((261.6, 0), (329.6, 1), (392.0, 2)))
    trem = 0.6 + 0.4 * np.sin(2 * np.pi * 0.7 * t)
    keys = np.stack([chord * trem, chord * trem[::-1]]) * 0.05
    keys += 0.01 * rng.standard_normal((2, n))
    # Vox: band-passed noise with a syllable envelope
    syll = np.clip(np.sin(2 * np.pi * 3.1 * t), 0, None) ** 2
    vox = _smooth(rng.standard_normal((2, n)), 4) - _smooth(rng.standard_normal((2, n)), 40)
    vox = vox * syll * 0.15
    return {"Drums": drums, "Bass": bass, "Keys": keys, "Vox": vox}


def write_wav(path: Path, x: np.ndarray, subtype: str = "FLOAT", fs: int = FS) -> Path:
    """Write float64 ``(channels, samples)`` to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.ascontiguousarray(x.T), fs, subtype=subtype)
    return path


def write_package(
    root: Path,
    stems: dict[str, np.ndarray],
    mix: np.ndarray,
    *,
    subtype: str = "FLOAT",
    premaster: np.ndarray | None = None,
    manifest: bool = False,
    fs: int = FS,
) -> Path:
    """Write stems, mix (and pre-master) as a package directory; optionally a manifest."""
    files = []
    stem_dir = root / "stems" if manifest else root
    for name, x in stems.items():
        write_wav(stem_dir / f"{name}.wav", x, subtype, fs)
        files.append(
            {
                "path": (stem_dir / f"{name}.wav").relative_to(root).as_posix(),
                "role": "stem",
                "name": name,
            }
        )
    write_wav(root / "mix.wav", mix, subtype, fs)
    files.insert(0, {"path": "mix.wav", "role": "mix", "name": "Mix"})
    if premaster is not None:
        name = "premaster.wav"
        write_wav(root / name, premaster, subtype, fs)
        files.insert(1, {"path": name, "role": "premaster", "name": "Mix (pre-master)"})
    if manifest:
        (root / "manifest.json").write_text(
            json.dumps(
                {
                    "stemprint": 1,
                    "sample_rate": fs,
                    "length_samples": mix.shape[1],
                    "files": files,
                    "session": "test",
                }
            )
        )
    return root


def tanh_limiter(x: np.ndarray, ceiling: float = 0.25) -> np.ndarray:
    """Soft clipper: ``ceiling·tanh(x / ceiling)`` (gain falls as the level rises)."""
    return ceiling * np.tanh(x / ceiling)


def gain_computer_limiter(x: np.ndarray, threshold: float, fs: int = FS) -> np.ndarray:
    """Hard-knee peak limiter: gain = min(1, threshold / envelope), envelope a 5 ms max-hold,
    gain smoothed over 2 ms. Linked stereo."""
    hold = int(0.005 * fs)
    mag = np.abs(x).max(axis=0)
    padded = np.concatenate([np.zeros(hold), mag, np.zeros(hold)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * hold + 1)
    env = windows.max(axis=1)
    gain = np.minimum(1.0, threshold / np.maximum(env, 1e-12))
    gain = _smooth(gain, int(0.002 * fs))[0]
    return x * gain
