"""AU stimulus series (SCIENCE §7): each AU rises from 0 to 1 in N steps on one base face.

Level 0 is the same "null image" for every AU (rendered once). This module renders with
the built-in procedural face (``base_face = "builtin"``); photo-textured and average
faces plug in through the ``renderer`` argument.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from facedialect.faces.procedural import STUDY_AUS, FaceIdentity, render_face

#: Columns of ``stimuli.csv``.
STIMULI_COLUMNS = ["au", "level", "intensity", "path"]

Renderer = Callable[[Mapping[int, float]], np.ndarray]


def builtin_renderer(size: int = 256, identity: FaceIdentity | None = None) -> Renderer:
    """A renderer of the built-in face (the average identity unless one is given)."""
    ident = identity or FaceIdentity.default()
    return lambda aus: render_face(ident, aus, size=size, color=False)


#: Base faces that need no photo: the procedural face and the 3D model's average face.
BASE_FACES = ("builtin", "3d")


def renderer_for(base_face: str, size: int = 256) -> Renderer:
    """The renderer of a base face: ``builtin`` (procedural) or ``3d`` (ICT model average).

    Raises
    ------
    ValueError
        For other base faces (photos and average faces need the photo-textured 3D face,
        which is not built yet).
    """
    if base_face == "builtin":
        return builtin_renderer(size)
    if base_face == "3d":
        from facedialect.faces.render3d import render_face_3d

        ident = FaceIdentity.default()
        return lambda aus: render_face_3d(ident, aus, size=size, color=False)
    raise ValueError(f"base face {base_face!r} is not available yet: use one of "
                     f"{list(BASE_FACES)} (photo and average faces need the photo-textured "
                     f"3D face, still to come)")


def stimulus_table(aus: Sequence[int] = STUDY_AUS, levels: int = 11) -> pd.DataFrame:
    """One row per stimulus: the null image first, then every AU at levels 1..N-1.

    Raises
    ------
    ValueError
        For an unknown AU (listing the valid ones) or fewer than 2 levels.
    """
    bad = [a for a in aus if a not in STUDY_AUS]
    if bad:
        raise ValueError(f"unknown AU(s) {bad}; valid: {list(STUDY_AUS)}")
    if levels < 2:
        raise ValueError(f"levels must be at least 2 (0 and 1), got {levels}")
    steps = np.linspace(0.0, 1.0, levels)
    rows = [{"au": 0, "level": 0, "intensity": 0.0}]
    rows += [{"au": int(a), "level": i, "intensity": float(steps[i])}
             for a in aus for i in range(1, levels)]
    return pd.DataFrame(rows)


def render_stimuli(table: pd.DataFrame, renderer: Renderer) -> list[np.ndarray]:
    """Render every stimulus of ``table`` (the null image once, with no AU)."""
    return [renderer({} if r.au == 0 else {int(r.au): float(r.intensity)})
            for r in table.itertuples(index=False)]


def write_stimuli(out_dir: str | Path, table: pd.DataFrame, images: Sequence[np.ndarray]
                  ) -> pd.DataFrame:
    """Write the images as PNGs and ``stimuli.csv``; returns the table with paths."""
    import cv2

    from facedialect.store import atomic_write_bytes, atomic_write_text

    out = Path(out_dir)
    paths = []
    for r, img in zip(table.itertuples(index=False), images, strict=True):
        name = "null.png" if r.au == 0 else f"AU{r.au:02d}_L{r.level:02d}.png"
        ok, buf = cv2.imencode(".png", img)
        if not ok:  # pragma: no cover - cv2 encodes any uint8 image
            raise RuntimeError(f"could not encode {name}")
        atomic_write_bytes(out / name, buf.tobytes())
        paths.append(str(out / name))
    done = table.assign(path=paths)[STIMULI_COLUMNS]
    atomic_write_text(out / "stimuli.csv", done.to_csv(index=False))
    return done
