"""The null diagnosis names only what it can show: regressions through the CLI, and the cases
the CLI cannot reach (an ambiguous offset, mono stems of a stereo mix) through the library."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fault_synth import FS, Case, Fault, expected_codes, material, stem_set, write_case
from typer.testing import CliRunner

from stemprint.analysis import repair_package, verify_package
from stemprint.analysis.audio import probe
from stemprint.analysis.nulltest import NullResult, diagnose_null
from stemprint.cli.main import app

runner = CliRunner()


def verify_json(*args: str) -> tuple[int, dict]:
    """Run ``stemprint verify ARGS --json``; exit code and the report."""
    result = runner.invoke(app, ["verify", *args, "--json"])
    text = result.stdout
    return result.exit_code, json.loads(text[: text.rindex("}") + 1])


def diagnoses(report: dict) -> list[tuple[str, str | None, float | None]]:
    """``(code, file, value)`` of the verdict null's diagnoses."""
    null = next(n for n in report["nulls"] if n["decides_verdict"])
    return [(d["code"], d["file"], d["value"]) for d in null["diagnoses"]]


def test_vocal_only_inversion_names_only_the_vocal(tmp_path: Path) -> None:
    # A sung A2 (one period: 436.4 samples) over a bass that shares its harmonics and a chord
    # repeating every second: with the vocal inverted, every other stem's target holds twice the
    # vocal, and a lag search that takes any of the near-equal peaks finds Bass and Keys "late",
    # "hot", and the rest "a missing stem".
    stems = {
        "Drums": material("drums", 3.0, 2, seed=0),
        "Bass": material("harmonic_bass", 3.0, 2, seed=1),
        "Keys": material("chord", 3.0, 2, seed=2),
        "Vox": material("sung", 3.0, 2, seed=3),
    }
    package = write_case(tmp_path / "pkg", Case(stems, [Fault("polarity", "Vox")], "PCM_24"))
    code, report = verify_json(str(package))
    assert code == 1 and report["passed"] is False
    assert diagnoses(report) == [("null.polarity", "stems/Vox.wav", -1.0)]
    null = next(n for n in report["nulls"] if n["decides_verdict"])
    assert all(s["offset_samples"] == 0 for s in null["stems"])
    assert [s["gain"] for s in null["stems"]] == [1.0, 1.0, 1.0, -1.0]
    text = runner.invoke(app, ["verify", str(package)]).stdout
    assert text.lstrip().startswith("FAIL")
    assert "stems/Vox.wav is polarity-inverted" in text
    assert text.count("polarity-inverted") == 1
    assert " late " not in text and " hot " not in text and "a stem is missing" not in text


def _beat_stems(seconds: float, seed: int) -> dict[str, np.ndarray]:
    """A kick and a bass line on the same beats (correlated), a chord, a sparse vocal."""
    return {
        "Drums": material("kick", seconds, 2, seed) + 0.5 * material("drums", seconds, 2, seed + 1),
        "Bass": material("bassline", seconds, 2, seed + 2),
        "Keys": material("chord", seconds, 2, seed + 3),
        "Vox": material("sparse", seconds, 2, seed + 4),
    }


def test_three_planted_faults_give_no_false_offset(tmp_path: Path) -> None:
    # The inverted kick correlates with the late bass line: measured on a target that still
    # holds the kick's error, the bass lag comes out a few samples off, and the rest of the error
    # looks like a missing stem. Fixing the largest fault first measures the bass on a clean
    # target.
    faults = [Fault("offset", "Bass", 128), Fault("polarity", "Drums"), Fault("gain", "Keys", 1.5)]
    package = write_case(tmp_path / "pkg", Case(_beat_stems(3.0, 0), faults, "PCM_24"))
    code, report = verify_json(str(package))
    assert code == 1 and report["passed"] is False
    found = {(c, f): v for c, f, v in diagnoses(report)}
    assert found.pop(("null.time_offset", "stems/Bass.wav")) == 128
    assert found.pop(("null.polarity", "stems/Drums.wav")) == -1.0
    assert found.pop(("null.stem_gain", "stems/Keys.wav")) == pytest.approx(1.5, abs=0.01)
    assert found == {}  # in particular no other offset ("Bass is 2 samples late")


@pytest.mark.parametrize(
    ("fault", "periodic"),
    [
        (Fault("polarity", "Vox"), "stems/Bass.wav"),
        (Fault("polarity", "Vox"), "stems/Keys.wav"),
        (Fault("gain", "Bass", -1.5), "stems/Bass.wav"),
        (Fault("gain", "Bass", -1.5), "stems/Keys.wav"),
    ],
)
def test_periodic_material_gets_no_false_lag(tmp_path: Path, fault: Fault, periodic: str) -> None:
    """Bass is a 55 Hz sine (it repeats every 0.2 s), Keys a chord of integer frequencies (every
    1 s): inside an 8 s package, lags whole periods apart fit exactly equally and lag 0 is one of
    them, so no offset is claimed, for the faulty stem or any other."""
    stems = stem_set(8.0, 2, seed=1)
    code, report = verify_json(str(write_case(tmp_path / "clean", Case(stems, []))))
    assert code == 0 and report["passed"] is True
    code, report = verify_json(str(write_case(tmp_path / "faulty", Case(stems, [fault]))))
    assert code == 1 and report["passed"] is False
    assert [(c, f) for c, f, _ in diagnoses(report)] == list(expected_codes([fault]))
    null = next(n for n in report["nulls"] if n["decides_verdict"])
    assert {s["file"]: s["offset_samples"] for s in null["stems"]}[periodic] == 0
    assert not any(s["offset_ambiguous"] for s in null["stems"])


def test_bass_gain_repair_leaves_keys_alone_and_nulls_better(tmp_path: Path) -> None:
    # The only fault is Bass at -1.5 dB; Keys (a chord repeating every second) fits equally at
    # lags 0 and ±48 000. A repair that applies a lag no finding states moves Keys by a second.
    stems = dict(stem_set(8.0, 2, seed=0), Bass=material("bassline", 8.0, 2, seed=0))
    package = write_case(tmp_path / "pkg", Case(stems, [Fault("gain", "Bass", -1.5)], "PCM_24"))
    fixed = tmp_path / "fixed"
    result = runner.invoke(app, ["verify", str(package), "--fix", str(fixed)])
    assert result.exit_code == 1  # the original still fails; the copy is corrected
    assert result.stdout.lstrip().startswith("FAIL")
    assert "stems/Bass.wav is printed 1.50 dB low" in result.stdout
    assert fixed.is_dir() and not list(tmp_path.glob(".fixed.*"))
    manifest = json.loads((fixed / "manifest.json").read_text())
    assert manifest["offsets_applied_samples"] == {}
    assert manifest["polarity_inverted"] == []
    assert manifest["gains_applied_db"] == {"stems/Bass.wav": pytest.approx(1.5, abs=1e-3)}
    # Keys (and every stem without a finding) is copied sample for sample
    for name in ("Keys", "Drums", "Pad", "Vox"):
        before, _ = sf.read(str(package / "stems" / f"{name}.wav"), dtype="int32")
        after, _ = sf.read(str(fixed / "stems" / f"{name}.wav"), dtype="int32")
        assert np.array_equal(before, after), name
    # Bass is raised by the measured 1.5 dB, rounded to the 24-bit grid (256 in int32)
    gain_db = manifest["gains_applied_db"]["stems/Bass.wav"]
    before, _ = sf.read(str(package / "stems" / "Bass.wav"), dtype="int32")
    after, _ = sf.read(str(fixed / "stems" / "Bass.wav"), dtype="int32")
    want = np.rint(before.astype(np.float64) * 10 ** (gain_db / 20) / 256) * 256
    assert np.array_equal(after, want.astype(np.int32))
    code, report = verify_json(str(fixed))
    assert code == 0 and report["passed"] is True
    null = report["nulls"][0]
    assert null["residual_peak_dbfs"] < -120 < manifest["null_before"]["residual_peak_dbfs"]
    assert manifest["null_after"]["residual_peak_dbfs"] == pytest.approx(
        null["residual_peak_dbfs"], abs=1e-9
    )


def test_fix_refusal_writes_nothing_and_exits_2(tmp_path: Path) -> None:
    package = write_case(tmp_path / "pkg", Case(stem_set(2.0, 2, 7), [Fault("missing", "Pad")]))
    result = runner.invoke(app, ["verify", str(package), "--fix", str(tmp_path / "fixed")])
    assert result.exit_code == 2
    assert "nothing to repair" in result.output
    assert not (tmp_path / "fixed").exists() and not list(tmp_path.glob(".fixed.*"))


def _periodic_mix(root: Path, late_samples: int) -> tuple[NullResult, list]:
    """Eight seconds of a chord repeating every second (fading in and out over 1.5 s), printed
    ``late_samples`` late, plus a noise stem; the diagnosis looks at 2 s in the middle."""
    n = 8 * FS
    t = np.arange(n) / FS
    ramp = np.clip(np.minimum(t, t[-1] - t) / 1.5, 0, 1)
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220, 277, 330)) * 0.05
    keys = np.stack([chord * ramp, chord * ramp])
    pad = material("noise", 8.0, 2, seed=8)
    late = np.zeros_like(keys)
    late[:, late_samples:] = keys[:, :-late_samples]
    root.mkdir()
    sf.write(str(root / "mix.wav"), (keys + pad).T, FS, subtype="FLOAT")
    sf.write(str(root / "Keys.wav"), late.T, FS, subtype="FLOAT")
    sf.write(str(root / "Pad.wav"), pad.T, FS, subtype="FLOAT")
    result = NullResult(reference="mix.wav", reference_role="mix", threshold_dbfs=-60.0)
    result.length_samples = n
    infos = [("Keys.wav", probe(root / "Keys.wav")), ("Pad.wav", probe(root / "Pad.wav"))]
    return result, infos


def test_offset_of_periodic_material_is_ambiguous_not_a_fact(tmp_path: Path) -> None:
    result, stems = _periodic_mix(tmp_path / "pkg", 37)
    mix = probe(tmp_path / "pkg" / "mix.wav")
    diagnose_null(result, mix, stems, 4 * FS, excerpt_seconds=2.0)
    assert [(d.code, d.file) for d in result.diagnoses] == [("null.offset_ambiguous", "Keys.wav")]
    keys = result.stems[0]
    assert keys.offset_ambiguous and keys.offset_samples == 0 and keys.gain == 1.0
    # 37 and 37 − 48 000 fit equally: one period apart, both inside the file
    assert sorted(keys.offset_candidates_samples) == [37 - FS, 37]
    assert "+37" in result.diagnoses[0].message
    # where the excerpt reaches the file's start, the lead-in settles it
    result, stems = _periodic_mix(tmp_path / "edge", 37)
    diagnose_null(result, probe(tmp_path / "edge" / "mix.wav"), stems, 0, excerpt_seconds=2.0)
    assert [(d.code, d.value) for d in result.diagnoses] == [("null.time_offset", 37.0)]


def test_mono_stems_of_a_stereo_mix_are_diagnosed(tmp_path: Path) -> None:
    """A one-channel stem is added to every channel of the stereo mix (mono at unity)."""
    bass = material("tone", 2.0, 1, seed=9)
    drums = material("drums", 2.0, 1, seed=10)
    keys = material("chord", 2.0, 2, seed=11)
    mix = keys + np.vstack([bass + drums, bass + drums])
    late = np.zeros_like(drums)
    late[:, 128:] = drums[:, :-128]
    root = tmp_path / "pkg"
    root.mkdir()
    for name, x in (("mix", mix), ("Bass", bass), ("Drums", late), ("Keys", -keys)):
        sf.write(str(root / f"{name}.wav"), x.T, FS, subtype="PCM_24")
    result = NullResult(reference="mix.wav", reference_role="mix", threshold_dbfs=-60.0)
    result.length_samples = mix.shape[1]
    stems = [(f"{n}.wav", probe(root / f"{n}.wav")) for n in ("Bass", "Drums", "Keys")]
    diagnose_null(result, probe(root / "mix.wav"), stems, mix.shape[1] // 2)
    found = {(d.code, d.file): d.value for d in result.diagnoses}
    assert found == {("null.time_offset", "Drums.wav"): 128.0, ("null.polarity", "Keys.wav"): -1.0}
    assert result.model_residual_peak_dbfs is not None and result.model_residual_peak_dbfs < -120


def test_a_missing_stem_is_named_only_when_no_stem_explains_the_rest(tmp_path: Path) -> None:
    stems = stem_set(2.0, 2, seed=12)
    report = verify_package(write_case(tmp_path / "pkg", Case(stems, [Fault("missing", "Keys")])))
    null = report.verdict_null
    assert null is not None
    assert [d.code for d in null.diagnoses] == ["null.missing_stem"]
    keys_rms_dbfs = 10 * np.log10(np.mean(stems["Keys"] ** 2))
    assert null.diagnoses[0].value == pytest.approx(keys_rms_dbfs, abs=0.05)
    assert all(s.offset_samples == 0 and s.gain == 1.0 for s in null.stems)


def test_a_repaired_copy_names_its_lost_tail_not_a_missing_stem(tmp_path: Path) -> None:
    # Pad played to the end of the file and was printed 4800 samples late: its last 4800
    # samples were never in the file. The repair re-aligns it (zero-filling the end), so the
    # copy nulls better but not fully, and says why.
    stems = stem_set(2.0, 2, seed=13)
    package = write_case(tmp_path / "pkg", Case(stems, [Fault("offset", "Pad", 4800)], "PCM_24"))
    report = verify_package(package)
    null = report.verdict_null
    assert null is not None
    assert [(d.code, d.value) for d in null.diagnoses] == [
        ("null.time_offset", 4800.0),
        ("null.lost_material", 4800.0),
    ]
    fixed = verify_package(repair_package(report, tmp_path / "fixed"))
    again = fixed.verdict_null
    assert again is not None and not again.passed
    assert again.residual_peak_dbfs < null.residual_peak_dbfs - 3.0
    assert again.residual_rms_dbfs < null.residual_rms_dbfs - 10.0
    assert [(d.code, d.file, d.value) for d in again.diagnoses] == [
        ("null.lost_material", "stems/Pad.wav", 4800.0)
    ]
    assert "digital silence for its last 4800 samples" in again.diagnoses[0].message
