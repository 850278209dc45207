"""The report's figures, drawn in forked helper processes while the audio pass runs.

Invariants
----------
* A figure depends only on its own curves (:mod:`.plots`), so where it is drawn changes no
  byte of the page (tested with helpers, without, and with a helper that dies or hangs).
* :class:`FigureHelpers` forks up to :data:`HELPERS` helpers before the audio pass. Each
  imports matplotlib at once (about half a second of Python: on a thread it held the GIL
  the pass's own threads wait for), then draws every ``n``-th figure of the list it is
  given, in order, on one plotter. This process imports matplotlib only when it draws
  itself: without ``os.fork``, with one CPU, or the share of a helper that died or did not
  answer in time (:data:`WAIT_SECONDS`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from stemprint.render.workers import fork_available, fork_serving, kill_and_reap

HELPERS = 2
"""Most helper processes (one per CPU up to this)."""
WAIT_SECONDS = 30.0
"""How long a helper may take to import matplotlib before its share is drawn here instead (a
forked process can hang on an import lock another thread held at the fork)."""
WAIT_PER_FIGURE = 5.0
"""Seconds a ready helper may take per figure before its share is drawn here instead."""
_READY = "ready"

Job = tuple[str, tuple[Any, ...]]
"""``("file", FilePlotter.draw arguments)`` or ``("residual", residual_figure arguments)``."""


class FigureHelpers:
    """Helpers forked now, ready to draw about ``figures`` figures later (none for fewer than
    two: see the module header)."""

    def __init__(self, figures: int) -> None:
        count = min(HELPERS, os.cpu_count() or 1, figures) if fork_available() else 0
        self._helpers = [fork_serving(_serve) for _ in range(count if count > 1 else 0)]

    def draw(self, jobs: Sequence[Job]) -> list[str]:
        """The markup of every job, in order; the helpers are used up."""
        if not self._helpers:
            return draw_jobs(jobs)
        count = len(self._helpers)
        shares = [list(jobs[k::count]) for k in range(count)]
        sent = [_send(conn, share) for (_, conn), share in zip(self._helpers, shares, strict=True)]
        drawn = [
            _receive(conn, share) if ok else draw_jobs(share)
            for (_, conn), share, ok in zip(self._helpers, shares, sent, strict=True)
        ]
        out: list[str] = [""] * len(jobs)
        for k, markup in enumerate(drawn):
            out[k::count] = markup
        return out

    def close(self) -> None:
        """Stop and reap every helper (idempotent)."""
        for pid, conn in self._helpers:
            conn.close()
            kill_and_reap(pid)
        self._helpers = []


def draw_jobs(jobs: Sequence[Job]) -> list[str]:
    """Draw ``jobs`` here, in order, on one plotter."""
    from .plots import FilePlotter, residual_figure

    plotter = FilePlotter()
    draw: dict[str, Callable[..., str]] = {"file": plotter.draw, "residual": residual_figure}
    return [draw[kind](*args) for kind, args in jobs]


def _serve(conn: Connection) -> None:
    # Importing matplotlib (and the SVG backend savefig would load) now, while the pass runs,
    # is the point; "ready" says no import is left that could hang.
    import matplotlib.backends.backend_svg  # noqa: F401

    from . import plots  # noqa: F401

    conn.send(_READY)
    conn.send(draw_jobs(conn.recv()))


def _send(conn: Connection, share: list[Job]) -> bool:
    """Hand ``share`` to a helper once it is ready; ``False`` when it died or never was."""
    try:
        if not (conn.poll(WAIT_SECONDS) and conn.recv() == _READY):
            return False
        conn.send(share)
    except (EOFError, OSError):
        return False
    return True


def _receive(conn: Connection, share: list[Job]) -> list[str]:
    try:
        if conn.poll(WAIT_PER_FIGURE * len(share)):
            drawn: list[str] = conn.recv()
            return drawn
    except (EOFError, OSError):
        pass
    return draw_jobs(share)  # the helper died or hangs: its share is drawn here, the same bytes
