"""Ratings files: reading, validation and matching to the study's images.

A *ratings table* (CSV, one or several files) has one row per image, culture and concept:
``image, culture, concept, mean_rating, n_raters`` and optionally ``db`` (which database
the image belongs to) and ``group`` (which images train and which test, e.g.
``imitation`` / ``original``). ``image`` is the image's path relative to its database
folder (``AF01/AF01HAS.JPG``) or an absolute path. A *raters table* (optional) has one
row per single rating: ``image, culture, concept, rater, rating``; it gives the
split-half reliability of the mean ratings.

Every problem is an :class:`~facedialect.errors.InputError` naming the file, the line
(the header is line 1) and a fix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from facedialect.errors import InputError

RATING_REQUIRED = ["image", "culture", "concept", "mean_rating", "n_raters"]
RATING_OPTIONAL = ["db", "group"]
RATER_REQUIRED = ["image", "culture", "concept", "rater", "rating"]
_MAX_LISTED = 5


def _read_csv(path: Path, required: Sequence[str], kind: str) -> pd.DataFrame:
    if not path.is_file():
        raise InputError(f"{path}: {kind} file not found; fix the path in [meaning]")
    sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    try:
        df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"{path}: cannot read the {kind} table ({exc}); save it as UTF-8 "
                         f"CSV with a header line") from None
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(f"{path}: line 1: missing column(s) {missing}; a {kind} table needs "
                         f"the columns {list(required)} (docs/meaning.md)")
    for c in df.columns:
        df[c] = df[c].str.strip()
    df["_file"] = str(path)
    df["_line"] = np.arange(2, len(df) + 2)
    return df


def _where(rows: pd.DataFrame) -> str:
    listed = [f"{f}:{ln}" for f, ln in zip(rows["_file"].head(_MAX_LISTED),
                                          rows["_line"].head(_MAX_LISTED), strict=True)]
    more = f" and {len(rows) - _MAX_LISTED} more" if len(rows) > _MAX_LISTED else ""
    return ", ".join(listed) + more


def _numbers(df: pd.DataFrame, column: str, what: str) -> pd.Series:
    values = pd.to_numeric(df[column], errors="coerce")
    bad = df[values.isna() | ~np.isfinite(values.fillna(0))]
    if len(bad):
        raise InputError(f"{_where(bad)}: {column} {bad[column].iloc[0]!r} is not a number; "
                         f"give {what} as a number")
    return values


def _check_empty(df: pd.DataFrame, columns: Sequence[str]) -> None:
    for c in columns:
        bad = df[df[c] == ""]
        if len(bad):
            raise InputError(f"{_where(bad)}: empty {c}; every row needs an {c}"
                             if c[0] in "aeiou" else f"{_where(bad)}: empty {c}; every row "
                             f"needs a {c}")


def _check_range(df: pd.DataFrame, values: pd.Series, column: str,
                 rating_range: tuple[float, float]) -> None:
    lo, hi = rating_range
    bad = df[(values < lo) | (values > hi)]
    if len(bad):
        raise InputError(f"{_where(bad)}: {column} {bad[column].iloc[0]} is outside the "
                         f"rating range {lo}..{hi}; fix the value or set [meaning] "
                         f"rating_range")


def read_ratings(paths: Sequence[str | Path], *, rating_range: tuple[float, float] = (0.0, 1.0),
                 cultures: Sequence[str] = ()) -> pd.DataFrame:
    """Read and validate one or more ratings files.

    Parameters
    ----------
    paths : sequence of path
        CSV files (``.tsv`` for tab-separated) with :data:`RATING_REQUIRED` columns (and
        optionally ``db``, ``group``); several files are stacked (e.g. one per culture).
    rating_range : tuple of float
        Smallest and largest valid mean rating.
    cultures : sequence of str
        Cultures the study expects; each must have ratings (empty: any).

    Returns
    -------
    pandas.DataFrame
        The rows with ``mean_rating`` (float), ``n_raters`` (int), ``db`` and ``group``
        ("" when absent) and ``_file``/``_line`` (where each row came from).

    Raises
    ------
    InputError
        On a missing file or column, an empty field, a value that is not a number, a
        rating outside the range, fewer than 1 rater, a repeated (image, culture, concept),
        an image in two groups, an expected culture without ratings, or a rated image
        that lacks some of its culture's concepts.
    """
    if not paths:
        raise InputError("[meaning] ratings: no ratings file given; set ratings = "
                         "\"ratings.csv\" (docs/meaning.md)")
    df = pd.concat([_read_csv(Path(p), RATING_REQUIRED, "ratings") for p in paths],
                   ignore_index=True)
    for c in RATING_OPTIONAL:
        if c not in df.columns:
            df[c] = ""
    if df.empty:
        raise InputError(f"{', '.join(str(p) for p in paths)}: the ratings table has no rows")
    _check_empty(df, ["image", "culture", "concept"])
    df["mean_rating"] = _numbers(df, "mean_rating", "the mean rating")
    _check_range(df, df["mean_rating"], "mean_rating", rating_range)
    n = _numbers(df, "n_raters", "the number of raters")
    bad = df[(n < 1) | (n != np.round(n))]
    if len(bad):
        raise InputError(f"{_where(bad)}: n_raters {bad['n_raters'].iloc[0]!r} must be a "
                         f"whole number of at least 1")
    df["n_raters"] = n.astype(int)
    key = ["db", "image", "culture", "concept"]
    dup = df[df.duplicated(key, keep=False)]
    if len(dup):
        first = dup.iloc[0]
        raise InputError(f"{_where(dup)}: image {first['image']!r}, culture "
                         f"{first['culture']!r}, concept {first['concept']!r} is rated more "
                         f"than once; keep one row per image, culture and concept")
    groups = df.groupby(["db", "image"])["group"].nunique()
    if (groups > 1).any():
        db, img = groups[groups > 1].index[0]
        rows = df[(df["db"] == db) & (df["image"] == img)]
        raise InputError(f"{_where(rows)}: image {img!r} is in several groups "
                         f"{sorted(set(rows['group']))}; an image belongs to one group")
    if cultures:
        absent = [c for c in cultures if c not in set(df["culture"])]
        if absent:
            raise InputError(f"{', '.join(str(p) for p in paths)}: culture(s) {absent} have "
                             f"no ratings; add their rows or remove them from [meaning] "
                             f"cultures (found: {sorted(set(df['culture']))})")
    for cult, part in df.groupby("culture", sort=False):
        concepts = set(part["concept"])
        per_image = part.groupby(["db", "image"])["concept"].nunique()
        short = per_image[per_image < len(concepts)]
        if len(short):
            db, img = short.index[0]
            have = set(part[(part["db"] == db) & (part["image"] == img)]["concept"])
            lacking = sorted(concepts - have)
            rows = part[(part["db"] == db) & (part["image"] == img)]
            raise InputError(
                f"{_where(rows)}: culture {cult!r} rated image {img!r} without concept(s) "
                f"{lacking[:_MAX_LISTED]} ({len(short)} image(s) lack some of the "
                f"culture's {len(concepts)} concepts); give every rated image all of its "
                f"culture's concepts, or drop the image")
    return df


def read_raters(paths: Sequence[str | Path], ratings: pd.DataFrame, *,
                rating_range: tuple[float, float] = (0.0, 1.0)) -> pd.DataFrame:
    """Read and validate per-rater tables against the ratings table.

    Parameters
    ----------
    paths : sequence of path
        CSV files with :data:`RATER_REQUIRED` columns (optionally ``db``).
    ratings : pandas.DataFrame
        The validated ratings (:func:`read_ratings`).
    rating_range : tuple of float
        Valid rating range.

    Returns
    -------
    pandas.DataFrame
        The rows with ``rating`` (float) and ``db`` ("" when absent).

    Raises
    ------
    InputError
        On a missing column, a value that is not a number or out of range, a repeated
        (image, culture, concept, rater), or an (image, culture, concept) that is not in
        the ratings table.
    """
    df = pd.concat([_read_csv(Path(p), RATER_REQUIRED, "raters") for p in paths],
                   ignore_index=True)
    if "db" not in df.columns:
        df["db"] = ""
    _check_empty(df, ["image", "culture", "concept", "rater"])
    df["rating"] = _numbers(df, "rating", "the rating")
    _check_range(df, df["rating"], "rating", rating_range)
    dup = df[df.duplicated(["db", "image", "culture", "concept", "rater"], keep=False)]
    if len(dup):
        raise InputError(f"{_where(dup)}: rater {dup['rater'].iloc[0]!r} rated the same "
                         f"image, culture and concept more than once; keep one row")
    known = ratings[["db", "image", "culture", "concept"]].drop_duplicates()
    m = df.merge(known.assign(_known=True), on=["db", "image", "culture", "concept"],
                 how="left")
    bad = m[m["_known"].isna()]
    if len(bad):
        raise InputError(f"{_where(bad)}: image {bad['image'].iloc[0]!r}, culture "
                         f"{bad['culture'].iloc[0]!r}, concept {bad['concept'].iloc[0]!r} "
                         f"has rater rows but no row in the ratings table; add it there or "
                         f"remove these rows")
    return df


def match_images(ratings: pd.DataFrame, faces: pd.DataFrame,
                 roots: Mapping[str, str | Path]) -> pd.DataFrame:
    """Find every rated image among the study's images.

    Parameters
    ----------
    ratings : pandas.DataFrame
        Validated ratings (columns ``db``, ``image``, ``group``, ``_file``, ``_line``).
    faces : pandas.DataFrame
        The study's images with pre-processing results: columns ``db``, ``path``,
        ``subject``, ``detected``, ``cache_key``, ``reason``.
    roots : mapping
        Database name -> its root folder.

    Returns
    -------
    pandas.DataFrame
        One row per rated image: ``image`` (the key used in all meaning tables:
        ``db/image`` with several databases, else ``image``), ``db``, ``path``,
        ``subject``, ``group``, ``cache_key``, ``used`` and ``reason`` (why an image
        without a usable face is left out).

    Raises
    ------
    InputError
        When a ratings row names an unknown database or an image that is not one of the
        study's images (or is one of several databases' images without a ``db`` column).
    """
    imgs = ratings.drop_duplicates(["db", "image"])
    unknown_db = imgs[(imgs["db"] != "") & ~imgs["db"].isin(list(roots))]
    if len(unknown_db):
        raise InputError(f"{_where(unknown_db)}: db {unknown_db['db'].iloc[0]!r} is not a "
                         f"database of the study ({sorted(roots)}); fix the db column")
    by_path = {(str(r.db), str(r.path)): r for r in faces.itertuples(index=False)}
    rows, missing, ambiguous = [], [], []
    for rec in imgs.to_dict("records"):
        dbs = [rec["db"]] if rec["db"] else list(roots)
        hits = []
        for db in dbs:
            p = Path(rec["image"])
            full = p if p.is_absolute() else Path(roots[db]) / p
            key = (db, Path(os.path.normpath(full)).as_posix())
            if key in by_path:
                hits.append(by_path[key])
        if not hits:
            missing.append(rec)
            continue
        if len(hits) > 1:
            ambiguous.append(rec)
            continue
        f = hits[0]
        detected = bool(f.detected) if not pd.isna(f.detected) else False
        rows.append({"db": f.db, "rated_image": rec["image"], "rated_db": rec["db"],
                     "path": f.path, "subject": "" if pd.isna(f.subject) else str(f.subject),
                     "group": rec["group"], "cache_key": f.cache_key if detected else "",
                     "used": detected,
                     "reason": "" if detected else (f.reason if isinstance(f.reason, str)
                                                    and f.reason else "no usable face")})
    if missing:
        bad = pd.DataFrame(missing)
        raise InputError(f"{_where(bad)}: image {bad['image'].iloc[0]!r} is not an image of "
                         f"the study's databases ({len(bad)} unknown image(s)); give the path "
                         f"relative to the database folder (e.g. AF01/AF01HAS.JPG), add a db "
                         f"column, or check that the database was ingested")
    if ambiguous:
        bad = pd.DataFrame(ambiguous)
        raise InputError(f"{_where(bad)}: image {bad['image'].iloc[0]!r} is found in more "
                         f"than one database; add a db column naming its database")
    out = pd.DataFrame(rows)
    several = out["db"].nunique() > 1
    out["image"] = (out["db"] + "/" + out["rated_image"]) if several else out["rated_image"]
    return out[["image", "rated_db", "rated_image", "db", "path", "subject", "group",
                "cache_key", "used", "reason"]]


__all__ = ["RATER_REQUIRED", "RATING_OPTIONAL", "RATING_REQUIRED", "match_images",
           "read_raters", "read_ratings"]
