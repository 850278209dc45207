"""Fixtures of the report tests: the demo rendered once (with its report), Chromium.

The browser tests drive Debian's ``chromium`` through Playwright (no browser download) and skip
with a message when either is missing.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import write_wav

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture(scope="session")
def demo_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo song rendered by ``stemprint render`` (its report written by the render)."""
    from typer.testing import CliRunner

    from stemprint.cli.main import app
    from stemprint.demo import write_demo_session

    root = tmp_path_factory.mktemp("demo")
    session = write_demo_session(root / "demo")
    out = root / "package"
    result = CliRunner().invoke(app, ["render", str(session), "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Chromium (Debian's package) driven by Playwright."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright)")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


class OpenedPage:
    """A page opened from ``file://`` with every request and console error recorded."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page = browser.new_page(viewport={"width": 1280, "height": 800})
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(path.resolve().as_uri())

    def null_check(self, after: int = 0) -> dict[str, str]:
        """The page's null check once run number ``after + 1`` (or later) is done."""
        self.page.wait_for_function(
            "n => { const o = document.getElementById('null-out');"
            " return o.dataset.state === 'done' && +o.dataset.run > n; }",
            arg=after,
            timeout=20000,
        )
        data: dict[str, str] = self.page.evaluate(
            "() => ({...document.getElementById('null-out').dataset})"
        )
        return data

    def close(self) -> None:
        self.page.close()


@pytest.fixture
def open_page(browser: Any) -> Iterator[Any]:
    """``open_page(path)`` → :class:`OpenedPage`, closed after the test."""
    opened: list[OpenedPage] = []

    def opener(path: Path) -> OpenedPage:
        page = OpenedPage(browser, path)
        opened.append(page)
        return page

    yield opener
    for page in opened:
        page.close()


def write_bare_package(
    folder: Path, channels: int = 2, seconds: float = 3.0, rate: int = 48000
) -> Path:
    """A package from elsewhere: three stems (tones, noise, clicks), their sum as
    ``premaster.wav``, no manifest.

    24-bit stems; the pre-master is their exact float sum written as 32-bit float, so the
    package nulls exactly and the embedded FLAC copies decode to the same samples.
    """
    rng = np.random.default_rng(7)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    stems = {}
    for k, name in enumerate(("Drums", "Bass", "Keys")):
        tone = 0.2 * np.sin(2 * np.pi * (110 * (k + 1)) * t) * (0.5 + 0.5 * np.sin(t * (k + 2)))
        x = np.tile(tone, (channels, 1)) + 0.01 * rng.standard_normal((channels, n))
        x[:, int((0.3 + 0.4 * k) * rate) :: rate] += 0.5  # a click a second: a unique lag
        if channels == 6:
            x[3] = 0.0  # the LFE carries nothing
        x = np.round(x * 2**23) / 2**23  # exactly representable in 24 bits
        write_wav(folder / "stems" / f"{name}.wav", x, rate, subtype="PCM_24")
        stems[name] = x
    write_wav(folder / "premaster.wav", sum(stems.values()), rate, subtype="FLOAT")
    return folder
