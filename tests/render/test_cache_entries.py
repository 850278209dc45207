"""Cache entries written block by block: exact samples back, a digest of every chunk stored, and
nothing stored that float32 would change."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from xxhash import xxh3_64_intdigest

from stemprint.errors import CacheEntryDamaged
from stemprint.render.cache import CHUNK_FRAMES, HEADER_BYTES, EntryWriter, RenderCache

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
    data = np.ascontiguousarray(x.T, dtype=dtype).tobytes()
    stored = (tmp_path / "cache" / "entries" / f"{KEY}.pre").read_bytes()[HEADER_BYTES:]
    assert stored[: len(data)] == data
    # An XXH3-64 digest per chunk of CHUNK_FRAMES frames, the last one short, after the data.
    step = CHUNK_FRAMES * channels * np.dtype(dtype).itemsize
    digests = [xxh3_64_intdigest(data[a : a + step]) for a in range(0, len(data), step)]
    assert len(digests) == 4 and entry.digests.tolist() == digests
    assert stored[len(data) :] == np.asarray(digests, "<u8").tobytes()
    entry.close()


def test_a_sample_float32_would_change_is_never_stored(tmp_path: Path) -> None:
    x = np.full((2, 30_000), 0.25)
    x[1, 20_123] = 0.1  # not a float32 value
    cache = RenderCache(tmp_path / "cache")
    writer = _write(cache, x, 4096, "float32")
    assert writer.failed and not writer.done
    assert cache.lookup(KEY, 2, x.shape[1]) is None
    assert not list((tmp_path / "cache" / "entries").iterdir())  # the partial file is gone


@pytest.mark.parametrize("block", [1000, CHUNK_FRAMES, 3 * CHUNK_FRAMES + 5])
def test_a_damaged_chunk_is_never_returned(tmp_path: Path, block: int) -> None:
    # Every block before the damaged chunk comes back exact; the block that reaches into it
    # raises and the entry is deleted; a full check of a copy fails.
    rng = np.random.default_rng(block)
    x = rng.standard_normal((2, 5 * CHUNK_FRAMES + 77)).astype(np.float32).astype(np.float64)
    cache = RenderCache(tmp_path / "cache")
    assert _write(cache, x, 4093, "float32").done
    path = tmp_path / "cache" / "entries" / f"{KEY}.pre"
    data = bytearray(path.read_bytes())
    data[HEADER_BYTES + (3 * CHUNK_FRAMES + 123) * 2 * 4 + 1] ^= 0x20  # in chunk 3
    path.write_bytes(bytes(data))
    entry = cache.lookup(KEY, 2, x.shape[1])
    assert entry is not None
    start = 0
    while start + block <= 3 * CHUNK_FRAMES:
        assert np.array_equal(entry.block(start, block), x[:, start : start + block])
        start += block
    with pytest.raises(CacheEntryDamaged) as raised:
        while True:  # the next blocks, up to the one that reaches into chunk 3
            got = entry.block(start, block)
            assert np.array_equal(got, x[:, start : start + block])
            start += block
    assert start < 4 * CHUNK_FRAMES and start + block > 3 * CHUNK_FRAMES  # reaches chunk 3
    assert raised.value.file == str(path) and not path.exists()
    entry.close()
    other = RenderCache(tmp_path / "other")
    (other.entries / path.name).write_bytes(bytes(data))
    damaged = other.lookup(KEY, 2, x.shape[1])
    assert damaged is not None and not damaged.verify()
