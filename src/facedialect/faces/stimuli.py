"""AU stimulus series (SCIENCE §7): each AU rises from 0 to 1 in N steps on one base face.

Level 0 is the same "null image" for every AU (rendered once). Base faces: the built-in
procedural face, the 3D model's own face, a photo-textured 3D face (a photo, or the
average neutral face of a run's databases); see :func:`renderer_for`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from facedialect.faces.procedural.identity import FaceIdentity
from facedialect.faces.procedural.render import render_face
from facedialect.vocab import STUDY_AUS

#: Columns of ``stimuli.csv``.
STIMULI_COLUMNS = ["au", "level", "intensity", "path"]

Renderer = Callable[[Mapping[int, float]], np.ndarray]


def builtin_renderer(size: int = 256, identity: FaceIdentity | None = None) -> Renderer:
    """A renderer of the built-in face (the average identity unless one is given)."""
    ident = identity or FaceIdentity.default()
    return lambda aus: render_face(ident, aus, size=size, color=False)


#: Every form ``base_face`` takes (``PHOTO`` is a path to an image file).
BASE_FACE_FORMS = ("builtin", "3d", "average", "average:RUN_DIR", "PHOTO")


def photo_renderer(photo: str | Path, size: int = 256) -> Renderer:
    """A renderer of a photo-textured 3D face (:class:`~facedialect.faces.model3d.photo.PhotoFace`).

    The fit and texture are made once (and cached per file); the output is ``size`` px
    wide, grayscale.

    Raises
    ------
    ImageReadError
        When the photo is missing or unreadable.
    NoFaceDetectedError
        When no face is found in it.
    """
    from facedialect.faces.model3d.photo import photo_face

    face = photo_face(photo)
    return lambda aus: face.render(aus, size=size, color=False)


def renderer_for(base_face: str, size: int = 256, *, run_dir: str | Path | None = None,
                 dbs: Sequence[str] | None = None,
                 progress: Callable[[int, int], None] | None = None) -> Renderer:
    """The renderer of a base face.

    Parameters
    ----------
    base_face : str
        ``builtin`` (procedural face), ``3d`` (the ICT model's average face), a photo
        path (photo-textured 3D face), ``average:RUN_DIR`` (the average neutral face of
        that run's databases, built once into ``RUN_DIR/faces/average_neutral.png``) or
        ``average`` (the same for ``run_dir``, the study's own run, over ``dbs``).
    size : int
        Output width in pixels.
    run_dir : str or Path, optional
        The study's run directory (for ``average``).
    dbs : sequence of str, optional
        Databases whose neutral faces make ``average`` (default: all of the run's).
    progress : callable, optional
        ``progress(done, total)`` while an ``average`` base face is built.

    Raises
    ------
    ValueError
        For a base face that is none of these (the message lists the forms), or a size
        the renderer cannot draw (checked here, before any image is rendered).
    FacedialectError
        When the photo cannot be read or has no detectable face, or the run has no
        neutral images (subclasses with a clear message).
    """
    low, high = (64, 2048) if base_face == "3d" else (32, 4096)
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or not (
            low <= int(size) <= high):
        raise ValueError(f"size must be an integer in {low}..{high}"
                         f"{' for the 3d face' if base_face == '3d' else ''}, got {size!r}")
    if base_face == "builtin":
        return builtin_renderer(size)
    if base_face == "3d":
        from facedialect.faces.model3d.render import render_face_3d

        ident = FaceIdentity.default()
        return lambda aus: render_face_3d(ident, aus, size=size, color=False)
    if base_face == "average" or base_face.startswith("average:"):
        from facedialect.faces.average import cached_run_average

        run = base_face.partition(":")[2].strip() or run_dir
        if not run:
            raise ValueError("base face 'average' needs a run directory: use "
                             "average:RUN_DIR (a run whose databases are ingested)")
        return photo_renderer(cached_run_average(run, dbs=dbs if base_face == "average"
                                                 else None, progress=progress), size)
    if base_face and _is_photo_file(base_face):
        return photo_renderer(base_face, size)
    raise ValueError(f"base face {base_face!r}: not a photo file nor one of "
                     f"{list(BASE_FACE_FORMS)} (PHOTO = a path to a face photo)")


def _is_photo_file(base_face: str) -> bool:
    """Whether ``base_face`` names an existing file (clear errors for impossible paths)."""
    from facedialect.errors import ImageReadError
    from facedialect.imageio import expand_user

    p = expand_user(base_face, ImageReadError)  # ~user without a home folder
    try:
        return p.is_file()
    except OSError as exc:  # a name too long, a folder without permission
        raise ImageReadError(f"{p}: base face photo cannot be read ({exc.strerror or exc})"
                             ) from exc


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


def render_stimuli(table: pd.DataFrame, renderer: Renderer, workers: int = 1,
                   progress: Callable[[int, int], None] | None = None) -> list[np.ndarray]:
    """Render every stimulus of ``table`` (the null image once, with no AU).

    ``workers > 1`` renders in that many threads (numpy and OpenCV release the GIL); the
    first image is rendered alone first, so per-size caches are built once. The images
    are the same whatever the number of workers. ``progress(done, total)``, when given, is
    called first with 0 and then after each image.
    """
    jobs = [{} if r.au == 0 else {int(r.au): float(r.intensity)}
            for r in table.itertuples(index=False)]
    images: list[np.ndarray] = []

    def keep(img: np.ndarray) -> None:
        images.append(img)
        if progress:
            progress(len(images), len(jobs))

    if progress:
        progress(0, len(jobs))
    if workers <= 1 or len(jobs) < 2:
        for j in jobs:
            keep(renderer(j))
        return images
    from concurrent.futures import ThreadPoolExecutor

    keep(renderer(jobs[0]))
    with ThreadPoolExecutor(int(workers)) as ex:
        for img in ex.map(renderer, jobs[1:]):
            keep(img)
    return images


def write_stimuli(out_dir: str | Path, table: pd.DataFrame, images: Sequence[np.ndarray]
                  ) -> pd.DataFrame:
    """Write the images as PNGs and ``stimuli.csv``; returns the table with paths."""
    import cv2

    from facedialect.run.store import atomic_write_bytes, atomic_write_text

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
