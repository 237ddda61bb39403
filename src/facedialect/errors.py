"""Exceptions that carry a message meant for the user (what, where, and what to do)."""


class FacedialectError(Exception):
    """Base class: the CLI prints these as a one-line error, never a traceback."""


class StudyFileError(FacedialectError):
    """The study file is invalid (wrong key, wrong type, missing path)."""


class InputError(FacedialectError):
    """A user input (folder, manifest, image) cannot be used as given."""


class ImageReadError(InputError):
    """An image file cannot be decoded (corrupt, truncated, not an image)."""


class RunLockedError(FacedialectError):
    """Another process is writing the same run directory."""


class OutputWriteError(FacedialectError, OSError):
    """A file of a run directory, the cache or another output cannot be written.

    The message names the path, why (permission denied, read-only, disk full) and what to
    do; ``errno`` is that of the operating system's error. Also an :class:`OSError`, so
    code that handles failed writes as such keeps working.
    """


class DamagedFileError(InputError):
    """A file this package wrote (cache entry, heads, checkpoint, manifest) is damaged."""


class FacedialectWarning(UserWarning):
    """Base class of this package's warnings: the CLI prints them as one ``warning:`` line."""


class DamagedFileWarning(FacedialectWarning):
    """A damaged cache entry, heads file, checkpoint or manifest was found and is rebuilt."""


class ReportWarning(FacedialectWarning):
    """A figure or section of the report could not be drawn; the report notes it and goes on."""
