"""Planar reads: the values libsndfile decodes, bit for bit, for every WAVE encoding and beyond."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from stemprint.audiofile import probe
from stemprint.cli.main import app
from stemprint.planar import PlanarReader, interleave
from tests.conftest import write_session

FAST = [
    (container, subtype)
    for container in ("WAV", "WAVEX", "RF64")
    for subtype in ("PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE")
]
THROUGH_LIBSNDFILE = [
    ("WAV", "PCM_U8"),
    ("AIFF", "PCM_24"),
    ("AIFF", "FLOAT"),
    ("FLAC", "PCM_16"),
    ("FLAC", "PCM_24"),
]


def _signal(frames: int, channels: int, seed: int) -> np.ndarray:
    """Noise with both full-scale extremes, silence and small values: every bit pattern class."""
    x = np.random.default_rng(seed).uniform(-1.0, 1.0, (frames, channels))
    x[0], x[1], x[2] = 1.0, -1.0, 0.0
    x[3:40] *= 1e-5
    return x


def _read_all(reader: PlanarReader, first: int, step: int) -> np.ndarray:
    reader.seek(first)
    parts = []
    while (block := reader.read(step)).shape[1]:
        assert block.flags.c_contiguous and block.dtype == np.float64
        parts.append(block)
    return np.concatenate(parts, axis=1)


@pytest.mark.parametrize(("container", "subtype"), FAST + THROUGH_LIBSNDFILE)
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_values_are_libsndfiles_bit_for_bit(
    tmp_path: Path, container: str, subtype: str, channels: int
) -> None:
    path = tmp_path / f"x.{container.lower()}"
    sf.write(str(path), _signal(1001, channels, channels), 44100, subtype, format=container)
    expected = sf.read(str(path), dtype="float64", always_2d=True)[0].T
    with PlanarReader(probe(path)) as reader:
        assert reader.fast == ((container, subtype) in FAST)
        for first, step in ((0, 1001), (3, 97), (1000, 5), (7, 1)):
            got = _read_all(reader, first, step)
            assert got.shape == (channels, 1001 - first)
            assert np.array_equal(got.view(np.int64), expected[:, first:].view(np.int64))


def _chunk(chunk_id: bytes, payload: bytes) -> bytes:
    return struct.pack("<4sI", chunk_id, len(payload)) + payload + b"\0" * (len(payload) & 1)


def _with_chunk_before_data(source: Path, target: Path, chunk: bytes) -> None:
    """``source`` with ``chunk`` inserted just before its ``data`` chunk (RIFF size fixed)."""
    raw = source.read_bytes()
    at = raw.index(b"data")
    body = raw[12:at] + chunk + raw[at:]
    target.write_bytes(b"RIFF" + struct.pack("<I", len(body) + 4) + b"WAVE" + body)


def test_an_odd_chunk_before_the_data_is_stepped_over(tmp_path: Path) -> None:
    plain, path = tmp_path / "plain.wav", tmp_path / "odd.wav"
    sf.write(str(plain), _signal(777, 2, 5), 48000, "PCM_24")
    _with_chunk_before_data(plain, path, _chunk(b"junk", b"abc"))  # 3 bytes + 1 pad byte
    expected = sf.read(str(path), dtype="float64", always_2d=True)[0].T
    assert np.array_equal(expected, sf.read(str(plain), dtype="float64", always_2d=True)[0].T)
    with PlanarReader(probe(path)) as reader:
        assert reader.fast
        assert np.array_equal(_read_all(reader, 0, 100), expected)


def test_a_data_chunk_longer_than_the_file_reads_what_libsndfile_counts(tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    sf.write(str(path), _signal(1000, 2, 6), 48000, "PCM_24")
    path.write_bytes(path.read_bytes()[:-301])  # the header still claims 1000 frames
    info = probe(path)
    expected = sf.read(str(path), dtype="float64", always_2d=True)[0].T
    assert info.length_samples == expected.shape[1] < 1000
    with PlanarReader(info) as reader:
        assert np.array_equal(_read_all(reader, 0, 64), expected)


def test_a_block_align_that_does_not_match_goes_through_libsndfile(tmp_path: Path) -> None:
    path = tmp_path / "align.wav"
    sf.write(str(path), _signal(100, 2, 7), 48000, "PCM_16")
    raw = bytearray(path.read_bytes())
    fmt = raw.index(b"fmt ") + 8
    raw[fmt + 12 : fmt + 14] = struct.pack("<H", 5)  # block align 5 for 2 x 16-bit
    path.write_bytes(bytes(raw))
    try:
        expected = sf.read(str(path), dtype="float64", always_2d=True)[0].T
    except sf.LibsndfileError:
        pytest.skip("this libsndfile refuses the file")
    with PlanarReader(probe(path)) as reader:
        assert not reader.fast
        assert np.array_equal(_read_all(reader, 0, 33), expected)


def _render_mix(session: Path, out: Path) -> np.ndarray:
    result = CliRunner().invoke(
        app, ["render", str(session), "-o", str(out), "--bit-depth", "32f", "--no-report"]
    )
    assert result.exit_code == 0, result.output
    return sf.read(str(out / "mix.wav"), dtype="float64", always_2d=True)[0]


def test_render_mixes_the_values_libsndfile_decodes(tmp_path: Path) -> None:
    """Through the CLI: 24-bit stereo with a chunk before its data, 16-bit mono, AIFF and FLAC
    mix exactly as the same values stored as AIFF doubles (which libsndfile always decodes)."""
    sources = {
        "a.wav": ("WAV", "PCM_24", 2),
        "b.wav": ("WAV", "PCM_16", 1),
        "c.aiff": ("AIFF", "PCM_24", 2),
        "d.flac": ("FLAC", "PCM_24", 1),
    }
    for i, (name, (container, subtype, channels)) in enumerate(sources.items()):
        x = 0.2 * _signal(48000 + 7 * i, channels, 10 + i)
        sf.write(str(tmp_path / "raw"), x, 48000, subtype, format=container)
        if name == "a.wav":
            _with_chunk_before_data(tmp_path / "raw", tmp_path / name, _chunk(b"LIST", b"xyz"))
        else:
            (tmp_path / "raw").rename(tmp_path / name)
        decoded = sf.read(str(tmp_path / name), dtype="float64", always_2d=True)[0]
        sf.write(str(tmp_path / f"{name}.aiff"), decoded, 48000, "DOUBLE", format="AIFF")

    def session(suffix: str) -> Path:
        tracks = [
            {
                "name": f"T{i}",
                "pan": 0.3 * i - 0.5,
                "clips": [
                    {"file": name + suffix, "start_seconds": 0.25 * i, "offset_seconds": 0.01 * i}
                ],
            }
            for i, name in enumerate(sources)
        ]
        return write_session(tmp_path, {"tracks": tracks}, f"session{suffix}.yaml")

    mix = _render_mix(session(""), tmp_path / "out")
    reference = _render_mix(session(".aiff"), tmp_path / "reference")
    assert mix.shape == reference.shape and np.max(np.abs(mix)) > 0.1
    assert np.array_equal(mix, reference)


@pytest.mark.parametrize("channels", [1, 2, 6])
@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.float32])
def test_interleave_is_the_transposed_cast(channels: int, dtype: type) -> None:
    rng = np.random.default_rng(channels)
    planar = np.rint(rng.standard_normal((channels, 4099)) * 3000.0)
    if dtype is np.float32:
        planar = rng.standard_normal((channels, 4099))  # rounded to float32 the same way
    out = interleave(planar, dtype)
    assert out.flags.c_contiguous and out.dtype == dtype and out.shape == (4099, channels)
    assert np.array_equal(out, planar.T.astype(dtype))


def test_interleave_keeps_the_dtype_by_default() -> None:
    planar = np.arange(12, dtype=np.float32).reshape(3, 4)
    out = interleave(planar)
    assert out.dtype == np.float32 and np.array_equal(out, planar.T)
