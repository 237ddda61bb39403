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
