"""Seeds and train / validation / test splits per run (SCIENCE §5)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from facedialect.errors import InputError
from facedialect.labels import EXPRESSIONS


@dataclass(frozen=True)
class RunSeeds:
    """Independent seeds of one run, derived from the study seed with SeedSequence."""

    split: int
    init: int
    order: int
    dropout: int


def _name_int(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:4], "little")


def run_seeds(study_seed: int, db: str, run: int) -> RunSeeds:
    """Derive the seeds of run ``run`` of database ``db`` from the study seed.

    The split seed depends on the run only (not on the database), so databases with the
    same subjects would get the same split; init, order and dropout also depend on the
    database.
    """
    split = int(np.random.SeedSequence([study_seed, run, 0]).generate_state(1)[0])
    st = np.random.SeedSequence([study_seed, _name_int(db), run, 1]).generate_state(3)
    return RunSeeds(split, int(st[0]), int(st[1]), int(st[2]))


def split_sizes(n: int, shares: tuple[float, float, float]) -> tuple[int, int, int]:
    """Numbers of train / validation / test units for ``n`` units (60 -> 40 / 8 / 12)."""
    n_train = int(round(n * shares[0]))
    n_val = int(round(n * shares[1]))
    n_val = max(1, n_val)
    n_train = max(1, min(n_train, n - n_val - 1))
    return n_train, n_val, n - n_train - n_val


def split_run(images: pd.DataFrame, seed: int, shares: tuple[float, float, float]
              ) -> pd.Series:
    """Assign every image to ``train``, ``validation`` or ``test`` for one run.

    With subject ids, whole subjects go to one part (SCIENCE §5); without (web-collected
    sets) the split is by image, stratified by expression.

    Parameters
    ----------
    images : pandas.DataFrame
        Included images of one database (columns ``subject``, ``expression``).
    seed : int
        The run's split seed.
    shares : tuple of float
        Train / validation / test shares.

    Returns
    -------
    pandas.Series
        The part of each image, indexed like ``images``.

    Raises
    ------
    InputError
        When there are too few subjects (or images) for three parts.
    """
    rng = np.random.default_rng(seed)
    part = pd.Series("", index=images.index, dtype=object)
    subjects = sorted(s for s in images["subject"].fillna("").unique() if s != "")
    if subjects:
        if len(subjects) < 3:
            raise InputError(f"the split needs at least 3 subjects (one per part); found "
                             f"{len(subjects)} in database {images['db'].iloc[0]!r}")
        n_tr, n_va, _ = split_sizes(len(subjects), shares)
        order = [subjects[i] for i in rng.permutation(len(subjects))]
        where = {s: "train" for s in order[:n_tr]}
        where.update({s: "validation" for s in order[n_tr:n_tr + n_va]})
        where.update({s: "test" for s in order[n_tr + n_va:]})
        return images["subject"].map(where).astype(object)
    for expr in EXPRESSIONS:  # image-wise, stratified by expression
        idx = images.index[images["expression"] == expr]
        if len(idx) == 0:
            continue
        if len(idx) < 3:
            raise InputError(f"expression {expr!r} has {len(idx)} image(s) in database "
                             f"{images['db'].iloc[0]!r}; an image-wise split needs at least 3")
        n_tr, n_va, _ = split_sizes(len(idx), shares)
        perm = idx[rng.permutation(len(idx))]
        part[perm[:n_tr]] = "train"
        part[perm[n_tr:n_tr + n_va]] = "validation"
        part[perm[n_tr + n_va:]] = "test"
    return part
