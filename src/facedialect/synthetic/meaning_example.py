"""A ready-to-run meaning study: synthetic faces, simulated raters of several cultures.

:func:`write_meaning_example` draws one synthetic face database with the built-in face,
simulates the raters of cultures that share a known number of meaning dimensions
(:mod:`facedialect.synthetic.raters`) from the images' true AU intensities, and writes
``ratings.csv``, ``raters.csv``, ``truth.json`` and a study file that analyses them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from facedialect.files import atomic_write_text
from facedialect.synthetic.cultures import EastWestPreset, write_synthetic_database
from facedialect.synthetic.raters import (
    MeaningSimulator,
    SimCulture,
    au_matrix,
    simulate_ratings,
)

#: The example's cultures: A and B share 3 dimensions, A and C share 1.
EXAMPLE_CULTURES = (SimCulture(name="A", dims=[0, 1, 2, 3], concepts=10),
                    SimCulture(name="B", dims=[0, 1, 2, 4], concepts=10),
                    SimCulture(name="C", dims=[0, 5], concepts=8))

EXAMPLE_STUDY = """\
# facedialect meaning example: one synthetic face database rated by simulated raters of
# three cultures. A and B share 3 dimensions of meaning, A and C share 1, B and C share 1
# (truth.json). Run it with `facedialect run {study}`.

[study]
name = "facedialect meaning example"
output = "run"
seed = {seed}
cache_dir = "cache"

[[databases]]
name = "faces"
preset = "kdef"
root = "data/faces"
n_subjects = {posers}

[model]
backbone = "{backbone}"
weights = "{weights}"

[training]
protocol = "quick"

[tuning]
base_face = "builtin"

[meaning]
ratings = "ratings.csv"
raters = "raters.csv"
permutations = {permutations}
"""


def write_meaning_example(out: str | Path, *, posers: int = 12, seed: int = 0,
                          raters: int = 10, rater_sd: float = 0.2,
                          backbone: str = "mobilenet_v2", weights: str = "imagenet",
                          permutations: int = 999,
                          cultures: tuple[SimCulture, ...] = EXAMPLE_CULTURES) -> Path:
    """Write synthetic faces, simulated ratings and a study file; return the study file.

    Parameters
    ----------
    out : path
        Folder for ``data/faces``, ``ratings.csv``, ``raters.csv``, ``truth.json`` and
        ``study.toml``.
    posers : int
        Synthetic posers (7 expressions each).
    seed : int
        Seed of the faces, the raters and the study.
    raters : int
        Raters per image and culture.
    rater_sd : float
        SD of one rater's noise (ratings lie in 0..1).
    backbone, weights : str
        ``[model]`` of the study file.
    permutations : int
        PPCA permutations in the study file.
    cultures : tuple of SimCulture
        The rating cultures.

    Returns
    -------
    Path
        The study file.
    """
    out = Path(out).resolve()
    faces = out / "data" / "faces"
    preset = EastWestPreset(n_posers=posers, seed=seed, intensity_sd=0.2,
                            expressiveness_sd=0.25)
    truth = write_synthetic_database(faces, "A", preset)
    aus = au_matrix(truth)
    sim = MeaningSimulator(cultures=list(cultures), raters=raters, rater_sd=rater_sd,
                           seed=seed)
    res = simulate_ratings(aus, sim)
    atomic_write_text(out / "ratings.csv", res.ratings.to_csv(index=False))
    atomic_write_text(out / "raters.csv", res.raters.to_csv(index=False))
    names = [c.name for c in cultures]
    shared = {f"{a} vs {b}": sim.shared_dims(a, b)
              for i, a in enumerate(names) for b in names[i + 1:]}
    atomic_write_text(out / "truth.json", json.dumps({
        "shared_dimensions": shared, "simulator": sim.model_dump()}, indent=2) + "\n")
    study = out / "study.toml"
    atomic_write_text(study, EXAMPLE_STUDY.format(seed=seed, posers=posers, study=study,
                                                  backbone=backbone, weights=weights,
                                                  permutations=permutations))
    return study


def example_truth(out: str | Path) -> pd.DataFrame:
    """The planted shared dimensions of an example folder (``culture_pair, shared``)."""
    data = json.loads((Path(out) / "truth.json").read_text(encoding="utf-8"))
    return pd.DataFrame(list(data["shared_dimensions"].items()),
                        columns=["culture_pair", "shared"])


__all__ = ["EXAMPLE_CULTURES", "example_truth", "write_meaning_example"]
