"""Prove a stem package: levels, consistency, sum relations (null tests), delivery profiles.

Public API
----------
:func:`verify_package`
    Verify a package directory, a list of files or one file; returns a
    :class:`VerificationReport`.
:func:`discover_package`, :class:`StemPackage`, :class:`SumRelation`
    The files of a package, their roles, and what sums to what.
:func:`print_report`, :func:`write_report_json`
    Show a report on a rich console; write it as JSON atomically.
:func:`repair_package`
    Write a corrected copy of a package (exactly the corrections its report states, proved to
    null better) into a new directory.
:func:`measure_file`, :class:`LevelMeter`
    Streaming level meters (peak, true peak, loudness, LRA, DC, clipping, correlation).
:data:`PROFILES`, :func:`get_profile`
    Delivery profiles.

Every name above is imported on first use (module ``__getattr__``): a module of this package
(the live meters of a render, the metering helper process) loads only what it imports itself.
"""

import typing as _typing

from stemprint._lazy import lazy_names as _lazy_names

if _typing.TYPE_CHECKING:
    from .discovery import PackageFile, StemPackage, SumRelation, discover_package
    from .findings import Finding, Severity
    from .meters import ClippedRun, FileLevels, LevelMeter, TruePeakMeter, measure_file
    from .nulltest import DEFAULT_NULL_THRESHOLD_DBFS, NullResult, StemFit
    from .profiles import PROFILES, DeliveryProfile, check_profile, get_profile
    from .repair import repair_package
    from .report import FileReport, SumCheck, VerificationReport, print_report, write_report_json
    from .verify import verify_package

_LAZY = {
    "PackageFile": ".discovery",
    "StemPackage": ".discovery",
    "SumRelation": ".discovery",
    "discover_package": ".discovery",
    "Finding": ".findings",
    "Severity": ".findings",
    "ClippedRun": ".meters",
    "FileLevels": ".meters",
    "LevelMeter": ".meters",
    "TruePeakMeter": ".meters",
    "measure_file": ".meters",
    "DEFAULT_NULL_THRESHOLD_DBFS": ".nulltest",
    "NullResult": ".nulltest",
    "StemFit": ".nulltest",
    "PROFILES": ".profiles",
    "DeliveryProfile": ".profiles",
    "check_profile": ".profiles",
    "get_profile": ".profiles",
    "repair_package": ".repair",
    "FileReport": ".report",
    "SumCheck": ".report",
    "VerificationReport": ".report",
    "print_report": ".report",
    "write_report_json": ".report",
    "verify_package": ".verify",
}
"""The module (of this package) each name of ``__all__`` lives in, relative."""


# Hidden from type checkers, which see the imports above: a misspelt name stays an error.
if not _typing.TYPE_CHECKING:
    __getattr__, __dir__ = _lazy_names(globals(), _LAZY)


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
    "SumCheck",
    "SumRelation",
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
