"""Channel layouts: names, WAV channel masks, the surround panner and the conversion matrices.

Layouts and channel order (the order inside every buffer and file)
-----------------------------------------------------------------
========  ==========================================  =================================
layout    channels                                    ``WAVE_FORMAT_EXTENSIBLE`` mask
========  ==========================================  =================================
mono      M                                           0x4 (FC)
stereo    L R                                         0x3 (FL FR)
5.1       L R C LFE Ls Rs                             0x3F (FL FR FC LFE BL BR)
7.1       L R C LFE Lrs Rrs Lss Rss                   0x63F (… BL BR SL SR)
========  ==========================================  =================================

5.1 is written with the mask libsndfile writes for six channels (ffprobe: ``5.1``); the order
L R C LFE Ls Rs is what film and streaming deliveries ask for.

Conversions (``matrix(source, target)``, target × source, applied as ``y = M·x``)
--------------------------------------------------------------------------------
- Up (nothing is invented): mono → stereo on both sides at unity (the contract's pre-fader
  rule); mono → 5.1/7.1 into C; stereo → 5.1/7.1 into L and R; 5.1 → 7.1 with Ls/Rs into the side
  surrounds Lss/Rss.
- Down, ITU-R BS.775-3 Table 2: ``Lo = L + 0.7071·C + 0.7071·Ls``, ``Ro = R + 0.7071·C +
  0.7071·Rs``, the LFE left out. 7.1 → stereo treats each surround pair the same way (0.7071
  each); 7.1 → 5.1 sums the side and rear surround of each side at 0.7071 each.
- To mono: ``M = 0.5·(Lo + Ro)`` (a signal identical on both sides folds to itself).

Surround panner (a mono or stereo source into a 5.1 or 7.1 bus)
---------------------------------------------------------------
Speakers sit at azimuths (degrees, 0 = front centre, positive to the right): L −30, C 0, R 30,
Rs 110, Ls −110 (7.1: Rss 90, Rrs 150, Lrs −150, Lss −90). A source at azimuth ``a`` between
adjacent speakers at ``a0 < a1`` gets ``cos(u·π/2)`` and ``sin(u·π/2)``, ``u = (a − a0)/(a1 −
a0)`` (pairwise constant power). ``pan`` −1 … +1 maps to −30 … +30 degrees (across L C R) unless
``surround.azimuth_deg`` is given. ``surround.divergence`` ``d`` spreads a source into the
three front speakers at constant power: ``g² = (1 − d)·g_pair² + d/3`` on L, C, R and
``(1 − d)·g_pair²`` elsewhere. ``surround.use_center: false`` leaves C out (the front pair only).
A stereo source places its left channel at ``a − width/2`` and its right at ``a + width/2``
(``surround.width_deg``, default 60: L and R at their speakers). The LFE is fed only by an
explicit LFE send.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

LAYOUT_CHANNELS: dict[str, tuple[str, ...]] = {
    "mono": ("M",),
    "stereo": ("L", "R"),
    "5.1": ("L", "R", "C", "LFE", "Ls", "Rs"),
    "7.1": ("L", "R", "C", "LFE", "Lrs", "Rrs", "Lss", "Rss"),
}
"""Channel names of each layout, in buffer and file order."""

CHANNEL_MASKS: dict[str, int] = {"mono": 0x4, "stereo": 0x3, "5.1": 0x3F, "7.1": 0x63F}
"""``dwChannelMask`` written for each layout."""

SURROUND_LAYOUTS = ("5.1", "7.1")

_AZIMUTHS: dict[str, dict[str, float]] = {
    "5.1": {"L": -30.0, "C": 0.0, "R": 30.0, "Rs": 110.0, "Ls": -110.0},
    "7.1": {
        "L": -30.0, "C": 0.0, "R": 30.0, "Rss": 90.0, "Rrs": 150.0, "Lrs": -150.0, "Lss": -90.0,
    },
}  # fmt: skip

_M3 = math.sqrt(0.5)  # −3.01 dB, BS.775's 0.7071


def channel_count(layout: str) -> int:
    """Channels of ``layout``."""
    return len(LAYOUT_CHANNELS[layout])


def layout_of(channels: int) -> str:
    """The layout stemprint writes for a file of ``channels`` channels."""
    for name, names in LAYOUT_CHANNELS.items():
        if len(names) == channels:
            return name
    raise ValueError(f"no layout has {channels} channels")


def lfe_index(layout: str) -> int | None:
    """Index of the LFE channel, or ``None``."""
    names = LAYOUT_CHANNELS[layout]
    return names.index("LFE") if "LFE" in names else None


def _fold_to_stereo(source: str) -> np.ndarray:
    names = LAYOUT_CHANNELS[source]
    m = np.zeros((2, len(names)))
    for j, name in enumerate(names):
        if name in ("L", "M"):
            m[0, j] = 1.0
        if name in ("R", "M"):
            m[1, j] = 1.0
        if name == "C":
            m[:, j] = _M3
        if name in ("Ls", "Lss", "Lrs"):
            m[0, j] = _M3
        if name in ("Rs", "Rss", "Rrs"):
            m[1, j] = _M3
    return m


def _up(source: str, target: str) -> np.ndarray:
    src, dst = LAYOUT_CHANNELS[source], LAYOUT_CHANNELS[target]
    m = np.zeros((len(dst), len(src)))
    rename = {"M": "C", "Ls": "Lss", "Rs": "Rss"}
    for j, name in enumerate(src):
        if source == "mono" and target == "stereo":
            m[:, j] = 1.0
            continue
        wanted = name if name in dst else rename.get(name, name)
        m[dst.index(wanted), j] = 1.0
    return m


@cache
def matrix(source: str, target: str) -> np.ndarray:
    """The ``(target channels, source channels)`` conversion matrix (module header).

    The returned array is read-only (cached).
    """
    if source == target:
        m = np.eye(channel_count(source))
    elif target == "mono":
        m = 0.5 * np.ones((1, 2)) @ (matrix(source, "stereo") if source != "stereo" else np.eye(2))
    elif target == "stereo" and source != "mono":
        m = _fold_to_stereo(source)
    elif source == "7.1" and target == "5.1":
        m = np.zeros((6, 8))
        for i in range(4):
            m[i, i] = 1.0
        m[4, 4] = m[4, 6] = _M3  # Ls = 0.7071·(Lrs + Lss)
        m[5, 5] = m[5, 7] = _M3
    else:
        m = _up(source, target)
    m.setflags(write=False)
    return m


def convert(block: np.ndarray, source: str, target: str) -> np.ndarray:
    """``block`` (``(channels of source, n)``) in the ``target`` layout (a view when equal)."""
    if source == target:
        return block
    if source == "mono" and target == "stereo":
        return np.repeat(block, 2, axis=0)
    return matrix(source, target) @ block


def pairwise_gains(layout: str, azimuth_deg: float, use_center: bool = True) -> np.ndarray:
    """Pairwise constant-power gains of one point source at ``azimuth_deg``, per channel."""
    speakers = {k: v for k, v in _AZIMUTHS[layout].items() if use_center or k != "C"}
    names = LAYOUT_CHANNELS[layout]
    ordered = sorted(speakers.items(), key=lambda kv: kv[1])
    a = (azimuth_deg + 180.0) % 360.0 - 180.0
    gains = np.zeros(len(names))
    ring = [*ordered, (ordered[0][0], ordered[0][1] + 360.0)]
    for (n0, a0), (n1, a1) in zip(ring, ring[1:], strict=False):
        lo, hi = a0, a1
        x = a if a >= lo else a + 360.0
        if lo <= x <= hi:
            u = (x - lo) / (hi - lo)
            # Exactly one speaker at its own azimuth (cos(π/2) is 6e-17, not 0, in floating
            # point; a centred dialogue must leave L and R exactly silent).
            gains[names.index(n0)] += 0.0 if u == 1.0 else math.cos(u * math.pi / 2.0)
            gains[names.index(n1)] += 0.0 if u == 0.0 else math.sin(u * math.pi / 2.0)
            return gains
    raise AssertionError("azimuth outside the speaker ring")  # the ring covers 360 degrees


def surround_pan_matrix(
    layout: str,
    source_channels: int,
    azimuth_deg: float,
    divergence: float = 0.0,
    use_center: bool = True,
    width_deg: float = 60.0,
) -> np.ndarray:
    """``(layout channels, source channels)`` gains of the surround panner (module header)."""
    if source_channels == 1:
        positions = [azimuth_deg]
    else:
        positions = [azimuth_deg - width_deg / 2.0, azimuth_deg + width_deg / 2.0]
    names = LAYOUT_CHANNELS[layout]
    front = [names.index(n) for n in ("L", "C", "R") if use_center or n != "C"]
    columns = []
    for position in positions:
        g = pairwise_gains(layout, position, use_center)
        if divergence > 0.0:
            power = (1.0 - divergence) * g**2
            power[front] += divergence / len(front)
            g = np.sqrt(power)
        columns.append(g)
    m = np.stack(columns, axis=1)
    m.setflags(write=False)
    return m


def pan_to_azimuth(pan: float) -> float:
    """The contract's ``pan`` (−1 … +1) as an azimuth across the front: −30 … +30 degrees."""
    return 30.0 * pan
