"""Delivery profiles: the thresholds a package must meet for one kind of delivery.

Loudness targets apply to the mix (a file verified alone is the mix); a package without a mix
gets a warning that its loudness target was not checked. Peak, format and length rules apply to
each file as stated per profile; "stem" rules apply to every stem role (``stem``,
``stem_dry``, ``stem_pre_fader``, ``stem_via_master``, ``stem_post_fader``). The sources of
every number are cited in ``docs/verification.md``.

=================  ==========================================================================
profile            rules
=================  ==========================================================================
``stem-mastering`` every file ≥ 24-bit (or float); all files the same length; stem sample
                   peaks ≤ −3 dBFS; no master-bus limiting detected by the null test
``ebu-r128``       mix −23.0 LUFS ± 1.0 LU; every file ≤ −1 dBTP (EBU R 128)
``streaming``      mix −14.0 LUFS ± 1.0 LU; every file ≤ −1 dBTP
``atmos-music``    mix ≤ −18 LKFS; every file ≤ −1 dBTP; 48 kHz, 24-bit PCM (Dolby)
``broadcast-dme``  48 kHz, 24-bit PCM; every file ≤ −2 dBTP; all files the same length;
                   mix loudness reported (Netflix sound deliverables)
=================  ==========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stemprint.errors import InputError

from .discovery import is_stem_role
from .findings import Finding
from .nulltest import NullResult
from .report import FileReport

#: Small allowance for floating-point rounding when comparing against limits (dB).
_EPS_DB = 1e-6


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
        Integrated loudness target of the mix and its tolerance (LUFS, LU).
    mix_max_lufs
        Upper limit of the mix's integrated loudness (LUFS/LKFS).
    max_true_peak_dbtp
        Highest true peak allowed in every file (dBTP).
    max_stem_sample_peak_dbfs
        Highest sample peak allowed in each stem (dBFS).
    min_bit_depth
        Lowest bit depth allowed in every file; floating point counts as enough.
    required_subtypes
        Encodings accepted (libsndfile names), e.g. ``("PCM_24",)``.
    sample_rates
        Sample rates accepted (Hz).
    equal_lengths
        All files must have the same length in samples.
    forbid_master_dynamics
        Fail when the null test detects master-bus dynamics processing.
    report_loudness
        Report the mix loudness as an info finding.
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
            title="EBU R 128 broadcast: mix −23 LUFS ± 1 LU, ≤ −1 dBTP",
            source="EBU R 128 (tech.ebu.ch/publications/r128), EBU Tech 3341/3342",
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
            name="broadcast-dme",
            title="dialogue/music/effects stems: 48 kHz 24-bit, ≤ −2 dBTP, equal lengths",
            source="Netflix Sound Mix Specifications & Best Practices",
            max_true_peak_dbtp=-2.0,
            required_subtypes=("PCM_24",),
            sample_rates=(48000,),
            equal_lengths=True,
            report_loudness=True,
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


class _Rules:
    """Collects the findings of one profile check and which files broke a rule."""

    def __init__(self, profile: DeliveryProfile) -> None:
        self.profile = profile
        self.tag = f"[{profile.name}]"
        self.out: list[Finding] = []
        self.failed: set[str] = set()

    def fail(
        self, code: str, f: FileReport | None, message: str, advice: str, value: float | None
    ) -> None:
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
        if f is not None:
            self.failed.add(f.label)


def check_profile(
    profile: DeliveryProfile, files: list[FileReport], nulls: list[NullResult]
) -> list[Finding]:
    """Check every file against ``profile``; sets ``FileReport.profile_passed``.

    Parameters
    ----------
    profile
        The delivery profile.
    files
        Per-file reports with levels measured.
    nulls
        Null results (for the master-dynamics rule).

    Returns
    -------
    list of Finding
        One error per broken rule and file, plus info findings.
    """
    rules = _Rules(profile)
    mixes = [f for f in files if f.role == "mix"]
    for f in files:
        _format_rules(rules, f)
        _peak_rules(rules, f)
    _loudness_rules(rules, mixes)
    if profile.equal_lengths:
        _length_rule(rules, files, mixes)
    if profile.forbid_master_dynamics:
        _dynamics_rule(rules, files, nulls)
    for f in files:
        f.profile_passed = f.label not in rules.failed
    return rules.out


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


def _peak_rules(rules: _Rules, f: FileReport) -> None:
    profile, lv = rules.profile, f.levels
    if lv is None:
        return
    limit = profile.max_true_peak_dbtp
    if limit is not None and lv.true_peak_dbtp > limit + _EPS_DB:
        rules.fail(
            "true_peak",
            f,
            f"{f.label} true peak {lv.true_peak_dbtp:.2f} dBTP is above {limit:.1f} dBTP",
            f"lower {f.label} by at least {lv.true_peak_dbtp - limit:.2f} dB or use a true-peak "
            "limiter",
            lv.true_peak_dbtp,
        )
    stem_limit = profile.max_stem_sample_peak_dbfs
    if (
        is_stem_role(f.role)
        and stem_limit is not None
        and lv.sample_peak_dbfs > stem_limit + _EPS_DB
    ):
        rules.fail(
            "stem_peak",
            f,
            f"{f.label} peaks at {lv.sample_peak_dbfs:.2f} dBFS, above {stem_limit:.1f} dBFS",
            f"leave headroom: print all stems {lv.sample_peak_dbfs - stem_limit:.2f} dB lower "
            "(same change on every stem keeps the balance)",
            lv.sample_peak_dbfs,
        )


def _loudness_rules(rules: _Rules, mixes: list[FileReport]) -> None:
    profile = rules.profile
    has_rule = (
        profile.mix_target_lufs is not None
        or profile.mix_max_lufs is not None
        or profile.report_loudness
    )
    if has_rule and not mixes:
        rules.out.append(
            Finding(
                "warning",
                "profile.no_mix",
                f"the package has no mix: its loudness target was not checked {rules.tag}",
                advice="add the mix (--mix FILE, or role mix in manifest.json), or verify the "
                "mix file alone",
            )
        )
    for f in mixes:
        if f.levels is not None:
            _mix_loudness(rules, f, f.levels.loudness_lufs, f.levels.loudness_range_lu)


def _mix_loudness(rules: _Rules, f: FileReport, lufs: float, lra: float) -> None:
    profile = rules.profile
    if profile.mix_target_lufs is not None and profile.mix_tolerance_lu is not None:
        off = lufs - profile.mix_target_lufs
        if not np.isfinite(lufs) or abs(off) > profile.mix_tolerance_lu + _EPS_DB:
            rules.fail(
                "loudness",
                f,
                f"{f.label} integrated loudness {lufs:.1f} LUFS is outside "
                f"{profile.mix_target_lufs:.1f} ± {profile.mix_tolerance_lu:.1f} LU",
                f"apply {-off:+.1f} dB of gain to {f.label} (check the true peak after)"
                if np.isfinite(off)
                else f"{f.label} is silent",
                lufs,
            )
    if (
        profile.mix_max_lufs is not None
        and np.isfinite(lufs)
        and lufs > profile.mix_max_lufs + _EPS_DB
    ):
        rules.fail(
            "loudness",
            f,
            f"{f.label} integrated loudness {lufs:.1f} LKFS is above "
            f"{profile.mix_max_lufs:.1f} LKFS",
            f"lower {f.label} by at least {lufs - profile.mix_max_lufs:.1f} dB",
            lufs,
        )
    if profile.report_loudness:
        rules.out.append(
            Finding(
                "info",
                "profile.loudness_report",
                f"{f.label} integrated loudness {lufs:.1f} LUFS (BS.1770-4, programme-gated), "
                f"loudness range {lra:.1f} LU {rules.tag}",
                file=f.label,
                value=lufs if np.isfinite(lufs) else None,
            )
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
