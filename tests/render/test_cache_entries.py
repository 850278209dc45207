"""Cache entries written block by block: exact samples back, a CRC of the stored bytes, and
nothing stored that float32 would change."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest

from stemprint.render.cache import HEADER_BYTES, EntryWriter, RenderCache

KEY = "ab" * 32


def _write(cache: RenderCache, x: np.ndarray, block: int, dtype: str) -> EntryWriter:
    writer = EntryWriter(cache, KEY, x.shape[1], dtype)
    for start in range(0, x.shape[1], block):
        writer.write(start, x[:, start : start + block])
    return writer


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_an_entry_reads_back_every_sample_and_checks(
    tmp_path: Path, dtype: str, channels: int
) -> None:
    rng = np.random.default_rng(channels)
    x = rng.standard_normal((channels, 50_001)).astype(np.float32).astype(np.float64)
    cache = RenderCache(tmp_path / "cache")
    assert _write(cache, x, 4093, dtype).done
    entry = cache.lookup(KEY, channels, x.shape[1])
    assert entry is not None and entry.verify()
    back = np.concatenate([entry.block(a, 7000) for a in range(0, 56_000, 7000)], axis=1)
    assert np.array_equal(back[:, : x.shape[1]], x)
    assert not back[:, x.shape[1] :].any()  # zeros past the end
    stored = (tmp_path / "cache" / "entries" / f"{KEY}.pre").read_bytes()[HEADER_BYTES:]
    assert stored == np.ascontiguousarray(x.T, dtype=dtype).tobytes()
    assert entry.crc == zlib.crc32(stored)
    entry.close()


def test_a_sample_float32_would_change_is_never_stored(tmp_path: Path) -> None:
    x = np.full((2, 30_000), 0.25)
    x[1, 20_123] = 0.1  # not a float32 value
    cache = RenderCache(tmp_path / "cache")
    writer = _write(cache, x, 4096, "float32")
    assert writer.failed and not writer.done
    assert cache.lookup(KEY, 2, x.shape[1]) is None
    assert not list((tmp_path / "cache" / "entries").iterdir())  # the partial file is gone
