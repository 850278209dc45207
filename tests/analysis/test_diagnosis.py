"""The null diagnosis names only what it can show: regressions through the CLI, and the cases
the CLI cannot reach (an ambiguous offset, mono stems of a stereo mix) through the library."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fault_synth import FS, Case, Fault, material, stem_set, write_case
from typer.testing import CliRunner

from stemprint.analysis import verify_package
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
    # Bass is a pure 55 Hz tone and Keys a chord repeating every second: a lag search that
    # takes any of their equal correlation peaks "finds" Bass 436 samples late and inverted.
    stems = stem_set(3.0, 2, seed=1)
    package = write_case(tmp_path / "pkg", Case(stems, [Fault("polarity", "Vox")], "PCM_24"))
    code, report = verify_json(str(package))
    assert code == 1 and report["passed"] is False
    assert diagnoses(report) == [("null.polarity", "stems/Vox.wav", -1.0)]
    text = runner.invoke(app, ["verify", str(package)]).stdout
    assert text.lstrip().startswith("FAIL")
    assert "stems/Vox.wav is polarity-inverted" in text
    assert text.count("polarity-inverted") == 1
    assert " late " not in text and "a stem is missing" not in text
    null = next(n for n in report["nulls"] if n["decides_verdict"])
    bass = next(s for s in null["stems"] if s["file"] == "stems/Bass.wav")
    assert bass["offset_samples"] == 0 and bass["gain"] == 1.0


def test_three_planted_faults_give_no_false_offset(tmp_path: Path) -> None:
    faults = [Fault("offset", "Bass", 128), Fault("polarity", "Drums"), Fault("gain", "Keys", 1.5)]
    package = write_case(tmp_path / "pkg", Case(stem_set(3.0, 2, seed=2), faults, "PCM_24"))
    code, report = verify_json(str(package))
    assert code == 1 and report["passed"] is False
    found = {(c, f): v for c, f, v in diagnoses(report)}
    assert found.pop(("null.time_offset", "stems/Bass.wav")) == 128
    assert found.pop(("null.polarity", "stems/Drums.wav")) == -1.0
    assert found.pop(("null.stem_gain", "stems/Keys.wav")) == pytest.approx(1.5, abs=0.01)
    # the 55 Hz tone played to the file's end: its last 128 samples are not in the file
    assert found.pop(("null.lost_material", "stems/Bass.wav")) == 128
    assert found == {}  # in particular no other time offset ("Bass is 2 samples late")


@pytest.mark.parametrize("kind", ["tone", "chord"])
def test_periodic_material_gets_no_false_lag(tmp_path: Path, kind: str) -> None:
    """A 55 Hz sine (periodic every 0.2 s) and a chord of integer frequencies (every 1 s) have
    several equal correlation peaks; lag 0 is one of them, so no offset is claimed."""
    rng_stems = {
        "Periodic": material(kind, 2.5, 2, seed=3),
        "Drums": material("drums", 2.5, 2, seed=4),
        "Vox": material("sparse", 2.5, 2, seed=5),
    }
    clean = write_case(tmp_path / "clean", Case(rng_stems, [], "PCM_24"))
    code, report = verify_json(str(clean))
    assert code == 0 and report["passed"] is True
    # a fault elsewhere makes the diagnosis run; the periodic stem must come out untouched
    faulty = write_case(tmp_path / "faulty", Case(rng_stems, [Fault("gain", "Vox", -1.5)]))
    code, report = verify_json(str(faulty))
    assert code == 1
    assert [(c, f) for c, f, _ in diagnoses(report)] == [("null.stem_gain", "stems/Vox.wav")]
    null = next(n for n in report["nulls"] if n["decides_verdict"])
    periodic = next(s for s in null["stems"] if s["file"] == "stems/Periodic.wav")
    assert periodic["offset_samples"] == 0 and periodic["gain"] == 1.0
    assert not periodic["offset_ambiguous"]


def test_bass_gain_repair_leaves_keys_alone_and_nulls_better(tmp_path: Path) -> None:
    stems = stem_set(3.0, 2, seed=6)
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
