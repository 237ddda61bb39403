"""Seeds and train / validation / test splits per run (docs/method.md §5)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from facedialect.errors import InputError
from facedialect.vocab import in_order


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


def split_run(images: pd.DataFrame, seed: int, shares: tuple[float, float, float],
              by: str = "auto") -> pd.Series:
    """Assign every image to ``train``, ``validation`` or ``test`` for one run.

    By subject, whole subjects go to one part (docs/method.md §5); by image (web-collected sets
    without subject ids) the split is stratified by expression: each expression's images
    are split in the given shares.

    Parameters
    ----------
    images : pandas.DataFrame
        Included images of one database (columns ``subject``, ``expression``).
    seed : int
        The run's split seed.
    shares : tuple of float
        Train / validation / test shares.
    by : {"auto", "subject", "image"}
        Split unit; ``auto`` splits by subject when the database has subject ids and by
        image when it has none.

    Returns
    -------
    pandas.Series
        The part of each image, indexed like ``images``.

    Raises
    ------
    InputError
        When there are too few subjects (or images) for three parts, or ``by`` is
        ``subject`` and the database has no subject ids.
    """
    if by not in ("auto", "subject", "image"):
        raise InputError(f"unknown split unit {by!r}; use 'auto', 'subject' or 'image'")
    rng = np.random.default_rng(seed)
    part = pd.Series("", index=images.index, dtype=object)
    subjects = sorted(s for s in images["subject"].fillna("").unique() if s != "")
    if by == "subject" and not subjects:
        raise InputError(f"database {images['db'].iloc[0]!r} has no subject ids: use "
                         f"[training] split_by = 'image' or 'auto'")
    if subjects and by != "image":
        if len(subjects) < 3:
            raise InputError(f"the split needs at least 3 subjects (one per part); found "
                             f"{len(subjects)} in database {images['db'].iloc[0]!r}")
        n_tr, n_va, _ = split_sizes(len(subjects), shares)
        order = [subjects[i] for i in rng.permutation(len(subjects))]
        where = {s: "train" for s in order[:n_tr]}
        where.update({s: "validation" for s in order[n_tr:n_tr + n_va]})
        where.update({s: "test" for s in order[n_tr + n_va:]})
        return images["subject"].map(where).astype(object)
    for expr in in_order(images["expression"]):  # image-wise, stratified by expression
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


def balance_classes(train_idx: np.ndarray, labels: np.ndarray, seed: int) -> np.ndarray:
    """Oversample a run's training images so that every expression is as frequent as the largest.

    Each expression's images are repeated in a seeded random order (all of them once,
    then again from the start of a new order) until the expression has as many training
    samples as the most frequent one. The trainer draws every (image, variant) sample of
    the result once per epoch, so epochs are class-balanced.

    Parameters
    ----------
    train_idx : numpy.ndarray
        Row indices of the run's training images.
    labels : numpy.ndarray
        Expression index of every row (indexed by ``train_idx``).
    seed : int
        Seed of the repetition order (the run's split seed).

    Returns
    -------
    numpy.ndarray
        Training row indices with repeats, sorted by expression and then drawing order.
    """
    idx = np.asarray(train_idx, dtype=np.int64)
    lab = np.asarray(labels)[idx]
    classes = np.unique(lab)
    if len(idx) == 0:
        return idx
    target = max(int((lab == c).sum()) for c in classes)
    rng = np.random.default_rng([seed, 7])
    out = []
    for c in classes:
        own = idx[lab == c]
        reps = -(-target // len(own))
        order = np.concatenate([own[rng.permutation(len(own))] for _ in range(reps)])
        out.append(order[:target])
    return np.concatenate(out)
