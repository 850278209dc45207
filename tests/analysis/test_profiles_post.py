"""Film/TV profiles (netflix-pm, netflix-me, atsc-a85, ebu-r128 on 5.1, broadcast-dme) and the
dialogue-gated (approximation) loudness they use.

The DME package of :func:`post_synth.dme_signals`: DX is a 1 kHz tone in C for the first half,
MX two tones in L and R all the time. The DX stem passes its gates in the 37 blocks inside the
dialogue and the 3 that overlap its end by 75, 50 and 25 %: the printmaster over those blocks
has the energy ``(38.5 / 40)·D + M`` (D the tone's, M the music's), while its full programme
also holds the music-only half.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from post_synth import (
    FS,
    dme_package,
    dme_signals,
    in_channel,
    sine,
    tone_energy,
    write_multichannel,
)

from stemprint.analysis import VerificationReport, get_profile, measure_file, verify_package
from stemprint.analysis.report import DIALOGUE_GATED_LABEL


def profile_errors(report: VerificationReport) -> list[tuple[str, str | None]]:
    return [(f.code, f.file) for f in report.errors if f.code.startswith("profile.")]


def lufs(energy: float) -> float:
    return float(-0.691 + 10 * np.log10(energy))


def test_dialogue_gated_loudness_of_the_printmaster(tmp_path: Path) -> None:
    dme = dme_package(tmp_path / "pkg", dme_signals(dx_dbfs=-20.0, mx_dbfs=-30.0))
    report = verify_package(dme.root)
    pm = report.file("PM.wav")
    dg = pm.dialogue_gated
    assert dg is not None and dg.dialogue == "stems/DX.wav" and dg.label == DIALOGUE_GATED_LABEL
    assert (dg.kept_blocks, dg.blocks) == (40, 77)  # 8 s: one block per 100 ms from 400 ms
    music = 10 ** ((measure_file(dme.root / "ME.wav").loudness_lufs + 0.691) / 10)
    expected = lufs(38.5 / 40 * tone_energy(-20.0) + music)
    assert dg.loudness_lufs == pytest.approx(expected, abs=0.01)
    assert dg.loudness_lufs == pytest.approx(-22.44, abs=0.01)
    assert pm.levels is not None and pm.levels.loudness_lufs == pytest.approx(-24.7, abs=0.05)
    info = next(f for f in report.findings if f.code == "loudness.dialogue_gated")
    assert "PM.wav dialogue-gated (approximation) loudness -22.4 LUFS" in info.message
    assert "dialogue in 52 % of the programme" in info.message
    data = report.to_dict()["files"][0]["dialogue_gated"]
    assert data["label"] == "dialogue-gated (approximation)"
    assert data["loudness_lufs"] == pytest.approx(dg.loudness_lufs)
    assert "not Dolby Dialogue Intelligence" in data["method"]


def test_dialogue_gate_edge_cases(tmp_path: Path) -> None:
    # dialogue the whole time and nothing else: the figure is the integrated loudness
    alone = dme_signals(3.0, dialogue_seconds=3.0, mx_dbfs=-200.0, fx_dbfs=-200.0)
    for key in ("PM", "ME", "MX", "FX"):
        alone[key][3] = 0.0  # no LFE tone either (not weighted, but keep the files clean)
    report = verify_package(dme_package(tmp_path / "a", alone).root)
    pm = report.file("PM.wav")
    assert pm.dialogue_gated is not None and pm.levels is not None
    assert pm.dialogue_gated.loudness_lufs == pytest.approx(pm.levels.loudness_lufs, abs=1e-9)
    # no stem named DX: no figure
    renamed = dme_package(tmp_path / "b", dme_signals(2.0, 1.0), names={"DX": "Dialogue"})
    assert verify_package(renamed.root).file("PM.wav").dialogue_gated is None
    # a silent DX passes no gate
    silent = dme_signals(3.0, 1.5)
    silent["PM"] = silent["PM"] - silent["DX"]
    silent["DX"] = np.zeros_like(silent["DX"])
    dg = verify_package(dme_package(tmp_path / "c", silent).root).file("PM.wav").dialogue_gated
    assert dg is not None and dg.loudness_lufs == -np.inf and dg.kept_blocks == 0


# --- netflix-pm ----------------------------------------------------------------------------


def test_netflix_pm_judges_the_dialogue_gated_figure(tmp_path: Path) -> None:
    """Dialogue-gated −26.4 passes −27 ± 2 although the full programme (−28.7) would fail
    −24 ± 2; louder, the dialogue-gated figure fails."""
    ok = dme_package(tmp_path / "ok", dme_signals(dx_dbfs=-24.0, mx_dbfs=-34.0))
    report = verify_package(ok.root, profile="netflix-pm")
    assert report.passed, [f.message for f in report.errors]
    pm = report.file("PM.wav")
    assert pm.profile_passed is True and pm.levels is not None
    assert pm.levels.loudness_lufs == pytest.approx(-28.7, abs=0.05)
    assert report.file("stems/DX.wav").profile_passed is None  # the PM profile judges the PM
    hot = dme_package(tmp_path / "hot", dme_signals(dx_dbfs=-18.0, mx_dbfs=-28.0))
    report = verify_package(hot.root, profile="netflix-pm")
    assert profile_errors(report) == [("profile.loudness", "PM.wav")]
    error = report.errors[0]
    assert (
        "PM.wav dialogue-gated (approximation) loudness -20.4 LUFS is outside -27.0 ± 2.0 LU "
        "(gated by stems/DX.wav; full programme -22.7 LUFS) [netflix-pm]" == error.message
    )
    assert "apply -6.6 dB of gain to PM.wav" in (error.advice or "")


def test_netflix_pm_falls_back_to_the_full_programme(tmp_path: Path) -> None:
    signals = dme_signals(dx_dbfs=-24.0, mx_dbfs=-34.0)
    # no DX stem: the full programme −28.7 is outside −24 ± 2
    no_dx = dme_package(tmp_path / "a", signals, names={"DX": "Dialogue"})
    report = verify_package(no_dx.root, profile="netflix-pm")
    assert profile_errors(report) == [("profile.loudness", "PM.wav")]
    assert "integrated loudness -28.7 LUFS is outside -24.0 ± 2.0 LU" in report.errors[0].message
    fallback = next(f for f in report.findings if f.code == "profile.loudness_fallback")
    assert "no dialogue-gated (approximation) loudness (no DX stem to gate by)" in (
        fallback.message
    )
    # dialogue in 1 s of 10 (10 % of the blocks, at most 15 %): the full programme (−24.9)
    # decides, not the dialogue-gated figure (−21.5)
    brief = dme_signals(seconds=10.0, dialogue_seconds=1.0, dx_dbfs=-20.0, mx_dbfs=-25.0)
    report = verify_package(dme_package(tmp_path / "b", brief).root, profile="netflix-pm")
    assert report.passed, [f.message for f in report.errors]
    fallback = next(f for f in report.findings if f.code == "profile.loudness_fallback")
    assert "(dialogue in 10 % of the programme, at most 15 %)" in fallback.message


def test_netflix_pm_true_peak_and_format_apply_to_the_pm(tmp_path: Path) -> None:
    signals = dme_signals(dx_dbfs=-24.0, mx_dbfs=-34.0)
    signals["FX"][3] = sine(-1.5, 8.0, 40.0)  # a hot LFE: −1.5 dBTP in FX and in the PM
    signals["PM"] = signals["DX"] + signals["MX"] + signals["FX"]
    signals["ME"] = signals["MX"] + signals["FX"]
    report = verify_package(dme_package(tmp_path / "a", signals).root, profile="netflix-pm")
    assert profile_errors(report) == [("profile.true_peak", "PM.wav")]
    assert "PM.wav true peak -1.49 dBTP is above -2.0 dBTP" in report.errors[0].message
    floats = dme_package(tmp_path / "b", dme_signals(dx_dbfs=-24.0, mx_dbfs=-34.0), "FLOAT")
    report = verify_package(floats.root, profile="netflix-pm")
    assert profile_errors(report) == [("profile.bit_depth", "PM.wav")]


def test_netflix_pm_without_a_mix_warns(tmp_path: Path) -> None:
    path = write_multichannel(tmp_path / "DX.wav", in_channel(sine(-20.0, 2.0), 2, 6))
    other = write_multichannel(tmp_path / "FX.wav", in_channel(sine(-30.0, 2.0), 4, 6))
    report = verify_package([path, other], profile="netflix-pm")
    warning = next(f for f in report.warnings if f.code == "profile.no_mix")
    assert warning.message == "the package has no mix: nothing was checked [netflix-pm]"


# --- netflix-me ----------------------------------------------------------------------------


def test_netflix_me_judges_the_me_true_peak(tmp_path: Path) -> None:
    signals = dme_signals(dx_dbfs=-1.5)  # the PM is hot, the M&E is not: passes
    report = verify_package(dme_package(tmp_path / "a", signals).root, profile="netflix-me")
    assert report.passed, [f.message for f in report.errors]
    assert report.file("ME.wav").profile_passed is True
    assert report.file("PM.wav").profile_passed is None
    assert not [f for f in report.findings if "loudness" in f.code and "profile" in f.code]
    hot = dme_signals()
    hot["MX"][0] = sine(-0.5, 8.0, 500.0)
    hot["ME"] = hot["MX"] + hot["FX"]
    hot["PM"] = hot["ME"] + hot["DX"]
    report = verify_package(dme_package(tmp_path / "b", hot).root, profile="netflix-me")
    assert profile_errors(report) == [("profile.true_peak", "ME.wav")]
    assert "above -1.0 dBTP [netflix-me]" in report.errors[0].message


def test_netflix_me_without_an_me_warns(tmp_path: Path) -> None:
    dme = dme_package(tmp_path / "a", names={"ME": "Music and effects"})
    report = verify_package(dme.root, profile="netflix-me")
    warning = next(f for f in report.warnings if f.code == "profile.no_me")
    assert "no M&E (an alt_mix named ME)" in warning.message


# --- broadcast loudness on 5.1 -------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "level_dbfs", "passes"),
    [
        ("atsc-a85", -21.0, True),  # −24.0 LKFS
        ("atsc-a85", -18.5, False),  # −21.5: outside ± 2
        ("ebu-r128", -20.0, True),  # −23.0
        ("ebu-r128", -18.5, False),
    ],
)
def test_broadcast_targets_on_a_front_tone(
    tmp_path: Path, profile: str, level_dbfs: float, passes: bool
) -> None:
    path = write_multichannel(tmp_path / "mix.wav", in_channel(sine(level_dbfs, 4.0), 2, 6))
    report = verify_package([path], profile=profile)
    assert report.passed is passes, [f.message for f in report.errors]


def test_ebu_r128_weights_surrounds_and_leaves_out_the_lfe(tmp_path: Path) -> None:
    """A tone at −21.5 dBFS alone in Ls reads −23.0 LUFS (+1.5 dB): it passes; the same tone
    in the LFE reads nothing and fails."""
    tone = sine(-21.5, 4.0)
    surround = write_multichannel(tmp_path / "ls" / "mix.wav", in_channel(tone, 4, 6))
    report = verify_package([surround], profile="ebu-r128")
    assert report.passed, [f.message for f in report.errors]
    lfe = write_multichannel(tmp_path / "lfe" / "mix.wav", in_channel(tone, 3, 6))
    report = verify_package([lfe], profile="ebu-r128")
    assert profile_errors(report) == [("profile.loudness", "mix.wav")]
    assert report.errors[0].advice == "mix.wav is silent"


def test_broadcast_dme_reports_the_new_loudness(tmp_path: Path) -> None:
    dme = dme_package(tmp_path / "a", dme_signals(dx_dbfs=-24.0, mx_dbfs=-34.0))
    report = verify_package(dme.root, profile="broadcast-dme")
    info = next(f for f in report.findings if f.code == "profile.loudness_report")
    assert info.message == (
        "PM.wav integrated loudness -28.7 LUFS (BS.1770-4, programme-gated), loudness range "
        f"{report.file('PM.wav').levels.loudness_range_lu:.1f} LU; dialogue-gated "
        "(approximation) -26.4 LUFS, dialogue (stems/DX.wav) in 52 % of the programme "
        "[broadcast-dme]"
    )


def test_profile_sources_are_cited() -> None:
    assert "Netflix" in get_profile("netflix-pm").source
    assert "Loudness and True Peaks" in get_profile("netflix-me").source
    atsc = get_profile("atsc-a85").source
    assert "A/85" in atsc and "assumption" in atsc
    assert get_profile("netflix-pm").dialogue_target_lufs == -27.0
    assert get_profile("netflix-pm").min_dialogue_fraction == 0.15
    assert FS == 48000
