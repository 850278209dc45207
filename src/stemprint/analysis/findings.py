"""One finding of a verification: what is wrong (or notable), where, and what to do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Severity = Literal["error", "warning", "info"]

#: Order in which severities are listed (errors first).
SEVERITY_ORDER: dict[str, int] = {"error": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class Finding:
    """A single result line of a verification.

    Attributes
    ----------
    severity
        ``error`` fails the package, ``warning`` needs a look, ``info`` is for the record.
    code
        Stable machine-readable identifier, e.g. ``null.time_offset`` or ``profile.true_peak``.
    message
        Plain-words statement naming the file and the quantity
        (``"Bass.wav is 128 samples late"``).
    file
        Label of the file the finding is about (path relative to the package), if any.
    advice
        One sentence on how to fix it, if known.
    value
        The measured quantity behind the message (samples, dB …), if there is one.
    """

    severity: Severity
    code: str
    message: str
    file: str | None = None
    advice: str | None = None
    value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serializable dict with stable keys."""
        return {
            "severity": self.severity,
            "code": self.code,
            "file": self.file,
            "message": self.message,
            "advice": self.advice,
            "value": self.value,
        }


def to_jsonable(value: Any) -> Any:
    """Return ``value`` with non-finite floats replaced by ``None``, recursively (JSON has no
    ±inf/NaN); numpy scalars become Python numbers."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value
