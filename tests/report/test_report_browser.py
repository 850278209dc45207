"""The report in a real browser (Debian's Chromium through Playwright), opened from file://."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from stemprint.report import write_package_report

from .conftest import write_bare_package

ALLOWED_SCHEMES = ("file:", "data:", "blob:")


def _offline(page) -> None:
    assert page.errors == []
    assert page.requests, "the page made no request at all (not even its own file)"
    outside = [u for u in page.requests if not u.startswith(ALLOWED_SCHEMES)]
    assert outside == []


def test_demo_page_nulls_in_the_browser_without_network(demo_package: Path, open_page) -> None:
    page = open_page(demo_package / "report.html")
    result = page.null_check()
    manifest = json.loads((demo_package / "manifest.json").read_text())
    assert float(result["dbfs"]) <= -120.0  # the embedded FLAC stems against the pre-master
    assert result["lag"] == "0"
    assert int(result["length"]) == manifest["length_samples"]
    assert result["audible"] == "Bass|Drums|Music|Vocals|Room"
    assert page.page.get_attribute("body", "data-player") == "ready"
    _offline(page)


def test_muting_a_stem_moves_the_residual_to_that_stem(demo_package: Path, open_page) -> None:
    page = open_page(demo_package / "report.html")
    first = page.null_check()
    page.page.click('[data-stem="1"] .pl-m')  # Drums
    muted = page.null_check(after=int(first["run"]))
    data = sf.read(str(demo_package / "stems" / "Drums.wav"), dtype="float64")[0]
    expected = 20 * np.log10(np.abs(data).max())
    assert muted["audible"] == "Bass|Music|Vocals|Room"
    assert abs(float(muted["dbfs"]) - expected) <= 0.5
    page.page.click('[data-stem="1"] .pl-m')  # back on: it nulls again
    again = page.null_check(after=int(muted["run"]))
    assert float(again["dbfs"]) <= -120.0
    page.page.click('[data-stem="3"] .pl-s')  # solo Vocals: the residual is everything else
    solo = page.null_check(after=int(again["run"]))
    assert solo["audible"] == "Vocals"
    _offline(page)


def test_lossy_embedding_is_sample_aligned(tmp_path: Path, open_page) -> None:
    package = write_bare_package(tmp_path / "pkg")
    out = write_package_report(package, None, None, cap_bytes=400_000)
    assert 'data-codec="opus"' in out.read_text()
    page = open_page(out)
    result = page.null_check()
    assert result["lag"] == "0"
    assert int(result["length"]) == 3 * 48000  # the Ogg pre-skip and end trimming honoured
    assert float(result["dbfs"]) < -10.0  # the codec's residual, well below the programme
    _offline(page)


def test_linked_player_opens_the_package_files(demo_package: Path, open_page) -> None:
    out = write_package_report(
        demo_package, None, None, out=demo_package / "linked.html", audio="link"
    )
    page = open_page(out)
    page.page.wait_for_function("() => document.body.dataset.player === 'ready'", timeout=20000)
    assert page.page.locator("#null-out").count() == 0  # no null check over <audio>
    assert any(u.endswith("stems/Drums.wav") for u in page.requests)
    _offline(page)
