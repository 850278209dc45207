"""Fault matrix: varied material × planted faults × encodings, verified and repaired in-process.

Every single fault must be found with the right file and quantity and nothing else; a clean
package must pass with no finding; several faults at once must be found, or honestly reported
as not separable (an ambiguous offset, or faults that cannot be separated), with no false
statement of fact; ``repair_package`` must never write a copy that nulls worse than the
original (it writes a better one, or refuses and writes nothing).

Three layouts: stereo stems of a stereo mix (every fault on every material), mono stems of a
mono mix, and mono stems (the tone, the drums, the sparse stem) beside stereo ones in a stereo
mix, where a one-channel stem is added to every channel.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fault_synth import (
    MATERIALS,
    NAMES,
    Case,
    Fault,
    expected_codes,
    label_of,
    stem_set,
    write_case,
)
from typer.testing import CliRunner

from stemprint.analysis import VerificationReport, repair_package, verify_package
from stemprint.cli.main import app
from stemprint.errors import InputError

SECONDS = 2.0
SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")
#: Single faults: (kind, amount) — offsets in samples (positive: late), gains in dB (hot).
SINGLE = [
    ("offset", 1),
    ("offset", -37),
    ("offset", 128),
    ("offset", -4800),
    ("gain", 0.5),
    ("gain", -0.5),
    ("gain", 1.5),
    ("gain", -1.5),
    ("polarity", 0),
    ("missing", 0),
]
F = Fault
#: Two and three faults at once (on different stems, or two on one stem).
COMBOS = [
    [F("offset", "Bass", 128), F("polarity", "Drums")],
    [F("gain", "Keys", 1.5), F("offset", "Vox", -37)],
    [F("polarity", "Pad"), F("gain", "Bass", -0.5)],
    [F("offset", "Drums", 1), F("gain", "Keys", 0.5)],
    [F("missing", "Pad"), F("offset", "Drums", 128)],
    [F("offset", "Keys", 4800), F("polarity", "Vox")],
    [F("offset", "Pad", 37), F("gain", "Pad", -1.5)],
    [F("offset", "Drums", -128), F("polarity", "Drums")],
    [F("limiter"), F("offset", "Drums", 128)],
    [F("missing", "Vox"), F("gain", "Keys", 0.5)],
    [F("offset", "Bass", 128), F("polarity", "Drums"), F("gain", "Keys", 1.5)],
    [F("offset", "Keys", -37), F("gain", "Pad", -1.5), F("polarity", "Bass")],
    [F("offset", "Vox", 1), F("gain", "Drums", 0.5), F("offset", "Bass", -4800)],
    [F("polarity", "Keys"), F("polarity", "Pad"), F("gain", "Vox", -0.5)],
]
#: Diagnoses that say "this cannot be separated" instead of stating a fact.
HONEST = {"null.not_separable", "null.offset_ambiguous"}
#: Gain findings must be within this of the planted gain (dB).
GAIN_TOLERANCE_DB = 0.02


#: Stems printed mono in the mixed layout (the others stay stereo).
MONO_IN_STEREO = ("Bass", "Drums", "Vox")


def all_cases() -> list[Case]:
    """The matrix: every single fault on every material in stereo, on one material each in
    mono and on two each with mono stems in a stereo mix, the encodings rotating; a master
    limiter and clean packages in every layout; the combinations."""
    layouts = [
        (2, (), len(MATERIALS)),  # channels of the stereo stems, mono stems, materials per fault
        (1, (), 1),
        (2, MONO_IN_STEREO, 2),
    ]
    out: list[Case] = []
    k = 0
    for li, (channels, mono, per_fault) in enumerate(layouts):
        for j, (kind, amount) in enumerate(SINGLE):
            for m in range(per_fault):
                material = MATERIALS[(j + 2 * m) % len(MATERIALS)] if per_fault < 5 else None
                name = NAMES[material or MATERIALS[m]]
                stems = stem_set(SECONDS, channels, k % 5, mono)
                out.append(Case(stems, [Fault(kind, name, amount)], SUBTYPES[k % 3]))
                k += 1
        out.append(Case(stem_set(SECONDS, channels, 3, mono), [Fault("limiter")], SUBTYPES[k % 3]))
        out += [
            Case(stem_set(SECONDS, channels, 5 + s, mono), [], SUBTYPES[(s + li) % 3])
            for s in range(2)
        ]
        combos = COMBOS if per_fault == len(MATERIALS) else COMBOS[per_fault::5]
        for j, faults in enumerate(combos):
            out.append(Case(stem_set(SECONDS, channels, 8 + j % 4, mono), faults, SUBTYPES[j % 3]))
    return out


@dataclass
class Outcome:
    """What verify and repair did with one case."""

    case: Case
    package: Path
    passed: bool
    stated: list[tuple[str, str | None, float | None]]
    detected: int = 0
    missed: list[tuple[str, str | None]] = field(default_factory=list)
    false: list[tuple[str, str | None]] = field(default_factory=list)
    honest: bool = False
    fix: str = "not tried"  # "written", "refused", "not tried"
    fix_gain_db: float | None = None  # residual energy before / after (dB)
    fix_peak_gain_db: float | None = None
    refusal: str = ""


def residual(root: Path) -> tuple[float, float]:
    """Peak (linear) and energy of mix − Σ stems of a package written by ``write_case`` or
    by the repair (files read back with soundfile; one-channel stems added to every channel)."""
    mix, _ = sf.read(str(root / "mix.wav"), always_2d=True)
    total = np.zeros_like(mix)
    for path in sorted((root / "stems").glob("*.wav")):
        x, _ = sf.read(str(path), always_2d=True)
        n = min(len(x), len(total))
        total[:n] += x[:n]
    r = mix - total
    return float(np.abs(r).max()), float(np.sum(r * r))


def judge(case: Case, package: Path, report: VerificationReport) -> Outcome:
    """Compare the verdict null's diagnoses with the planted faults."""
    null = report.verdict_null
    assert null is not None
    stated = [(d.code, d.file, d.value) for d in null.diagnoses if d.severity == "error"]
    out = Outcome(case, package, report.passed, stated)
    expected = expected_codes(case.faults)
    offsets = {label_of(f.stem) for f in case.faults if f.kind == "offset" and f.stem}
    for fault in case.faults:
        code, file = next(iter(expected_codes([fault])))
        hit = [v for c, f, v in stated if (c, f) == (code, file)]
        ok = bool(hit)
        if ok and fault.kind == "offset":
            ok = fault.amount in hit
        elif ok and fault.kind == "gain":
            ok = any(v is not None and abs(v - fault.amount) <= GAIN_TOLERANCE_DB for v in hit)
        if ok:
            out.detected += 1
        else:
            out.missed.append((code, file))
    for code, file, _ in stated:
        allowed = (code, file) in expected or (code == "null.lost_material" and file in offsets)
        if code in HONEST:
            out.honest = True
        elif not allowed:
            out.false.append((code, file))
    return out


def try_fix(outcome: Outcome, report: VerificationReport, root: Path, out_dir: Path) -> None:
    """Repair; a written copy must null better than the package, a refusal leave nothing."""
    before_peak, before_energy = residual(root)
    try:
        repair_package(report, out_dir)
    except InputError as exc:
        outcome.fix, outcome.refusal = "refused", exc.message
        assert not out_dir.exists()
        assert not list(out_dir.parent.glob(f".{out_dir.name}.*"))
        return
    after_peak, after_energy = residual(out_dir)
    outcome.fix = "written"
    outcome.fix_gain_db = 10 * np.log10(before_energy / max(after_energy, 1e-300))
    outcome.fix_peak_gain_db = 20 * np.log10(before_peak / max(after_peak, 1e-300))


def run_matrix(root: Path) -> list[Outcome]:
    """Write, verify, judge and repair every case of :func:`all_cases` under ``root``."""
    outcomes = []
    for j, case in enumerate(all_cases()):
        package = write_case(root / f"case{j:03d}", case)
        report = verify_package(package)
        outcome = judge(case, package, report)
        if not report.passed:
            try_fix(outcome, report, package, root / f"fixed{j:03d}")
        outcomes.append(outcome)
    return outcomes


def matrix_figures(outcomes: list[Outcome]) -> dict[str, float]:
    """The matrix in numbers (for the record; the tests assert on the outcomes)."""
    gains = [o.fix_gain_db for o in outcomes if o.fix_gain_db is not None]
    peaks = [o.fix_peak_gain_db for o in outcomes if o.fix_peak_gain_db is not None]
    return {
        "cases": len(outcomes),
        "clean cases": sum(not o.case.faults for o in outcomes),
        "single-fault cases": sum(len(o.case.faults) == 1 for o in outcomes),
        "multi-fault cases": sum(len(o.case.faults) > 1 for o in outcomes),
        "faults planted": sum(len(o.case.faults) for o in outcomes),
        "detections": sum(o.detected for o in outcomes),
        "misses": sum(len(o.missed) for o in outcomes),
        "false findings": sum(len(o.false) for o in outcomes),
        "non-separable reports": sum(o.honest for o in outcomes),
        "fixes written": sum(o.fix == "written" for o in outcomes),
        "fixes refused": sum(o.fix == "refused" for o in outcomes),
        "fix: min residual energy drop (dB)": min(gains, default=float("nan")),
        "fix: median residual energy drop (dB)": float(np.median(gains)) if gains else 0.0,
        "fix: min residual peak drop (dB)": min(peaks, default=float("nan")),
    }


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> list[Outcome]:
    return run_matrix(tmp_path_factory.mktemp("matrix"))


def test_every_single_fault_is_found_exactly(outcomes: list[Outcome]) -> None:
    singles = [o for o in outcomes if len(o.case.faults) == 1]
    assert len(singles) == (len(MATERIALS) + 1 + 2) * len(SINGLE) + 3
    bad = [(o.case.label, o.missed, o.false, o.stated) for o in singles if o.missed or o.false]
    assert not bad
    assert not [o.case.label for o in singles if o.honest or o.passed]


def test_no_finding_on_clean_packages(outcomes: list[Outcome]) -> None:
    clean = [o for o in outcomes if not o.case.faults]
    assert len(clean) == 6 and {o.case.subtype for o in clean} == set(SUBTYPES)
    assert all(o.passed and not o.stated for o in clean), [o.case.label for o in clean]


def test_several_faults_are_found_or_reported_not_separable(outcomes: list[Outcome]) -> None:
    multi = [o for o in outcomes if len(o.case.faults) > 1]
    assert len(multi) == len(COMBOS) + len(COMBOS[1::5]) + len(COMBOS[2::5])
    assert not [(o.case.label, o.false) for o in multi if o.false]  # no false statement
    assert not [(o.case.label, o.missed) for o in multi if o.missed and not o.honest]
    # an honest "not separable" is the exception, not the rule
    assert sum(not o.missed for o in multi) >= len(multi) - 2


def test_fix_never_nulls_worse(outcomes: list[Outcome]) -> None:
    tried = [o for o in outcomes if o.fix != "not tried"]
    assert tried and all(not o.passed for o in tried)
    for o in tried:
        if o.fix == "written":
            assert o.fix_gain_db is not None and o.fix_gain_db > 0, o.case.label
            assert o.fix_peak_gain_db is not None and o.fix_peak_gain_db > -0.01, o.case.label
    # what the repair can correct (offset, gain, polarity) it does correct
    correctable = [
        o
        for o in tried
        if len(o.case.faults) == 1 and o.case.faults[0].kind in ("offset", "gain", "polarity")
    ]
    assert all(o.fix == "written" for o in correctable), [
        (o.case.label, o.refusal) for o in correctable if o.fix != "written"
    ]
    # a package whose fault no repair can correct is refused, not copied
    uncorrectable = [o for o in tried if {f.kind for f in o.case.faults} <= {"missing", "limiter"}]
    assert uncorrectable and all(o.fix == "refused" for o in uncorrectable)
    # an ambiguous or non-separable diagnosis is refused
    assert all(o.fix == "refused" for o in tried if o.honest)


@pytest.mark.parametrize(
    "label",
    [
        "clean/PCM_24/22222",
        "offset+128:Bass/PCM_16/22222",
        "polarity:Drums/FLOAT/12121",
        "limiter/FLOAT/12121",
        "offset+128:Bass+polarity:Drums+gain+1.5:Keys/PCM_24/22222",
    ],
)
def test_representative_cases_through_the_cli(
    outcomes: list[Outcome], tmp_path: Path, label: str
) -> None:
    """The command line states what the library states, with the contract's exit codes; its
    --fix writes a copy that nulls better, or refuses with exit code 2 and writes nothing."""
    outcome = next(o for o in outcomes if o.case.label == label)
    runner = CliRunner()
    result = runner.invoke(app, ["verify", str(outcome.package), "--json"])
    assert result.exit_code == (0 if not outcome.case.faults else 1)
    report = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
    assert report["passed"] is outcome.passed
    null = next(n for n in report["nulls"] if n["decides_verdict"])
    stated = [(d["code"], d["file"]) for d in null["diagnoses"] if d["severity"] == "error"]
    assert stated == [(c, f) for c, f, _ in outcome.stated]
    if not outcome.case.faults:
        return
    fixed = tmp_path / "fixed"
    result = runner.invoke(app, ["verify", str(outcome.package), "--fix", str(fixed)])
    if outcome.fix == "written":
        assert result.exit_code == 1 and fixed.is_dir()
        assert residual(fixed)[1] < residual(outcome.package)[1]
    else:
        assert result.exit_code == 2 and not fixed.exists()
        assert "cannot repair" in result.output or "nothing to repair" in result.output
