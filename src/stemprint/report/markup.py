"""Small HTML helpers shared by the page's sections.

Invariants
----------
* Every figure copied from ``manifest.json`` or ``verification.json`` is written by
  :func:`num` or :func:`text`, which mark it ``data-src`` (``m`` manifest, ``v``
  verification) and ``data-path`` (dotted keys and list indices into that JSON); :func:`num`
  adds ``data-d``, the decimals shown: the page's text is ``format(value, f".{d}f")``, or
  :data:`NONE_TEXT` for a JSON ``null`` (a silent file's ``-inf``). A test can re-derive every
  marked figure from the JSON.
* Everything else that is text goes through :func:`esc`.
"""

from __future__ import annotations

import html
from typing import Any

NONE_TEXT = "–"
"""What a JSON ``null`` (``-inf``, not applicable) reads as on the page."""
LOUDNESS_COLOURS = ("#9fb4c9", "#1f4e79", "#e07b00")
"""Momentary, short-term and integrated loudness lines (the plots draw them, the page's legend
names them)."""


def esc(value: object) -> str:
    """HTML-escape ``str(value)``."""
    return html.escape(str(value), quote=True)


def fmt(value: Any, digits: int) -> str:
    """``value`` with ``digits`` decimals, or :data:`NONE_TEXT` for ``None``."""
    if value is None:
        return NONE_TEXT
    return f"{float(value):.{digits}f}"


def num(value: Any, src: str, path: str, digits: int = 1, cls: str = "") -> str:
    """A number copied from the JSON ``src`` at ``path``, marked for the tests."""
    klass = f' class="{cls}"' if cls else ""
    return (
        f'<span{klass} data-src="{src}" data-path="{esc(path)}" data-d="{digits}">'
        f"{fmt(value, digits)}</span>"
    )


def text(value: Any, src: str, path: str, cls: str = "") -> str:
    """A string copied from the JSON ``src`` at ``path``, marked for the tests."""
    klass = f' class="{cls}"' if cls else ""
    shown = NONE_TEXT if value is None else esc(value)
    return f'<span{klass} data-src="{src}" data-path="{esc(path)}">{shown}</span>'


def peak_class(dbtp: float | None) -> str:
    """Ardour's colours: red at or above 0 dBTP, amber above −1."""
    if dbtp is None:
        return ""
    if dbtp >= 0.0:
        return "red"
    return "amber" if dbtp > -1.0 else ""


def swatch(colour: str) -> str:
    """A small square of ``colour``."""
    return f'<span class="swatch" style="background:{esc(colour)}"></span>'
