"""`stemprint pack`: a deterministic ZIP whose checksums `sha256sum -c` accepts, a BagIt bag that
validates, and both catch one flipped byte."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile

import numpy as np
import pytest
from typer.testing import CliRunner

from stemprint.analysis.archive_input import unpacked
from stemprint.cli.main import app
from stemprint.errors import InputError
from tests.conftest import write_session, write_wav

runner = CliRunner()


@pytest.fixture
def package(tmp_path):
    rng = np.random.default_rng(8)
    write_wav(tmp_path / "a.wav", 0.1 * rng.uniform(-1, 1, (2, 4800)))
    write_wav(tmp_path / "b.wav", 0.1 * rng.uniform(-1, 1, (1, 4800)))
    session = {
        "tail_seconds": 0.0,
        "buses": [{"name": "Bus"}],
        "tracks": [
            {"name": "A", "clips": [{"file": "a.wav"}], "output": "Bus"},
            {"name": "B", "clips": [{"file": "b.wav"}]},
        ],
    }
    out = tmp_path / "song"
    result = runner.invoke(app, ["render", str(write_session(tmp_path, session)), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _unzip(archive, into):
    with zipfile.ZipFile(archive) as z:
        z.extractall(into)
    return into


def test_zip_is_deterministic_and_sha256sum_accepts_it(package, tmp_path):
    first = runner.invoke(app, ["pack", str(package), "--zip"])
    assert first.exit_code == 0, first.output
    archive = package.with_name("song.zip")
    data = archive.read_bytes()
    again = runner.invoke(app, ["pack", str(package), "--zip", "--force"])
    assert again.exit_code == 0 and archive.read_bytes() == data
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
        assert names == sorted(names) and "song/checksums.sha256" in names
        assert {i.date_time for i in z.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert z.getinfo("song/mix.wav").compress_type == zipfile.ZIP_STORED
    folder = _unzip(archive, tmp_path / "unz") / "song"
    if shutil.which("sha256sum") is None:
        pytest.skip("sha256sum not installed")
    check = subprocess.run(
        ["sha256sum", "-c", "checksums.sha256"], cwd=folder, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    wav = folder / "stems" / "B.wav"
    raw = bytearray(wav.read_bytes())
    raw[-3] ^= 0x01
    wav.write_bytes(bytes(raw))
    check = subprocess.run(
        ["sha256sum", "-c", "checksums.sha256"], cwd=folder, capture_output=True, text=True
    )
    assert check.returncode != 0 and "stems/B.wav: FAILED" in check.stdout


def test_bagit_bag_validates_and_catches_a_flipped_byte(package, tmp_path):
    bagit = pytest.importorskip("bagit")
    result = runner.invoke(app, ["pack", str(package), "--zip", "--bagit"])
    assert result.exit_code == 0, result.output
    bag_dir = _unzip(package.with_name("song.zip"), tmp_path / "bag") / "song"
    assert (bag_dir / "data" / "manifest.json").is_file()
    bag = bagit.Bag(str(bag_dir))
    bag.validate()
    wav = bag_dir / "data" / "mix.wav"
    raw = bytearray(wav.read_bytes())
    raw[100] ^= 0xFF
    wav.write_bytes(bytes(raw))
    with pytest.raises(bagit.BagValidationError):
        bagit.Bag(str(bag_dir)).validate()


def test_pack_never_replaces_a_file_it_did_not_write(package):
    mine = package.with_name("song.zip")
    mine.write_bytes(b"my own zip")
    for extra in ([], ["--force"]):
        result = runner.invoke(app, ["pack", str(package), *extra])
        assert result.exit_code == 2
    assert mine.read_bytes() == b"my own zip"
    missing = runner.invoke(app, ["pack", str(package.with_name("nope"))])
    assert missing.exit_code == 2 and "nope" in missing.output


def test_delivery_archive_packs_after_the_render(tmp_path):
    write_wav(tmp_path / "a.wav", 0.1 * np.ones((1, 480)))
    session = {
        "tail_seconds": 0.0,
        "tracks": [{"name": "A", "clips": [{"file": "a.wav"}]}],
        "delivery": {"archive": "bagit"},
    }
    out = tmp_path / "pkg"
    result = runner.invoke(app, ["render", str(write_session(tmp_path, session)), "-o", str(out)])
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(tmp_path / "pkg.zip") as z:
        assert "pkg/bagit.txt" in z.namelist() and "pkg/data/mix.wav" in z.namelist()


def test_verify_reads_a_zip_and_its_checksums(package, tmp_path):
    assert runner.invoke(app, ["pack", str(package)]).exit_code == 0
    archive = package.with_name("song.zip")
    ok = runner.invoke(app, ["verify", str(archive), "--json"])
    assert ok.exit_code == 0, ok.output
    report = json.loads(ok.stdout)
    codes = {f["code"] for f in report["findings"]}
    assert "archive.checksums_ok" in codes
    # One flipped byte inside a stored WAV (same length, same CRC-free copy).
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(tampered, "w") as sink:
        sink.comment = source.comment
        for info in source.infolist():
            data = source.read(info)
            if info.filename.endswith("stems/B.wav"):
                data = data[:-7] + bytes([data[-7] ^ 1]) + data[-6:]
            sink.writestr(info, data)
    bad = runner.invoke(app, ["verify", str(tampered), "--json"])
    assert bad.exit_code == 1
    assert any(
        f["code"] == "archive.checksum" and "stems/B.wav" in f["message"]
        for f in json.loads(bad.stdout)["findings"]
    )


def test_verify_refuses_an_unsafe_zip(tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("../escape.txt", b"x")
    result = runner.invoke(app, ["verify", str(evil)])
    assert result.exit_code == 2 and "escape.txt" in result.output
    assert not (tmp_path.parent / "escape.txt").exists()
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("song/mix.wav", b"\0" * (8 << 20))
    with pytest.raises(InputError, match="unpacks to more than"), unpacked(bomb, 1 << 20):
        pass
    # A member whose header understates its size never unpacks past it (zipfile reads only the
    # declared bytes, and the CRC then fails).
    raw = bytearray(bomb.read_bytes())
    size = (8 << 20).to_bytes(4, "little")
    small = (1 << 10).to_bytes(4, "little")
    raw = bytearray(bytes(raw).replace(size, small))
    liar = tmp_path / "liar.zip"
    liar.write_bytes(bytes(raw))
    result = runner.invoke(app, ["verify", str(liar)])
    assert result.exit_code == 2 and "liar.zip" in result.output
    truncated = tmp_path / "cut.zip"
    truncated.write_bytes(evil.read_bytes()[:20])
    result = runner.invoke(app, ["verify", str(truncated)])
    assert result.exit_code == 2 and "cut.zip" in result.output
