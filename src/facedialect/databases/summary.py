"""Headline counts of the images table, per database."""

from __future__ import annotations

from typing import Any

import pandas as pd

from facedialect.databases.schema import as_text, reason_category
from facedialect.vocab import in_order


def summarize(images: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Count what each database contributes and why files were excluded.

    Parameters
    ----------
    images : pandas.DataFrame
        The images table (columns of ``tables/images.csv``).

    Returns
    -------
    dict
        Per database name (in order of first appearance), a dict with

        - ``n_files``: rows (files found),
        - ``n_included``: images used,
        - ``n_subjects_selected``: subjects among the included images (None when the
          database has no subject ids),
        - ``images_per_expression``: included images per expression, in canonical order
          (the expressions the database has),
        - ``images_per_subject``: ``min``, ``median``, ``max`` included images per subject
          (empty without subject ids),
        - ``takes``: ``min``, ``median``, ``max`` included images per subject and
          expression (empty without subject ids),
        - ``exclusions``: excluded files per reason category, most frequent first,
        - ``has_subject_ids``: whether any file has a subject id.
    """
    out: dict[str, dict[str, Any]] = {}
    for db, part in images.groupby("db", sort=False):
        included = part["included"].astype(bool)
        subjects = as_text(part["subject"])
        has_ids = bool((subjects != "").any())
        expressions = as_text(part.loc[included, "expression"])
        categories = (as_text(part.loc[~included, "reason"]).map(reason_category)
                      .value_counts(sort=False))
        ranked = sorted(categories.items(), key=lambda kv: (-kv[1], kv[0]))
        inc_subjects = subjects[included]
        per_subject: dict[str, float] = {}
        takes: dict[str, float] = {}
        if has_ids and included.any():
            per_subject = _spread(inc_subjects.value_counts())
            takes = _spread(pd.DataFrame({"s": inc_subjects, "e": expressions})
                            .value_counts())
        out[str(db)] = {
            "n_files": int(len(part)),
            "n_included": int(included.sum()),
            "n_subjects_selected": int(inc_subjects.nunique()) if has_ids else None,
            "images_per_expression": {e: int((expressions == e).sum())
                                      for e in in_order(expressions)},
            "images_per_subject": per_subject,
            "takes": takes,
            "exclusions": {str(k): int(v) for k, v in ranked},
            "has_subject_ids": has_ids,
        }
    return out


def _spread(counts: pd.Series) -> dict[str, float]:
    """Smallest, median and largest of a set of counts."""
    return {"min": int(counts.min()), "median": float(counts.median()),
            "max": int(counts.max())}
