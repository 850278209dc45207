"""The report's plots: matplotlib figures as inline SVG, spectrograms as palette PNG.

Invariants
----------
* Deterministic: figures are drawn on ``matplotlib.figure.Figure`` (no pyplot) inside
  :func:`styled` (matplotlib's ``rc_context``, whose settings are process-global, held under
  one lock so reports built in threads at once do not change each other's style), with a
  fixed ``svg.hashsalt``, text as text
  (``svg.fonttype: none``), no ``Date`` metadata; the XML prologue, the metadata block and
  matplotlib's ``<style>`` are stripped, path coordinates are cut to one decimal (0.1 pt) and
  every ``id`` gets the figure's own prefix, so many figures live in one page without
  clashes. The same curves give the same bytes.
* Spectrograms: ``imshow(interpolation="none")`` embeds the image at its data size; its pixels
  are then replaced by a palette PNG of the same size (:func:`~.png.palette_png`,
  :data:`SPEC_LEVELS` magma colours), a fraction of matplotlib's RGBA PNG.
* Level axes: waveforms are linear (full scale ±1), loudness in LUFS, residuals in dBFS with a
  floor of :data:`FLOOR_DBFS` (digital silence is drawn at the floor).
"""

from __future__ import annotations

import base64
import io
import math
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullLocator

from .analysis import SPEC_LOW_HZ, FileCurves, ResidualCurve
from .markup import LOUDNESS_COLOURS
from .png import palette_png

FLOOR_DBFS = -160.0
"""Lowest level drawn on residual plots (dBFS)."""
WIDTH_IN = 11.0
"""Figure width (inches; 72 pt each in SVG)."""
SPEC_RANGE_DB = 100.0
"""Dynamic range of a spectrogram's colours (dB below its rounded maximum)."""
SPEC_LEVELS = 64
"""Colours of a spectrogram (about 1.6 dB each; fewer levels compress better)."""
MARK_COLOUR = "#d62020"
"""Colour of the true-peak marks and thresholds."""
_RC: dict[Any, Any] = {
    "svg.hashsalt": "stemprint-report",
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": 8.0,
    "axes.linewidth": 0.6,
    "axes.edgecolor": "#8a929c",
    "axes.labelcolor": "#38404a",
    "xtick.color": "#5a626c",
    "ytick.color": "#5a626c",
    "xtick.major.size": 2.5,
    "ytick.major.size": 2.5,
    "grid.color": "#e3e6ea",
    "grid.linewidth": 0.5,
    "legend.frameon": False,
    "legend.fontsize": 7.5,
    "path.simplify": False,
}
_LOCK = threading.RLock()


@contextmanager
def styled() -> Iterator[None]:
    """The report's matplotlib settings, for this thread alone while it draws."""
    with _LOCK, matplotlib.rc_context(_RC):
        yield


_FREQ_TICKS = (50, 100, 200, 500, 1000, 2000, 5000, 10000)
#: Path data (``d="…"``) and the digits past the first decimal in it: coordinates are kept
#: to 0.1 pt (0.15 px at 1200 px wide), which halves the waveforms.
_PATH_DATA = re.compile(r'\sd="[^"]*"')
_DECIMALS = re.compile(r"(?<=\.\d)\d+")  # deleted: no replacement template to expand


def _time_formatter(total_seconds: float) -> FuncFormatter:
    """``m:ss`` ticks for files longer than a minute, else seconds."""

    def fmt(value: float, _pos: int | None) -> str:
        if total_seconds >= 60:
            sign = "-" if value < 0 else ""
            minutes, seconds = divmod(abs(round(value)), 60)
            return f"{sign}{minutes:d}:{seconds:02d}"
        return f"{value:g}"

    return FuncFormatter(fmt)


def svg_of(fig: Figure, prefix: str) -> str:
    """Serialize ``fig`` as an inline ``<svg>`` (module header), ids prefixed by ``prefix``."""
    buf = io.StringIO()
    with styled():
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.S)
    text = re.sub(r"\s*<style[^>]*>.*?</style>", "", text, flags=re.S)
    text = re.sub(r'\swidth="[\d.]+pt" height="[\d.]+pt"', ' class="plot"', text, count=1)
    text = _PATH_DATA.sub(lambda m: _DECIMALS.sub("", m.group(0)).replace(" \n", " "), text)
    text = re.sub(r'id="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', text)
    text = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}-{m.group(1)})", text)
    return re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}-{m.group(1)}"', text)


def _figure(height_in: float) -> Figure:
    with styled():
        return Figure(figsize=(WIDTH_IN, height_in))


class FilePlotter:
    """Draws :func:`file_figure` for many files, reusing one figure per channel count.

    The axes, their ticks and the fixed lines are made once; each file replaces only its own
    artists (waveforms, marks, image, curves, labels), which keeps a 40-file report fast. The
    SVG of a file depends only on that file's curves.
    """

    def __init__(self) -> None:
        self._figures: dict[int, tuple[Figure, Any]] = {}
        self._drawn: list[Any] = []

    def _template(self, channels: int) -> tuple[Figure, Any]:
        if channels not in self._figures:
            heights = [0.5 * channels + 0.1, 1.3, 1.3]
            total = sum(heights) + 0.55
            fig = _figure(total)
            axes = fig.subplots(3, 1, gridspec_kw={"height_ratios": heights, "hspace": 0.1})
            fig.subplots_adjust(left=0.075, right=0.985, top=0.99, bottom=0.45 / total)
            for ch in range(channels):
                centre = -_BAND * ch
                axes[0].axhline(centre, color="#c5cad0", lw=0.4, zorder=0)
                for edge in (1.0, -1.0):
                    axes[0].axhline(centre + edge, color="#eef0f2", lw=0.5, zorder=0)
            axes[0].set_ylim(-_BAND * (channels - 1) - 1.1, 1.1)
            axes[0].set_yticks([-_BAND * k for k in range(channels)])
            axes[0].tick_params(axis="y", length=0, labelsize=8.5)
            for ax in axes[:2]:
                ax.xaxis.set_major_locator(NullLocator())
            axes[1].set_ylabel("Hz")
            axes[2].yaxis.set_major_locator(MaxNLocator(5, integer=True))
            axes[2].xaxis.set_major_locator(MaxNLocator(10))
            axes[2].set_ylabel("LUFS")
            axes[2].grid(True)
            self._figures[channels] = (fig, axes)
        return self._figures[channels]

    def draw(
        self,
        curves: FileCurves,
        channel_names: Sequence[str],
        sample_rate: int,
        length: int,
        colour: str,
        integrated_lufs: float | None,
        prefix: str,
    ) -> str:
        """The figure of one file as inline SVG (see :func:`file_figure`)."""
        with styled():
            fig, axes = self._template(len(channel_names))
            for artist in self._drawn:
                artist.remove()
            duration = length / sample_rate if sample_rate else 0.0
            drawn = _waveforms(axes[0], curves, duration, colour, channel_names)
            drawn += _spectrogram(axes[1], curves, duration)
            drawn += _loudness(axes[2], curves, integrated_lufs)
            self._drawn = drawn
            for ax in axes:
                ax.set_xlim(0.0, max(duration, 1e-3))
            axes[2].xaxis.set_major_formatter(_time_formatter(duration))
            axes[2].set_xlabel("time (m:ss)" if duration >= 60 else "time (s)")
            text = svg_of(fig, prefix)
        return _swap_spectrogram(text, curves)


def file_figure(
    curves: FileCurves,
    channel_names: Sequence[str],
    sample_rate: int,
    length: int,
    colour: str,
    integrated_lufs: float | None,
    prefix: str,
) -> str:
    """Waveform per channel (true-peak marks), spectrogram and loudness of one file.

    Three axes on one time scale (only the loudness axes has time ticks); the channels are
    stacked bands of one axes, channel ``k`` centred at ``y = −2.2·k``.

    Parameters
    ----------
    curves
        The file's curves.
    channel_names
        Names of its channels (``L R`` …).
    sample_rate, length
        Hz and samples, for the time axis.
    colour
        Waveform colour.
    integrated_lufs
        The verification's integrated loudness (drawn as a line), or ``None``.
    prefix
        Id prefix of the SVG.
    """
    return FilePlotter().draw(
        curves, channel_names, sample_rate, length, colour, integrated_lufs, prefix
    )


def _bin_times(bins: int, duration: float) -> np.ndarray:
    return np.asarray((np.arange(bins) + 0.5) * duration / max(bins, 1))


_BAND = 2.2


def _waveforms(
    ax: Axes, curves: FileCurves, duration: float, colour: str, names: Sequence[str]
) -> list[Any]:
    bins = curves.wave_max.shape[1]
    t = _bin_times(bins, duration)
    drawn: list[Any] = []
    for ch in range(len(names)):
        centre = -_BAND * ch
        low = np.nan_to_num(curves.wave_min[ch], posinf=0.0, neginf=0.0)
        high = np.nan_to_num(curves.wave_max[ch], posinf=0.0, neginf=0.0)
        drawn.append(ax.fill_between(
            t, centre + np.minimum(low, 0.0), centre + np.maximum(high, 0.0), color=colour, lw=0.3
        ))  # fmt: skip
        marks = curves.marks[ch]
        if marks.size:
            y = np.full(marks.shape, centre + 0.93)
            drawn += ax.plot(t[marks], y, "v", color=MARK_COLOUR, ms=3.2, mew=0)
    ax.set_yticklabels(list(names))
    return drawn


def _spectrogram(ax: Axes, curves: FileCurves, duration: float) -> list[Any]:
    spec = curves.spectrogram
    rows = spec.shape[0]
    image = ax.imshow(
        np.zeros_like(spec),
        aspect="auto",
        origin="upper",
        extent=(0.0, max(duration, 1e-3), 0.0, float(rows)),
        interpolation="none",
        cmap="gray",
    )
    low, top = math.log10(SPEC_LOW_HZ), math.log10(curves.spec_top_hz)
    ticks = [f for f in _FREQ_TICKS if f < curves.spec_top_hz]
    ax.set_yticks([rows * (math.log10(f) - low) / (top - low) for f in ticks])
    ax.set_yticklabels([f"{f // 1000}k" if f >= 1000 else str(f) for f in ticks])
    ax.set_ylim(0.0, float(rows))
    vmax = _spec_max(spec)
    label = ax.text(
        0.995, 0.96, f"{vmax - SPEC_RANGE_DB:.0f} … {vmax:.0f} dB", transform=ax.transAxes,
        ha="right", va="top", color="#ffffff", fontsize=7,
    )  # fmt: skip
    return [image, label]


def _spec_max(spec: np.ndarray) -> float:
    finite = spec[np.isfinite(spec)]
    peak = float(finite.max()) if finite.size else -100.0
    return 10.0 * math.ceil(max(peak, -200.0) / 10.0)


def spectrogram_png(spec: np.ndarray) -> bytes:
    """The spectrogram ``(rows, columns)``, row 0 the lowest band, as a magma palette PNG
    with the highest band at the top."""
    vmax = _spec_max(spec)
    scaled = (np.nan_to_num(spec, neginf=-400.0) - (vmax - SPEC_RANGE_DB)) / SPEC_RANGE_DB
    top = SPEC_LEVELS - 1
    index = np.clip(np.round(scaled * top), 0, top).astype(np.uint8)[::-1]
    colours = matplotlib.colormaps["magma"](np.linspace(0.0, 1.0, SPEC_LEVELS))[:, :3]
    palette = np.round(colours * 255.0).astype(np.uint8)
    return palette_png(index, palette)


def _swap_spectrogram(svg: str, curves: FileCurves) -> str:
    """Replace the placeholder image's pixels with the palette PNG and let it scale smoothly."""
    payload = base64.b64encode(spectrogram_png(curves.spectrogram)).decode("ascii")
    svg = re.sub(
        r'xlink:href="data:image/png;base64,[^"]*"',
        f'xlink:href="data:image/png;base64,{payload}"',
        svg,
        count=1,
    )
    return re.sub(r'\sstyle="image-rendering:[^"]*"', "", svg, count=1)


def _loudness(ax: Axes, curves: FileCurves, integrated_lufs: float | None) -> list[Any]:
    t = (np.arange(curves.momentary.shape[0]) + 1) * curves.hop_seconds
    drawn: list[Any] = []
    drawn += ax.plot(t, curves.momentary, color=LOUDNESS_COLOURS[0], lw=0.6)
    drawn += ax.plot(t, curves.short_term, color=LOUDNESS_COLOURS[1], lw=1.1)
    times, values = curves.integrated
    drawn += ax.plot(times, values, color=LOUDNESS_COLOURS[2], lw=1.1, ls="--")
    if integrated_lufs is not None:
        drawn.append(ax.axhline(integrated_lufs, color=LOUDNESS_COLOURS[2], lw=0.5, ls=":"))
    finite = np.concatenate([a[np.isfinite(a)] for a in (curves.momentary, curves.short_term)])
    if finite.size:
        top = float(finite.max())
        ax.set_ylim(max(float(np.percentile(finite, 2)) - 6.0, top - 40.0), top + 3.0)
    else:
        ax.set_ylim(-70.0, 0.0)
    return drawn


def residual_figure(
    residuals: Sequence[ResidualCurve], sample_rate: int, threshold_dbfs: float, prefix: str
) -> str:
    """The residual peak over time of every relation, with the pass threshold."""
    with styled():
        fig = _figure(2.1)
        ax = fig.add_subplot()
        fig.subplots_adjust(left=0.075, right=0.985, top=0.95, bottom=0.2)
        duration = 0.0
        for k, curve in enumerate(residuals):
            seconds = curve.length / sample_rate
            duration = max(duration, seconds)
            level = _db(curve.peak)
            exact = bool(curve.relation.null.get("exact", curve.relation.decides))
            label = f"{curve.relation.name} vs {curve.relation.reference}"
            label += "" if exact else " (for information)"
            colour = ("#1f4e79", "#2ca02c", "#9467bd", "#8c564b")[k % 4] if exact else "#9aa1a9"
            ax.plot(_bin_times(level.shape[0], seconds), level, color=colour, lw=1.0, label=label)
        ax.axhline(threshold_dbfs, color=MARK_COLOUR, lw=0.8, ls="--", label="pass threshold")
        ax.set_ylim(FLOOR_DBFS, 0.0)
        ax.set_xlim(0, max(duration, 1e-3))
        ax.xaxis.set_major_formatter(_time_formatter(duration))
        ax.set_xlabel("time (m:ss)" if duration >= 60 else "time (s)")
        ax.set_ylabel("residual peak (dBFS)")
        ax.grid(True)
        ax.legend(loc="upper right", ncol=2)
    return svg_of(fig, prefix)


def _db(linear: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        level = 20.0 * np.log10(np.maximum(linear, 10.0 ** (FLOOR_DBFS / 20.0)))
    return np.asarray(level)
