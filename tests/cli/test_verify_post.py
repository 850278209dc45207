"""``stemprint verify`` on film deliveries: ``--fold-down``, the dialogue-gated (approximation)
figure and the netflix/atsc profiles, as a user sees them (exit code, report, JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from stemprint.cli.main import app
from tests.analysis.post_synth import dme_package, dme_signals, sine, write_multichannel

runner = CliRunner()


def verify(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, ["verify", *[str(a) for a in args]])
    return result.exit_code, result.output


def verify_json(*args: str | Path) -> tuple[int, dict]:
    result = runner.invoke(app, ["verify", *[str(a) for a in args], "--json"])
    text = result.stdout
    return result.exit_code, json.loads(text[text.index("{") : text.rindex("}") + 1])


def test_fold_down_and_dialogue_gated_lines(tmp_path: Path) -> None:
    dme = dme_package(tmp_path / "pkg", dme_signals(dx_dbfs=-24.0, mx_dbfs=-34.0))
    code, output = verify(dme.root, "--fold-down", "--profile", "netflix-pm")
    assert code == 0, output
    assert "PASS" in output and "profile netflix-pm" in output
    lines = output.splitlines()
    for number in range(1, 6):  # every 5.1 file has its Lo/Ro row under its own
        assert any(line.split()[:2] == [str(number), "Lo/Ro"] for line in lines), output
    assert (
        "Dialogue-gated (approximation) loudness of PM.wav: -26.4 LUFS, gated by stems/DX.wav "
        "(dialogue in 52 % of the programme); Lo/Ro fold-down -26.4 LUFS" in output
    )
    assert "1 (5.1, loudness: LFE excluded, surrounds +1.5 dB) true peak dBTP: L -34.0" in output


def test_fold_down_json(tmp_path: Path) -> None:
    dme = dme_package(tmp_path / "pkg")
    code, report = verify_json(dme.root, "--fold-down")
    assert code == 0
    pm = report["files"][0]
    assert pm["label"] == "PM.wav" and pm["levels"]["layout"] == "5.1"
    fold = pm["fold_down"]
    assert fold["layout"] == "stereo" and fold["source_layout"] == "5.1"
    assert fold["method"].startswith("ITU-R BS.775-3 Lo/Ro")
    assert len(fold["levels"]["true_peak_dbtp_per_channel"]) == 2
    assert fold["dialogue_gated"]["label"] == "dialogue-gated (approximation)"
    assert pm["dialogue_gated"]["dialogue"] == "stems/DX.wav"
    # without the option: no fold-down, the dialogue-gated figure all the same
    code, report = verify_json(dme.root)
    assert report["files"][0]["fold_down"] is None
    assert report["files"][0]["dialogue_gated"]["loudness_lufs"] is not None


def _click_mix(path: Path) -> Path:
    """A 5.1 mix at −23 LUFS (a −20 dBFS tone in C) with one click at −8 dBFS in L, C and Ls:
    every channel peaks at −8 dBFS, the fold-down at 2.414 × that, −0.34 dBFS."""
    x = np.zeros((6, 4 * 48000))
    x[2] = sine(-20.0, 4.0)
    x[[0, 2, 4], 96000] = 10 ** (-8 / 20)
    return write_multichannel(path, x)


def test_fold_down_checked_by_the_profile(tmp_path: Path) -> None:
    mix = _click_mix(tmp_path / "mix.wav")
    code, output = verify(mix, "--profile", "ebu-r128")
    assert code == 0, output
    code, output = verify(mix, "--profile", "ebu-r128", "--fold-down")
    assert code == 1, output
    assert "✗ mix.wav (Lo/Ro fold-down) true peak -0.34 dBTP is above -1.0 dBTP [ebu-r128]" in (
        output
    )
    words = " ".join(output.split())  # the console wraps the advice
    assert "→ lower the centre and surrounds of mix.wav by at least 0.66 dB" in words
    code, report = verify_json(mix, "--profile", "ebu-r128", "--fold-down")
    entry = report["files"][0]
    assert entry["profile_passed"] is True and entry["fold_down"]["profile_passed"] is False
    assert [f["code"] for f in report["findings"] if f["severity"] == "error"] == [
        "profile.true_peak"
    ]


def test_fold_down_of_stereo_files_is_a_note(tmp_path: Path) -> None:
    import soundfile as sf

    path = tmp_path / "mix.wav"
    sf.write(str(path), np.stack([sine(-20.0, 1.0)] * 2).T, 48000, subtype="PCM_24")
    code, report = verify_json(path, "--fold-down")
    assert code == 0
    assert "fold_down.none" in {f["code"] for f in report["findings"]}


def test_netflix_me_through_the_cli(tmp_path: Path) -> None:
    hot = dme_signals()
    hot["MX"][0] = sine(-0.5, 8.0, 500.0)
    hot["ME"] = hot["MX"] + hot["FX"]
    hot["PM"] = hot["ME"] + hot["DX"]
    code, output = verify(dme_package(tmp_path / "pkg", hot).root, "--profile", "netflix-me")
    assert code == 1
    assert "✗ ME.wav true peak" in output and "above -1.0 dBTP [netflix-me]" in output
    code, output = verify(tmp_path / "pkg", "--profile", "atsc-a85")
    assert code == 1 and "outside -24.0 ± 2.0 LU [atsc-a85]" in output
