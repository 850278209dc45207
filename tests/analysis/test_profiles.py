"""Delivery profiles on simple signals: a 1 kHz tone (its LUFS equals its dBFS) plus quiet air."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from analysis_synth import FS, tanh_limiter

from stemprint.analysis import PROFILES, VerificationReport, get_profile, verify_package
from stemprint.errors import InputError

MakePackage = Callable[..., Path]


def tone_stems(level_dbfs: float, seconds: float = 4.0) -> dict[str, np.ndarray]:
    t = np.arange(int(seconds * FS)) / FS
    tone = 10 ** (level_dbfs / 20) * np.sin(2 * np.pi * 1000 * t)
    air = np.random.default_rng(5).standard_normal((2, t.size)) * 1e-4
    return {"Tone": np.stack([tone, tone]), "Air": air}


def profile_errors(report: VerificationReport) -> list[tuple[str, str | None]]:
    return [(f.code, f.file) for f in report.errors if f.code.startswith("profile.")]


def test_profiles_are_listed() -> None:
    assert set(PROFILES) == {
        "stem-mastering",
        "ebu-r128",
        "streaming",
        "atmos-music",
        "broadcast-dme",
        "atsc-a85",
        "netflix-pm",
        "netflix-me",
    }
    assert get_profile("ebu-r128").mix_target_lufs == -23.0
    with pytest.raises(InputError):
        get_profile("nope")


def test_ebu_r128_pass_and_loudness_fail(make_package: MakePackage) -> None:
    ok = verify_package(make_package(tone_stems(-23.0)), profile="ebu-r128")
    assert ok.passed, [f.message for f in ok.errors]
    assert all(f.profile_passed for f in ok.files)
    loud = verify_package(make_package(tone_stems(-18.0)), profile="ebu-r128")
    assert profile_errors(loud) == [("profile.loudness", "mix.wav")]
    message = loud.errors[0].message
    assert "-18.0 LUFS is outside -23.0 ± 1.0 LU" in message
    assert "apply -5.0 dB" in (loud.errors[0].advice or "")
    assert loud.file("mix.wav").profile_passed is False
    assert loud.file("Tone.wav").profile_passed is True


def test_streaming_true_peak_applies_to_every_file(make_package: MakePackage) -> None:
    # a tone at -14 dBFS plus one stem with a -0.5 dBFS click
    stems = tone_stems(-14.0)
    click = np.zeros_like(stems["Air"])
    click[:, FS] = 10 ** (-0.5 / 20)
    stems["Click"] = click
    report = verify_package(make_package(stems), profile="streaming")
    errors = profile_errors(report)
    assert ("profile.true_peak", "Click.wav") in errors
    assert ("profile.loudness", "mix.wav") not in errors
    tp = next(f for f in report.errors if f.file == "Click.wav")
    assert "above -1.0 dBTP" in tp.message


def test_atmos_music_format_and_loudness(make_package: MakePackage) -> None:
    ok = verify_package(make_package(tone_stems(-20.0), subtype="PCM_24"), profile="atmos-music")
    assert ok.passed, [f.message for f in ok.errors]
    bad = verify_package(make_package(tone_stems(-16.0)), profile="atmos-music")
    errors = profile_errors(bad)
    assert ("profile.bit_depth", "Tone.wav") in errors  # FLOAT, 24-bit PCM required
    assert ("profile.loudness", "mix.wav") in errors
    assert any("-16.0 LKFS is above -18.0 LKFS" in f.message for f in bad.errors)


def test_atmos_music_sample_rate(make_package: MakePackage) -> None:
    stems = tone_stems(-20.0)
    report = verify_package(make_package(stems, subtype="PCM_24", fs=44100), profile="atmos-music")
    assert ("profile.sample_rate", "mix.wav") in profile_errors(report)


def test_broadcast_dme(make_package: MakePackage) -> None:
    report = verify_package(
        make_package(tone_stems(-1.5), subtype="PCM_24"), profile="broadcast-dme"
    )
    assert ("profile.true_peak", "mix.wav") in profile_errors(report)
    assert ("profile.true_peak", "Tone.wav") in profile_errors(report)
    info = [f for f in report.findings if f.code == "profile.loudness_report"]
    assert info and "-1.5 LUFS" in info[0].message
    ok = verify_package(make_package(tone_stems(-24.0), subtype="PCM_24"), profile="broadcast-dme")
    assert ok.passed


def test_stem_mastering(make_package: MakePackage) -> None:
    ok = verify_package(make_package(tone_stems(-6.0), subtype="PCM_24"), profile="stem-mastering")
    assert ok.passed, [f.message for f in ok.errors]
    hot = verify_package(
        make_package(tone_stems(-1.0), subtype="PCM_16"),
        profile="stem-mastering",
        null_threshold_dbfs=-40.0,
    )
    errors = profile_errors(hot)
    assert ("profile.stem_peak", "Tone.wav") in errors
    assert ("profile.bit_depth", "Air.wav") in errors
    assert any("Tone.wav peaks at -1.00 dBFS, above -3.0 dBFS" in f.message for f in hot.errors)
    stems = tone_stems(-6.0)
    limited = tanh_limiter(np.sum(list(stems.values()), axis=0), 0.3)
    report = verify_package(
        make_package(stems, limited, subtype="PCM_24"), profile="stem-mastering"
    )
    assert ("profile.master_dynamics", "mix.wav") in profile_errors(report)


def test_stem_peak_rule_applies_to_every_stem_role(tmp_path: Path) -> None:
    """stem-mastering's −3 dBFS stem headroom holds for dry, pre-fader, via-master stems too."""
    import json

    from analysis_synth import write_wav

    stems = tone_stems(-1.0)  # the tone stem peaks at -1 dBFS
    root = tmp_path / "pkg"
    roles = {"Tone": "stem_dry", "Air": "stem_via_master"}
    for name, x in stems.items():
        write_wav(root / "stems" / f"{name}.wav", x, "PCM_24")
    write_wav(root / "mix.wav", sum(stems.values()) * 0.5, "PCM_24")
    files = [{"path": "mix.wav", "role": "mix"}] + [
        {"path": f"stems/{n}.wav", "role": r} for n, r in roles.items()
    ]
    (root / "manifest.json").write_text(json.dumps({"stemprint": 1, "files": files}))
    report = verify_package(root, profile="stem-mastering")
    assert profile_errors(report) == [("profile.stem_peak", "stems/Tone.wav")]
    assert report.file("stems/Air.wav").profile_passed is True


def test_loudness_profile_without_a_mix_warns(make_package: MakePackage) -> None:
    root = make_package(tone_stems(-14.0))
    (root / "mix.wav").unlink()
    report = verify_package(root, profile="streaming")
    assert report.passed
    warning = next(f for f in report.warnings if f.code == "profile.no_mix")
    assert "loudness target was not checked [streaming]" in warning.message
    # no loudness rule, no warning
    plain = verify_package(root, profile="stem-mastering")
    assert "profile.no_mix" not in {f.code for f in plain.warnings}
