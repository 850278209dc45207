"""Channel-strip math: dB ↔ linear, the two pan laws, mono → stereo.

The pan laws are fixed by the product contract (README, "Pan laws"):

* a **mono** source pans with a constant-power law, gains ``cos θ`` (left) and ``sin θ`` (right),
  ``θ = (pan + 1)·π/4``: −3.01 dB each side at centre, unity on the side it is panned hard to;
* a **stereo** source pans as a **balance**: at ``pan = p > 0`` the left channel is scaled by
  ``cos(p·π/2)``, at ``p < 0`` the right channel by ``cos(−p·π/2)``, the other side untouched.

A route's ``pan_law`` can ask for ``balance`` on mono sources too (the 0 dB-centre law of DAWs
such as REAPER's "+0 dB" setting): the mono source goes to both sides at unity, then the balance
above. ``auto`` and ``constant_power`` are the contract's laws.
"""

from __future__ import annotations

import math

import numpy as np


def pan_gains(pan: float, channels: int, law: str = "auto") -> tuple[float, float]:
    """Left and right gains of the pan law for a ``channels``-channel source.

    Parameters
    ----------
    pan
        −1 (hard left) … +1 (hard right).
    channels
        1 (constant-power law, unless ``law`` is ``balance``) or 2 (balance law).
    law
        ``auto`` / ``constant_power`` (the contract's laws) or ``balance`` (module header).

    Returns
    -------
    tuple of float
        ``(gain_left, gain_right)``, linear. For mono they scale the one channel into each side;
        for stereo they scale the left and the right channel.
    """
    if channels == 1 and law != "balance":
        if pan == 0.0:
            # Exactly equal sides at the centre: in floating point sin(π/4) is one ulp below
            # cos(π/4), which would make a centred mono route "not quite mono".
            return math.sqrt(0.5), math.sqrt(0.5)
        theta = (pan + 1.0) * math.pi / 4.0
        return math.cos(theta), math.sin(theta)
    if pan > 0:
        return math.cos(pan * math.pi / 2.0), 1.0
    if pan < 0:
        return 1.0, math.cos(-pan * math.pi / 2.0)
    return 1.0, 1.0


def to_stereo(block: np.ndarray) -> np.ndarray:
    """A mono block on both channels at unity; a stereo block unchanged.

    Parameters
    ----------
    block
        ``(1, n)`` or ``(2, n)``.

    Returns
    -------
    numpy.ndarray
        ``(2, n)``.
    """
    if block.shape[0] == 2:
        return block
    return np.repeat(block, 2, axis=0)


def fader_pan(
    block: np.ndarray,
    gain_linear: float,
    pan: float,
    law: str = "auto",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Apply fader gain and pan; returns a new ``(2, n)`` float64 block, or ``out`` filled
    (a ``(2, n)`` float64 buffer that does not overlap ``block``)."""
    left, right = pan_gains(pan, block.shape[0], law)
    if out is None:
        out = np.empty((2, block.shape[1]), dtype=np.float64)
    if block.shape[0] == 1:
        np.multiply(block[0], gain_linear * left, out=out[0])
        np.multiply(block[0], gain_linear * right, out=out[1])
    else:  # stereo: each side scales its own channel
        np.multiply(block[0], gain_linear * left, out=out[0])
        np.multiply(block[1], gain_linear * right, out=out[1])
    return out


def fader_pan_automated(
    block: np.ndarray,
    gain_linear: float | np.ndarray,
    pan: float | np.ndarray,
    law: str = "auto",
) -> np.ndarray:
    """:func:`fader_pan` with per-sample gain and/or pan (automation), same laws.

    Parameters
    ----------
    block
        ``(1, n)`` or ``(2, n)``.
    gain_linear
        Scalar or ``(n,)`` fader gain.
    pan
        Scalar or ``(n,)`` pan, −1 … +1.
    law
        As :func:`pan_gains`.

    Returns
    -------
    numpy.ndarray
        ``(2, n)`` float64.
    """
    pan_array = np.asarray(pan, dtype=np.float64)
    if block.shape[0] == 1 and law != "balance":
        theta = (pan_array + 1.0) * (math.pi / 4.0)
        centre = math.sqrt(0.5)
        left = np.where(pan_array == 0.0, centre, np.cos(theta))
        right = np.where(pan_array == 0.0, centre, np.sin(theta))
        return np.vstack([block[0] * (gain_linear * left), block[0] * (gain_linear * right)])
    left = np.where(pan_array > 0, np.cos(pan_array * (math.pi / 2.0)), 1.0)
    right = np.where(pan_array < 0, np.cos(-pan_array * (math.pi / 2.0)), 1.0)
    second = block[1] if block.shape[0] == 2 else block[0]
    return np.vstack([block[0] * (gain_linear * left), second * (gain_linear * right)])


def balance(block: np.ndarray, pan: float) -> np.ndarray:
    """The stereo balance law on a ``(2, n)`` block (send pan, master pan); new array."""
    left, right = pan_gains(pan, 2)
    return block * np.array([[left], [right]])
