"""Views of the run's tables that several stages share."""

from __future__ import annotations

import pandas as pd

from facedialect.run.store import RunDir


def included_faces(run: RunDir, images: pd.DataFrame | None = None) -> pd.DataFrame:
    """Included images with a detected face and their cache keys, per database.

    From ``tables/images.csv`` (or ``images``, another selection of its rows) and
    ``tables/preprocess.csv``, sorted by database, subject, expression and path.
    """
    images = run.read_table("images") if images is None else images
    prep = run.read_table("preprocess")
    faces = images[images["included"].astype(bool)].merge(
        prep.loc[prep["detected"].astype(bool), ["db", "path", "cache_key"]],
        on=["db", "path"], how="inner")
    return faces.sort_values(["db", "subject", "expression", "path"]).reset_index(drop=True)
