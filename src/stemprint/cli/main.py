"""The ``stemprint`` command line: a thin layer over the library.

Exit codes (product contract):

==  ===============================================================
0   success
1   a check failed (verification)
2   bad input or usage; the message on stderr names the file and field
3   internal error
==  ===============================================================

The commands import what they use inside them, and ``import stemprint`` loads none of the API
until it is used (``stemprint.__getattr__``), so ``--help`` needs typer alone (~0.2 s).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from stemprint._version import __version__

app = typer.Typer(
    name="stemprint",
    help="Render a session's mix and every stem in one sample-accurate pass, and prove it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])


class BitDepthChoice(StrEnum):
    b16 = "16"
    b24 = "24"
    b32 = "32"
    b32f = "32f"


class PresetChoice(StrEnum):
    mastering = "mastering"
    mixing = "mixing"
    remix = "remix"
    sync = "sync"
    multitrack = "multitrack"
    performance = "performance"
    dme = "dme"


class FormatChoice(StrEnum):
    wav = "wav"
    aiff = "aiff"
    flac = "flac"


class DitherChoice(StrEnum):
    auto = "auto"
    none = "none"
    tpdf = "tpdf"


class PremasterChoice(StrEnum):
    auto = "auto"
    always = "always"
    never = "never"


def _stderr(message: str, style: str | None = None) -> None:
    from rich.console import Console

    Console(stderr=True, highlight=False, soft_wrap=True).print(message, style=style, markup=False)


def handled(func: F) -> F:
    """Turn stemprint errors into one message and the contract's exit code; never a traceback
    for bad input."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from stemprint.errors import StemprintError

        try:
            return func(*args, **kwargs)
        except StemprintError as exc:
            _stderr(f"error: {exc.format()}", style="red")
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            _stderr("interrupted: nothing was left half-written", style="red")
            raise typer.Exit(130) from None
        except typer.Exit:
            raise
        except Exception as exc:  # noqa: BLE001 - the last line of defence
            _stderr("internal error (a bug in stemprint; please report it with this trace):")
            _stderr("".join(traceback.format_exception(exc)))
            raise typer.Exit(3) from None

    return wrapper  # type: ignore[return-value]


def _db_text(value: float | None) -> str:
    return "-inf" if value is None else f"{value:.1f}"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"stemprint {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print version.")
    ] = False,
) -> None:
    """stemprint: headless mixing engine and stem-delivery toolkit."""


def _print_warnings(warnings: Sequence[str], quiet: bool) -> None:
    if not quiet:
        for warning in warnings:
            _stderr(f"warning: {warning}", style="yellow")


@contextlib.contextmanager
def _opened(
    session: Path,
    media_root: Path | None = None,
    plugin_map: Path | None = None,
    strict: bool = False,
    quiet: bool = False,
) -> Iterator[Any]:
    """``(loaded, import report or None)``: a session file, or a DAW project imported for this
    command (its summary on stderr)."""
    from stemprint.importers import is_project

    if not is_project(session):
        from stemprint.model.load import load_session

        yield load_session(session), None
        return
    from stemprint.importers import load_plugin_map, open_project

    plugins = load_plugin_map(plugin_map)
    with open_project(session, media_root=media_root, plugin_map=plugins, strict=strict) as (
        loaded,
        report,
    ):
        if not quiet:
            for line in report.summary_lines():
                _stderr(f"import: {line}")
        yield loaded, report


SESSION_HELP = "Session file (YAML), or a DAW project (.dawproject, REAPER .rpp) to import."
MediaRootOption = Annotated[
    Path | None,
    typer.Option("--media-root", help="Import: search this folder by file name for media."),
]
PluginMapOption = Annotated[
    Path | None,
    typer.Option(
        "--plugin-map", help="Import: YAML of plug-in ID or name → .vst3 file to host it with."
    ),
]
StrictOption = Annotated[
    bool,
    typer.Option("--strict", help="Import: fail when anything changes the audio (exit 2)."),
]


def _render_with_progress(
    loaded: Any, out: Path, options: Any, quiet: bool
) -> tuple[Any, float, float]:
    """Compile, render with a progress bar (on a terminal), and return (result, seconds, rtf)."""
    from stemprint.export.package import render_package, session_inputs
    from stemprint.export.publish import check_output_dir
    from stemprint.graph.compile import compile_session
    from stemprint.render.allocator import tune_allocator

    check_output_dir(out, options.force, session_inputs(loaded))
    tune_allocator()  # large temporaries from the heap, not fresh mmap pages (render only)
    graph = compile_session(loaded, allow_plugins=options.allow_plugins)
    started = time.perf_counter()
    show = not quiet and sys.stderr.isatty()
    if show:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        rate = graph.sample_rate

        with Progress(
            TextColumn("rendering"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[rtf]}"),
            TimeRemainingColumn(),
            transient=True,
        ) as bar:
            task = bar.add_task("render", total=1, rtf="")

            def progress(done: int, total: int) -> None:
                elapsed = time.perf_counter() - started
                rtf = (done / rate) / elapsed if elapsed > 0 else 0.0
                bar.update(task, completed=done, total=total, rtf=f"{rtf:.0f}x real time")

            result = render_package(loaded, out, options, progress, graph=graph)
    else:
        result = render_package(loaded, out, options, graph=graph)
    seconds = time.perf_counter() - started
    audio_seconds = result.manifest["length_samples"] / result.manifest["sample_rate"]
    rtf = audio_seconds / seconds if seconds > 0 else float("inf")
    _print_warnings(result.warnings, quiet)
    return result, seconds, rtf


def _check_verification(manifest: dict[str, Any]) -> None:
    """Exit 1 when the package's own verification failed (the package is kept)."""
    from stemprint.errors import VerificationFailed

    verification = manifest.get("verification")
    if verification and not verification["passed"]:
        raise VerificationFailed(
            "the package was written but failed its verification: "
            + "; ".join(verification["errors"]),
            file=verification["path"],
            fix="see verification.json in the package, or run `stemprint verify` on it",
        )


def _summary(result: Any, seconds: float, rtf: float) -> None:
    manifest = result.manifest
    typer.echo(
        f"rendered {manifest['length_seconds']:.2f} s in {seconds:.2f} s "
        f"({rtf:.0f}x real time): {len(manifest['files'])} files → {result.out_dir}"
    )
    for entry in manifest["files"]:
        if "peak_dbfs" not in entry:  # a deliverable (NI Stems, preview …): no level of its own
            typer.echo(f"  {entry['path']}")
            continue
        peak = entry["peak_dbfs"]
        peak_text = "  silent" if peak is None else f"{peak:8.2f} dBFS"
        clipped = f"  {entry['clipped_samples']} clipped" if entry["clipped_samples"] else ""
        typer.echo(f"  {entry['path']:<40} {peak_text}{clipped}")
    verification = manifest.get("verification")
    if verification:
        verdict = "PASS" if verification["passed"] else "FAIL"
        residual = verification["null_residual_peak_dbfs"]
        against = verification["null_reference"]
        null_text = (
            f": stems vs {against} residual peak {residual:.1f} dBFS"
            if residual is not None
            else ""
        )
        typer.echo(f"verification {verdict}{null_text} (verification.json)")


@app.command()
@handled
def render(
    session: Annotated[Path, typer.Argument(help=SESSION_HELP)],
    output: Annotated[Path, typer.Option("-o", "--output", help="Package folder to write.")],
    bit_depth: Annotated[
        BitDepthChoice | None,
        typer.Option(
            "--bit-depth",
            help="16, 24, 32 (integer) or 32f (float); default: the session's delivery, or 24.",
        ),
    ] = None,
    preset: Annotated[
        PresetChoice | None,
        typer.Option("--preset", help="Delivery preset (overrides the session's)."),
    ] = None,
    file_format: Annotated[
        FormatChoice | None,
        typer.Option("--format", help="wav, aiff or flac; default: the session's, or wav."),
    ] = None,
    sample_rate: Annotated[
        int | None,
        typer.Option("--sample-rate", min=8000, help="Deliver at this rate (soxr VHQ)."),
    ] = None,
    dither: Annotated[
        DitherChoice, typer.Option(help="auto: TPDF when writing 16-bit; none; tpdf.")
    ] = DitherChoice.auto,
    premaster: Annotated[
        PremasterChoice,
        typer.Option(
            help="Write premaster.wav (the master input): auto = when the master bus processes."
        ),
    ] = PremasterChoice.auto,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing OUTPUT.")] = False,
    block_size: Annotated[
        int | None,
        typer.Option(
            "--block-size",
            help="Render block in samples (speed only; default: 16384 for up to 32 tracks, "
            "smaller as tracks grow, 2048 from 100 tracks).",
        ),
    ] = None,
    stems: Annotated[
        bool, typer.Option("--stems/--no-stems", help="Write the stems (default) or the mix only.")
    ] = True,
    region: Annotated[
        str | None, typer.Option("--region", help="Render only this region of the session.")
    ] = None,
    all_regions: Annotated[
        bool,
        typer.Option("--all-regions", help="Render every region into OUTPUT/<region>/."),
    ] = False,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify/--no-verify",
            help="Verify the package (null test, levels) and store verification.json (default).",
        ),
    ] = True,
    threads: Annotated[
        int | None,
        typer.Option("--threads", min=1, help="Worker threads (default: one per CPU; speed only)."),
    ] = None,
    allow_plugins: Annotated[
        bool,
        typer.Option(
            "--allow-plugins", help="Allow the session to host VST3/AU plug-ins (native code)."
        ),
    ] = False,
    cache: Annotated[
        Path | None,
        typer.Option(
            "--cache",
            help="Reuse what this folder holds from earlier renders (routes after their "
            "inserts, partial sums) and store what is rendered; the output is identical "
            "without it. auto: .stemprint-cache beside OUTPUT.",
        ),
    ] = None,
    cache_size: Annotated[
        float | None,
        typer.Option(
            "--cache-size", min=0.0, help="Size cap of the --cache folder in GB (default 20)."
        ),
    ] = None,
    write_report: Annotated[
        bool,
        typer.Option(
            "--report/--no-report",
            help="Write report.html: plots, routing, findings and a stem player (default).",
        ),
    ] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors.")] = False,
    media_root: MediaRootOption = None,
    plugin_map: PluginMapOption = None,
    strict: StrictOption = False,
) -> None:
    """Render the mix and every stem of SESSION in one pass into the folder OUTPUT."""
    from stemprint.export.package import RenderOptions

    options = RenderOptions(
        bit_depth=bit_depth.value if bit_depth else None,
        preset=preset.value if preset else None,
        format=file_format.value if file_format else None,
        sample_rate=sample_rate,
        dither=dither.value,
        block_size=block_size,
        threads=threads,
        stems=stems,
        verify=verify,
        region=region,
        force=force,
        allow_plugins=allow_plugins,
        premaster=premaster.value,
        cache_dir=cache,
        cache_max_bytes=round(cache_size * 1024**3) if cache_size is not None else None,
        report=write_report,
    )
    with _opened(session, media_root, plugin_map, strict, quiet) as (loaded, report):
        if report is not None:
            options = dataclasses.replace(options, import_report=report.to_dict())
        _render_loaded(loaded, output, options, all_regions, quiet)


def _render_loaded(loaded: Any, output: Path, options: Any, all_regions: bool, quiet: bool) -> None:
    if all_regions:
        from stemprint.export.package import render_regions
        from stemprint.render.allocator import tune_allocator

        tune_allocator()
        started = time.perf_counter()
        results = render_regions(loaded, output, options)
        seconds = time.perf_counter() - started
        for result in results:
            _print_warnings(result.warnings, quiet)
            if not quiet:
                _summary(result, seconds, 0.0)
        for result in results:
            _check_verification(result.manifest)
        return
    result, seconds, rtf = _render_with_progress(loaded, output, options, quiet)
    if not quiet:
        _summary(result, seconds, rtf)
    _check_verification(result.manifest)


@app.command()
@handled
def verify(
    inputs: Annotated[
        list[Path],
        typer.Argument(help="A package folder, or stem files (WAV, AIFF, FLAC)."),
    ],
    mix: Annotated[
        Path | None, typer.Option("--mix", help="The reference mix (default: from the package).")
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            help="Delivery profile: stem-mastering, ebu-r128, streaming, atmos-music, "
            "atsc-a85, broadcast-dme, netflix-pm (the printmaster), netflix-me (the M&E), "
            "ni-stem (a .stem.mp4, by Mixxx's and NI's rules).",
        ),
    ] = None,
    threshold: Annotated[
        float, typer.Option("--threshold", help="Null-test pass threshold, residual peak dBFS.")
    ] = -60.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    fix: Annotated[
        Path | None,
        typer.Option(
            "--fix",
            help="Write a corrected copy to this new folder: exactly the corrections the "
            "report states (time offsets, polarity, gains; every stem to the mix length), kept "
            "only if it nulls better; refused (exit 2) when the diagnosis is ambiguous. The "
            "originals are never touched.",
        ),
    ] = None,
    fold_down: Annotated[
        bool,
        typer.Option(
            "--fold-down",
            help="Also measure the stereo fold-down (ITU-R BS.775-3 Lo/Ro) of every 5.1/7.1 "
            "file: loudness and true peak, checked by the profile's level rules.",
        ),
    ] = False,
) -> None:
    """Verify a stem package from any DAW: null test with diagnosis, levels, delivery profile.

    Exit code 0 when it passes, 1 when it fails, 2 when the input is unusable.
    """
    import json

    from rich.console import Console

    from stemprint.analysis import print_report, repair_package, verify_package
    from stemprint.errors import VerificationFailed

    if profile == "ni-stem":  # a .stem.mp4 (or a folder of them): Mixxx's and NI's rules
        from stemprint.analysis.ni_stem_check import verify_ni_stem_files

        verify_ni_stem_files(inputs, as_json=as_json)
        return
    report = verify_package(
        inputs, mix=mix, profile=profile, null_threshold_dbfs=threshold, fold_down=fold_down
    )
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        print_report(report, Console(highlight=False, width=max(Console().width, 120)))
    if fix is not None:
        written = repair_package(report, fix, mix=mix)
        proof = json.loads((written / "manifest.json").read_text(encoding="utf-8"))
        before = proof["null_before"]["residual_peak_dbfs"]
        after = proof["null_after"]["residual_peak_dbfs"]
        _stderr(
            f"corrected copy written to {written}: residual peak "
            f"{_db_text(before)} -> {_db_text(after)} dBFS"
        )
    if not report.passed:
        raise VerificationFailed("the package failed verification (see the report above)")


@app.command()
@handled
def validate(
    session: Annotated[Path, typer.Argument(help=SESSION_HELP)],
    allow_plugins: Annotated[bool, typer.Option("--allow-plugins")] = False,
    measure_latency: Annotated[
        bool,
        typer.Option(
            "--measure-latency",
            help="Measure every insert chain's real latency (noise burst, cross-correlation) and "
            "warn where it differs from the reported or declared one.",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
    media_root: MediaRootOption = None,
    plugin_map: PluginMapOption = None,
    strict: StrictOption = False,
) -> None:
    """Check SESSION (fields, routing, audio files, inserts) without rendering."""
    with _opened(session, media_root, plugin_map, strict, quiet) as (loaded, _report):
        _validate_loaded(session, loaded, allow_plugins, measure_latency, quiet)


def _validate_loaded(
    session: Path, loaded: Any, allow_plugins: bool, measure_latency: bool, quiet: bool
) -> None:
    from stemprint.graph.compile import compile_session

    graph = compile_session(loaded, allow_plugins=allow_plugins)
    _print_warnings(graph.warnings, quiet)
    if measure_latency:
        from stemprint.graph.latency import latency_report

        for line in latency_report(graph):
            if "differs" in line:
                _print_warnings([line], quiet)
            elif not quiet:
                typer.echo(line)
    if not quiet:
        rate = graph.sample_rate
        typer.echo(
            f"{session}: valid. {len(loaded.session.tracks)} tracks, "
            f"{len(loaded.session.buses)} buses, {len(graph.stems)} stems "
            f"({', '.join(s.name for s in graph.stems)}), "
            f"{graph.length_samples} samples ({graph.length_samples / rate:.3f} s at {rate} Hz)"
        )


@app.command("import")
@handled
def import_(
    project: Annotated[Path, typer.Argument(help="A .dawproject or REAPER .rpp project.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Session file (YAML) to write.")],
    report: Annotated[
        Path | None, typer.Option("--report", help="Also write the import report (JSON).")
    ] = None,
    media_root: MediaRootOption = None,
    plugin_map: PluginMapOption = None,
    strict: StrictOption = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a session an earlier import wrote.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Import a DAW project as a stemprint session, with a report of what could not come across.

    Media embedded in a DAWproject are extracted beside the session, into SESSION.media/.
    """
    from stemprint.importers import check_strict, load_plugin_map, read_project, validate_imported
    from stemprint.importers.session_file import check_targets, publish, staging, write_report

    check_targets(output, force)
    plugins = load_plugin_map(plugin_map)
    with staging(output) as staged:
        data, found = read_project(
            project, extract_dir=staged, media_root=media_root, plugin_map=plugins
        )
        validate_imported(data, project)
        if strict:
            if report is not None:
                write_report(found, report)
            check_strict(found)
        written = publish(data, found, output, staged, report)
    if not quiet:
        for line in found.summary_lines():
            _stderr(f"import: {line}")
        changed = len(found.changes_audio())
        typer.echo(
            f"imported {project} → {written}"
            + (
                f" ({changed} finding{'s' if changed != 1 else ''} change"
                f"{'' if changed != 1 else 's'} the audio; see --report)"
                if changed
                else ""
            )
        )


@app.command()
@handled
def demo(
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Folder for the demo session and its render.")
    ] = Path("stemprint-demo"),
    film: Annotated[
        bool,
        typer.Option(
            "--film",
            help="The film demo instead: a 5.1 scene delivered as DX/MX/FX stems, M&E and "
            "printmaster (dme preset, Broadcast WAV timecode 01:00:00:00 at 23.976).",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Synthesize the bundled demo song, write its session and render it (OUTPUT/package)."""
    from stemprint.demo import write_demo_session
    from stemprint.demo_film import write_film_session
    from stemprint.errors import InputError
    from stemprint.export.package import RenderOptions
    from stemprint.model.load import load_session

    marker = output / ".stemprint-demo"
    if output.exists() and any(output.iterdir()) and not marker.exists():
        raise InputError(
            f"{output} exists and is not a stemprint demo folder",
            field="-o/--output",
            fix="choose an empty or new folder",
        )
    output.mkdir(parents=True, exist_ok=True)
    marker.write_text("made by `stemprint demo`; safe to delete\n", "utf-8")
    session_path = (write_film_session if film else write_demo_session)(output)
    loaded = load_session(session_path)
    result, seconds, rtf = _render_with_progress(
        loaded, output / "package", RenderOptions(force=True), quiet
    )
    if not quiet:
        typer.echo(f"demo session: {session_path}")
        _summary(result, seconds, rtf)
    _check_verification(result.manifest)


@app.command()
@handled
def pack(
    package: Annotated[Path, typer.Argument(help="A package folder.")],
    as_zip: Annotated[
        bool, typer.Option("--zip", help="Write PACKAGE.zip beside the package (the default).")
    ] = True,
    bagit: Annotated[
        bool, typer.Option("--bagit", help="Lay the ZIP out as a BagIt bag (RFC 8493).")
    ] = False,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="The ZIP to write.")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an earlier `stemprint pack` ZIP.")
    ] = False,
) -> None:
    """Pack a package into a deterministic ZIP with checksums.sha256 (sha256sum -c format)."""
    from stemprint.export.archive import pack_package

    del as_zip  # ZIP is the one archive format
    written = pack_package(package, out=output, bagit=bagit, force=force)
    typer.echo(f"packed {package} → {written}")


@app.command()
@handled
def schema(
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write to a file instead of stdout.")
    ] = None,
) -> None:
    """Print the JSON Schema of the session format (for editors: validation and completion)."""
    import json

    from stemprint.model.schema import session_json_schema

    text = json.dumps(session_json_schema(), indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


@app.command()
@handled
def batch(
    sessions: Annotated[
        list[Path], typer.Argument(help="Session files (YAML) or DAW projects, one package each.")
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Folder for the packages and batch.json.")
    ],
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="Address of a running Dask scheduler (tcp://HOST:PORT); default: a local "
            "cluster of this machine's cores.",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", min=1, help="Local cluster: worker processes (default: one per core)."
        ),
    ] = None,
    all_regions: Annotated[
        bool,
        typer.Option("--all-regions", help="One task per region: OUTPUT/<session>/<region>/."),
    ] = False,
    preset: Annotated[
        PresetChoice | None,
        typer.Option("--preset", help="Delivery preset (overrides each session's)."),
    ] = None,
    bit_depth: Annotated[
        BitDepthChoice | None,
        typer.Option("--bit-depth", help="16, 24, 32 or 32f; default: each session's, or 24."),
    ] = None,
    file_format: Annotated[
        FormatChoice | None,
        typer.Option("--format", help="wav, aiff or flac; default: each session's, or wav."),
    ] = None,
    sample_rate: Annotated[
        int | None,
        typer.Option("--sample-rate", min=8000, help="Deliver at this rate (soxr VHQ)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace existing packages under OUTPUT.")
    ] = False,
    allow_plugins: Annotated[
        bool,
        typer.Option(
            "--allow-plugins", help="Allow the sessions to host VST3/AU plug-ins (native code)."
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors.")] = False,
    media_root: MediaRootOption = None,
    plugin_map: PluginMapOption = None,
    strict: StrictOption = False,
) -> None:
    """Render many sessions into OUTPUT, one package each, and OUTPUT/batch.json.

    Exit code: 0 when every task is ok, 1 when a verification failed, 2 when an input was bad.
    """
    from stemprint.batch import render_many
    from stemprint.export.package import RenderOptions
    from stemprint.render.allocator import tune_allocator

    tune_allocator()  # a serial batch renders in this process
    options = RenderOptions(
        bit_depth=bit_depth.value if bit_depth else None,
        preset=preset.value if preset else None,
        format=file_format.value if file_format else None,
        sample_rate=sample_rate,
        allow_plugins=allow_plugins,
    )
    with _batch_progress(quiet) as progress:
        result = render_many(
            sessions, output, options, all_regions=all_regions, scheduler=scheduler,
            workers=workers, force=force, media_root=media_root, plugin_map=plugin_map,
            strict=strict, progress=progress,
        )  # fmt: skip
    if not quiet:
        _batch_summary(result)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


@contextlib.contextmanager
def _batch_progress(quiet: bool) -> Iterator[Callable[[Any], None]]:
    """A progress callback for ``render_many``: a bar of tasks and audio hours on a terminal;
    notes (rendering serially…) and failed tasks on stderr as they come."""

    def report(event: Any) -> None:
        record = event.record
        if record is not None and record["status"] != "ok":
            _stderr(f"failed (exit {record['exit_code']}): {record['session']}: "
                    f"{record['message']}", style="red")  # fmt: skip

    if quiet or not sys.stderr.isatty():
        yield report
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("batch"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} tasks"),
        TextColumn("{task.fields[hours]}"),
        TimeElapsedColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task("batch", total=None, hours="")

        def with_bar(event: Any) -> None:
            seconds = round(event.audio_seconds)
            hours = f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d} of audio"
            bar.update(task, completed=event.done, total=event.total, hours=hours)
            report(event)

        yield with_bar


def _batch_summary(result: Any) -> None:
    """One line per task, then the totals."""
    for note in result.notes:
        _stderr(f"note: {note}", style="yellow")
    for record in result.tasks:
        verdict = record["verdict"] or "-"
        package = record["package"] or f"({record['session']}: no package)"
        typer.echo(
            f"  {record['status']:<6} {record['exit_code']}  {package:<40} "
            f"{record['audio_seconds']:8.2f} s audio {record['seconds']:7.2f} s  {verdict}"
        )
    ok = sum(1 for r in result.tasks if r["status"] == "ok")
    workers = f"{result.workers} worker{'s' * (result.workers != 1)}"
    where = {"local": f"a local cluster of {workers}", "serial": "this process"}
    typer.echo(
        f"batch: {ok}/{len(result.tasks)} tasks ok on "
        f"{where.get(result.runner, f'the scheduler ({workers})')} → {result.summary_path}"
    )


@app.command()
@handled
def new(
    template: Annotated[
        str,
        typer.Option(
            "--template", "-t", help="Bundled template: band, electronic, film-dme, podcast."
        ),
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Session file to create (never overwritten).")
    ],
    audio: Annotated[
        Path | None,
        typer.Option("--audio", help="Folder of audio files to assign to tracks by file name."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors.")] = False,
) -> None:
    """Start a session from a bundled template, the audio of a folder assigned to tracks."""
    from stemprint.templates import new_session

    made = new_session(template, output, audio)
    if quiet:
        return
    for item in made.assigned:
        typer.echo(f"  {item.file.name} → track {item.track!r} → {item.output}")
    for unassigned in made.unassigned:
        _stderr(f"warning: not assigned: {unassigned.file} ({unassigned.reason})", style="yellow")
    if made.unassigned:
        _stderr("  add those under `tracks:` with the `output:` bus they belong to")
    left = len(made.unassigned)
    typer.echo(
        f"wrote {made.path} from template {made.template!r}: {len(made.assigned)} tracks"
        + (f", {left} file{'s' * (left != 1)} not assigned" if left else "")
        + f"; check it with `stemprint validate {made.path}`"
    )


class AudioChoice(StrEnum):
    embed = "embed"
    lossless = "lossless"
    link = "link"
    none = "none"


@app.command()
@handled
def report(
    package: Annotated[
        Path, typer.Argument(help="A package folder (or a ZIP made by `stemprint pack`).")
    ],
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="The page to write (default: PACKAGE/report.html)."),
    ] = None,
    audio: Annotated[
        AudioChoice,
        typer.Option(
            "--audio",
            help="embed: the stems as lossless FLAC in the page (Opus or link past 150 MB); "
            "lossless: FLAC, or link past 150 MB (what render writes); "
            "link: the package's own files; none: no player.",
        ),
    ] = AudioChoice.embed,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors.")] = False,
) -> None:
    """Write one self-contained HTML page about PACKAGE: every file's plots and levels, the
    null tests, the routing, the findings and a stem player (works offline, from file://)."""
    from stemprint.report import write_package_report

    started = time.perf_counter()
    written = write_package_report(package, None, None, out=output, audio=audio.value)
    if not quiet:
        size = written.stat().st_size / 1e6
        seconds = time.perf_counter() - started
        typer.echo(f"report: {written} ({size:.1f} MB, {seconds:.1f} s)")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    finally:
        # Everything alive now lives until exit: keep it out of the collection the interpreter
        # runs while it shuts down (0.15-0.2 s after a render: pedalboard, numpy, the graph).
        gc.freeze()


if __name__ == "__main__":
    main()
