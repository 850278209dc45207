"""Deliverables made from a rendered package: NI Stems, previews, handoff sessions.

Invariants
----------
- A deliverable is made after the package's audio is written and verified, from the files of
  the package (read back block by block), inside the same staging folder: a failure leaves no
  published package, and nothing is rendered twice.
- Each one returns its manifest entries (``path``, ``role``, ``name`` and what it is); they are
  appended to the manifest's ``files`` with roles that verification does not sum
  (:data:`DERIVED_ROLES`).
- Deliverables never change the package's audio files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stemprint.graph.outputs import ResolvedDelivery
from stemprint.model.load import LoadedSession

DERIVED_ROLES = frozenset({"ni_stem", "preview", "handoff"})
"""Manifest roles of files made from the package's audio (encoded, or a DAW session)."""


@dataclass(frozen=True)
class DeliverableContext:
    """What a deliverable is made from.

    Attributes
    ----------
    package
        The package folder being written (staging).
    manifest
        The manifest as written so far (its ``files`` are the audio files); do not change it.
    loaded
        The session.
    delivery
        The resolved delivery (``ni_stem``, ``previews``, ``handoff`` …).
    """

    package: Path
    manifest: dict[str, Any]
    loaded: LoadedSession
    delivery: ResolvedDelivery


Deliverable = Callable[[DeliverableContext], list[dict[str, Any]]]


def _enabled(delivery: ResolvedDelivery) -> list[Deliverable]:
    found: list[Deliverable] = []
    if delivery.ni_stem is not None:
        from stemprint.export.ni_stem import write_ni_stem

        found.append(write_ni_stem)
    if delivery.previews:
        from stemprint.export.previews import write_previews

        found.append(write_previews)
    if delivery.handoff:
        from stemprint.export.handoff import write_handoff

        found.append(write_handoff)
    return found


def write_deliverables(context: DeliverableContext) -> list[dict[str, Any]]:
    """Make every deliverable the delivery asks for; their manifest entries, in order."""
    entries: list[dict[str, Any]] = []
    for make in _enabled(context.delivery):
        entries += make(context)
    return entries
