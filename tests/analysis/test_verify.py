"""verify_package on synthesized packages: good ones pass, planted failures are diagnosed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from analysis_synth import FS, gain_computer_limiter, tanh_limiter, write_wav
from fault_synth import shifted
from rich.console import Console

from stemprint.analysis import (
    VerificationReport,
    discover_package,
    print_report,
    verify_package,
    write_report_json,
)
from stemprint.errors import AudioFileError, InputError

MakePackage = Callable[..., Path]


def codes(report: VerificationReport, severity: str = "error") -> list[str]:
    return [f.code for f in report.findings if f.severity == severity]


def messages(report: VerificationReport) -> str:
    return "\n".join(f.message for f in report.findings)


# --- good packages -------------------------------------------------------------------------


def test_good_float_package_passes(stems: dict, make_package: MakePackage) -> None:
    report = verify_package([make_package(stems)])
    assert report.passed, messages(report)
    null = report.verdict_null
    assert null is not None and null.passed
    assert null.residual_peak_dbfs < -100.0
    assert {f.role for f in report.files} == {"mix", "stem"}
    assert len(report.files) == 5
    assert not codes(report, "warning")


def test_good_24_bit_package_passes(stems: dict, make_package: MakePackage) -> None:
    report = verify_package([make_package(stems, subtype="PCM_24")])
    assert report.passed, messages(report)
    assert report.verdict_null is not None
    assert report.verdict_null.residual_peak_dbfs < -100.0
    assert all(f.bit_depth == 24 for f in report.files)


def test_list_of_stem_files_with_explicit_mix(stems: dict, make_package: MakePackage) -> None:
    root = make_package(stems)
    files = sorted(p for p in root.glob("*.wav") if p.name != "mix.wav")
    report = verify_package(files, mix=root / "mix.wav")
    assert report.passed, messages(report)
    assert [f.label for f in report.files if f.role == "stem"] == [p.name for p in files]


def test_parallel_workers_match_serial(stems: dict, make_package: MakePackage) -> None:
    root = make_package(stems, subtype="PCM_24")
    serial = verify_package(root, workers=1).to_dict()
    parallel = verify_package(root, workers=2).to_dict()
    for d in (serial, parallel):
        d.pop("elapsed_seconds")
    assert parallel == serial


# --- planted failures ----------------------------------------------------------------------


@pytest.mark.parametrize("late", [1, 128, -300])
def test_time_offset_is_found_exactly(stems: dict, make_package: MakePackage, late: int) -> None:
    mix = np.sum(list(stems.values()), axis=0)
    bad = dict(stems, Bass=shifted(stems["Bass"], late))
    report = verify_package(make_package(bad, mix))
    assert not report.passed
    offset = [f for f in report.errors if f.code == "null.time_offset"]
    assert len(offset) == 1
    n = abs(late)
    word = "late" if late > 0 else "early"
    unit = "sample" if n == 1 else "samples"
    assert offset[0].file == "Bass.wav"
    assert f"Bass.wav is {n} {unit} {word}" in offset[0].message
    assert offset[0].value == late
    assert report.verdict_null is not None
    assert report.verdict_null.offsets() == {
        "Drums.wav": 0,
        "Bass.wav": late,
        "Keys.wav": 0,
        "Vox.wav": 0,
    }
    assert "null.missing_stem" not in codes(report)


def test_common_gain_offset(stems: dict, make_package: MakePackage) -> None:
    mix = np.sum(list(stems.values()), axis=0)
    low = {k: v * 10 ** (-1.5 / 20) for k, v in stems.items()}
    report = verify_package(make_package(low, mix, subtype="PCM_24"))
    assert codes(report) == ["null.fail", "null.common_gain"]
    finding = report.errors[1]
    assert "stems sum 1.50 dB below the mix" in finding.message
    assert finding.value == pytest.approx(-1.5, abs=0.01)


def test_single_stem_printed_hot(stems: dict, make_package: MakePackage) -> None:
    mix = np.sum(list(stems.values()), axis=0)
    hot = dict(stems, Vox=stems["Vox"] * 10 ** (1.5 / 20))
    report = verify_package(make_package(hot, mix))
    assert codes(report) == ["null.fail", "null.stem_gain"]
    assert report.errors[1].file == "Vox.wav"
    assert "Vox.wav is printed 1.50 dB hot" in report.errors[1].message


def test_polarity_inversion(stems: dict, make_package: MakePackage) -> None:
    mix = np.sum(list(stems.values()), axis=0)
    report = verify_package(make_package(dict(stems, Bass=-stems["Bass"]), mix))
    assert codes(report) == ["null.fail", "null.polarity"]
    assert "Bass.wav is polarity-inverted" in report.errors[1].message


def test_missing_stem(stems: dict, make_package: MakePackage) -> None:
    mix = np.sum(list(stems.values()), axis=0)
    partial = {k: v for k, v in stems.items() if k != "Keys"}
    report = verify_package(make_package(partial, mix))
    assert codes(report) == ["null.fail", "null.missing_stem"]
    finding = report.errors[1]
    assert "a stem is missing" in finding.message
    keys_rms_dbfs = 10 * np.log10(np.mean(stems["Keys"] ** 2))
    assert finding.value == pytest.approx(keys_rms_dbfs, abs=0.05)
    assert f"residual RMS {keys_rms_dbfs:.1f} dBFS" in finding.message


@pytest.mark.parametrize("limiter", ["tanh", "gain_computer"])
def test_master_bus_limiter(stems: dict, make_package: MakePackage, limiter: str) -> None:
    total = np.sum(list(stems.values()), axis=0)
    if limiter == "tanh":
        mix = tanh_limiter(total, 0.3)
    else:
        mix = gain_computer_limiter(total, 0.5 * np.abs(total).max())
    report = verify_package(make_package(stems, mix))
    assert "null.master_dynamics" in codes(report)
    assert "null.missing_stem" not in codes(report)
    text = messages(report)
    assert "master-bus dynamics processing (limiter/compressor)" in text
    assert "null the stems against the pre-master mix instead" in text


def test_premaster_decides_the_verdict(stems: dict, make_package: MakePackage) -> None:
    total = np.sum(list(stems.values()), axis=0)
    root = make_package(stems, tanh_limiter(total, 0.3), premaster=total, manifest=True)
    report = verify_package(root)
    assert report.passed, messages(report)
    assert [(n.reference, n.decides_verdict, n.passed) for n in report.nulls] == [
        ("premaster.wav", True, True),
        ("mix.wav", False, False),
    ]
    assert "null.mix_differs" in codes(report, "info")
    # the mix null is still diagnosed, for information
    assert any(d.code == "null.master_dynamics" for d in report.nulls[1].diagnoses)


def test_premaster_null_failure_fails(stems: dict, make_package: MakePackage) -> None:
    total = np.sum(list(stems.values()), axis=0)
    bad = dict(stems, Drums=shifted(stems["Drums"], 128))
    root = make_package(bad, total, premaster=total, manifest=True)
    report = verify_package(root)
    assert not report.passed
    offset = [f for f in report.errors if f.code == "null.time_offset"]
    assert offset and offset[0].file == "stems/Drums.wav"
    assert "128 samples late against premaster.wav" in offset[0].message


def test_different_lengths(stems: dict, make_package: MakePackage) -> None:
    mix = np.sum(list(stems.values()), axis=0)
    short = dict(stems, Vox=stems["Vox"][:, :-480])
    report = verify_package(make_package(short, mix))
    length = [f for f in report.errors if f.code == "consistency.length"]
    assert len(length) == 1 and length[0].file == "Vox.wav"
    assert "-480 samples" in length[0].message


def test_different_sample_rate(stems: dict, make_package: MakePackage) -> None:
    root = make_package(stems)
    x, _ = sf.read(str(root / "Keys.wav"))
    sf.write(str(root / "Keys.wav"), x, 44100, subtype="FLOAT")
    report = verify_package(root)
    rate = [f for f in report.errors if f.code == "consistency.sample_rate"]
    assert len(rate) == 1 and rate[0].file == "Keys.wav"
    assert "44100 Hz" in rate[0].message and "48000 Hz" in rate[0].message
    assert report.verdict_null is not None and report.verdict_null.skipped_reason


def test_16_bit_and_silent_stems_are_warnings(stems: dict, make_package: MakePackage) -> None:
    root = make_package(dict(stems, Pad=np.zeros_like(stems["Bass"])))
    x, _ = sf.read(str(root / "Drums.wav"))
    sf.write(str(root / "Drums.wav"), x, FS, subtype="PCM_16")
    report = verify_package(root, null_threshold_dbfs=-40.0)
    warnings = {(f.code, f.file) for f in report.findings if f.severity == "warning"}
    assert ("format.bit_depth", "Drums.wav") in warnings
    assert ("levels.silent", "Pad.wav") in warnings
    assert report.file("Drums.wav").subtype == "PCM_16"
    assert report.passed  # warnings do not fail; 16-bit rounding nulls at -40 dBFS


# --- inputs --------------------------------------------------------------------------------


def test_mix_found_by_name_and_manifest(stems: dict, make_package: MakePackage) -> None:
    root = make_package(stems)
    (root / "mix.wav").rename(root / "Song_Mix.wav")
    pkg = discover_package([root])
    assert pkg.mix.label == "Song_Mix.wav" and len(pkg.stems) == 4
    root2 = make_package(stems, manifest=True)
    pkg2 = discover_package([root2])
    assert pkg2.manifest is not None
    assert [s.label for s in pkg2.stems] == [f"stems/{n}.wav" for n in stems]


def test_input_errors(stems: dict, make_package: MakePackage, tmp_path: Path) -> None:
    root = make_package(stems)
    (root / "mix.wav").unlink()
    # Stems without a mix are measured, not null-tested: a warning, not an unusable input.
    no_mix = verify_package(root)
    assert no_mix.passed and not no_mix.nulls
    assert codes(no_mix, "warning") == ["null.no_reference"]
    assert len(no_mix.files) == 4
    with pytest.raises(InputError, match="no input"):
        verify_package([])
    only_mix = tmp_path / "only-mix"
    write_wav(only_mix / "mix.wav", stems["Bass"])
    alone = verify_package(only_mix)
    assert alone.passed and not alone.nulls
    assert alone.no_sums_reason == "mix.wav is the only file"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no audio files"):
        verify_package(empty)
    corrupt = make_package(stems)
    (corrupt / "Bass.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(AudioFileError) as bad:
        verify_package(corrupt)
    assert bad.value.file is not None and bad.value.file.endswith("Bass.wav")
    with pytest.raises(InputError, match="unknown delivery profile"):
        verify_package(corrupt, profile="vinyl")


def test_manifest_errors(stems: dict, make_package: MakePackage) -> None:
    root = make_package(stems, manifest=True)
    manifest = root / "manifest.json"
    data = json.loads(manifest.read_text())
    data["files"].append({"path": "stems/Gone.wav", "role": "stem"})
    manifest.write_text(json.dumps(data))
    with pytest.raises(InputError, match="missing: stems/Gone.wav") as exc:
        verify_package(root)
    assert exc.value.field == "files[5].path"
    manifest.write_text('{"stemprint": 1,\n  "files": [}')
    with pytest.raises(InputError, match="not valid JSON") as bad_json:
        verify_package(root)
    assert bad_json.value.line == 2


def test_manifest_length_mismatch_is_an_error(stems: dict, make_package: MakePackage) -> None:
    root = make_package(stems, manifest=True)
    manifest = root / "manifest.json"
    data = json.loads(manifest.read_text())
    data["length_samples"] += 10
    manifest.write_text(json.dumps(data))
    report = verify_package(root)
    assert "manifest.length" in codes(report)


# --- output --------------------------------------------------------------------------------


def test_report_json_and_console(stems: dict, make_package: MakePackage, tmp_path: Path) -> None:
    mix = np.sum(list(stems.values()), axis=0)
    report = verify_package(make_package(dict(stems, Bass=shifted(stems["Bass"], 128)), mix))
    out = write_report_json(report, tmp_path / "out" / "report.json")
    data = json.loads(out.read_text())
    assert data["schema"] == "stemprint.verify/1"
    assert data["passed"] is False
    assert set(data) >= {"files", "nulls", "findings", "counts", "null_threshold_dbfs"}
    bass = next(s for s in data["nulls"][0]["stems"] if s["file"] == "Bass.wav")
    assert bass["offset_samples"] == 128
    assert bass["gain"] == pytest.approx(1.0, abs=1e-6)
    assert not list((tmp_path / "out").glob("*.tmp"))
    console = Console(record=True, width=200, color_system=None)
    print_report(report, console)
    text = console.export_text()
    lines = text.splitlines()
    assert lines[0].startswith("FAIL")
    assert "Bass.wav is 128 samples late" in text
    assert text.index("Levels") < text.index("Bass.wav is 128 samples late")
    assert "move Bass.wav 128 samples earlier" in text


def test_diagnosis_runs_on_a_bounded_excerpt(make_package: MakePackage) -> None:
    from analysis_synth import synth_stems

    long = synth_stems(seconds=14.0, seed=11)
    mix = np.sum(list(long.values()), axis=0)
    report = verify_package(make_package(dict(long, Vox=shifted(long["Vox"], 64)), mix))
    null = report.verdict_null
    assert null is not None and null.excerpt_seconds == pytest.approx(6.0)
    assert null.length_samples == mix.shape[1]  # the null itself covers the whole files
    assert codes(report) == ["null.fail", "null.time_offset"]
    assert "Vox.wav is 64 samples late" in report.errors[1].message


def test_same_stem_name_in_two_folders(stems: dict, make_package: MakePackage) -> None:
    a = make_package({"Bass": stems["Bass"]}, np.sum(list(stems.values()), axis=0))
    b = make_package({"Bass": stems["Drums"], "Keys": stems["Keys"], "Vox": stems["Vox"]})
    report = verify_package(
        [a / "Bass.wav", b / "Bass.wav", b / "Keys.wav", b / "Vox.wav"], mix=a / "mix.wav"
    )
    labels = [f.label for f in report.files if f.role == "stem"]
    assert len(set(labels)) == 4
    assert report.passed, messages(report)


def test_clipped_reference_is_named(tmp_path):
    """A mix that clipped on export cannot null; the diagnosis says so first."""
    import numpy as np
    import soundfile as sf

    from stemprint.analysis import verify_package

    rng = np.random.default_rng(4)
    stems = [0.6 * rng.uniform(-1, 1, (48000, 2)) for _ in range(3)]
    mix = np.clip(sum(stems), -1, 1)  # the export clipped
    (tmp_path / "pkg").mkdir()
    for index, stem in enumerate(stems):
        sf.write(str(tmp_path / "pkg" / f"s{index}.wav"), stem, 48000, subtype="PCM_24")
    sf.write(str(tmp_path / "pkg" / "mix.wav"), mix, 48000, subtype="PCM_24")
    report = verify_package([tmp_path / "pkg"])
    assert not report.passed
    codes = [f.code for f in report.nulls[0].diagnoses]
    assert codes[0] == "null.reference_clipped"
    assert "mix.wav reaches full scale" in report.nulls[0].diagnoses[0].message


# --- discovery: roles and sum relations ----------------------------------------------------


def _rewrite_manifest(root: Path, **changes: object) -> dict:
    manifest = root / "manifest.json"
    data = json.loads(manifest.read_text())
    data.update(changes)
    manifest.write_text(json.dumps(data))
    return data


def test_manifest_file_listed_twice_or_no_files(stems: dict, make_package: MakePackage) -> None:
    root = make_package(stems, manifest=True)
    data = json.loads((root / "manifest.json").read_text())
    _rewrite_manifest(root, files=data["files"] + [data["files"][1]])
    with pytest.raises(InputError, match="listed twice") as twice:
        verify_package(root)
    assert twice.value.field == "files[5].path"
    _rewrite_manifest(root, files=[])
    with pytest.raises(InputError, match="manifest lists no files"):
        verify_package(root)


def test_role_relations_without_sums(stems: dict, make_package: MakePackage) -> None:
    total = np.sum(list(stems.values()), axis=0)
    root = make_package(stems, tanh_limiter(total, 0.3), premaster=total, manifest=True)
    package = discover_package([root])
    assert package.sums is None and package.relations_source == "roles"
    relations = package.relations()
    assert [(r.reference.label, r.exact, r.source) for r in relations] == [
        ("premaster.wav", True, "roles"),
        ("mix.wav", False, "roles"),
    ]
    assert [p.label for p in relations[0].parts] == [f"stems/{n}.wav" for n in stems]


def test_given_mix_replaces_the_manifest_mix_in_sums(
    stems: dict, make_package: MakePackage
) -> None:
    total = np.sum(list(stems.values()), axis=0)
    root = make_package(stems, total * 0.5, manifest=True)  # the manifest's mix is wrong
    write_wav(root / "better_mix.wav", total)
    parts = [f"stems/{n}.wav" for n in stems]
    _rewrite_manifest(root, sums=[{"name": "stems", "parts": parts, "reference": "mix.wav"}])
    assert not verify_package(root).passed
    report = verify_package(root, mix=root / "better_mix.wav")
    assert report.passed, messages(report)
    assert [n.reference for n in report.nulls] == ["better_mix.wav"]
    assert "using the given mix better_mix.wav" in messages(report)


def test_live_measurement_of_another_package_is_not_used(
    stems: dict, make_package: MakePackage, tmp_path: Path
) -> None:
    """A LiveMeasurement of other files is ignored (and its thread stopped): read back."""
    from stemprint.analysis.live import LiveFile, LiveMeasurement

    root = make_package(stems)
    live = LiveMeasurement([LiveFile(tmp_path / "other.wav", FS, 2, 1.0, "mix")])
    report = verify_package(root, live=live)
    assert report.passed and not live._thread.is_alive()
