"""The one root exception type of stemprint and its families.

Every error a user can cause carries what went wrong, where (file, field) and how to fix it, so the
CLI can print one clear message instead of a traceback. The CLI maps the families to exit codes:

========================  =========  =====================================================
exception                 exit code  meaning
========================  =========  =====================================================
``VerificationFailed``    1          a check ran and failed (null test, delivery profile)
``InputError``            2          bad input or usage: session, audio file, option
``StemprintError`` other  3          internal error (a bug, or a plug-in misbehaving)
========================  =========  =====================================================
"""

from __future__ import annotations


class StemprintError(Exception):
    """Root of every error stemprint raises on purpose.

    Parameters
    ----------
    message
        What went wrong, in words a user understands.
    file
        The file the error is about (session, audio, output), if any.
    field
        The dotted location inside that file (``tracks[1].clips[0].start_seconds``), if any.
    fix
        One sentence on how to fix it, if known.
    line
        1-based line number inside ``file``, if known.
    """

    exit_code = 3

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        field: str | None = None,
        fix: str | None = None,
        line: int | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.field = field
        self.fix = fix
        self.line = line
        super().__init__(self.format())

    def format(self) -> str:
        """The message the CLI prints: ``file:line: field: message`` and a ``fix:`` line."""
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "")
        if self.field:
            where = f"{where}: {self.field}" if where else self.field
        text = f"{where}: {self.message}" if where else self.message
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text


class InputError(StemprintError):
    """Bad input: a session, an audio file, a plug-in or a command-line option (exit code 2)."""

    exit_code = 2


class SessionError(InputError):
    """The session file is unreadable, invalid, or describes an impossible routing."""


class AudioFileError(InputError):
    """An audio file is missing, unreadable, corrupt, or does not fit the clip that uses it."""


class ProjectError(InputError):
    """A DAW project (DAWproject, REAPER ``.rpp``) is unreadable, corrupt, hostile, or its
    import changes the audio under ``--strict``."""


class RenderError(StemprintError):
    """The render could not finish (a NaN or Inf from a route, an output that cannot be written)."""


class CacheEntryDamaged(RenderError):
    """A render-cache entry failed its check while it was read (``render.cache``): it was
    deleted and none of its samples was used; rendering again renders its route anew
    (``render_package`` does, once, by itself)."""


class VerificationFailed(StemprintError):
    """A verification ran and the package failed it (exit code 1)."""

    exit_code = 1
