"""Planning the training runs: output units, splits per run, the variants each face needs.

Functions of DataFrames (the included faces, ``tables/splits.csv``) and the protocol; no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from facedialect.databases.selection import database_expressions
from facedialect.errors import InputError
from facedialect.preprocess.augment import variant_subset
from facedialect.training.protocol import Protocol
from facedialect.training.splits import balance_classes, run_seeds, split_run
from facedialect.training.trainer import RunPlan
from facedialect.vocab import in_order

#: Columns of ``tables/splits.csv``.
SPLIT_COLUMNS = ["db", "run", "path", "subject", "expression", "part"]


#: Columns of ``tables/classes.csv``.
CLASS_COLUMNS = ["db", "expression", "images", "subjects", "unit"]


def needed_variants(faces: pd.DataFrame, splits: pd.DataFrame, proto: Protocol,
                    swapped_subjects: str = "test") -> dict[str, tuple[int, ...]]:
    """Return the variants whose features each face needs, by cache key.

    A face needs the protocol's training variants (:func:`variant_subset`), and its test
    variants (``variant_subset(proto.test_variants)``: all 50 in the paper protocol, the
    10 training variants in the quick one) when some network is tested on it
    (:func:`tested_images`).

    Parameters
    ----------
    faces : pandas.DataFrame
        Included faces (``db, path, cache_key``).
    splits : pandas.DataFrame
        ``tables/splits.csv`` rows (``db, path, part``).
    proto : Protocol
        The training protocol (its ``variants`` and ``test_variants``).
    swapped_subjects : str
        The study's ``[evaluation] swapped_subjects``.

    Returns
    -------
    dict
        Cache key -> sorted variant indices.
    """
    train = set(variant_subset(proto.variants))
    test = train | set(variant_subset(proto.test_variants))
    tested = tested_images(faces, splits, swapped_subjects)
    out: dict[str, set[int]] = {}
    for db, path, key in faces[["db", "path", "cache_key"]].itertuples(index=False, name=None):
        need = test if (db, path) in tested else train
        out[key] = out.get(key, set()) | need
    return {k: tuple(sorted(v)) for k, v in out.items()}


def tested_images(faces: pd.DataFrame, splits: pd.DataFrame, swapped_subjects: str = "test"
                  ) -> set[tuple[str, str]]:
    """The ``(db, path)`` of the faces some network is tested on.

    A test image in some run, or, with ``swapped_subjects = "all"`` and more than one
    database, any face.
    """
    pairs = faces[["db", "path"]].itertuples(index=False, name=None)
    if swapped_subjects == "all" and faces["db"].nunique() > 1:
        return set(pairs)
    return set(splits.loc[splits["part"] == "test", ["db", "path"]]
               .itertuples(index=False, name=None)) & set(pairs)


def database_units(images: pd.DataFrame, faces: pd.DataFrame, expressions: list[str]
                   ) -> dict[str, list[str]]:
    """The output units of each database's networks: the study expressions it has.

    Parameters
    ----------
    images : pandas.DataFrame
        ``tables/images.csv`` (every row, to see which expressions each database has).
    faces : pandas.DataFrame
        The included faces (:func:`included_faces`).
    expressions : list of str
        The study's label set.

    Returns
    -------
    dict
        Database -> its expressions in canonical order.

    Raises
    ------
    InputError
        When a database has fewer than two expressions, or an expression it has no usable
        image of (every image excluded or without a detected face).
    """
    out: dict[str, list[str]] = {}
    for db, part in faces.groupby("db", sort=False):
        own = database_expressions(images[images["db"] == db], expressions)
        empty = [e for e in own if not (part["expression"] == e).any()]
        if empty:
            raise InputError(
                f"database {db!r} has no usable image of {', '.join(empty)} (all excluded or "
                f"without a detected face; see tables/images.csv); leave it out with "
                f"exclude_expressions = {empty} for this database, or fix the images")
        if len(own) < 2:
            raise InputError(f"database {db!r} has images of {own or 'no study expression'} "
                             f"only; a classifier needs at least 2 expressions (study "
                             f"expressions: {', '.join(expressions)})")
        out[str(db)] = own
    return out


def class_table(faces: pd.DataFrame, units: dict[str, list[str]]) -> pd.DataFrame:
    """Images and subjects per database and expression, and whether its networks have a unit.

    One row per database and expression of the union of all databases' units: an
    expression another database has but this one does not is listed with 0 images and
    ``unit`` false (absent: its networks cannot answer it).
    """
    union = in_order(e for u in units.values() for e in u)
    rows = []
    for db, own in units.items():
        part = faces[faces["db"] == db]
        for e in union:
            sel = part[part["expression"] == e]
            subjects = sel["subject"].replace("", np.nan).nunique()
            rows.append({"db": db, "expression": e, "images": len(sel),
                         "subjects": int(subjects), "unit": e in own})
    return pd.DataFrame(rows, columns=CLASS_COLUMNS)



def plan_splits(faces: pd.DataFrame, dbs: Sequence[str], seed: int, runs: int,
                shares: tuple[float, float, float], split_by: str = "auto") -> pd.DataFrame:
    """Assign every face of every database to train, validation or test, per run.

    Parameters
    ----------
    faces : pandas.DataFrame
        The included faces (``db, path, subject, expression``), sorted as
        :func:`~facedialect.run.tables.included_faces` sorts them.
    dbs : sequence of str
        The databases, in the order of the rows.
    seed : int
        The study seed (each run's split seed derives from it: :func:`run_seeds`).
    runs : int
        Runs per database.
    shares : tuple of float
        Train, validation and test shares.
    split_by : str
        ``auto``, ``subject`` or ``image``.

    Returns
    -------
    pandas.DataFrame
        :data:`SPLIT_COLUMNS`, one row per database, run and face.
    """
    rows = []
    for db in dbs:
        part = faces[faces["db"] == db].reset_index(drop=True)
        for r in range(runs):
            where = split_run(part, run_seeds(seed, db, r).split, shares, split_by)
            rows.append(pd.DataFrame({
                "db": db, "run": r, "path": part["path"], "subject": part["subject"],
                "expression": part["expression"], "part": where}))
    return pd.concat(rows, ignore_index=True)[SPLIT_COLUMNS]


def run_plans(part: pd.DataFrame, splits: pd.DataFrame, labels: np.ndarray, seed: int,
              runs: int, class_balance: str = "none") -> list[RunPlan]:
    """The training and validation rows of one database's faces for each of its runs.

    Parameters
    ----------
    part : pandas.DataFrame
        One database's included faces (``db, path``), in training order.
    splits : pandas.DataFrame
        ``tables/splits.csv`` rows of that database.
    labels : numpy.ndarray
        The faces' unit indices (for ``class_balance = "oversample"``).
    seed : int
        The study seed.
    runs : int
        Runs of the database.
    class_balance : str
        ``none`` or ``oversample`` (each expression's training rows repeated up to the
        largest count).
    """
    db = str(part["db"].iat[0])
    plans = []
    for r in range(runs):
        seeds = run_seeds(seed, db, r)
        sp = splits[splits["run"] == r]
        where = part["path"].map(dict(zip(sp["path"], sp["part"], strict=True))).to_numpy()
        train_idx = np.flatnonzero(where == "train")
        if class_balance == "oversample":
            train_idx = balance_classes(train_idx, labels, seeds.split)
        plans.append(RunPlan(r, seeds, train_idx, np.flatnonzero(where == "validation")))
    return plans
