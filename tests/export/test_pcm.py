"""Samples packed by ``export.pcm`` and written raw: the bytes libsndfile writes itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from stemprint.export import audio
from stemprint.export.audio import AudioWriter
from stemprint.export.bwf import BroadcastInfo
from stemprint.export.pcm import pack_pcm


@pytest.mark.parametrize("samples", [0, 1, 2, 3, 4, 5, 6, 7, 8, 13, 4099])
def test_24_bit_packing_is_the_low_three_bytes_of_each_sample(samples: int) -> None:
    rng = np.random.default_rng(samples)
    values = rng.integers(-(2**23), 2**23, samples, dtype=np.int32)
    values[: min(samples, 2)] = [-(2**23), 2**23 - 1][: min(samples, 2)]  # both extremes
    expected = b"".join(int(v).to_bytes(3, "little", signed=True) for v in values)
    assert pack_pcm(values.reshape(-1, 1), 24).tobytes() == expected


def _write(path: Path, frames: np.ndarray, block: int, **options: Any) -> bytes:
    writer = AudioWriter(path, sample_rate=48000, channels=frames.shape[0], **options)
    for start in range(0, frames.shape[1], block):
        writer.write(frames[:, start : start + block])
    writer.close()
    writer.finish_bwf()
    return path.read_bytes()


_CASES = [
    ("WAV", "16", 2, 4096, {}),
    ("WAV", "24", 2, 4096, {}),
    ("WAV", "24", 1, 777, {}),
    ("WAV", "32", 2, 1001, {}),
    ("WAV", "32f", 2, 4096, {}),
    ("WAV", "24", 2, 333, {"dither": "tpdf", "seed_name": "mix"}),
    ("WAV", "24", 2, 4096, {"bwf": BroadcastInfo(title="Song", file_name="mix")}),
    ("WAVEX", "24", 6, 1023, {}),
    ("RF64", "16", 2, 4096, {"seed_name": "mix"}),
    ("RF64", "24", 2, 2047, {"bwf": BroadcastInfo(title="Song", file_name="mix")}),
    ("WAV", "24", 2, 999, {"wrap_at": 30_000, "wrap_tail": 4_000}),  # a loop: head written last
    ("WAV", "24", 2, 4096, {"fade_out": (40_000, 20_000), "lag_samples": 512}),
    ("WAV", "24", 2, 4096, {"render_sample_rate": 96000}),  # resampled: libsndfile's own handle
]


@pytest.mark.parametrize(("container", "bits", "channels", "block", "options"), _CASES)
def test_raw_writes_give_libsndfile_s_bytes(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    container: str,
    bits: str,
    channels: int,
    block: int,
    options: dict[str, Any],
) -> None:
    """Loud noise (some of it clipped), silence, a tone and odd lengths, as libsndfile alone
    writes them (with its own conversion) and as the writer does by default."""
    rng = np.random.default_rng(5)
    length = 70_001
    t = np.arange(length) / 48000
    frames = np.empty((channels, length))
    frames[:, :30_000] = 0.6 * rng.standard_normal((channels, 30_000))  # peaks past full scale
    frames[:, 30_000:40_000] = 0.0
    frames[:, 40_000:] = 0.5 * np.sin(2 * np.pi * 997 * t[40_000:])
    packed = _write(tmp_path / "packed.wav", frames, block, bit_depth=bits, container=container,
                    **options)  # fmt: skip
    monkeypatch.setattr(audio, "raw_writable", lambda container: False)
    converted = _write(tmp_path / "converted.wav", frames, block, bit_depth=bits,
                       container=container, **options)  # fmt: skip
    assert packed == converted
    info = sf.info(str(tmp_path / "packed.wav"))
    assert info.channels == channels
    back = sf.read(str(tmp_path / "packed.wav"), dtype="float64", always_2d=True)[0]
    if "render_sample_rate" not in options and "wrap_at" not in options:
        assert back.shape[0] == length
        lsb = 0.0 if bits == "32f" else 2.0 ** (1 - int(bits[:2]))
        assert np.all(np.abs(back[30_000:40_000]) <= lsb)  # the silence: at most dither


def test_aiff_and_flac_are_still_converted_by_libsndfile(tmp_path: Path) -> None:
    for container in ("AIFF", "FLAC"):
        writer = AudioWriter(tmp_path / f"a.{container}", 48000, 2, "24", container=container)
        assert not writer._raw
        writer.write(np.full((2, 100), 0.25))
        writer.close()
        back = sf.read(str(tmp_path / f"a.{container}"), dtype="float64")[0]
        assert np.array_equal(back, np.full((100, 2), 0.25))
