"""Downloadable face assets: where the ICT Face Model Light is looked for, and its install.

The 3-D face model (``faces.model3d``) is not shipped with the package. It is looked for,
in order, at an explicit path, under ``$FACEDIALECT_ASSETS``, in the shared cache
(``cache_root()/assets``) and, for development and CI, in ``../shared/assets`` beside
the repository. :func:`install_ict_facekit` copies a verified local copy into the cache.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from facedialect.errors import FacedialectError
from facedialect.imageio import file_sha256
from facedialect.store import atomic_write_bytes, cache_root

__all__ = [
    "ICT_FACEKIT_FILE",
    "ICT_FACEKIT_NAME",
    "ICT_FACEKIT_SHA256",
    "AssetMissingError",
    "candidate_paths",
    "find_ict_facekit",
    "install_ict_facekit",
]

#: Asset folder name (``facedialect assets install ict-facekit``).
ICT_FACEKIT_NAME: Final[str] = "ict-facekit"
#: File name of the converted model.
ICT_FACEKIT_FILE: Final[str] = "ict_facekit_light.npz"
#: sha256 of ``ict_facekit_light.npz`` (ICT-FaceKit commit da5f95a6, converted to one npz).
ICT_FACEKIT_SHA256: Final[str] = (
    "f7f6d7121821d6ba52573fd2ea0c3f7a9f0477e829de04b3cdf77344789989ee"
)

_HOW_TO_GET = (
    "get it with `facedialect assets install ict-facekit --from PATH` (PATH: a local "
    f"{ICT_FACEKIT_FILE}), or set FACEDIALECT_ASSETS to a folder holding "
    f"{ICT_FACEKIT_NAME}/{ICT_FACEKIT_FILE}"
)


class AssetMissingError(FacedialectError):
    """A downloadable asset (e.g. the 3-D face model) is not installed or is corrupt."""


def _repo_shared_assets() -> Path | None:
    """``../shared/assets`` beside the repository root (development/CI), when it exists."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file():
            cand = parent.parent / "shared" / "assets"
            return cand if cand.is_dir() else None
    return None


def candidate_paths(path: str | Path | None = None) -> list[Path]:
    """Return where the model file is looked for, in order of preference.

    Parameters
    ----------
    path : str or Path, optional
        An explicit file (or a folder holding ``ict_facekit_light.npz``); when given it
        is the only candidate.

    Returns
    -------
    list[Path]
        Candidate files (they need not exist).
    """
    if path is not None:
        p = Path(path).expanduser()
        return [p / ICT_FACEKIT_FILE if p.is_dir() else p]
    out: list[Path] = []
    env = os.environ.get("FACEDIALECT_ASSETS")
    if env:
        out.append(Path(env).expanduser() / ICT_FACEKIT_NAME / ICT_FACEKIT_FILE)
    out.append(cache_root() / "assets" / ICT_FACEKIT_NAME / ICT_FACEKIT_FILE)
    shared = _repo_shared_assets()
    if shared is not None:
        out.append(shared / ICT_FACEKIT_NAME / ICT_FACEKIT_FILE)
    return out


def find_ict_facekit(path: str | Path | None = None) -> Path:
    """Locate ``ict_facekit_light.npz``.

    Parameters
    ----------
    path : str or Path, optional
        Explicit file or folder; otherwise ``$FACEDIALECT_ASSETS/ict-facekit``, the cache
        (``cache_root()/assets/ict-facekit``) and ``../shared/assets/ict-facekit`` beside
        the repository are tried in this order.

    Returns
    -------
    Path
        The first existing candidate.

    Raises
    ------
    AssetMissingError
        When none exists; the message lists the places tried and how to install it.
    """
    cands = candidate_paths(path)
    for c in cands:
        if c.is_file():
            return c
    tried = "; ".join(str(c) for c in cands)
    raise AssetMissingError(
        f"the 3-D face model (ICT Face Model Light) is not installed (looked in: {tried}); "
        + _HOW_TO_GET
    )


def install_ict_facekit(from_path: str | Path | None, allow_download: bool = False,
                        cache_dir: str | Path | None = None) -> Path:
    """Install the ICT Face Model Light into the cache.

    Parameters
    ----------
    from_path : str or Path, optional
        A local ``ict_facekit_light.npz`` (or a folder holding it, with its LICENSE);
        its sha256 must equal :data:`ICT_FACEKIT_SHA256`.
    allow_download : bool
        Download from the public ICT-FaceKit repository and convert. Not implemented yet.
    cache_dir : str or Path, optional
        Cache root (default :func:`facedialect.store.cache_root`).

    Returns
    -------
    Path
        The installed file, ``<cache>/assets/ict-facekit/ict_facekit_light.npz``.

    Raises
    ------
    AssetMissingError
        When ``from_path`` does not exist or its checksum differs, or when no
        ``from_path`` is given (download-and-convert is not implemented yet).
    """
    if from_path is None:
        if allow_download:
            raise AssetMissingError(
                "downloading and converting ICT-FaceKit from its public repository is not "
                "implemented yet: use `facedialect assets install ict-facekit --from PATH` "
                f"with a local {ICT_FACEKIT_FILE}")
        raise AssetMissingError("no source given: " + _HOW_TO_GET)
    src = Path(from_path).expanduser()
    if src.is_dir():
        src = src / ICT_FACEKIT_FILE
    if not src.is_file():
        raise AssetMissingError(f"{src}: no such file; " + _HOW_TO_GET)
    digest = file_sha256(src)
    if digest != ICT_FACEKIT_SHA256:
        raise AssetMissingError(
            f"{src}: sha256 {digest} differs from the expected {ICT_FACEKIT_SHA256}; "
            "the file is corrupt or a different conversion")
    dest_dir = cache_root(cache_dir) / "assets" / ICT_FACEKIT_NAME
    dest = dest_dir / ICT_FACEKIT_FILE
    if not (dest.is_file() and file_sha256(dest) == digest):
        atomic_write_bytes(dest, src.read_bytes())
    for extra in ("LICENSE", "README.md"):
        side = src.parent / extra
        if side.is_file():
            atomic_write_bytes(dest_dir / extra, side.read_bytes())
    return dest
