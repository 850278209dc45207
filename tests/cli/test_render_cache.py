"""``stemprint render --cache DIR``: the same package, and the manifest says what was reused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from stemprint.cli.main import app
from stemprint.render.cache import CHUNK_FRAMES, HEADER_BYTES, MAGIC
from tests.conftest import write_session, write_wav
from tests.render.test_cache import _digests

runner = CliRunner()


def _session(folder: Path, fader_db: float) -> Path:
    rng = np.random.default_rng(3)
    for name in ("a", "b"):
        if not (folder / f"{name}.wav").exists():
            write_wav(folder / f"{name}.wav", rng.normal(0, 0.2, (2, 24000)), subtype="FLOAT")
    return write_session(
        folder,
        {
            "tracks": [
                {
                    "name": "A",
                    "clips": [{"file": "a.wav"}],
                    "gain_db": fader_db,
                    "inserts": [{"type": "compressor", "threshold_db": -20, "ratio": 3}],
                },
                {
                    "name": "B",
                    "clips": [{"file": "b.wav"}],
                    "inserts": [{"type": "distortion", "drive_db": 3}],
                },
            ]
        },
    )


def _render(session: Path, out: Path, *extra: str) -> None:
    result = runner.invoke(app, ["render", str(session), "-o", str(out), "--force", "-q", *extra])
    assert result.exit_code == 0, result.output


def test_render_cache_option(tmp_path):
    cache = tmp_path / "cache"
    _render(_session(tmp_path, 0.0), tmp_path / "first", "--cache", str(cache))
    first = json.loads((tmp_path / "first" / "manifest.json").read_text())
    assert first["cache"]["reused"] == []
    assert first["cache"]["dir"] == str(cache.absolute())
    session = _session(tmp_path, -1.0)
    _render(session, tmp_path / "cold")
    _render(session, tmp_path / "warm", "--cache", str(cache))
    warm = json.loads((tmp_path / "warm" / "manifest.json").read_text())
    assert sorted(warm["cache"]["reused"]) == ["A", "B"]
    assert "master" in warm["cache"]["rendered"]
    assert "cache" not in json.loads((tmp_path / "cold" / "manifest.json").read_text())
    assert _digests(tmp_path / "warm") == _digests(tmp_path / "cold")


def test_render_cache_refuses_a_foreign_folder(tmp_path):
    foreign = tmp_path / "stuff"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    result = runner.invoke(
        app,
        ["render", str(_session(tmp_path, 0.0)), "-o", str(tmp_path / "out"), "--cache",
         str(foreign)],
    )  # fmt: skip
    assert result.exit_code == 2
    assert (foreign / "keep.txt").read_text() == "mine"


def test_render_cache_auto_lives_beside_the_output(tmp_path):
    session = _session(tmp_path, 0.0)
    _render(session, tmp_path / "out" / "v1", "--cache", "auto", "--no-report")
    cache = tmp_path / "out" / ".stemprint-cache"
    assert (cache / "STEMPRINT-CACHE").is_file()
    _render(_session(tmp_path, -2.0), tmp_path / "out" / "v2", "--cache", "auto", "--no-report")
    warm = json.loads((tmp_path / "out" / "v2" / "manifest.json").read_text())
    assert warm["cache"]["dir"] == str(cache.absolute())
    assert sorted(warm["cache"]["reused"]) == ["A", "B"]
    _render(session, tmp_path / "out" / "v1", "--cache", "auto", "--no-report")  # --force
    assert (cache / "STEMPRINT-CACHE").is_file()


def test_render_cache_inside_the_output_is_refused(tmp_path):
    session = _session(tmp_path, 0.0)
    out = tmp_path / "pkg"
    result = runner.invoke(
        app, ["render", str(session), "-o", str(out), "--cache", str(out / "cache"), "-q"]
    )
    assert result.exit_code == 2
    assert "inside the output folder" in result.output and "--cache" in result.output
    assert not out.exists()


@pytest.mark.parametrize("threads", ["1", "2"])
def test_a_damaged_entry_found_mid_render_is_rendered_again(tmp_path, threads):
    # Each chunk of an entry is checked when it is read: a flipped bit in the second chunk
    # stops the render there (in a worker process with 2 threads), the entry is deleted, and
    # the render runs once more with every entry checked first. The package is the cold one.
    cache = tmp_path / "cache"
    _render(_session(tmp_path, 0.0), tmp_path / "first", "--cache", str(cache), "--no-report")
    session = _session(tmp_path, -1.0)
    _render(session, tmp_path / "cold", "--no-report")
    entries = sorted((cache / "entries").glob("*.pre"))
    assert len(entries) == 3  # A, B and the master (whose key the fader change changes)
    damaged = {}
    for entry in entries:
        header = json.loads(entry.read_bytes()[len(MAGIC) : HEADER_BYTES].rstrip(b"\0"))
        data = bytearray(entry.read_bytes())
        frame_bytes = header["channels"] * np.dtype(header["dtype"]).itemsize
        data[HEADER_BYTES + CHUNK_FRAMES * frame_bytes + 10] ^= 0x04  # in the second chunk
        entry.write_bytes(bytes(data))
        damaged[entry] = bytes(data)
    args = ("--cache", str(cache), "--no-report", "--threads", threads)
    _render(session, tmp_path / "warm", *args)
    warm = json.loads((tmp_path / "warm" / "manifest.json").read_text())
    assert warm["cache"]["reused"] == []
    assert sorted(warm["cache"]["stored"]) == ["A", "B", "master"]
    assert warm["verification"]["passed"]
    assert _digests(tmp_path / "warm") == _digests(tmp_path / "cold")
    # A's and B's were read, found damaged and deleted, then stored anew; the old master
    # entry was never read.
    assert sum(path.read_bytes() == data for path, data in damaged.items()) == 1
    _render(session, tmp_path / "again", *args)
    again = json.loads((tmp_path / "again" / "manifest.json").read_text())
    assert sorted(again["cache"]["reused"]) == ["A", "B", "master"]
