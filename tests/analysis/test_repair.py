"""repair_package: re-align and pad/trim stems into a new directory; the copy passes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from analysis_synth import FS

from stemprint.analysis import repair_package, verify_package
from stemprint.errors import InputError

MakePackage = Callable[..., Path]


def with_silent_edges(stems: dict[str, np.ndarray], seconds: float = 0.05) -> dict:
    """Silence the first and last ``seconds`` so a shift loses no material."""
    n = int(seconds * FS)
    out = {}
    for k, v in stems.items():
        v = v.copy()
        v[:, :n] = 0.0
        v[:, -n:] = 0.0
        out[k] = v
    return out


def shifted(x: np.ndarray, late: int) -> np.ndarray:
    return np.roll(x, late, axis=1)  # edges are silent, so a roll is a zero-filled shift


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_repair_round_trip(stems: dict, make_package: MakePackage, tmp_path: Path) -> None:
    good = with_silent_edges(stems)
    mix = np.sum(list(good.values()), axis=0)
    bad = dict(
        good,
        Bass=shifted(good["Bass"], 128),
        Keys=shifted(good["Keys"], -300),
        Vox=good["Vox"][:, :-480],
    )
    root = make_package(bad, mix, subtype="PCM_24")
    before = {p.name: digest(p) for p in root.glob("*.wav")}
    report = verify_package(root)
    assert not report.passed
    out = repair_package(report, tmp_path / "fixed")
    assert {p.name: digest(p) for p in root.glob("*.wav")} == before  # originals untouched
    fixed = verify_package(out)
    assert fixed.passed, [f.message for f in fixed.errors]
    assert fixed.verdict_null is not None
    assert fixed.verdict_null.residual_peak_dbfs < -100.0
    for f in fixed.files:
        assert f.subtype == "PCM_24"
        assert f.length_samples == mix.shape[1]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["offsets_applied_samples"] == {"Bass.wav": 128, "Keys.wav": -300}
    # PCM samples are copied as integers: the repaired Bass equals the original material
    repaired, _ = sf.read(str(out / "Bass.wav"), dtype="int32")
    original, _ = sf.read(str(root / "Bass.wav"), dtype="int32")
    assert np.array_equal(repaired[:-128], original[128:])
    assert not list(tmp_path.glob(".fixed.*"))


def test_repair_from_inputs_and_refuses_existing(
    stems: dict, make_package: MakePackage, tmp_path: Path
) -> None:
    good = with_silent_edges(stems)
    mix = np.sum(list(good.values()), axis=0)
    root = make_package(dict(good, Drums=shifted(good["Drums"], 1)), mix)
    out = repair_package(root, tmp_path / "out")
    assert verify_package(out).passed
    with pytest.raises(InputError, match="already exists"):
        repair_package(root, tmp_path / "out")
