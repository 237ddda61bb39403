"""Which images are used: the takes kept per subject and expression, then N complete subjects."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from facedialect.databases.schema import (
    EXTRA_TAKE,
    INCOMPLETE,
    NOT_SELECTED,
    NOT_STUDIED,
    SELECTION_CATEGORIES,
    STRING_COLUMNS,
    Candidate,
    as_text,
    natural_key,
    reason,
    reason_category,
)
from facedialect.errors import InputError
from facedialect.vocab import in_order

_NEEDED = ("db", "subject", "expression", "included", "reason")


def mark_extra_takes(cands: Sequence[Candidate]) -> None:
    """Keep one image per subject and expression; exclude the others as ``extra take``.

    Among the candidates still in the running, the one with the lowest ``take`` (then the
    first in the given order) is kept. Candidates without a subject id are left alone.
    """
    order = sorted((c for c in cands if not c.reason and c.subject),
                   key=lambda c: (c.take, c.key))
    kept: dict[tuple[str, str], Candidate] = {}
    for cand in order:
        k = (cand.subject, cand.expression)
        if k in kept:
            cand.reason = reason(EXTRA_TAKE, f"subject {cand.subject} already has a "
                                             f"{cand.expression} image ({kept[k].path.name})")
        else:
            kept[k] = cand


def database_expressions(images: pd.DataFrame,
                         expressions: Sequence[str] | None = None) -> list[str]:
    """The expressions one database has, in canonical order.

    Every expression of a labelled row that is not excluded as ``expression not studied``
    (usable or not), restricted to ``expressions`` when given.

    Parameters
    ----------
    images : pandas.DataFrame
        Rows of one database (``expression``, ``reason``).
    expressions : sequence of str, optional
        The study's label set.
    """
    cats = images["reason"].map(reason_category)
    words = as_text(images["expression"])
    own = in_order(words[(words != "") & (cats != NOT_STUDIED)])
    return own if expressions is None else [e for e in own if e in set(expressions)]


def check_n_subjects(n_subjects: int | None) -> int | None:
    """Return ``n_subjects`` if it is None or a positive int, else raise InputError."""
    if n_subjects is None:
        return None
    if isinstance(n_subjects, bool) or not isinstance(n_subjects, int) or n_subjects < 1:
        raise InputError(f"n_subjects = {n_subjects!r}: expected a whole number >= 1, or none "
                         f"to keep every complete subject")
    return n_subjects


def select_subjects(images: pd.DataFrame, n_subjects: int | None,
                    expressions: Sequence[str] | None = None) -> pd.DataFrame:
    """Keep, per database, the first ``n_subjects`` complete subjects.

    A subject is complete when it has at least one usable image (take) of each expression
    the database has: every study expression (of ``expressions``, when given) that some
    labelled file of the database has, usable or not (so the set does not change when
    face detection drops images). All takes of a complete subject are kept.

    Pure: returns a new table and can be re-run (e.g. after face detection excluded some
    images). Rows excluded for any other reason stay excluded; rows excluded only by an
    earlier selection (``subject incomplete``, ``not selected``) are reconsidered.

    Parameters
    ----------
    images : pandas.DataFrame
        The images table (at least ``db, subject, expression, included, reason``; other
        columns are kept as they are). Missing strings (NaN) count as "".
    n_subjects : int or None
        Complete subjects to keep per database, in natural order of subject id
        ("S2" before "S10"); None keeps every complete subject. A database with fewer
        complete subjects keeps all it has.
    expressions : sequence of str, optional
        The study's label set; images of other expressions should already be excluded
        (ingest does that), and none of them make a subject incomplete.

    Returns
    -------
    pandas.DataFrame
        The table with ``included`` and ``reason`` updated, same rows, index and order.
        In a database with subject ids, images of subjects lacking an expression get
        ``subject incomplete: lacks ...`` and those of surplus subjects
        ``not selected: beyond the first N complete subjects``. A database without
        subject ids (every subject "") keeps all its valid images.

    Raises
    ------
    InputError
        When a needed column is missing or ``n_subjects`` is not a positive int or None.
    """
    n_subjects = check_n_subjects(n_subjects)
    missing = [c for c in _NEEDED if c not in images.columns]
    if missing:
        raise InputError(f"images table lacks the column(s) {', '.join(missing)}; expected "
                         f"the columns of tables/images.csv (docs/databases.md)")
    out = images.copy().reset_index(drop=True)
    for col in STRING_COLUMNS:
        if col in out.columns:
            out[col] = as_text(out[col])
    reasons = out["reason"].copy()
    redo = reasons.map(reason_category).isin(SELECTION_CATEGORIES)
    reasons.loc[redo] = ""
    for _, part in out.groupby("db", sort=False):
        own = database_expressions(part, expressions)
        live = part[reasons.loc[part.index] == ""]
        if not (live["subject"] != "").any():
            continue
        no_id = live.index[live["subject"] == ""]
        reasons.loc[no_id] = reason(INCOMPLETE, "no subject id (other images of this database "
                                            "have one)")
        live = live[live["subject"] != ""]
        have = live.groupby("subject")["expression"].agg(set)
        complete = sorted((s for s, e in have.items() if set(own) <= e), key=natural_key)
        chosen = set(complete if n_subjects is None else complete[:n_subjects])
        for subject, idx in live.groupby("subject").groups.items():
            if subject in chosen:
                continue
            lacks = [e for e in own if e not in have[subject]]
            reasons.loc[idx] = (reason(INCOMPLETE, f"lacks {', '.join(lacks)}") if lacks else
                            reason(NOT_SELECTED, f"beyond the first {n_subjects} complete "
                                                 f"subjects"))
    out["reason"] = reasons
    out["included"] = reasons == ""
    out.index = images.index
    return out
