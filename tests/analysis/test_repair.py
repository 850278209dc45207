"""repair_package: apply exactly the stated corrections into a new directory, prove the copy
nulls better, refuse what is not a fact; the originals are never touched."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from analysis_synth import FS

from stemprint.analysis import Finding, VerificationReport, repair_package, verify_package
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
    assert manifest["gains_applied_db"] == {} and manifest["polarity_inverted"] == []
    assert manifest["null_after"]["residual_peak_dbfs"] < -100.0
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


def int_samples(path: Path) -> np.ndarray:
    return sf.read(str(path), dtype="int32")[0]


def test_repair_applies_stated_gain_and_polarity(
    stems: dict, make_package: MakePackage, tmp_path: Path
) -> None:
    mix = np.sum(list(stems.values()), axis=0)
    bad = dict(stems, Drums=-stems["Drums"], Vox=stems["Vox"] * 10 ** (1.5 / 20))
    root = make_package(bad, mix, subtype="PCM_24")
    report = verify_package(root)
    out = repair_package(report, tmp_path / "fixed")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["polarity_inverted"] == ["Drums.wav"]
    assert manifest["gains_applied_db"] == {"Vox.wav": pytest.approx(-1.5, abs=1e-3)}
    assert manifest["offsets_applied_samples"] == {}
    # a polarity flip of PCM is exact: the integers negated
    assert np.array_equal(int_samples(out / "Drums.wav"), -int_samples(root / "Drums.wav"))
    # untouched stems are bit-exact copies
    for name in ("Bass.wav", "Keys.wav"):
        assert np.array_equal(int_samples(out / name), int_samples(root / name))
    fixed = verify_package(out)
    assert fixed.passed and fixed.verdict_null is not None
    assert fixed.verdict_null.residual_peak_dbfs < -120.0


def with_diagnoses(report: VerificationReport, diagnoses: list[Finding]) -> VerificationReport:
    """``report`` with the verdict null's diagnoses replaced (what a report could state)."""
    assert report.verdict_null is not None
    report.verdict_null.diagnoses = diagnoses
    return report


def test_repair_refuses_an_ambiguous_diagnosis(
    stems: dict, make_package: MakePackage, tmp_path: Path
) -> None:
    mix = np.sum(list(stems.values()), axis=0)
    report = verify_package(make_package(dict(stems, Bass=stems["Bass"] * 0.8), mix))
    assert report.verdict_null is not None
    stated = report.verdict_null.diagnoses
    ambiguous = Finding(
        "error",
        "null.offset_ambiguous",
        "Keys.wav does not line up with mix.wav, but its time offset cannot be determined",
        file="Keys.wav",
    )
    with pytest.raises(InputError, match="not certain enough") as exc:
        repair_package(with_diagnoses(report, [*stated, ambiguous]), tmp_path / "fixed")
    assert exc.value.fix and "re-print" in exc.value.fix
    assert not (tmp_path / "fixed").exists() and not list(tmp_path.glob(".fixed.*"))


def test_repair_proves_the_copy_nulls_better_or_writes_nothing(
    stems: dict, make_package: MakePackage, tmp_path: Path
) -> None:
    mix = np.sum(list(stems.values()), axis=0)
    root = make_package(dict(stems, Bass=stems["Bass"] * 10 ** (-1.5 / 20)), mix)
    report = verify_package(root)
    assert report.verdict_null is not None
    # a report that stated Keys 500 samples late would have the repair move a correct stem
    wrong = Finding(
        "error", "null.time_offset", "Keys.wav is 500 samples late", "Keys.wav", value=500
    )
    with pytest.raises(InputError, match="would not null better") as exc:
        repair_package(
            with_diagnoses(report, [*report.verdict_null.diagnoses, wrong]), tmp_path / "a"
        )
    assert "nothing was written" in exc.value.message
    assert not (tmp_path / "a").exists() and not list(tmp_path.glob(".a.*"))
    # the statement alone, without the moved stem, is a proved improvement
    report = verify_package(root)
    out = repair_package(report, tmp_path / "b")
    manifest = json.loads((out / "manifest.json").read_text())
    before, after = manifest["null_before"], manifest["null_after"]
    assert after["residual_peak_dbfs"] < before["residual_peak_dbfs"] - 60.0
    assert after["residual_rms_dbfs"] < before["residual_rms_dbfs"] - 60.0


def test_repair_refuses_when_nothing_can_be_corrected(
    stems: dict, make_package: MakePackage, tmp_path: Path
) -> None:
    mix = np.sum(list(stems.values()), axis=0)
    root = make_package({k: v for k, v in stems.items() if k != "Keys"}, mix)
    report = verify_package(root)
    null = report.verdict_null
    assert null is not None and [d.code for d in null.diagnoses] == ["null.missing_stem"]
    with pytest.raises(InputError, match="nothing to repair"):
        repair_package(report, tmp_path / "fixed")
    assert not (tmp_path / "fixed").exists()


def test_repair_refuses_a_gain_that_would_clip_pcm(
    make_package: MakePackage, tmp_path: Path
) -> None:
    # Lead peaks at 1.1 before it is printed 1.5 dB low (0.93 of full scale); Anti cancels most
    # of it in the mix. The stated correction (+1.5 dB) would take Lead past full scale in
    # 16-bit: the repair refuses rather than clip or wrap.
    rng = np.random.default_rng(5)
    u = np.clip(rng.standard_normal((2, FS)) * 0.3, -1, 1)
    v = np.clip(rng.standard_normal((2, FS)) * 0.3, -1, 1)
    lead, anti = 1.1 * u, -0.6 * u + 0.2 * v
    root = make_package(
        {"Lead": lead * 10 ** (-1.5 / 20), "Anti": anti}, lead + anti, subtype="PCM_16"
    )
    report = verify_package(root)
    null = report.verdict_null
    assert null is not None
    assert [(d.code, d.file) for d in null.diagnoses] == [("null.stem_gain", "Lead.wav")]
    with pytest.raises(InputError, match="would clip") as exc:
        repair_package(report, tmp_path / "fixed")
    assert exc.value.file == "Lead.wav" and "32-bit float" in (exc.value.fix or "")
    assert not (tmp_path / "fixed").exists() and not list(tmp_path.glob(".fixed.*"))
