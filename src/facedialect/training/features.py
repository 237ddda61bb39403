"""The feature cache: every (image, variant) passes the frozen backbone at most once.

Features are stored per image as a ``(50, feature_dim)`` float16 ``.npy`` file, keyed by
the pre-processed face (content hash + pre-processing parameters) and the backbone with
its weights (and the inference runtime when it is not PyTorch: ONNX Runtime's features
are equal within 1e-5 but are not mixed with PyTorch's), in the shared cache
(``cache_root()/features/``). Only the variants a stage needs are computed (a training
image needs the protocol's training variants, a test image its test variants too: all 50
in the paper protocol); rows not computed yet hold NaN and are filled in when a later
stage needs them.
Files are written atomically, so an interrupted extraction resumes at the first image
whose variants are missing. A damaged file (cut short, not a ``.npy`` file, a header
that does not describe ``(50, D)`` float16 rows filling the file) is reported with a
:class:`~facedialect.errors.DamagedFileWarning` and computed again; a bit flipped inside
the feature values is not detected (the ``.npy`` format has no checksum).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from facedialect.errors import DamagedFileWarning, InputError
from facedialect.files import (
    CACHE_HINT,
    NPY_MAGIC,
    atomic_write_bytes,
    cache_root,
    describe_damage,
)
from facedialect.models.backbones import Backbone
from facedialect.models.runtime import FeatureRunner, feature_runner
from facedialect.preprocess.augment import N_VARIANTS, variant
from facedialect.preprocess.params import PreprocessParams

#: Bump when the way features are computed changes (invalidates cached features).
FEATURES_VERSION = "features-1"
#: Every variant, 0..49.
ALL_VARIANTS: tuple[int, ...] = tuple(range(N_VARIANTS))


class FeatureCache:
    """Per-image feature files of one backbone + weights.

    Parameters
    ----------
    backbone_tag : str
        ``"{backbone name}|{weights tag}"``.
    root : path, optional
        The shared cache folder (default :func:`~facedialect.files.cache_root`).
    runtime : {"torch", "onnx"}
        The inference runtime that computes the features
        (:func:`~facedialect.models.runtime.resolve_runtime`); ``"torch"`` keeps the key
        of the caches written before runtimes existed.
    """

    def __init__(self, backbone_tag: str, root: str | Path | None = None,
                 runtime: str = "torch") -> None:
        self.backbone_tag = backbone_tag
        self.runtime = runtime
        self.cache_dir = cache_root(root)
        ident = f"{backbone_tag}|{FEATURES_VERSION}" + ("" if runtime == "torch"
                                                        else f"|{runtime}")
        tag = hashlib.sha256(ident.encode()).hexdigest()[:16]
        self.root = self.cache_dir / "features" / tag

    def path(self, face_key: str) -> Path:
        """File of one face's features."""
        return self.root / face_key[:2] / f"{face_key}.npy"

    def rows(self, face_key: str) -> np.ndarray | None:
        """The face's ``(50, D)`` float16 rows (memory-mapped; NaN rows not computed yet).

        Returns None when there is no file, or a damaged one (with a
        :class:`~facedialect.errors.DamagedFileWarning` naming it: it is computed again).
        """
        path = self.path(face_key)
        if not path.exists():
            return None
        try:
            size = path.stat().st_size
            rows = np.load(path, mmap_mode="r", allow_pickle=False) if size else None
            why = _damage(rows, size)
        except Exception as exc:  # noqa: BLE001 - whatever the damage, the file is unusable
            why = describe_damage(exc, path, NPY_MAGIC)
        if why:
            warnings.warn(f"damaged feature file {path} ({why}): computing it again",
                          DamagedFileWarning, stacklevel=3)
            return None
        return rows

    def missing(self, face_key: str, variants: Sequence[int] = ALL_VARIANTS) -> list[int]:
        """The variants of ``variants`` whose features are not cached yet (or damaged)."""
        rows = self.rows(face_key)
        if rows is None:
            return [int(v) for v in variants]
        idx = np.asarray(variants, dtype=np.int64)
        return idx[np.isnan(rows[idx, 0])].tolist()

    def has(self, face_key: str, variants: Sequence[int] = ALL_VARIANTS) -> bool:
        """Whether the features of the face's ``variants`` (default all 50) are cached."""
        return not self.missing(face_key, variants)

    def put(self, face_key: str, feats: np.ndarray,
            variants: Sequence[int] = ALL_VARIANTS) -> None:
        """Store the ``(len(variants), D)`` features of ``variants``, atomically.

        Rows of other variants already cached are kept; the rest hold NaN (all of them
        when the file was damaged).

        Raises
        ------
        OutputWriteError
            When the cache folder cannot be written (read-only, full disk).
        """
        feats = np.asarray(feats, dtype=np.float16)
        idx = np.asarray(variants, dtype=np.int64)
        if feats.shape[0] != len(idx):
            raise ValueError(f"{feats.shape[0]} feature rows for {len(idx)} variants")
        path = self.path(face_key)
        if len(idx) == N_VARIANTS and (idx == np.arange(N_VARIANTS)).all():
            rows = feats
        else:
            old = self.rows(face_key)
            rows = (np.array(old, dtype=np.float16) if old is not None
                    and old.shape[1] == feats.shape[1]
                    else np.full((N_VARIANTS, feats.shape[1]), np.nan, dtype=np.float16))
            del old  # the memory map, before the file is replaced
            rows[idx] = feats
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(rows))
        atomic_write_bytes(path, buf.getvalue(), hint=CACHE_HINT)

    def load(self, face_keys: Sequence[str],
             variants: int | Sequence[int] = N_VARIANTS) -> np.ndarray:
        """Stack the features of ``face_keys``: ``(N, V, D)`` float16.

        Parameters
        ----------
        face_keys : sequence of str
            The faces.
        variants : int or sequence of int
            The first ``variants`` variants, or these variant indices (in this order).

        Raises
        ------
        InputError
            When a face's feature file is missing or damaged (the features stage,
            ``facedialect features``, computes it again).
        RuntimeError
            When a requested variant of a face has not been computed.
        """
        idx = (np.arange(variants) if isinstance(variants, int)
               else np.asarray(variants, dtype=np.int64))
        out = np.empty((len(face_keys), len(idx), 0), dtype=np.float16)
        for i, k in enumerate(face_keys):
            rows = self.rows(k)
            if rows is None:
                raise InputError(f"the features of face {k} ({self.path(k)}) are missing or "
                                 f"damaged: run `facedialect features STUDY_FILE` (it computes "
                                 f"them again), then this command again")
            if i == 0:
                out = np.empty((len(face_keys), len(idx), rows.shape[1]), dtype=np.float16)
            out[i] = rows[idx]
            if np.isnan(out[i, :, 0]).any():
                raise RuntimeError(f"features of face {k} variants "
                                   f"{idx[np.isnan(out[i, :, 0])].tolist()} were not computed")
        return out


def _damage(rows: np.ndarray | None, size: int) -> str:
    """Why a feature file's array is not ``(50, D)`` native float16 filling the file ("")."""
    if rows is None:
        return "empty file"
    if rows.ndim != 2 or rows.shape[0] != N_VARIANTS or rows.shape[1] < 1:
        return f"shape {rows.shape}, not ({N_VARIANTS}, D)"
    if rows.dtype != np.dtype(np.float16):
        return f"dtype {rows.dtype.str}, not float16"
    offset = int(getattr(rows, "offset", 0))
    if offset + rows.nbytes != size:
        return f"{size} bytes, not {offset + rows.nbytes}"
    return ""


def backbone_tag(backbone: Backbone) -> str:
    """Return the cache identity of a backbone: its name and weights."""
    return f"{backbone.spec.name}|{backbone.weights_tag}"


def feature_cache_and_runner(backbone: Backbone, runtime: str = "auto", *,
                             device: str | torch.device = "cpu",
                             cache_dir: str | Path | None = None
                             ) -> tuple[FeatureCache, FeatureRunner]:
    """The feature cache and the runner of a backbone, for the runtime that really runs.

    The runner is made first (:func:`~facedialect.models.runtime.feature_runner`:
    ``"auto"`` picks ONNX Runtime when the ``fast`` extra is installed and the device is
    a CPU, and falls back to PyTorch with a warning when the export fails), then the cache
    of that runtime, so features of two runtimes are never mixed in one cache.
    """
    runner = feature_runner(backbone, runtime, device=device, cache_dir=cache_dir)
    return FeatureCache(backbone_tag(backbone), cache_dir, runtime=runner.name), runner


@torch.inference_mode()
def extract_features(
    face_keys: Sequence[str],
    load_face: Callable[[str], np.ndarray],
    backbone: Backbone,
    params: PreprocessParams,
    cache: FeatureCache,
    *,
    variants: Sequence[int] | Mapping[str, Sequence[int]] = ALL_VARIANTS,
    batch_size: int = 50,
    device: str | torch.device = "cpu",
    progress: Callable[[int, int], None] | None = None,
    runner: FeatureRunner | None = None,
) -> int:
    """Compute and cache the features of every face's variants not cached yet.

    Parameters
    ----------
    face_keys : sequence of str
        Pre-processing cache keys of the faces.
    load_face : callable
        Returns the pre-processed ``(size, size)`` uint8 face of a key.
    backbone : Backbone
        The frozen backbone (eval mode).
    params : PreprocessParams
        Pre-processing parameters (for the variants).
    cache : FeatureCache
        Where features go.
    variants : sequence of int, or mapping of face key to sequence of int
        The variants needed, for every face or per face (default all 50).
    batch_size : int
        Images per forward pass (variants of several faces are batched together).
    device : str or torch.device
        Where the backbone runs.
    progress : callable, optional
        Called as ``progress(done, total)`` in faces.
    runner : FeatureRunner, optional
        What runs the backbone (:func:`feature_cache_and_runner`); by default one of
        ``cache.runtime`` on ``device``. Its runtime must be the cache's.

    Returns
    -------
    int
        Number of faces with variants computed (0 when all were cached).
    """
    todo = missing_variants(face_keys, cache, variants)
    if not todo:
        return 0
    if runner is None:
        runner = feature_runner(backbone, cache.runtime, device=device,
                                cache_dir=cache.cache_dir)
    if runner.name != cache.runtime:
        raise ValueError(f"features of runtime {runner.name!r} for a cache of "
                         f"{cache.runtime!r}")
    total = len(todo)
    if progress:
        progress(0, total)
    done = 0
    for group in feature_passes(todo, batch_size):
        feats = compute_pass(group, load_face, backbone, params, runner, batch_size)
        at = 0
        for k, miss in group:
            cache.put(k, feats[at:at + len(miss)], miss)
            at += len(miss)
        done += len(group)
        if progress:
            progress(done, total)
    return total


def missing_variants(face_keys: Sequence[str], cache: FeatureCache,
                     variants: Sequence[int] | Mapping[str, Sequence[int]] = ALL_VARIANTS
                     ) -> list[tuple[str, list[int]]]:
    """``(face key, variants to compute)`` of every face with variants not cached yet.

    Parameters
    ----------
    face_keys : sequence of str
        The faces (a key listed twice counts once).
    cache : FeatureCache
        The cache to look in.
    variants : sequence of int, or mapping of face key to sequence of int
        The variants needed, for every face or per face.
    """
    def need(k: str) -> Sequence[int]:
        return variants[k] if isinstance(variants, Mapping) else variants

    return [(k, m) for k in dict.fromkeys(face_keys) if (m := cache.missing(k, need(k)))]


def feature_passes(todo: Sequence[tuple[str, list[int]]], batch_size: int = 50
                   ) -> list[list[tuple[str, list[int]]]]:
    """Group the faces to compute into backbone passes of about ``batch_size`` variants.

    Whole faces, in order; a pass holds at least one face. The features of a face do not
    depend on which process computes its pass, so a cluster computing these passes (one
    per Ray Data row) writes the same cache as one process.
    """
    passes: list[list[tuple[str, list[int]]]] = []
    done, total = 0, len(todo)
    while done < total:
        group: list[tuple[str, list[int]]] = []
        n = 0
        while done + len(group) < total and (not group or n + len(todo[done + len(group)][1])
                                             <= batch_size):
            group.append(todo[done + len(group)])
            n += len(group[-1][1])
        passes.append(group)
        done += len(group)
    return passes


def compute_pass(group: Sequence[tuple[str, Sequence[int]]],
                 load_face: Callable[[str], np.ndarray], backbone: Backbone,
                 params: PreprocessParams, runner: FeatureRunner,
                 batch_size: int = 50) -> np.ndarray:
    """The features of one pass (:func:`feature_passes`): ``(sum of variants, D)`` float32.

    Rows are the faces' variants in the order of ``group``.
    """
    stack = []
    for k, miss in group:
        face = load_face(k)
        stack.extend(variant(face, v, params) for v in miss)
    x = backbone.to_input(np.stack(stack))
    return np.concatenate([runner(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
