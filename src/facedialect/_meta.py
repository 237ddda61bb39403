"""The package version (in its own module, so any layer may read it)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("facedialect")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
