"""Manifest digests: hashed side by side, each the SHA-256 of the file's bytes, in order."""

from __future__ import annotations

import hashlib

import pytest

from stemprint.export.manifest import sha256_file, sha256_files


@pytest.mark.parametrize("count", [0, 1, 2, 7])
def test_sha256_files_are_each_files_digest_in_order(tmp_path, count):
    paths = []
    for i in range(count):
        path = tmp_path / f"f{i}.bin"
        path.write_bytes(bytes([i]) * (3 << 20 if i % 2 else 1000 + i))  # past one read piece
        paths.append(path)
    expected = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    assert sha256_files(paths) == expected
    assert [sha256_file(p) for p in paths] == expected
