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

__all__ = ["AlignedMaps", "DatabaseSaliency", "MeanGeometry", "SaliencyResult", "TEST_COLUMNS",
           "combine_saliency", "database_saliency", "mean_geometry", "saliency_analysis"]

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
    tests = check_tests(tests, methods)
    dbs = tuple(dict.fromkeys(tests["db"]))
    for db in dbs:
        if db not in heads:
            raise InputError(f"no trained heads for database {db!r}")
    geometry = mean_geometry(tests, faces, landmarks)
    total = len(tests) * len(methods)
    parts = []
    for db in dbs:
        done = sum(len(p.regions) // len(REGIONS) for p in parts)
        tick = ((lambda d, t, _o=done: progress(_o + d, total)) if progress else None)
        head, run_ids = heads[db]
        parts.append(database_saliency(
            backbone, head, run_ids, tests[tests["db"] == db], faces, landmarks, geometry,
            methods=methods, score=score, batch_size=batch_size, device=device,
            progress=tick, units=(units or {}).get(db)))
    return combine_saliency(parts, geometry, methods)


@dataclass
class MeanGeometry:
    """What every database's maps are aligned on: the test images' mean face.

    Attributes
    ----------
    shape : numpy.ndarray
        ``(68, 2)`` mean landmark shape of all test images
        (:func:`facedialect.landmarks.mean_shape`).
    face : numpy.ndarray
        ``(H, W)`` float32: the average of all test faces warped to ``shape``.
    expressions : tuple of str
        The expressions of all test images, in order (the maps' expression axis).
    """

    shape: np.ndarray
    face: np.ndarray
    expressions: tuple[str, ...]


@dataclass
class DatabaseSaliency:
    """One database's part of :func:`saliency_analysis` (:func:`database_saliency`).

    Attributes
    ----------
    db : str
        The database.
    regions : pandas.DataFrame
        Its rows of the region shares (:data:`~facedialect.saliency.stats.REGION_COLUMNS`).
    sums : numpy.ndarray
        ``(M, E, H, W)`` float64: per method and expression, the sum of its images'
        aligned maps.
    counts : numpy.ndarray
        ``(E,)`` int: its images per expression.
    """

    db: str
    regions: pd.DataFrame
    sums: np.ndarray
    counts: np.ndarray


def check_tests(tests: pd.DataFrame, methods: Sequence[str]) -> pd.DataFrame:
    """The test table with ``subject`` as text, after checking columns and methods.

    Raises
    ------
    InputError
        On missing columns, unknown methods or no test image.
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
    return tests


def mean_geometry(tests: pd.DataFrame, faces: Mapping[str, np.ndarray],
                  landmarks: Mapping[str, np.ndarray]) -> MeanGeometry:
    """The mean face shape and average face of all test images (shared by all databases).

    Raises
    ------
    InputError
        When an image has no face or no landmarks.
    """
    images = list(dict.fromkeys(tests["image"]))
    for img in images:
        if img not in faces or img not in landmarks:
            raise InputError(f"{img}: no pre-processed face or no landmarks")
    h, w = np.asarray(faces[images[0]]).shape
    shape = mean_shape([landmarks[i] for i in images])
    face_sum = np.zeros((h, w), np.float64)
    for img in images:
        face_sum += piecewise_affine_warp(np.asarray(faces[img], np.float32),
                                          landmarks[img], shape, (h, w))
    return MeanGeometry(shape, (face_sum / len(images)).astype(np.float32),
                        tuple(in_order(tests["expression"])))


def database_saliency(
    backbone: Backbone,
    head: MultiRunHead,
    run_ids: Sequence[int],
    tests: pd.DataFrame,
    faces: Mapping[str, np.ndarray],
    landmarks: Mapping[str, np.ndarray],
    geometry: MeanGeometry,
    *,
    methods: Sequence[str] = METHODS,
    score: str = "probability",
    batch_size: int = 16,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
    units: Sequence[str] | None = None,
) -> DatabaseSaliency:
    """Saliency maps of one database's test images: one work unit (a Ray task).

    Parameters
    ----------
    backbone : Backbone
        The frozen backbone.
    head : MultiRunHead
        The database's trained heads.
    run_ids : sequence of int
        The run id of each head position.
    tests : pandas.DataFrame
        This database's rows of the test table (:data:`TEST_COLUMNS`).
    faces, landmarks : mapping
        Image -> pre-processed face; image -> ``(68, 2)`` landmarks.
    geometry : MeanGeometry
        The mean shape every database's maps are warped to (:func:`mean_geometry` of
        all databases' test images).
    methods, score, batch_size, device
        As :func:`saliency_analysis`.
    progress : callable, optional
        ``progress(done, total)`` in image-run pairs of this database.
    units : sequence of str, optional
        The expression of each output unit (default: the seven expressions).

    Returns
    -------
    DatabaseSaliency
        Its region shares, the sums of its aligned maps and its image counts.

    Raises
    ------
    InputError
        On a run id the heads do not have, or rows of several databases.
    """
    tests = check_tests(tests, methods)
    dbs = list(dict.fromkeys(tests["db"]))
    if len(dbs) != 1:
        raise InputError(f"database_saliency takes one database's tests, not {dbs}")
    db = dbs[0]
    exprs = geometry.expressions
    h, w = geometry.face.shape
    shape = geometry.shape
    m_idx = {m: i for i, m in enumerate(methods)}
    sums = np.zeros((len(methods), len(exprs), h, w), np.float64)
    counts = np.zeros(len(exprs), np.int64)
    rows: list[pd.DataFrame] = []
    total = len(tests) * len(methods)
    done = 0
    pos = {int(r): i for i, r in enumerate(run_ids)}
    unknown = sorted(set(tests["run"].astype(int)) - set(pos))
    if unknown:
        raise InputError(f"database {db!r}: runs {unknown} have no trained head")
    by_image = {img: g for img, g in tests.groupby("image", sort=False)}
    own = list(units if units is not None else EXPRESSIONS)
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
                sums[m_idx[method], e] += piecewise_affine_warp(
                    per_image, landmarks[img], shape, (h, w))
                if m_idx[method] == 0:
                    counts[e] += 1
            done += len(pairs)
            if progress:
                progress(done, total)
    return DatabaseSaliency(db, pd.concat(rows, ignore_index=True)[REGION_COLUMNS],
                            sums, counts)


def combine_saliency(parts: Sequence[DatabaseSaliency], geometry: MeanGeometry,
                     methods: Sequence[str]) -> SaliencyResult:
    """Put the databases' parts (:func:`database_saliency`) together, in their order."""
    sums = np.stack([p.sums for p in parts], axis=1)  # (M, D, E, H, W)
    counts = np.stack([p.counts for p in parts])
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (sums / np.where(counts > 0, counts, np.nan)[None, :, :, None, None])
    regions = pd.concat([p.regions for p in parts], ignore_index=True)[REGION_COLUMNS]
    return SaliencyResult(regions, AlignedMaps(
        tuple(methods), tuple(p.db for p in parts), geometry.expressions,
        mean.astype(np.float32), counts, geometry.shape, geometry.face))
