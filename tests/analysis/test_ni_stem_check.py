"""The NI Stems checker (Mixxx's rules, NI's specification) on files built here with PyAV and the
box writer: a valid file passes, each mutation fails with its own finding."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from stemprint.analysis.ni_stem_check import check_ni_stem
from stemprint.cli.main import app
from stemprint.export import mp4box

runner = CliRunner()
RATE = 44100
MANIFEST = {
    "version": 1,
    "stems": [
        {"name": "Drums", "color": "#009E73"},
        {"name": "Bass", "color": "#D55E00"},
        {"name": "Other", "color": "#CC79A7"},
        {"name": "Vocals", "color": "#56B4E9"},
    ],
}
STEREO = [("alac", 2, RATE)] * 5


def _write(
    path: Path,
    streams: list[tuple[str, int, int]] = STEREO,
    manifest: dict | bytes | None = None,
) -> Path:
    """An MP4 with one short tone per ``(codec, channels, rate)`` stream, the ``stem`` box
    (``manifest``; the default four stems; ``b""`` for none) and NI's track flags."""
    import av

    container = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
    with container:
        outs = []
        for index, (codec, channels, rate) in enumerate(streams):
            layout = "stereo" if channels == 2 else "mono"
            stream = container.add_stream(codec, rate=rate, layout=layout)
            stream.codec_context.format = "fltp" if codec == "aac" else "s16p"
            stream.disposition = av.stream.Disposition(1 if index == 0 else 0)
            outs.append(stream)
        container.start_encoding()
        for stream, (codec, channels, rate) in zip(outs, streams, strict=True):
            size = stream.codec_context.frame_size or 1024
            tone = 0.1 * np.sin(2 * np.pi * 440 * np.arange(size * 4) / rate)
            for start in range(0, tone.size, size):
                piece = np.tile(tone[start : start + size], (channels, 1))
                if codec == "aac":
                    data = piece.astype(np.float32)
                else:
                    data = np.round(piece * 32767).astype(np.int16)
                fmt = "fltp" if codec == "aac" else "s16p"
                frame = av.AudioFrame.from_ndarray(data, format=fmt, layout=stream.layout.name)
                frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
    data = path.read_bytes()
    if manifest != b"":
        body = manifest if isinstance(manifest, bytes) else json.dumps(manifest or MANIFEST)
        payload = body if isinstance(body, bytes) else body.encode()
        data = mp4box.insert_box(data, "moov/udta", mp4box.make_box("stem", payload))
    flags = [0x1] + [0x0] * (len(streams) - 1)
    data = mp4box.set_major_brand(mp4box.set_track_flags(data, flags), "M4A ")
    path.write_bytes(data)
    return path


def _errors(path: Path) -> set[str]:
    return {f.code for f in check_ni_stem(path).findings if f.severity == "error"}


def _warnings(path: Path) -> set[str]:
    return {f.code for f in check_ni_stem(path).findings if f.severity == "warning"}


def test_a_valid_file_passes(tmp_path):
    check = check_ni_stem(_write(tmp_path / "ok.stem.mp4"))
    assert check.passed, check.findings
    assert [s.channels for s in check.streams] == [2] * 5
    assert [s.default for s in check.streams] == [True, False, False, False, False]
    assert check.manifest is not None and len(check.manifest["stems"]) == 4
    assert not _warnings(tmp_path / "ok.stem.mp4")


def test_no_stem_box_fails(tmp_path):
    path = _write(tmp_path / "a.stem.mp4")
    path.write_bytes(mp4box.remove_box(path.read_bytes(), "moov/udta/stem"))
    assert _errors(path) == {"ni_stem.stem_box"}
    assert _errors(_write(tmp_path / "b.stem.mp4", manifest=b"")) == {"ni_stem.stem_box"}


def test_three_stems_fail(tmp_path):
    path = _write(tmp_path / "a.stem.mp4", STEREO[:4])
    assert _errors(path) == {"ni_stem.stream_count"}
    listed = {**MANIFEST, "stems": MANIFEST["stems"][:3]}
    assert _errors(_write(tmp_path / "b.stem.mp4", manifest=listed)) == {"ni_stem.stems"}


def test_a_mono_stream_fails(tmp_path):
    streams = [*STEREO[:3], ("alac", 1, RATE), STEREO[4]]
    assert _errors(_write(tmp_path / "a.stem.mp4", streams)) == {"ni_stem.stereo"}


def test_mixed_sample_rates_fail(tmp_path):
    streams = [*STEREO[:2], ("alac", 2, 48000), *STEREO[3:]]
    assert _errors(_write(tmp_path / "a.stem.mp4", streams)) == {"ni_stem.rate_mismatch"}


def test_mixed_or_foreign_codecs_fail(tmp_path):
    streams = [*STEREO[:4], ("aac", 2, RATE)]
    assert _errors(_write(tmp_path / "a.stem.mp4", streams)) == {"ni_stem.codec_mismatch"}
    assert not _errors(_write(tmp_path / "b.stem.mp4", [("aac", 2, RATE)] * 5))
    mp3 = _write(tmp_path / "c.stem.mp4", [("libmp3lame", 2, RATE)] * 5)
    assert _errors(mp3) == {"ni_stem.codec"}  # Mixxx would play it; NI allows ALAC or AAC


def test_manifest_json_rules(tmp_path):
    def errors(name: str, manifest: dict | bytes) -> set[str]:
        return _errors(_write(tmp_path / f"{name}.stem.mp4", manifest=manifest))

    assert errors("v0", {**MANIFEST, "version": 0}) == {"ni_stem.version"}
    assert errors("vtext", {**MANIFEST, "version": "1"}) == {"ni_stem.version"}
    assert errors("garbage", b"not json") == {"ni_stem.json"}
    assert errors("array", b"[1, 2]") == {"ni_stem.json"}
    assert errors("stems", {"version": 1, "stems": ["Drums"] * 4}) == {"ni_stem.stems"}
    # Mixxx strips trailing NUL bytes; an unknown colour or an empty name falls back.
    assert errors("nul", json.dumps(MANIFEST).encode() + b"\0\0") == set()
    odd = {**MANIFEST, "stems": [{"name": "", "color": "red"}, *MANIFEST["stems"][1:]]}
    path = _write(tmp_path / "odd.stem.mp4", manifest=odd)
    assert not _errors(path) and _warnings(path) == {"ni_stem.stem_name", "ni_stem.stem_color"}
    # A newer version is tried anyway.
    assert _warnings(_write(tmp_path / "v2.stem.mp4", manifest={**MANIFEST, "version": 2})) == {
        "ni_stem.version"
    }


def test_file_name_and_track_flag_rules(tmp_path):
    assert _errors(_write(tmp_path / "plain.mp4")) == {"ni_stem.extension"}
    m4a = _write(tmp_path / "x.stem.m4a")
    assert not _errors(m4a) and _warnings(m4a) == {"ni_stem.extension"}
    path = _write(tmp_path / "flags.stem.mp4")
    path.write_bytes(mp4box.set_track_flags(path.read_bytes(), [0x3] * 5))
    assert not _errors(path) and _warnings(path) == {"ni_stem.track_flags"}
    junk = tmp_path / "junk.stem.mp4"
    junk.write_bytes(b"RIFF" + bytes(100))
    assert _errors(junk) == {"ni_stem.container"}


def test_verify_profile_ni_stem_through_the_cli(tmp_path):
    good = _write(tmp_path / "good.stem.mp4")
    bad = _write(tmp_path / "bad.stem.mp4", STEREO[:4])
    result = runner.invoke(app, ["verify", str(good), "--profile", "ni-stem"])
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output
    result = runner.invoke(app, ["verify", str(bad), "--profile", "ni-stem"])
    assert result.exit_code == 1, result.output
    assert "3 stem stream(s) after the mix" in result.output
    result = runner.invoke(app, ["verify", str(good), "--profile", "ni-stem", "--json"])
    document = json.loads(result.stdout)
    assert document["passed"] is True and document["files"][0]["streams"][0]["codec"] == "alac"
    result = runner.invoke(app, ["verify", str(tmp_path / "none.stem.mp4"), "--profile", "ni-stem"])
    assert result.exit_code == 2


@pytest.mark.parametrize("size", [0, 1])
def test_box_reader_refuses_boxes_that_do_not_fit(tmp_path, size):
    data = mp4box.make_box("ftyp", b"M4A \0\0\0\0") + b"\0\0\0\x09moov" + b"\0" * size
    with pytest.raises(Exception, match="does not fit|stray bytes"):
        mp4box.read_boxes(data)
