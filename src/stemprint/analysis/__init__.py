"""Prove a stem package: levels, consistency, null test with diagnosis, delivery profiles.

Public API
----------
:func:`verify_package`
    Verify a package directory or a list of stems against the mix; returns a
    :class:`VerificationReport`.
:func:`print_report`, :func:`write_report_json`
    Show a report on a rich console; write it as JSON atomically.
:func:`repair_package`
    Write a re-aligned, padded/trimmed copy of a package into a new directory.
:func:`measure_file`, :class:`LevelMeter`
    Streaming level meters (peak, true peak, loudness, LRA, DC, clipping, correlation).
:data:`PROFILES`, :func:`get_profile`
    Delivery profiles.
"""

from .findings import Finding, Severity
from .meters import ClippedRun, FileLevels, LevelMeter, TruePeakMeter, measure_file
from .nulltest import DEFAULT_NULL_THRESHOLD_DBFS, NullResult, StemFit
from .package import PackageFile, StemPackage, discover_package
from .profiles import PROFILES, DeliveryProfile, check_profile, get_profile
from .repair import repair_package
from .report import FileReport, VerificationReport, print_report, write_report_json
from .verify import verify_package

__all__ = [
    "DEFAULT_NULL_THRESHOLD_DBFS",
    "PROFILES",
    "ClippedRun",
    "DeliveryProfile",
    "FileLevels",
    "FileReport",
    "Finding",
    "LevelMeter",
    "NullResult",
    "PackageFile",
    "Severity",
    "StemFit",
    "StemPackage",
    "TruePeakMeter",
    "VerificationReport",
    "check_profile",
    "discover_package",
    "get_profile",
    "measure_file",
    "print_report",
    "repair_package",
    "verify_package",
    "write_report_json",
]
