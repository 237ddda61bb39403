"""Saliency of the test images of every run: region shares and maps aligned on the mean face.

:func:`saliency_analysis` takes the networks, the test images with their landmarks and
returns the per-image region shares (one row per database, run, image, method and
region) and the maps averaged per method, database and expression on the mean face
shape. It does no file I/O; :mod:`facedialect.stages.saliency` reads its inputs from the
run directory and writes its outputs there.

Averaging (docs/saliency.md): each map's absolute value is divided by its sum (so every
map weighs the same and the result is a distribution over pixels); an image's maps are
averaged over the runs that tested it, warped to the mean shape by its landmarks
(piecewise-affine), and the images of a database and expression are averaged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from facedialect.errors import InputError
from facedialect.landmarks import mean_shape, piecewise_affine_warp
from facedialect.models.backbones import Backbone
from facedialect.saliency.gradients import METHODS, saliency_maps
from facedialect.saliency.regions import REGIONS, region_labels
from facedialect.saliency.stats import REGION_COLUMNS
from facedialect.training.trainer import MultiRunHead
from facedialect.vocab import EXPRESSIONS, expression_index, in_order

__all__ = ["AlignedMaps", "SaliencyResult", "TEST_COLUMNS", "saliency_analysis"]

#: Columns the test-image table given to :func:`saliency_analysis` needs.
TEST_COLUMNS = ["db", "run", "image", "subject", "expression"]


@dataclass
class AlignedMaps:
    """Mean saliency maps on the mean face shape.

    Attributes
    ----------
    methods, dbs, expressions : tuple of str
        The axes of ``mean``.
    mean : numpy.ndarray
        ``(M, D, E, H, W)`` float32: mean normalized ``|map|`` (each map sums to 1 before
        averaging); NaN where a database has no image of an expression.
    images : numpy.ndarray
        ``(D, E)`` int: images averaged per database and expression.
    shape : numpy.ndarray
        ``(68, 2)`` the mean landmark shape (:func:`facedialect.landmarks.mean_shape`).
    face : numpy.ndarray
        ``(H, W)`` float32: the average of all test faces warped to ``shape``.
    """

    methods: tuple[str, ...]
    dbs: tuple[str, ...]
    expressions: tuple[str, ...]
    mean: np.ndarray
    images: np.ndarray
    shape: np.ndarray
    face: np.ndarray

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for ``numpy.savez`` (inverse of :meth:`from_arrays`)."""
        return {"methods": np.array(self.methods), "dbs": np.array(self.dbs),
                "expressions": np.array(self.expressions), "mean": self.mean,
                "images": self.images, "shape": self.shape, "face": self.face}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> AlignedMaps:
        """Rebuild from the arrays of :meth:`to_arrays`."""
        return cls(tuple(str(m) for m in arrays["methods"]),
                   tuple(str(d) for d in arrays["dbs"]),
                   tuple(str(e) for e in arrays["expressions"]),
                   np.asarray(arrays["mean"]), np.asarray(arrays["images"]),
                   np.asarray(arrays["shape"]), np.asarray(arrays["face"]))


@dataclass
class SaliencyResult:
    """What :func:`saliency_analysis` returns: region shares and aligned mean maps."""

    regions: pd.DataFrame
    maps: AlignedMaps


def _chunks(order: Sequence[str], pairs_per_image: Mapping[str, int], batch: int
            ) -> list[list[str]]:
    out: list[list[str]] = []
    cur: list[str] = []
    n = 0
    for img in order:
        k = pairs_per_image[img]
        if cur and n + k > batch:
            out.append(cur)
            cur, n = [], 0
        cur.append(img)
        n += k
    if cur:
        out.append(cur)
    return out


def saliency_analysis(
    backbone: Backbone,
    heads: Mapping[str, tuple[MultiRunHead, Sequence[int]]],
    tests: pd.DataFrame,
    faces: Mapping[str, np.ndarray],
    landmarks: Mapping[str, np.ndarray],
    *,
    methods: Sequence[str] = METHODS,
    score: str = "probability",
    batch_size: int = 16,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
    units: Mapping[str, Sequence[str]] | None = None,
) -> SaliencyResult:
    """Saliency maps of every test image for every run that tested it.

    Parameters
    ----------
    backbone : Backbone
        The frozen backbone.
    heads : mapping
        Database -> (its trained heads, the run id of each head position).
    tests : pandas.DataFrame
        One row per database, run and test image (columns :data:`TEST_COLUMNS`); the map
        is taken for the image's own expression through that run's network of that
        database (matched testing).
    faces : mapping
        Image -> ``(H, W)`` pre-processed face.
    landmarks : mapping
        Image -> ``(68, 2)`` landmarks in the face's pixels. Images without landmarks
        must be left out of ``tests`` by the caller.
    methods : sequence of str
        Saliency methods (:data:`~facedialect.saliency.gradients.METHODS`).
    score : str
        Differentiated score (see :func:`~facedialect.saliency.gradients.saliency_maps`).
    batch_size : int
        Image-run pairs per forward / backward pass.
    device : str
        Where to compute.
    progress : callable, optional
        ``progress(done, total)`` in image-run pairs.
    units : mapping, optional
        Database -> the expression of each of its heads' output units (default: the seven
        expressions).

    Returns
    -------
    SaliencyResult
        ``regions``: columns :data:`~facedialect.saliency.stats.REGION_COLUMNS`, one row
        per database, run, image, method and region. ``maps``: the aligned means.

    Raises
    ------
    InputError
        On missing columns, a database without heads, a run id the heads do not have,
        or an image without a face or landmarks.
    """
    missing = [c for c in TEST_COLUMNS if c not in tests.columns]
    if missing:
        raise InputError(f"test table lacks column(s) {missing}")
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise InputError(f"unknown saliency method(s) {bad}; use some of {list(METHODS)}")
    if tests.empty:
        raise InputError("no test images to compute saliency for")
    tests = tests.copy()
    tests["subject"] = tests["subject"].fillna("").astype(str)
    dbs = tuple(dict.fromkeys(tests["db"]))
    for db in dbs:
        if db not in heads:
            raise InputError(f"no trained heads for database {db!r}")
    images = list(dict.fromkeys(tests["image"]))
    for img in images:
        if img not in faces or img not in landmarks:
            raise InputError(f"{img}: no pre-processed face or no landmarks")
    exprs = tuple(in_order(tests["expression"]))
    h, w = np.asarray(faces[images[0]]).shape
    shape = mean_shape([landmarks[i] for i in images])
    face_sum = np.zeros((h, w), np.float64)
    for img in images:
        face_sum += piecewise_affine_warp(np.asarray(faces[img], np.float32),
                                          landmarks[img], shape, (h, w))
    avg_face = (face_sum / len(images)).astype(np.float32)
    m_idx = {m: i for i, m in enumerate(methods)}
    sums = np.zeros((len(methods), len(dbs), len(exprs), h, w), np.float64)
    counts = np.zeros((len(dbs), len(exprs)), np.int64)
    rows: list[pd.DataFrame] = []
    total = len(tests) * len(methods)
    done = 0
    for d, db in enumerate(dbs):
        head, run_ids = heads[db]
        pos = {int(r): i for i, r in enumerate(run_ids)}
        part = tests[tests["db"] == db]
        unknown = sorted(set(part["run"].astype(int)) - set(pos))
        if unknown:
            raise InputError(f"database {db!r}: runs {unknown} have no trained head")
        by_image = {img: g for img, g in part.groupby("image", sort=False)}
        own = list((units or {}).get(db, EXPRESSIONS))
        order = sorted(by_image, key=lambda i: (expression_index(
            by_image[i]["expression"].iloc[0]), i))
        for chunk in _chunks(order, {i: len(by_image[i]) for i in order}, batch_size):
            pairs = pd.concat([by_image[i] for i in chunk], ignore_index=True)
            stack = np.stack([faces[i] for i in pairs["image"]])
            cls = [own.index(e) for e in pairs["expression"]]
            run_pos = [pos[int(r)] for r in pairs["run"]]
            labels = {i: region_labels(landmarks[i], (h, w)).ravel() for i in chunk}
            for method in methods:
                maps = np.abs(saliency_maps(backbone, head, stack, cls, run_pos, method,
                                            score=score, batch_size=batch_size,
                                            device=device)).astype(np.float64)
                shares = np.stack([
                    np.bincount(labels[i], weights=m.ravel(), minlength=len(REGIONS))
                    for i, m in zip(pairs["image"], maps, strict=True)])
                sums_px = shares.sum(1)
                shares = shares / np.where(sums_px > 0, sums_px, np.nan)[:, None]
                rows.append(pd.DataFrame({
                    "db": db, "run": np.repeat(pairs["run"].astype(int).to_numpy(),
                                               len(REGIONS)),
                    "image": np.repeat(pairs["image"].to_numpy(), len(REGIONS)),
                    "subject": np.repeat(pairs["subject"].to_numpy(), len(REGIONS)),
                    "expression": np.repeat(pairs["expression"].to_numpy(), len(REGIONS)),
                    "method": method, "region": np.tile(REGIONS, len(pairs)),
                    "share": shares.ravel()}))
                norm = maps / np.where(sums_px > 0, sums_px, 1.0)[:, None, None]
                for img in chunk:
                    sel = (pairs["image"] == img).to_numpy()
                    per_image = norm[sel].mean(0).astype(np.float32)
                    e = exprs.index(by_image[img]["expression"].iloc[0])
                    sums[m_idx[method], d, e] += piecewise_affine_warp(
                        per_image, landmarks[img], shape, (h, w))
                    if m_idx[method] == 0:
                        counts[d, e] += 1
                done += len(pairs)
                if progress:
                    progress(done, total)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (sums / np.where(counts > 0, counts, np.nan)[None, :, :, None, None])
    regions = pd.concat(rows, ignore_index=True)[REGION_COLUMNS]
    return SaliencyResult(regions, AlignedMaps(tuple(methods), dbs, exprs,
                                               mean.astype(np.float32), counts, shape,
                                               avg_face))
