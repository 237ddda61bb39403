"""Simulated raters with a known answer: cultures that share some dimensions of meaning.

docs/method.md §10 (and §9). Every image has AU intensities (the synthetic faces' ``truth.csv``
or sampled AU vectors). The AU patterns are turned into uncorrelated latent *meaning
dimensions* (the whitened principal components of the AU matrix, in order of AU
variance: dimension 0 is the most visible one). Each culture uses a set of these
dimensions: its K concepts are random mixtures of them, so two cultures share exactly
the dimensions both use, and differ in the others. Raters see the image's true concept
values plus rater noise; the mean over raters is the rating. Expected results: PPCA
between two cultures finds as many shared dimensions as they have in common; preservation
is higher between cultures that share more; for two cultures with the same mapping
(``copy_of``) it approaches the reliability of the ratings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from facedialect.vocab import STUDY_AUS, name_seed

#: Columns of the simulated ratings table (the ratings file format, docs/meaning.md).
RATING_COLUMNS = ["image", "culture", "concept", "mean_rating", "n_raters"]
#: Columns of the simulated per-rater table.
RATER_COLUMNS = ["image", "culture", "concept", "rater", "rating"]


class SimCulture(BaseModel):
    """One simulated culture: which latent dimensions its concepts express."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="Culture name.")
    dims: list[int] = Field(min_length=1, description="Latent dimensions the culture's "
                            "concepts mix (0 = the AU pattern with most variance).")
    concepts: int = Field(12, ge=1, le=200, description="Number of concepts K.")
    copy_of: str | None = Field(None, description="Use this culture's mapping (same "
                                "dimensions, loadings and concept names): an identical "
                                "culture with its own raters.")

    @field_validator("dims")
    @classmethod
    def _dims_ok(cls, v: list[int]) -> list[int]:
        if any(d < 0 for d in v) or len(set(v)) != len(v):
            raise ValueError(f"dims must be distinct non-negative integers, got {v}")
        return v


class MeaningSimulator(BaseModel):
    """Settings of the rater simulation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cultures: list[SimCulture] = Field(min_length=1)
    raters: int = Field(10, ge=2, le=1000, description="Raters per image and culture.")
    rater_sd: float = Field(0.2, ge=0.0, le=1.0, description="SD of one rater's noise.")
    signal_sd: float = Field(0.15, gt=0.0, le=0.5, description="SD of a concept's true "
                             "value across images.")
    base: float = Field(0.5, ge=0.0, le=1.0, description="Mean true value of a concept.")
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _names(self) -> MeaningSimulator:
        names = [c.name for c in self.cultures]
        if len(set(names)) != len(names):
            raise ValueError(f"culture names must be unique: {names}")
        for c in self.cultures:
            if c.copy_of is not None and c.copy_of not in names:
                raise ValueError(f"culture {c.name!r}: copy_of {c.copy_of!r} is not a "
                                 f"culture of this simulation")
        return self

    @property
    def n_dims(self) -> int:
        """Latent dimensions used by any culture."""
        return 1 + max(d for c in self.cultures for d in c.dims)

    def shared_dims(self, a: str, b: str) -> int:
        """Number of latent dimensions cultures ``a`` and ``b`` both use."""
        da, db = (set(self._resolved(c).dims) for c in (a, b))
        return len(da & db)

    def _resolved(self, name: str) -> SimCulture:
        c = next(c for c in self.cultures if c.name == name)
        return self._resolved(c.copy_of) if c.copy_of else c


def shared_dims_simulator(shared: int, unique: int = 2, *, cultures: Sequence[str] = ("A", "B"),
                          concepts: int = 12, **kwargs: object) -> MeaningSimulator:
    """Cultures that share ``shared`` dimensions and each have ``unique`` dimensions of their own.

    Parameters
    ----------
    shared : int
        Dimensions every culture uses (0 .. shared-1).
    unique : int
        Further dimensions per culture, used by that culture alone.
    cultures : sequence of str
        Culture names.
    concepts : int
        Concepts per culture.
    **kwargs
        Other :class:`MeaningSimulator` settings (raters, rater_sd, seed, ...).

    Returns
    -------
    MeaningSimulator
    """
    specs = []
    for i, name in enumerate(cultures):
        own = list(range(shared + i * unique, shared + (i + 1) * unique))
        specs.append(SimCulture(name=name, dims=list(range(shared)) + own, concepts=concepts))
    return MeaningSimulator(cultures=specs, **kwargs)  # type: ignore[arg-type]


@dataclass
class SimulatedRatings:
    """What :func:`simulate_ratings` returns.

    Attributes
    ----------
    ratings : pandas.DataFrame
        :data:`RATING_COLUMNS`: mean rating per image, culture and concept.
    raters : pandas.DataFrame
        :data:`RATER_COLUMNS`: every rater's rating.
    truth : pandas.DataFrame
        ``image, culture, concept, true_rating``: the noise-free values.
    latent : pandas.DataFrame
        Images x latent dimensions (whitened AU components).
    """

    ratings: pd.DataFrame
    raters: pd.DataFrame
    truth: pd.DataFrame
    latent: pd.DataFrame

    def matrix(self, culture: str, kind: str = "ratings") -> pd.DataFrame:
        """Images x concepts of one culture: ``ratings`` (means) or ``truth``."""
        df = self.ratings if kind == "ratings" else self.truth
        col = "mean_rating" if kind == "ratings" else "true_rating"
        part = df[df["culture"] == culture]
        concepts = list(dict.fromkeys(part["concept"]))
        return part.pivot(index="image", columns="concept", values=col)[concepts]


def sample_au_vectors(n: int, *, seed: int = 0, aus: Sequence[int] = STUDY_AUS,
                      active: tuple[int, int] = (1, 5)) -> pd.DataFrame:
    """Random sparse AU patterns: each image activates a few AUs at random intensities.

    Parameters
    ----------
    n : int
        Number of images (rows ``img0000``...).
    seed : int
        Seed.
    aus : sequence of int
        The AUs (columns).
    active : tuple of int
        Smallest and largest number of active AUs per image.

    Returns
    -------
    pandas.DataFrame
        Images x AUs intensities in 0..1 (columns named by AU number).
    """
    rng = np.random.default_rng(seed)
    out = np.zeros((n, len(aus)))
    for i in range(n):
        k = rng.integers(active[0], active[1] + 1)
        idx = rng.choice(len(aus), size=k, replace=False)
        out[i, idx] = rng.uniform(0.2, 1.0, size=k)
    return pd.DataFrame(out, index=pd.Index([f"img{i:04d}" for i in range(n)], name="image"),
                        columns=list(aus))


def au_matrix(truth: pd.DataFrame, image_column: str = "path") -> pd.DataFrame:
    """Images x AUs from a long ``truth.csv`` table (``path, ..., au, intensity``).

    Parameters
    ----------
    truth : pandas.DataFrame
        One row per image and AU (:data:`~facedialect.synthetic.cultures.TRUTH_COLUMNS`).
    image_column : str
        The column naming the image.

    Returns
    -------
    pandas.DataFrame
        Images (index) x AUs (columns), 0 where an image has no intensity for an AU.
    """
    return truth.pivot_table(index=image_column, columns="au", values="intensity",
                                aggfunc="first").fillna(0.0)


def latent_dimensions(aus: pd.DataFrame, n_dims: int) -> pd.DataFrame:
    """The first ``n_dims`` whitened principal components of an AU matrix.

    Returns images x dimensions with mean 0, SD 1 and zero correlation between
    dimensions (in this sample). Signs are fixed so that each component's largest AU
    weight is positive.

    Raises
    ------
    ValueError
        When the AU patterns span fewer than ``n_dims`` dimensions.
    """
    a = aus.to_numpy(float)
    a = a - a.mean(0)
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    rank = int((s > 1e-8 * max(s[0], 1e-300)).sum()) if len(s) else 0
    if rank < n_dims:
        raise ValueError(f"the AU patterns of these {len(aus)} images span {rank} "
                         f"dimension(s); the simulation needs {n_dims}: use more varied "
                         f"images (e.g. sample_au_vectors) or fewer dimensions")
    signs = np.sign(vt[np.arange(n_dims), np.argmax(np.abs(vt[:n_dims]), axis=1)])
    z = u[:, :n_dims] * signs * np.sqrt(len(a) - 1)
    return pd.DataFrame(z, index=aus.index, columns=[f"dim{d}" for d in range(n_dims)])


def _culture_rng(seed: int, name: str, what: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, name_seed(name),
                                                         what]))


def simulate_ratings(aus: pd.DataFrame, sim: MeaningSimulator) -> SimulatedRatings:
    """Simulate every culture's raters for images with known AU intensities.

    Parameters
    ----------
    aus : pandas.DataFrame
        Images (index: the image ids written to the ratings) x AU intensities.
    sim : MeaningSimulator
        Cultures, raters and noise.

    Returns
    -------
    SimulatedRatings
        Mean ratings, per-rater ratings, the truth and the latent dimensions.
        A concept's true value is ``base + signal_sd * (z @ l)`` with ``z`` the image's
        latent values on the culture's dimensions and ``l`` a random unit-length loading
        vector; a rater's rating is the true value plus N(0, rater_sd), clipped to 0..1.

    Raises
    ------
    ValueError
        When the images' AU patterns span fewer dimensions than the cultures use.
    """
    z = latent_dimensions(aus, sim.n_dims)
    images = np.asarray(aus.index, dtype=object)
    n = len(images)
    truth_rows, mean_rows, rater_rows = [], [], []
    for c in sim.cultures:
        spec = sim._resolved(c.name)
        load_rng = _culture_rng(sim.seed, spec.name, 0)
        loadings = load_rng.normal(size=(len(spec.dims), spec.concepts))
        loadings /= np.linalg.norm(loadings, axis=0, keepdims=True)
        names = [f"c{k + 1:02d}" for k in range(spec.concepts)]
        true = sim.base + sim.signal_sd * (z.to_numpy()[:, spec.dims] @ loadings)
        noise_rng = _culture_rng(sim.seed, c.name, 1)
        ratings = np.clip(true[:, None, :] + noise_rng.normal(
            0.0, sim.rater_sd, size=(n, sim.raters, spec.concepts)), 0.0, 1.0)
        img = np.repeat(images, spec.concepts)
        con = np.tile(names, n)
        truth_rows.append(pd.DataFrame({"image": img, "culture": c.name, "concept": con,
                                        "true_rating": true.ravel()}))
        mean_rows.append(pd.DataFrame({"image": img, "culture": c.name, "concept": con,
                                       "mean_rating": ratings.mean(1).ravel(),
                                       "n_raters": sim.raters}))
        rater_ids = np.array([f"{c.name}-r{r + 1:03d}" for r in range(sim.raters)],
                             dtype=object)
        rater_rows.append(pd.DataFrame({
            "image": np.repeat(images, sim.raters * spec.concepts),
            "culture": c.name,
            "concept": np.tile(names, n * sim.raters),
            "rater": np.tile(np.repeat(rater_ids, spec.concepts), n),
            "rating": ratings.ravel()}))
    return SimulatedRatings(
        ratings=pd.concat(mean_rows, ignore_index=True)[RATING_COLUMNS],
        raters=pd.concat(rater_rows, ignore_index=True)[RATER_COLUMNS],
        truth=pd.concat(truth_rows, ignore_index=True), latent=z)


__all__ = ["RATER_COLUMNS", "RATING_COLUMNS", "MeaningSimulator", "SimCulture",
           "SimulatedRatings", "au_matrix", "latent_dimensions", "sample_au_vectors",
           "shared_dims_simulator", "simulate_ratings"]
