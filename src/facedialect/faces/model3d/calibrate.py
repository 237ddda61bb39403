"""Calibrate AU recipes on real faces: the same people photographed neutral and smiling.

The London face set has 102 people, each neutral and smiling. For each person the 3-D
model is fitted to the neutral photo (pose and identity, :func:`~.fit.fit_photo`); then,
with that identity fixed, the smiling photo's 68 landmarks are fitted with a new pose and
the intensities (bounded to 0..1) of AU6 (cheek raiser), AU12 (lip corner puller) and the
AUs that open the lips in many smiles (AU25, AU26). The *residual* is the RMS distance of
the fitted to the detected landmarks (jaw contour excluded), in percent of the eye
distance: how well the recipes, limited to intensity 1, reproduce the real smiles.

:func:`calibrate_smile` sets the gains of the recipes' blendshapes (``cheekSquint`` for
AU6, ``mouthSmile`` for AU12) so that intensity 1 is the strongest smile of the set (the
``percentile``-th of the people's unbounded fitted weights: FACS intensity E), and reports
the residual before (the current recipes) and after (the calibrated gains).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import lsq_linear

from facedialect.faces.model3d.fit import PhotoFit, _landmark_weights, _pose, fit_photo, load_photo
from facedialect.faces.model3d.model import FaceModel3D, load_model
from facedialect.faces.model3d.recipes import AU_CATALOGUE
from facedialect.landmarks import NoFaceDetectedError

__all__ = [
    "SMILE_AUS",
    "ExpressionFit",
    "SmileCalibration",
    "calibrate_smile",
    "CALIBRATED_SHAPES",
    "current_recipes",
    "fit_expression",
    "london_pairs",
    "recipe_directions",
]

#: The AUs a smile is fitted with; AU6 and AU12 are calibrated, from these shapes.
SMILE_AUS: tuple[int, ...] = (6, 12, 25, 26)
CALIBRATED_SHAPES: dict[int, tuple[str, ...]] = {6: ("cheekSquint",),
                                                 12: ("mouthSmile", "mouthUpperUp")}


@dataclass(frozen=True)
class ExpressionFit:
    """An expression photo fitted with AU intensities (identity from the neutral photo).

    Attributes
    ----------
    intensities : dict[int, float]
        AU -> fitted intensity.
    residual : float
        RMS landmark distance, jaw excluded, in percent of the eye distance.
    residual_neutral : float
        The same with every intensity 0 (pose refitted): what the AUs explain.
    """

    intensities: dict[int, float]
    residual: float
    residual_neutral: float


def recipe_directions(model: FaceModel3D, recipes: Mapping[int, Mapping[str, float]]
                      ) -> np.ndarray:
    """Landmark displacement of each recipe at intensity 1: ``(K, 68, 3)`` (cm)."""
    idx = {n: i for i, n in enumerate(model.expression_names)}
    d = model.expression_deltas[:, model.landmarks68].astype(np.float64)
    out = np.zeros((len(recipes), 68, 3))
    for k, recipe in enumerate(recipes.values()):
        for shape, w in recipe.items():
            out[k] += w * d[idx[shape]]
    return out


def _residual(x: np.ndarray, q: np.ndarray, keep: np.ndarray, eye: float
              ) -> tuple[float, tuple[np.ndarray, float, np.ndarray]]:
    w = _landmark_weights()
    r, s, t = _pose(x, q, w)
    err = s * x @ r[:2].T + t - q
    return 100.0 * float(np.sqrt((err[keep] ** 2).sum(axis=1).mean())) / eye, (r, s, t)


def fit_expression(model: FaceModel3D, neutral: PhotoFit, landmarks: np.ndarray,
                   directions: np.ndarray, *, upper: float | None = 1.0,
                   iterations: int = 8) -> tuple[np.ndarray, float, float]:
    """Fit pose and bounded intensities of some directions to an expression's landmarks.

    Parameters
    ----------
    model : FaceModel3D
        The model.
    neutral : PhotoFit
        The fit of the same person's neutral photo (its identity is kept).
    landmarks : numpy.ndarray
        ``(68, 2)`` landmarks of the expression photo.
    directions : numpy.ndarray
        ``(K, 68, 3)`` landmark displacement per unit intensity (:func:`recipe_directions`).
    upper : float or None
        Upper bound of the intensities (None: unbounded above); the lower bound is 0.
    iterations : int
        Pose / intensity alternations.

    Returns
    -------
    tuple
        ``(intensities (K,), residual, residual with no intensity)``; residuals in percent
        of the eye distance (jaw excluded).
    """
    lm = np.asarray(landmarks, np.float64)
    q = np.stack([lm[:, 0], -lm[:, 1]], axis=1)
    eye = float(np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0)))
    x0 = model.shape(neutral.identity)[model.landmarks68].astype(np.float64)
    w = _landmark_weights()
    keep = w == 1.0
    null, _ = _residual(x0, q, keep, eye)
    k = len(directions)
    a = np.zeros(k)
    sw = np.sqrt(w)[:, None]
    for _ in range(max(1, iterations)):
        x = x0 + np.tensordot(a, directions, axes=1)
        _, (r, s, t) = _residual(x, q, keep, eye)
        base = s * x0 @ r[:2].T + t
        j = s * np.einsum("kld,ed->lek", directions, r[:2])           # (68, 2, K)
        jw = (j * sw[:, :, None]).reshape(-1, k)
        rw = ((q - base) * sw).ravel()
        hi = np.full(k, np.inf if upper is None else float(upper))
        a = lsq_linear(jw, rw, bounds=(np.zeros(k), hi)).x
    res, _ = _residual(x0 + np.tensordot(a, directions, axes=1), q, keep, eye)
    return a, res, null


def london_pairs(root: str | Path) -> list[tuple[Path, Path]]:
    """The London set's (neutral, smiling) photo pairs of the same person."""
    root = Path(root)
    smiling = {p.name.split("_")[0]: p for p in sorted((root / "smiling").glob("*.jpg"))}
    return [(p, smiling[p.name.split("_")[0]]) for p in sorted((root / "neutral").glob("*.jpg"))
            if p.name.split("_")[0] in smiling]


@dataclass
class SmileCalibration:
    """The AU6/AU12 recipes fitted on smiles, with the residual before and after.

    Attributes
    ----------
    recipes_before, recipes_after : dict[int, dict[str, float]]
        AU -> {blendshape (both sides): weight at intensity 1}.
    residual_neutral : float
        Mean residual with no AU (pose only), percent of the eye distance.
    residual_before, residual_after : float
        Mean residual with the AUs bounded to intensity 1, old and calibrated recipes.
    intensities_after : dict[int, float]
        Mean fitted intensity per AU with the calibrated recipes.
    people : int
        Pairs fitted (both photos with a face).
    percentile : float
        The smile strength that is intensity 1 (FACS E), percentile over people.
    per_person : list[dict]
        Each pair's residuals and intensities.
    """

    recipes_before: dict[int, dict[str, float]]
    recipes_after: dict[int, dict[str, float]]
    residual_neutral: float
    residual_before: float
    residual_after: float
    intensities_after: dict[int, float]
    people: int
    percentile: float
    per_person: list[dict[str, object]] = field(default_factory=list)


def _both_sides(recipe: Mapping[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for shape, w in recipe.items():
        out.update({f"{shape}_L": w, f"{shape}_R": w})
    return out


def current_recipes() -> dict[int, dict[str, float]]:
    """Today's AU6 and AU12 recipes (:data:`AU_CATALOGUE`), one entry per shape pair."""
    return {au: {k[:-2]: float(w) for k, w in AU_CATALOGUE[au].recipe.items()
                 if k.endswith("_L")} for au in CALIBRATED_SHAPES}


def _directions(model: FaceModel3D, calibrated: Mapping[int, Mapping[str, float]]
                ) -> np.ndarray:
    recipes = {au: _both_sides(calibrated[au]) if au in calibrated
               else dict(AU_CATALOGUE[au].recipe) for au in SMILE_AUS}
    return recipe_directions(model, recipes)


def calibrate_smile(pairs: Sequence[tuple[str | Path, str | Path]], *,
                    model: FaceModel3D | None = None, percentile: float = 95.0,
                    recipes_before: Mapping[int, Mapping[str, float]] | None = None
                    ) -> SmileCalibration:
    """Fit the AU6/AU12 recipes on neutral/smiling photo pairs of the same people.

    Each smile is fitted with the bare shapes of :data:`CALIBRATED_SHAPES` (weights 0 or
    more, unbounded) and the AU25/AU26 recipes. An AU's recipe is the people's mean mix
    of its shapes, scaled so that intensity 1 is the ``percentile``-th smile strength
    (each person's weights projected on the mix): FACS intensity E, the strongest smiles
    of the set.

    Parameters
    ----------
    pairs : sequence of (neutral, smiling) photo paths
        E.g. :func:`london_pairs`.
    model : FaceModel3D, optional
        The ICT model.
    percentile : float
        The strength that is intensity 1, percentile over the people.
    recipes_before : mapping, optional
        The recipes to compare with (default: today's, :func:`current_recipes`).

    Returns
    -------
    SmileCalibration

    Raises
    ------
    ValueError
        When no pair has a face in both photos.
    """
    from facedialect.landmarks import detect_landmarks

    m = model or load_model()
    before = {au: dict(r) for au, r in (recipes_before or current_recipes()).items()}
    fits = []
    for neutral_path, smile_path in pairs:
        lm_s = detect_landmarks(load_photo(smile_path))
        if lm_s is None:
            continue
        try:
            nfit = fit_photo(load_photo(neutral_path), m)
        except NoFaceDetectedError:
            continue
        fits.append((Path(neutral_path).name, nfit, lm_s))
    if not fits:
        raise ValueError("no pair with a face in both photos")
    # unbounded weights of the bare shapes and the lips-apart AUs
    columns = [(au, shape) for au, shapes in CALIBRATED_SHAPES.items() for shape in shapes]
    bare = {i: _both_sides({shape: 1.0}) for i, (_, shape) in enumerate(columns)}
    bare.update({len(columns) + j: dict(AU_CATALOGUE[au].recipe)
                 for j, au in enumerate(a for a in SMILE_AUS if a not in CALIBRATED_SHAPES)})
    d_bare = recipe_directions(m, bare)
    raw = np.array([fit_expression(m, f, lm, d_bare, upper=None)[0] for _, f, lm in fits])
    after: dict[int, dict[str, float]] = {}
    for au in CALIBRATED_SHAPES:
        cols = [i for i, (a, _) in enumerate(columns) if a == au]
        mix = raw[:, cols].mean(axis=0)
        strength = raw[:, cols] @ mix / float(mix @ mix)
        gain = float(np.percentile(strength, percentile))
        after[au] = {columns[i][1]: round(float(w * gain), 3) for i, w in zip(cols, mix,
                                                                             strict=True)}
    d_before = _directions(m, before)
    d_after = _directions(m, after)
    rows = []
    for (name, f, lm), r in zip(fits, raw, strict=True):
        _, res0, null = fit_expression(m, f, lm, d_before)
        a1, res1, _ = fit_expression(m, f, lm, d_after)
        rows.append({"photo": name, "residual_neutral": round(null, 3),
                     "residual_before": round(res0, 3), "residual_after": round(res1, 3),
                     "shape_weights": {f"{a}:{s}": round(float(x), 3)
                                       for (a, s), x in zip(columns, r, strict=False)},
                     "intensities_after": {au: round(float(x), 3)
                                           for au, x in zip(SMILE_AUS, a1, strict=True)}})

    def mean(key: str) -> float:
        return round(float(np.mean([float(r[key]) for r in rows])), 3)  # type: ignore[arg-type]

    ints = {au: round(float(np.mean([r["intensities_after"][au]  # type: ignore[index]
                                     for r in rows])), 3) for au in SMILE_AUS}
    return SmileCalibration(recipes_before=before, recipes_after=after,
                            residual_neutral=mean("residual_neutral"),
                            residual_before=mean("residual_before"),
                            residual_after=mean("residual_after"),
                            intensities_after=ints, people=len(rows), percentile=percentile,
                            per_person=rows)
