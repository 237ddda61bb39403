"""The feature cache: every (image, variant) passes the frozen backbone exactly once.

Features are stored per image as a ``(50, feature_dim)`` float16 ``.npy`` file, keyed by
the pre-processed face (content hash + pre-processing parameters) and the backbone with
its weights, in the shared cache (``cache_root()/features/``). Files are written
atomically, so an interrupted extraction resumes at the first image without a file.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from facedialect.models.backbones import Backbone
from facedialect.models.runtime import tune_malloc
from facedialect.preprocess.augment import N_VARIANTS, make_variants
from facedialect.preprocess.params import PreprocessParams
from facedialect.store import atomic_write_bytes, cache_root

#: Bump when the way features are computed changes (invalidates cached features).
FEATURES_VERSION = "features-1"


class FeatureCache:
    """Per-image feature files of one backbone + weights.

    Parameters
    ----------
    backbone_tag : str
        ``"{backbone name}|{weights tag}"``.
    root : path, optional
        The shared cache folder (default :func:`~facedialect.store.cache_root`).
    """

    def __init__(self, backbone_tag: str, root: str | Path | None = None) -> None:
        self.backbone_tag = backbone_tag
        tag = hashlib.sha256(f"{backbone_tag}|{FEATURES_VERSION}".encode()).hexdigest()[:16]
        self.root = cache_root(root) / "features" / tag

    def path(self, face_key: str) -> Path:
        """File of one face's features."""
        return self.root / face_key[:2] / f"{face_key}.npy"

    def has(self, face_key: str) -> bool:
        """Whether the face's features are cached."""
        return self.path(face_key).exists()

    def put(self, face_key: str, feats: np.ndarray) -> None:
        """Store ``(50, D)`` features (float16), atomically."""
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(feats, dtype=np.float16))
        atomic_write_bytes(self.path(face_key), buf.getvalue())

    def load(self, face_keys: Sequence[str], variants: int = N_VARIANTS) -> np.ndarray:
        """Stack the features of ``face_keys``: ``(N, variants, D)`` float16."""
        first = np.load(self.path(face_keys[0]), mmap_mode="r")
        out = np.empty((len(face_keys), variants, first.shape[1]), dtype=np.float16)
        for i, k in enumerate(face_keys):
            out[i] = np.load(self.path(k), mmap_mode="r")[:variants]
        return out


def backbone_tag(backbone: Backbone) -> str:
    """Return the cache identity of a backbone: its name and weights."""
    return f"{backbone.spec.name}|{backbone.weights_tag}"


@torch.inference_mode()
def extract_features(
    face_keys: Sequence[str],
    load_face: Callable[[str], np.ndarray],
    backbone: Backbone,
    params: PreprocessParams,
    cache: FeatureCache,
    *,
    batch_size: int = 50,
    device: str | torch.device = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Compute and cache the features of every face not cached yet.

    Parameters
    ----------
    face_keys : sequence of str
        Pre-processing cache keys of the faces.
    load_face : callable
        Returns the pre-processed ``(size, size)`` uint8 face of a key.
    backbone : Backbone
        The frozen backbone (eval mode).
    params : PreprocessParams
        Pre-processing parameters (for the 50 variants).
    cache : FeatureCache
        Where features go.
    batch_size : int
        Images per forward pass (variants of several faces are batched together).
    device : str or torch.device
        Where the backbone runs.
    progress : callable, optional
        Called as ``progress(done, total)``.

    Returns
    -------
    int
        Number of faces whose features were computed (0 when all were cached).
    """
    todo = [k for k in dict.fromkeys(face_keys) if not cache.has(k)]
    if not todo:
        return 0
    tune_malloc()  # keeps activation buffers mapped: ~3x faster on CPU (docs/models.md)
    backbone = backbone.to(device, memory_format=torch.channels_last).eval()
    total = len(todo)
    if progress:
        progress(0, total)
    per = max(1, batch_size // N_VARIANTS)
    for start in range(0, total, per):
        keys = todo[start:start + per]
        stack = np.concatenate([make_variants(load_face(k), params) for k in keys])
        x = backbone.to_input(stack).to(device, memory_format=torch.channels_last)
        feats = torch.cat([backbone(x[i:i + batch_size])
                           for i in range(0, len(x), batch_size)])
        feats = feats.float().cpu().numpy().reshape(len(keys), N_VARIANTS, -1)
        for k, f in zip(keys, feats, strict=True):
            cache.put(k, f)
        if progress:
            progress(min(start + per, total), total)
    return total
