"""A fixed delay line for ``(channels, n)`` blocks of any size.

Invariant: the output is the input delayed by exactly ``delay_samples``, zeros first, whatever
the sizes of the blocks it is fed (so latency compensation is block-size independent).
"""

from __future__ import annotations

import numpy as np


class DelayLine:
    """A fixed delay of ``delay_samples`` for ``(channels, n)`` float64 blocks."""

    def __init__(self, channels: int, delay_samples: int) -> None:
        self._buffer = np.zeros((channels, delay_samples))

    def process(self, block: np.ndarray) -> np.ndarray:
        """Return ``block`` delayed; the first call returns zeros for the delay's length."""
        joined = np.concatenate([self._buffer, block], axis=1)
        n = block.shape[1]
        self._buffer = joined[:, n:]
        return joined[:, :n]
