"""The report's content without a browser: figures equal the JSON, CLI, determinism, layouts."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
from typer.testing import CliRunner

from stemprint.cli.main import app
from stemprint.report import write_package_report
from stemprint.report.markup import NONE_TEXT

from .conftest import write_bare_package

runner = CliRunner()


class _Marked(HTMLParser):
    """Every element marked ``data-src`` with its attributes and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[dict[str, str], str]] = []
        self._open: list[tuple[dict[str, str], list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if "data-src" in found:
            self._open.append((found, []))

    def handle_data(self, data: str) -> None:
        for _attrs, parts in self._open:
            parts.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "span" and self._open:
            attrs, parts = self._open.pop()
            self.found.append((attrs, "".join(parts)))


def _player_data(text: str) -> dict:
    """The stem player's JSON of a report page."""
    return json.loads(re.search(r'id="player-data">(.*?)</script>', text).group(1))


def _resolve(data: Any, path: str) -> Any:
    for key in path.split("."):
        data = data[int(key)] if isinstance(data, list) else data[key]
    return data


def _expected(value: Any, attrs: dict[str, str]) -> str:
    if "data-bool" in attrs:
        yes, no = attrs["data-bool"].split("|")
        return yes if value else no
    if value is None:
        return NONE_TEXT
    if "data-d" in attrs:
        return f"{float(value):.{int(attrs['data-d'])}f}"
    return str(value)


def _check_marked(page: Path, manifest: dict[str, Any] | None, verification: dict[str, Any]):
    parser = _Marked()
    parser.feed(page.read_text(encoding="utf-8"))
    sources = {"m": manifest, "v": verification}
    for attrs, shown in parser.found:
        value = _resolve(sources[attrs["data-src"]], attrs["data-path"])
        assert shown == _expected(value, attrs), attrs
    return parser.found


def test_every_marked_figure_equals_the_json(demo_package: Path) -> None:
    manifest = json.loads((demo_package / "manifest.json").read_text())
    verification = json.loads((demo_package / "verification.json").read_text())
    found = _check_marked(demo_package / "report.html", manifest, verification)
    paths = {a["data-path"] for a, _ in found}
    for f in range(len(verification["files"])):  # what every file shows
        for key in ("sample_peak_dbfs", "true_peak_dbtp", "loudness_lufs", "loudness_range_lu",
                    "max_momentary_lufs", "max_short_term_lufs"):  # fmt: skip
            assert f"files.{f}.levels.{key}" in paths
        assert f"files.{f}.sample_rate" in paths and f"files.{f}.duration_seconds" in paths
    assert {f"files.{j}.sha256" for j in range(len(manifest["files"]))} <= paths
    assert "nulls.0.residual_peak_dbfs" in paths and "findings.0.message" in paths
    assert "files.3.processing.1.sends.0.level_db" in paths  # Snare's send to Room


def test_render_writes_the_report_and_the_manifest_names_it(demo_package: Path) -> None:
    manifest = json.loads((demo_package / "manifest.json").read_text())
    assert manifest["report"] == "report.html"
    text = (demo_package / "report.html").read_text()
    assert "default-src 'none'" in text and "http://" not in text.replace("http://www.w3.org/", "")
    assert text.count('type="application/octet-stream"') == 7  # 5 stems, mix, pre-master
    assert 'class="routing"' in text


def test_report_command_is_byte_identical_to_the_render(demo_package: Path, tmp_path) -> None:
    first, second = tmp_path / "a.html", tmp_path / "b.html"
    for out in (first, second):
        result = runner.invoke(app, ["report", str(demo_package), "-o", str(out)])
        assert result.exit_code == 0, result.output
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() == (demo_package / "report.html").read_bytes()


def test_no_report_option(tmp_path: Path) -> None:
    session = tmp_path / "s.yaml"
    write_bare_package(tmp_path / "src")
    session.write_text(
        "stemprint: 1\nsample_rate: 48000\ntail_seconds: 0\ntracks:\n"
        "  - {name: Keys, clips: [{file: src/stems/Keys.wav}]}\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["render", str(session), "-o", str(tmp_path / "p"), "-q",
                                 "--no-report"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "p" / "report.html").exists()
    assert "report" not in json.loads((tmp_path / "p" / "manifest.json").read_text())


def test_package_from_elsewhere_surround(tmp_path: Path) -> None:
    package = write_bare_package(tmp_path / "pkg", channels=6, seconds=1.0)
    result = runner.invoke(app, ["report", str(package), "--audio", "none"])
    assert result.exit_code == 0, result.output
    text = (package / "report.html").read_text()
    assert "verified for this report" in text  # no verification.json: verified here
    assert "routing and processing are unknown" in text
    assert 'id="player"' not in text and "<script>" not in text  # --audio none
    ticks = re.findall(r">(L|R|C|LFE|Ls|Rs)</text>", text)
    assert ticks[:6] == ["L", "R", "C", "LFE", "Ls", "Rs"]  # one waveform per channel, named
    from stemprint.analysis.verify import verify_package

    verification = verify_package([package]).to_dict(reproducible=True)
    _check_marked(package / "report.html", None, verification)


def test_over_the_cap_without_opus_links_with_a_note(tmp_path: Path) -> None:
    package = write_bare_package(tmp_path / "pkg", seconds=1.0, rate=44100)
    out = write_package_report(package, None, None, cap_bytes=10_000)
    text = out.read_text()
    data = _player_data(text)
    assert data["mode"] == "link" and "application/octet-stream" not in text
    assert "The audio is linked, not embedded" in text
    assert sorted(s["src"] for s in data["stems"]) == [
        "stems/Bass.wav", "stems/Drums.wav", "stems/Keys.wav"
    ]  # fmt: skip


def test_bad_input_is_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", str(tmp_path / "missing")])
    assert result.exit_code == 2


def test_true_peak_marks_find_intersample_peaks() -> None:
    from stemprint.report.analysis import BinExtremes, TruePeakMarks

    n = 48000
    # fs/4 at 45°: every sample is at 0.95·0.707 (-3.5 dBFS), the waveform peaks at 0.95
    # (-0.4 dBTP) between them; only the middle third is that loud.
    x = 0.95 * np.sin(np.pi / 2 * np.arange(n) + np.pi / 4)
    x[: n // 3] *= 0.5
    x[2 * n // 3 :] *= 0.5
    bins = BinExtremes(n, 30, 1)
    marks = TruePeakMarks(bins, 1, -1.0)
    for a in range(0, n, 4096):
        block = x[None, a : a + 4096]
        bins.feed(block)
        marks.feed(block)
    assert np.abs(x).max() < 10 ** (-1 / 20)  # the samples alone never reach -1 dBFS
    assert marks.result()[0].tolist() == list(range(10, 20))


def test_true_peak_marks_use_the_meters_arithmetic() -> None:
    # The marks find a position at exactly the meter's true peak and none a hair above it:
    # both compute each window tap by tap in one order (no matrix product, whose summation
    # order follows the BLAS kernel), so a channel that measures at a level is marked there.
    from stemprint.analysis.meters import _TAPS, TruePeakMeter
    from stemprint.report.analysis import over_positions

    rng = np.random.default_rng(11)
    n = 30011
    signals = [
        0.5 * rng.standard_normal(n),
        np.tanh(3 * rng.standard_normal(n)),  # limited: flat, loud windows
        0.9 * np.sin(2 * np.pi * 0.2371 * np.arange(n) + 0.3),
        np.cumsum(rng.standard_normal(n)) / 60,  # music-like: slow, correlated
    ]
    intersample = 0
    for x in signals:
        meter = TruePeakMeter(1)
        for a in range(0, n, 4093):
            meter.process(x[None, a : a + 4093])
        meter.flush()
        peak = float(meter.peak[0])
        padded = np.concatenate([np.zeros(_TAPS - 1), x, np.zeros(_TAPS - 1)])
        assert over_positions(padded, peak).size > 0
        assert over_positions(padded, float(np.nextafter(peak, np.inf))).size == 0
        intersample += peak > np.abs(x).max()
    assert intersample >= 3  # the peaks found are interpolated values, not only samples


def test_a_packed_package(tmp_path: Path) -> None:
    from stemprint.export.archive import pack_package

    package = write_bare_package(tmp_path / "song", seconds=0.5)
    archive = pack_package(package)
    result = runner.invoke(app, ["report", str(archive), "--audio", "none"])
    assert result.exit_code == 0, result.output
    page = archive.with_name("song.report.html")
    assert "stems/Keys.wav" in page.read_text()
    assert runner.invoke(app, ["report", str(archive), "--audio", "link"]).exit_code == 2


def test_flac_over_the_cap_falls_back_to_opus_after_the_pass(tmp_path: Path) -> None:
    from tests.conftest import write_wav

    rng = np.random.default_rng(1)
    stems = [np.round(rng.uniform(-0.3, 0.3, (2, 24000)) * 2**23) / 2**23 for _ in range(3)]
    for k, x in enumerate(stems):  # noise: FLAC cannot shrink it, the size guess is too low
        write_wav(tmp_path / "stems" / f"s{k}.wav", x, subtype="PCM_24")
    write_wav(tmp_path / "premaster.wav", sum(stems), subtype="FLOAT")
    out = write_package_report(tmp_path, None, None, cap_bytes=600_000)
    text = out.read_text()
    data = _player_data(text)
    assert data["mode"] == "embed" and data["codec"] == "opus"
    assert text.count('data-codec="opus"') == 4


def test_lossless_links_instead_of_opus_when_flac_would_pass_the_cap(tmp_path: Path) -> None:
    # What a render's own report does: never the Opus fallback (its CPU cost is a render's).
    package = write_bare_package(tmp_path / "pkg", seconds=1.0, rate=48000)
    out = write_package_report(package, None, None, audio="lossless", cap_bytes=10_000)
    text = out.read_text()
    data = _player_data(text)
    assert data["mode"] == "link" and 'data-codec="opus"' not in text
    assert "`stemprint report PACKAGE` embeds Opus copies instead" in text


def test_lossless_links_when_flac_passes_the_cap_after_the_pass(tmp_path: Path) -> None:
    from tests.conftest import write_wav

    rng = np.random.default_rng(1)
    stems = [np.round(rng.uniform(-0.3, 0.3, (2, 24000)) * 2**23) / 2**23 for _ in range(3)]
    for k, x in enumerate(stems):  # noise: the size guess is too low, the pass finds out
        write_wav(tmp_path / "stems" / f"s{k}.wav", x, subtype="PCM_24")
    write_wav(tmp_path / "premaster.wav", sum(stems), subtype="FLOAT")
    out = write_package_report(tmp_path, None, None, audio="lossless", cap_bytes=600_000)
    text = out.read_text()
    data = _player_data(text)
    assert data["mode"] == "link" and 'data-codec="opus"' not in text
    assert "embeds Opus copies instead" in text


def test_lossless_through_the_cli_embeds_flac_that_fits(tmp_path: Path) -> None:
    import base64
    import io

    import soundfile as sf

    package = write_bare_package(tmp_path / "pkg", seconds=0.5, rate=48000)
    result = runner.invoke(app, ["report", str(package), "--audio", "lossless", "-q"])
    assert result.exit_code == 0, result.output
    text = (package / "report.html").read_text()
    data = _player_data(text)
    assert data["mode"] == "embed" and data["codec"] == "flac"
    first = data["stems"][0]
    blob = re.search(rf'id="{first["src"]}"[^>]*>([^<]*)<', text).group(1)
    decoded, _ = sf.read(io.BytesIO(base64.b64decode(blob)), dtype="int32")
    original, _ = sf.read(package / first["label"], dtype="int32")
    assert np.array_equal(decoded, original)  # lossless: the file's own samples


def test_figures_drawn_in_helpers_are_the_bytes_drawn_here(tmp_path: Path, monkeypatch) -> None:
    """The figures come from forked helpers; the page is the same without them, and when a
    helper dies or does not answer its share is drawn here."""
    import os
    import time

    import stemprint.report.figures as figures

    package = write_bare_package(tmp_path / "p", seconds=1.5)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    pages = [write_package_report(package, None, None, tmp_path / "helpers.html").read_bytes()]
    with monkeypatch.context() as patch:
        patch.setattr(figures, "fork_available", lambda: False)
        pages.append(write_package_report(package, None, None, tmp_path / "here.html").read_bytes())
    real_fork = figures.fork_serving
    monkeypatch.setattr(figures, "fork_serving", lambda serve: real_fork(lambda c: os._exit(1)))
    pages.append(write_package_report(package, None, None, tmp_path / "dead.html").read_bytes())
    monkeypatch.setattr(figures, "WAIT_SECONDS", 0.2)
    monkeypatch.setattr(figures, "fork_serving", lambda serve: real_fork(lambda c: time.sleep(60)))
    pages.append(write_package_report(package, None, None, tmp_path / "hung.html").read_bytes())
    assert pages[0] == pages[1] == pages[2] == pages[3]
    assert pages[0].count(b"<svg") >= 5  # 4 files and the residuals
