"""The shared caches of pre-processed faces and screening values, keyed by content hash."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from facedialect.errors import InputError
from facedialect.files import ArrayCache, cache_root


def preprocess_key(sha256: str, params_key: str) -> str:
    """Cache key of one image's pre-processing: content hash + parameters (+ version)."""
    return hashlib.sha256(f"{sha256}:{params_key}".encode()).hexdigest()


def preprocess_cache(configured: str | Path | None = None) -> ArrayCache:
    """The cache of pre-processed faces."""
    return ArrayCache(cache_root(configured) / "preprocess")


def load_face(key: str, cache: ArrayCache) -> np.ndarray:
    """Return the pre-processed face stored under ``key`` (224x224 uint8).

    Raises
    ------
    InputError
        When the cache has no sound face under that key (missing, or damaged: then with a
        :class:`~facedialect.errors.DamagedFileWarning`); ``facedialect preprocess``
        computes it again.
    """
    hit = cache.get(key, required=("image",))
    if hit is None:
        raise InputError(f"no pre-processed face cached under {key} ({cache.path(key)}): "
                         f"run `facedialect preprocess` again (it computes missing and "
                         f"damaged faces again)")
    return hit["image"]


def screening_cache(configured: str | Path | None = None) -> ArrayCache:
    """The cache of screening values (perceptual hashes, face sharpness)."""
    return ArrayCache(cache_root(configured) / "screening")

