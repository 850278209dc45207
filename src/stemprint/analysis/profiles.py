"""Delivery profiles: the thresholds a package must meet for one kind of delivery.

Who is checked (``DeliveryProfile.subject``)
-------------------------------------------
* ``package``: peak and format rules apply to every file, loudness targets to the mix (a file
  verified alone is the mix); a package without a mix gets a warning that its loudness target
  was not checked. "Stem" rules apply to every stem role (``stem``, ``stem_dry``,
  ``stem_pre_fader``, ``stem_via_master``, ``stem_post_fader``).
* ``mix``: every rule applies to the printmaster (PM), the package's ``mix``, alone.
* ``me``: every rule applies to the M&E, the ``alt_mix`` named ``ME`` (or ``M&E``), alone.

Files a profile does not judge keep ``profile_passed = None``.

Loudness
--------
Integrated loudness is BS.1770-4 for every layout (LFE excluded, surrounds +1.5 dB; see
:mod:`stemprint.analysis.meters`). A profile with a dialogue target (``netflix-pm``) checks the
*dialogue-gated (approximation)* loudness: the printmaster gated by the ``DX`` stem's own
BS.1770-4 gating blocks (Dolby Dialogue Intelligence, which the platform names, is proprietary).
It falls back to the full-programme target when that figure cannot be computed (no ``DX`` stem,
a silent one) or when dialogue is present in at most ``min_dialogue_fraction`` of the programme.

Fold-down (``verify --fold-down``)
----------------------------------
The stereo fold-down Lo/Ro (ITU-R BS.775-3) of a 5.1/7.1 file the profile judges is checked by
the profile's level rules as if it were a stereo file of the same role: true peak, stem peak,
and, for the programme file, the loudness target (its dialogue-gated figure is gated by the
``DX`` stem's fold-down). Format and length rules are about files and do not apply to it.

=================  ==========================================================================
profile            rules (source)
=================  ==========================================================================
``stem-mastering`` every file ≥ 24-bit (or float); all files the same length; stem sample
                   peaks ≤ −3 dBFS; no master-bus limiting detected by the null test
                   (mastering-house stem preparation guidelines)
``ebu-r128``       mix −23.0 LUFS ± 1.0 LU; every file ≤ −1 dBTP; multichannel files weighted
                   per BS.1770-4 (EBU R 128, EBU Tech 3341/3342)
``streaming``      mix −14.0 LUFS ± 1.0 LU; every file ≤ −1 dBTP (Spotify for Artists)
``atmos-music``    mix ≤ −18 LKFS; every file ≤ −1 dBTP; 48 kHz, 24-bit PCM (Dolby)
``atsc-a85``       mix −24.0 LKFS ± 2.0 LU (ATSC A/85:2013 gives the −24 LKFS target; the ±2 LU
                   tolerance is an assumption: TV Technology's summary of A/85, not checked
                   against the A/85 text)
``broadcast-dme``  48 kHz, 24-bit PCM; every file ≤ −2 dBTP; all files the same length;
                   mix loudness, LRA and the dialogue-gated approximation reported (Netflix
                   Sound Mix Specifications & Best Practices)
``netflix-pm``     the PM: −27 LKFS ± 2 LU dialogue-gated (approximation), else −24 LKFS ± 2 LU
                   full programme (no DX figure, or dialogue in ≤ 15 % of the programme);
                   ≤ −2 dBTP; 48 kHz, 24-bit PCM (Netflix Sound Mix Specifications & Best
                   Practices v1.4; Netflix Partner Help Center "Loudness and True Peaks: How to
                   Measure and When to Flag")
``netflix-me``     the M&E: ≤ −1 dBTP, loudness not required; 48 kHz, 24-bit PCM (the same
                   Netflix Partner Help Center article; Netflix sound deliverables)
=================  ==========================================================================

The sources are cited with their addresses in ``docs/verification.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from stemprint.errors import InputError

from .discovery import is_stem_role
from .findings import Finding
from .meters import FileLevels
from .nulltest import NullResult
from .report import DIALOGUE_GATED_LABEL, DialogueGatedLoudness, FileReport, FoldDown

#: Small allowance for floating-point rounding when comparing against limits (dB).
_EPS_DB = 1e-6
#: Names (case-insensitive) of the ``alt_mix`` that is the M&E.
ME_NAMES = frozenset({"me", "m&e", "m_e", "m+e"})

Subject = Literal["package", "mix", "me"]


@dataclass(frozen=True)
class DeliveryProfile:
    """Thresholds of one delivery specification.

    Attributes
    ----------
    name
        Identifier (``ebu-r128``).
    title
        One-line description.
    source
        Where the numbers come from.
    mix_target_lufs, mix_tolerance_lu
        Integrated (full-programme) loudness target of the programme file and its tolerance
        (LUFS, LU); with a dialogue target, the fallback target.
    mix_max_lufs
        Upper limit of the programme file's integrated loudness (LUFS/LKFS).
    max_true_peak_dbtp
        Highest true peak allowed in every judged file (dBTP).
    max_stem_sample_peak_dbfs
        Highest sample peak allowed in each stem (dBFS).
    min_bit_depth
        Lowest bit depth allowed in every judged file; floating point counts as enough.
    required_subtypes
        Encodings accepted (libsndfile names), e.g. ``("PCM_24",)``.
    sample_rates
        Sample rates accepted (Hz).
    equal_lengths
        All files must have the same length in samples.
    forbid_master_dynamics
        Fail when the null test detects master-bus dynamics processing.
    report_loudness
        Report the programme loudness as an info finding.
    subject
        Which files the profile judges (module header): ``package``, ``mix`` or ``me``.
    dialogue_target_lufs, dialogue_tolerance_lu
        Target of the dialogue-gated (approximation) loudness of the programme file.
    min_dialogue_fraction
        The dialogue-gated target applies only when dialogue is present in more than this
        fraction of the programme's gating blocks; else the full-programme target applies.
    """

    name: str
    title: str
    source: str
    mix_target_lufs: float | None = None
    mix_tolerance_lu: float | None = None
    mix_max_lufs: float | None = None
    max_true_peak_dbtp: float | None = None
    max_stem_sample_peak_dbfs: float | None = None
    min_bit_depth: int | None = None
    required_subtypes: tuple[str, ...] | None = None
    sample_rates: tuple[int, ...] | None = None
    equal_lengths: bool = False
    forbid_master_dynamics: bool = False
    report_loudness: bool = False
    subject: Subject = "package"
    dialogue_target_lufs: float | None = None
    dialogue_tolerance_lu: float | None = None
    min_dialogue_fraction: float = 0.0

    @property
    def has_loudness_rule(self) -> bool:
        """Whether the profile judges or reports the programme loudness."""
        return (
            self.mix_target_lufs is not None
            or self.mix_max_lufs is not None
            or self.dialogue_target_lufs is not None
            or self.report_loudness
        )


_NETFLIX_SPEC = (
    "Netflix Sound Mix Specifications & Best Practices v1.4; Netflix Partner Help Center, "
    "Loudness and True Peaks: How to Measure and When to Flag"
)

PROFILES: dict[str, DeliveryProfile] = {
    p.name: p
    for p in (
        DeliveryProfile(
            name="stem-mastering",
            title="stems for a mastering engineer: ≥ 24-bit, same length, stem peaks ≤ −3 dBFS, "
            "no master limiting",
            source="mastering-house stem preparation guidelines (see docs/verification.md)",
            max_stem_sample_peak_dbfs=-3.0,
            min_bit_depth=24,
            equal_lengths=True,
            forbid_master_dynamics=True,
        ),
        DeliveryProfile(
            name="ebu-r128",
            title="EBU R 128 broadcast: mix −23 LUFS ± 1 LU, ≤ −1 dBTP (any layout, BS.1770-4)",
            source="EBU R 128 (tech.ebu.ch/publications/r128), EBU Tech 3341/3342; BS.1770-4",
            mix_target_lufs=-23.0,
            mix_tolerance_lu=1.0,
            max_true_peak_dbtp=-1.0,
        ),
        DeliveryProfile(
            name="streaming",
            title="music streaming: mix −14 LUFS ± 1 LU, ≤ −1 dBTP",
            source="Spotify for Artists loudness normalization guidance",
            mix_target_lufs=-14.0,
            mix_tolerance_lu=1.0,
            max_true_peak_dbtp=-1.0,
        ),
        DeliveryProfile(
            name="atmos-music",
            title="Dolby Atmos music: mix ≤ −18 LKFS, ≤ −1 dBTP, 48 kHz 24-bit",
            source="Dolby Atmos Music delivery specification",
            mix_max_lufs=-18.0,
            max_true_peak_dbtp=-1.0,
            required_subtypes=("PCM_24",),
            sample_rates=(48000,),
        ),
        DeliveryProfile(
            name="atsc-a85",
            title="ATSC A/85 US television: mix −24 LKFS ± 2 LU (the tolerance is an assumption)",
            source="ATSC A/85:2013 (target −24 LKFS, BS.1770 measurement); the ±2 LU tolerance "
            "is an assumption (TV Technology's summary of A/85, not checked in the A/85 text)",
            mix_target_lufs=-24.0,
            mix_tolerance_lu=2.0,
        ),
        DeliveryProfile(
            name="broadcast-dme",
            title="dialogue/music/effects stems: 48 kHz 24-bit, ≤ −2 dBTP, equal lengths",
            source="Netflix Sound Mix Specifications & Best Practices",
            max_true_peak_dbtp=-2.0,
            required_subtypes=("PCM_24",),
            sample_rates=(48000,),
            equal_lengths=True,
            report_loudness=True,
        ),
        DeliveryProfile(
            name="netflix-pm",
            title="Netflix printmaster: −27 LKFS ± 2 LU dialogue-gated (approximation) or −24 "
            "LKFS ± 2 LU full programme, ≤ −2 dBTP, 48 kHz 24-bit",
            source=_NETFLIX_SPEC,
            subject="mix",
            dialogue_target_lufs=-27.0,
            dialogue_tolerance_lu=2.0,
            min_dialogue_fraction=0.15,
            mix_target_lufs=-24.0,
            mix_tolerance_lu=2.0,
            max_true_peak_dbtp=-2.0,
            required_subtypes=("PCM_24",),
            sample_rates=(48000,),
        ),
        DeliveryProfile(
            name="netflix-me",
            title="Netflix M&E: ≤ −1 dBTP, loudness not required, 48 kHz 24-bit",
            source=_NETFLIX_SPEC,
            subject="me",
            max_true_peak_dbtp=-1.0,
            required_subtypes=("PCM_24",),
            sample_rates=(48000,),
        ),
    )
}


def get_profile(name: str) -> DeliveryProfile:
    """Return the profile called ``name``.

    Raises
    ------
    InputError
        If there is no such profile.
    """
    try:
        return PROFILES[name]
    except KeyError:
        raise InputError(
            f"unknown delivery profile {name!r}",
            field="profile",
            fix="use one of: " + ", ".join(PROFILES),
        ) from None


def is_me(f: FileReport) -> bool:
    """Whether ``f`` is the M&E: an ``alt_mix`` named ``ME`` (or ``M&E``)."""
    return f.role == "alt_mix" and f.name.strip().lower() in ME_NAMES


@dataclass(frozen=True)
class _Subject:
    """What one level rule judges: a file, or a file's stereo fold-down."""

    file: FileReport
    label: str
    levels: FileLevels
    dialogue: DialogueGatedLoudness | None
    fold_down: FoldDown | None = None


def _subjects(f: FileReport) -> list[_Subject]:
    """The file itself, then its fold-down when it was measured."""
    out = []
    if f.levels is not None:
        out.append(_Subject(f, f.label, f.levels, f.dialogue_gated))
    fold = f.fold_down
    if fold is not None:
        label = f"{f.label} (Lo/Ro fold-down)"
        out.append(_Subject(f, label, fold.levels, fold.dialogue_gated, fold))
    return out


class _Rules:
    """Collects the findings of one profile check and which files broke a rule."""

    def __init__(self, profile: DeliveryProfile) -> None:
        self.profile = profile
        self.tag = f"[{profile.name}]"
        self.out: list[Finding] = []
        self.failed: set[str] = set()
        self.failed_folds: set[int] = set()

    def fail(
        self,
        code: str,
        target: FileReport | _Subject | None,
        message: str,
        advice: str,
        value: float | None,
    ) -> None:
        f = target.file if isinstance(target, _Subject) else target
        self.out.append(
            Finding(
                "error",
                f"profile.{code}",
                f"{message} {self.tag}",
                file=f.label if f else None,
                advice=advice,
                value=value,
            )
        )
        if isinstance(target, _Subject) and target.fold_down is not None:
            self.failed_folds.add(id(target.fold_down))
        elif f is not None:
            self.failed.add(f.label)

    def info(self, code: str, f: FileReport, message: str, value: float | None) -> None:
        self.out.append(
            Finding(
                "info",
                f"profile.{code}",
                f"{message} {self.tag}",
                file=f.label,
                value=value if value is not None and np.isfinite(value) else None,
            )
        )


def _judged(profile: DeliveryProfile, files: list[FileReport]) -> tuple[list[FileReport], ...]:
    """(files the per-file rules judge, programme files the loudness rules judge)."""
    if profile.subject == "me":
        me = [f for f in files if is_me(f)]
        return me, me
    mixes = [f for f in files if f.role == "mix"]
    if profile.subject == "mix":
        return mixes, mixes
    return files, mixes


def check_profile(
    profile: DeliveryProfile, files: list[FileReport], nulls: list[NullResult]
) -> list[Finding]:
    """Check the files ``profile`` judges; sets ``profile_passed`` on them and their fold-downs.

    Parameters
    ----------
    profile
        The delivery profile.
    files
        Per-file reports with levels measured (and, with ``--fold-down``, fold-downs).
    nulls
        Null results (for the master-dynamics rule).

    Returns
    -------
    list of Finding
        One error per broken rule and file, plus info findings.
    """
    rules = _Rules(profile)
    judged, programmes = _judged(profile, files)
    _missing_subject(rules, judged, programmes)
    for f in judged:
        _format_rules(rules, f)
        for subject in _subjects(f):
            _peak_rules(rules, subject)
    for f in programmes:
        for subject in _subjects(f):
            _programme_loudness(rules, subject)
    mixes = [f for f in files if f.role == "mix"]
    if profile.equal_lengths:
        _length_rule(rules, files, mixes)
    if profile.forbid_master_dynamics:
        _dynamics_rule(rules, files, nulls)
    for f in judged:
        f.profile_passed = f.label not in rules.failed
        if f.fold_down is not None:
            f.fold_down.profile_passed = id(f.fold_down) not in rules.failed_folds
    return rules.out


def _missing_subject(rules: _Rules, judged: list[FileReport], programmes: list[FileReport]) -> None:
    profile = rules.profile
    if profile.subject == "me" and not judged:
        rules.out.append(
            Finding(
                "warning",
                "profile.no_me",
                f"the package has no M&E (an alt_mix named ME): nothing was checked {rules.tag}",
                advice='give the M&E role alt_mix and name "ME" in manifest.json',
            )
        )
    elif (profile.has_loudness_rule or profile.subject == "mix") and not programmes:
        what = (
            "nothing was checked"
            if profile.subject == "mix"
            else "its loudness target was not checked"
        )
        rules.out.append(
            Finding(
                "warning",
                "profile.no_mix",
                f"the package has no mix: {what} {rules.tag}",
                advice="add the mix (--mix FILE, or role mix in manifest.json), or verify the "
                "mix file alone",
            )
        )


def _format_rules(rules: _Rules, f: FileReport) -> None:
    profile = rules.profile
    if profile.sample_rates and f.sample_rate not in profile.sample_rates:
        want = " or ".join(f"{r} Hz" for r in profile.sample_rates)
        rules.fail(
            "sample_rate",
            f,
            f"{f.label} is {f.sample_rate} Hz; {want} required",
            f"re-export {f.label} at {want} (render at that rate, do not resample late)",
            float(f.sample_rate),
        )
    if profile.required_subtypes and f.subtype not in profile.required_subtypes:
        want = " or ".join(profile.required_subtypes)
        rules.fail(
            "bit_depth",
            f,
            f"{f.label} is {f.subtype}; {want} required",
            f"re-export {f.label} as {want}",
            float(f.bit_depth or 0),
        )
    if profile.min_bit_depth and not f.is_float and (f.bit_depth or 0) < profile.min_bit_depth:
        rules.fail(
            "bit_depth",
            f,
            f"{f.label} is {f.bit_depth}-bit; ≥ {profile.min_bit_depth}-bit or float required",
            f"re-export {f.label} as 24-bit PCM or 32-bit float (no dither to 16-bit)",
            float(f.bit_depth or 0),
        )


def _peak_rules(rules: _Rules, s: _Subject) -> None:
    profile, lv, label = rules.profile, s.levels, s.label
    limit = profile.max_true_peak_dbtp
    fix = f"lower {s.file.label}"
    if s.fold_down is not None:
        fix = f"lower the centre and surrounds of {s.file.label}"
    if limit is not None and lv.true_peak_dbtp > limit + _EPS_DB:
        rules.fail(
            "true_peak",
            s,
            f"{label} true peak {lv.true_peak_dbtp:.2f} dBTP is above {limit:.1f} dBTP",
            f"{fix} by at least {lv.true_peak_dbtp - limit:.2f} dB or use a true-peak limiter",
            lv.true_peak_dbtp,
        )
    stem_limit = profile.max_stem_sample_peak_dbfs
    if (
        is_stem_role(s.file.role)
        and stem_limit is not None
        and lv.sample_peak_dbfs > stem_limit + _EPS_DB
    ):
        rules.fail(
            "stem_peak",
            s,
            f"{label} peaks at {lv.sample_peak_dbfs:.2f} dBFS, above {stem_limit:.1f} dBFS",
            f"leave headroom: print all stems {lv.sample_peak_dbfs - stem_limit:.2f} dB lower "
            "(same change on every stem keeps the balance)",
            lv.sample_peak_dbfs,
        )


def _outside(lufs: float, target: float, tolerance: float) -> bool:
    return not np.isfinite(lufs) or abs(lufs - target) > tolerance + _EPS_DB


def _gain_advice(label: str, lufs: float, target: float) -> str:
    if not np.isfinite(lufs):
        return f"{label} is silent"
    return f"apply {target - lufs:+.1f} dB of gain to {label} (check the true peak after)"


def _programme_loudness(rules: _Rules, s: _Subject) -> None:
    profile = rules.profile
    lv = s.levels
    if profile.dialogue_target_lufs is not None and _dialogue_rule(rules, s):
        pass  # decided on the dialogue-gated figure
    elif profile.mix_target_lufs is not None and profile.mix_tolerance_lu is not None:
        _full_programme_rule(rules, s)
    if (
        profile.mix_max_lufs is not None
        and np.isfinite(lv.loudness_lufs)
        and lv.loudness_lufs > profile.mix_max_lufs + _EPS_DB
    ):
        rules.fail(
            "loudness",
            s,
            f"{s.label} integrated loudness {lv.loudness_lufs:.1f} LKFS is above "
            f"{profile.mix_max_lufs:.1f} LKFS",
            f"lower {s.file.label} by at least {lv.loudness_lufs - profile.mix_max_lufs:.1f} dB",
            lv.loudness_lufs,
        )
    if profile.report_loudness:
        rules.info("loudness_report", s.file, _loudness_text(s), lv.loudness_lufs)


def _loudness_text(s: _Subject) -> str:
    lv = s.levels
    text = (
        f"{s.label} integrated loudness {lv.loudness_lufs:.1f} LUFS (BS.1770-4, "
        f"programme-gated), loudness range {lv.loudness_range_lu:.1f} LU"
    )
    dg = s.dialogue
    if dg is not None:
        text += (
            f"; {DIALOGUE_GATED_LABEL} {dg.loudness_lufs:.1f} LUFS, dialogue ({dg.dialogue}) in "
            f"{100 * dg.dialogue_fraction:.0f} % of the programme"
        )
    return text


def _dialogue_unusable(profile: DeliveryProfile, dg: DialogueGatedLoudness | None) -> str | None:
    """Why the dialogue-gated target does not apply, or ``None`` when it does."""
    if dg is None:
        return "no DX stem to gate by"
    if not np.isfinite(dg.loudness_lufs):
        return f"{dg.dialogue} passes no gating block"
    if dg.dialogue_fraction <= profile.min_dialogue_fraction:
        return (
            f"dialogue in {100 * dg.dialogue_fraction:.0f} % of the programme, at most "
            f"{100 * profile.min_dialogue_fraction:.0f} %"
        )
    return None


def _dialogue_rule(rules: _Rules, s: _Subject) -> bool:
    """Judge the dialogue-gated figure; ``False`` when the full-programme target applies."""
    profile, dg = rules.profile, s.dialogue
    target, tolerance = profile.dialogue_target_lufs, profile.dialogue_tolerance_lu
    assert target is not None and tolerance is not None  # the caller checked
    why_not = _dialogue_unusable(profile, dg)
    if why_not is not None or dg is None:
        rules.info(
            "loudness_fallback",
            s.file,
            f"{s.label}: no {DIALOGUE_GATED_LABEL} loudness ({why_not}): the full-programme "
            "target applies",
            None,
        )
        return False
    lufs = dg.loudness_lufs
    if _outside(lufs, target, tolerance):
        rules.fail(
            "loudness",
            s,
            f"{s.label} {DIALOGUE_GATED_LABEL} loudness {lufs:.1f} LUFS is outside "
            f"{target:.1f} ± {tolerance:.1f} LU (gated by {dg.dialogue}; full programme "
            f"{s.levels.loudness_lufs:.1f} LUFS)",
            _gain_advice(s.file.label, lufs, target),
            lufs,
        )
    return True


def _full_programme_rule(rules: _Rules, s: _Subject) -> None:
    profile, lufs = rules.profile, s.levels.loudness_lufs
    target, tolerance = profile.mix_target_lufs, profile.mix_tolerance_lu
    assert target is not None and tolerance is not None  # the caller checked
    if _outside(lufs, target, tolerance):
        rules.fail(
            "loudness",
            s,
            f"{s.label} integrated loudness {lufs:.1f} LUFS is outside "
            f"{target:.1f} ± {tolerance:.1f} LU",
            _gain_advice(s.file.label, lufs, target),
            lufs,
        )


def _length_rule(rules: _Rules, files: list[FileReport], mixes: list[FileReport]) -> None:
    lengths = {f.length_samples for f in files}
    if len(lengths) <= 1:
        return
    ref = mixes[0].length_samples if mixes else max(lengths)
    for f in files:
        if f.length_samples != ref:
            rules.fail(
                "length",
                f,
                f"{f.label} is {f.length_samples} samples long, the mix "
                f"{ref} ({f.length_samples - ref:+d} samples)",
                f"re-export {f.label} from the same start to the same end as the mix",
                float(f.length_samples - ref),
            )


def _dynamics_rule(rules: _Rules, files: list[FileReport], nulls: list[NullResult]) -> None:
    for null in nulls:
        if not null.decides_verdict:
            continue
        for d in null.diagnoses:
            if d.code == "null.master_dynamics":
                target = next((f for f in files if f.label == null.reference), None)
                rules.fail(
                    "master_dynamics",
                    target,
                    f"master-bus dynamics processing detected on {null.reference}",
                    "bypass limiters/compressors on the master bus before printing stems and mix",
                    d.value,
                )
