"""facedialect: cross-cultural facial-expression research in one reproducible study."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("facedialect")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

from facedialect.vocab import EXPRESSIONS

__all__ = ["EXPRESSIONS", "__version__"]
