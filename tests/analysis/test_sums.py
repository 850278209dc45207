"""Sum relations from the manifest's ``sums`` key (issue #12), read back and measured live.

``{"name", "parts", "reference", "exact", "why"}``: exact relations decide the verdict,
informational ones are reported with their residual and reason; ``sums: []`` means nothing sums.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from analysis_synth import synth_stems, tanh_limiter
from test_verify_support import (
    as_float32,
    cli,
    cli_json,
    live_report_equals_read_back,
    manifest,
    peak_dbfs,
    write,
)

from stemprint.analysis.live import LiveFile, LiveMeasurement
from stemprint.analysis.verify import verify_package

STEMS = ("Drums", "Bass", "Keys")


def _signals() -> dict[str, np.ndarray]:
    """Float32-exact stems, the pre-master (their sum), a limited mix, stems via the master."""
    stems = {k: as_float32(v) for k, v in synth_stems(seconds=3.0, seed=21).items() if k in STEMS}
    premaster = sum(stems.values())
    out = {f"stems/{k}.wav": v for k, v in stems.items()}
    out["premaster.wav"] = premaster
    out["mix.wav"] = tanh_limiter(premaster, 0.3)
    for k, v in stems.items():  # each stem alone through the (non-linear) master
        out[f"stems_via_master/{k}.wav"] = tanh_limiter(v, 0.3)
    out["mixes/Instrumental.wav"] = stems["Drums"] + stems["Bass"]
    return out


ROLES = {
    "mix.wav": "mix",
    "premaster.wav": "premaster",
    "mixes/Instrumental.wav": "alt_mix",
    **{f"stems/{k}.wav": "stem" for k in STEMS},
    **{f"stems_via_master/{k}.wav": "stem_via_master" for k in STEMS},
}

SUMS: list[dict[str, Any]] = [
    {
        "name": "stems",
        "parts": [f"stems/{k}.wav" for k in STEMS],
        "reference": "premaster.wav",
        "exact": True,
        "why": "post-fader stems sum to the master's input",
    },
    {
        "name": "via master",
        "parts": [f"stems_via_master/{k}.wav" for k in STEMS],
        "reference": "mix.wav",
        "exact": False,
        "why": "each stem went through the master's limiter alone",
    },
    {
        "name": "instrumental",
        "parts": ["stems/Drums.wav", "stems/Bass.wav"],
        "reference": "mixes/Instrumental.wav",
        "exact": True,
        "why": "the instrumental is the drums and the bass",
    },
]


def _package(root: Path, signals: dict[str, np.ndarray], sums: Any = SUMS) -> Path:
    for rel, x in signals.items():
        write(root / rel, x)
    extra = {} if sums is None else {"sums": sums}
    manifest(root, [{"path": p, "role": r} for p, r in ROLES.items()], **extra)
    return root


def test_relations_from_the_manifest(tmp_path: Path) -> None:
    signals = _signals()
    root = _package(tmp_path / "pkg", signals)
    code, output = cli("verify", root)
    assert code == 0, output  # the informational relation does not null, by design
    assert "sum 'stems' (3 parts) vs premaster.wav: nulls" in output
    assert "sum 'via master' (3 parts) vs mix.wav (for information): does not null" in output
    assert "sum 'instrumental' (2 parts) vs mixes/Instrumental.wav: nulls" in output
    code, report = cli_json(root)
    assert report["sums_source"] == "manifest"
    by_name = {n["name"]: n for n in report["nulls"]}
    assert list(by_name) == ["stems", "via master", "instrumental"]
    assert [n["decides_verdict"] for n in report["nulls"]] == [True, False, True]
    assert by_name["stems"]["residual_peak_dbfs"] < -130.0
    assert by_name["instrumental"]["residual_peak_dbfs"] < -130.0
    via = as_float32(signals["mix.wav"]) - sum(as_float32(signals[p]) for p in SUMS[1]["parts"])
    assert by_name["via master"]["residual_peak_dbfs"] == pytest.approx(peak_dbfs(via), abs=0.01)
    assert by_name["via master"]["why"] == "each stem went through the master's limiter alone"
    info = next(f for f in report["findings"] if f["code"] == "null.mix_differs")
    assert "for information: each stem went through the master's limiter alone" in info["message"]
    assert report["unrelated_files"] == []


def test_an_exact_relation_that_fails_fails_the_package(tmp_path: Path) -> None:
    signals = _signals()
    late = np.zeros_like(signals["stems/Bass.wav"])
    late[:, 128:] = signals["stems/Bass.wav"][:, :-128]
    signals["stems/Bass.wav"] = late
    root = _package(tmp_path / "pkg", signals)
    code, output = cli("verify", root)
    assert code == 1, output
    assert "sum 'stems' does not null against premaster.wav" in output
    assert "stems/Bass.wav is 128 samples late against premaster.wav" in output
    assert "stems/Bass.wav is 128 samples late against mixes/Instrumental.wav" in output


def test_a_second_reference_alone_can_fail(tmp_path: Path) -> None:
    signals = _signals()
    signals["mixes/Instrumental.wav"] = signals["mixes/Instrumental.wav"] * 10 ** (-1 / 20)
    root = _package(tmp_path / "pkg", signals)
    code, report = cli_json(root)
    assert code == 1
    failed = [n["name"] for n in report["nulls"] if not n["passed"]]
    assert failed == ["via master", "instrumental"]
    gain = next(f for f in report["findings"] if f["code"] == "null.common_gain")
    assert gain["file"] == "mixes/Instrumental.wav"
    assert gain["value"] == pytest.approx(1.0, abs=0.01)  # the parts sum 1 dB above it


def test_empty_sums_means_nothing_sums(tmp_path: Path) -> None:
    signals = _signals()
    signals["premaster.wav"] = signals["premaster.wav"][:, ::-1].copy()  # would never null
    root = _package(tmp_path / "pkg", signals, sums=[])
    code, output = cli("verify", root)
    assert code == 0, output
    assert "nothing null-tested: the manifest lists no sums" in output
    code, report = cli_json(root)
    assert report["nulls"] == [] and len(report["unrelated_files"]) == len(ROLES)


def test_without_sums_the_roles_decide(tmp_path: Path) -> None:
    root = _package(tmp_path / "pkg", _signals(), sums=None)
    code, report = cli_json(root)
    assert code == 0 and report["sums_source"] == "roles"
    assert [(n["reference"], n["decides_verdict"]) for n in report["nulls"]] == [
        ("premaster.wav", True),
        ("mix.wav", False),
    ]
    assert sorted(report["unrelated_files"]) == sorted(
        p for p, r in ROLES.items() if r in ("alt_mix", "stem_via_master")
    )


@pytest.mark.parametrize(
    ("sums", "field", "words"),
    [
        ({"parts": []}, "sums", "sums must be a list"),
        ([{"parts": ["stems/Drums.wav", "stems/Gone.wav"], "reference": "mix.wav"}],
         "sums[0].parts[1]", "stems/Gone.wav is not a file listed in the manifest"),
        ([{"parts": ["mix.wav"], "reference": "mix.wav"}], "sums[0].reference",
         "mix.wav is both a part and the reference"),
        ([{"parts": [], "reference": "mix.wav"}], "sums[0].parts", "non-empty parts"),
        ([{"parts": ["stems/Bass.wav"], "reference": "mix.wav", "exact": "yes"}],
         "sums[0].exact", "exact must be a bool"),
    ],
)  # fmt: skip
def test_bad_sums_are_unusable_input(tmp_path: Path, sums: Any, field: str, words: str) -> None:
    root = _package(tmp_path / "pkg", _signals(), sums=sums)
    code, output = cli("verify", root)
    assert code == 2, output
    assert field in output and words in output


def _feed(live: LiveMeasurement, root: Path, signals: dict[str, np.ndarray], step: int) -> None:
    n = next(iter(signals.values())).shape[1]
    for start in range(0, n, step):
        for rel, x in signals.items():
            live.monitor(root / rel)(as_float32(x)[:, start : start + step])


@pytest.mark.parametrize("step", [1000, 65536])
def test_live_sums_equal_reading_back(tmp_path, monkeypatch, step) -> None:
    signals = _signals()
    root = _package(tmp_path / "pkg", signals)
    files = [LiveFile(root / p, 48000, 2, 1.0, r) for p, r in ROLES.items()]
    live = LiveMeasurement(files, sums=SUMS, root=root)
    _feed(live, root, signals, step)

    measured = live_report_equals_read_back(monkeypatch, root, live)
    assert [n["name"] for n in measured["nulls"]] == ["stems", "via master", "instrumental"]


def test_live_relations_that_differ_are_read_back(tmp_path) -> None:
    signals = _signals()
    root = _package(tmp_path / "pkg", signals)
    files = [LiveFile(root / p, 48000, 2, 1.0, r) for p, r in ROLES.items()]
    live = LiveMeasurement(files, sums=SUMS[:1], root=root)  # not the manifest's relations
    _feed(live, root, signals, 4096)
    report = verify_package(root, live=live)
    assert report.passed and [n.reference for n in report.nulls][2] == "mixes/Instrumental.wav"
    assert report.to_dict(True) == verify_package(root).to_dict(True)


def test_live_sums_refuse_a_file_that_is_not_written(tmp_path) -> None:
    files = [LiveFile(tmp_path / "mix.wav", 48000, 2, 1.0, "mix")]
    with pytest.raises(ValueError, match="names stems/Gone.wav"):
        LiveMeasurement(
            files, sums=[{"parts": ["stems/Gone.wav"], "reference": "mix.wav"}], root=tmp_path
        )
