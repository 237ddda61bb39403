"""AU stimulus series (docs/method.md §7): each AU rises from 0 to 1 in N steps on one base face.

Level 0 is the same "null image" for every AU (rendered once). Base faces
(:class:`~facedialect.faces.base.BaseFace`): the built-in procedural face, the 3D model's
own face, a photo-textured 3D face (a photo, or an average face); see :func:`renderer_for`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from facedialect.faces.base import BaseFace
from facedialect.faces.procedural.identity import FaceIdentity
from facedialect.faces.procedural.render import render_face
from facedialect.vocab import STUDY_AUS

__all__ = [
    "STIMULI_COLUMNS",
    "Renderer",
    "builtin_renderer",
    "check_stimulus_size",
    "photo_renderer",
    "render_stimuli",
    "renderer_for",
    "stimulus_table",
    "write_stimuli",
]

#: Columns of ``stimuli.csv``.
STIMULI_COLUMNS = ["au", "level", "intensity", "path"]

#: A base face's renderer: ``renderer({AU: intensity}) -> uint8 image``.
Renderer = Callable[[Mapping[int, float]], np.ndarray]


def builtin_renderer(size: int = 256, identity: FaceIdentity | None = None) -> Renderer:
    """A renderer of the built-in face.

    Parameters
    ----------
    size : int
        Image side in pixels.
    identity : FaceIdentity, optional
        The face (default: the average identity).

    Returns
    -------
    Renderer
        ``renderer(aus) -> (size, size)`` uint8 grayscale image.
    """
    ident = identity or FaceIdentity.default()
    return lambda aus: render_face(ident, aus, size=size, color=False)


def photo_renderer(photo: str | Path | np.ndarray, size: int = 256) -> Renderer:
    """A renderer of a photo-textured 3D face (:class:`~facedialect.faces.model3d.photo.PhotoFace`).

    Parameters
    ----------
    photo : str, Path or numpy.ndarray
        The photo file (fitted and textured once, cached per file) or the image itself
        (uint8 gray or RGB).
    size : int
        Output width in pixels; the images are grayscale.

    Returns
    -------
    Renderer

    Raises
    ------
    ImageReadError
        When the photo is missing or unreadable.
    NoFaceDetectedError
        When no face is found in it.
    """
    from facedialect.faces.model3d.photo import PhotoFace, photo_face

    face = PhotoFace(photo) if isinstance(photo, np.ndarray) else photo_face(photo)
    return lambda aus: face.render(aus, size=size, color=False)


def check_stimulus_size(base_face: BaseFace, size: int) -> int:
    """Return ``size`` as an int if the base face's renderer can draw it.

    Raises
    ------
    ValueError
        Unless ``size`` is an integer in 64..2048 (the ``3d`` face) or 32..4096 (the
        others).
    """
    is_3d = base_face.kind == "3d"
    low, high = (64, 2048) if is_3d else (32, 4096)
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or not (
            low <= int(size) <= high):
        raise ValueError(f"size must be an integer in {low}..{high}"
                         f"{' for the 3d face' if is_3d else ''}, got {size!r}")
    return int(size)


def renderer_for(base_face: BaseFace | str, size: int = 256, *,
                 image: str | Path | np.ndarray | None = None) -> Renderer:
    """The renderer of a base face.

    Parameters
    ----------
    base_face : BaseFace or str
        The base face (text is parsed with :meth:`BaseFace.parse`): ``builtin``
        (procedural face), ``3d`` (the ICT model's average face), a photo
        (photo-textured 3D face) or ``average`` / ``average:RUN_DIR`` (the average face,
        given as ``image``, photo-textured).
    size : int
        Output width in pixels.
    image : str, Path or numpy.ndarray, optional
        The image the face is made from: required for ``average`` (the average face,
        e.g. :func:`~facedialect.faces.average.average_face`'s image or its PNG); for a
        photo it replaces the base face's file.

    Returns
    -------
    Renderer
        ``renderer(aus) -> uint8`` grayscale image, ``size`` pixels wide.

    Raises
    ------
    ValueError
        For a base face that is none of these (the message lists the forms), an
        ``average`` without ``image``, or a size the renderer cannot draw (checked here,
        before any image is rendered).
    FacedialectError
        When the photo cannot be read or has no detectable face (subclasses with a clear
        message).
    """
    base = BaseFace.parse(base_face)
    size = check_stimulus_size(base, size)
    if base.kind == "builtin":
        return builtin_renderer(size)
    if base.kind == "3d":
        from facedialect.faces.model3d.render import render_face_3d

        ident = FaceIdentity.default()
        return lambda aus: render_face_3d(ident, aus, size=size, color=False)
    if base.kind == "average" and image is None:
        raise ValueError("base face 'average' needs the average face image (image=...); on "
                         "the command line use average:RUN_DIR (a run whose databases are "
                         "ingested)")
    source = base.path if image is None else image
    assert source is not None  # a photo base face has its path
    return photo_renderer(source, size)


def stimulus_table(aus: Sequence[int] = STUDY_AUS, levels: int = 11) -> pd.DataFrame:
    """One row per stimulus: the null image first, then every AU at levels 1..N-1.

    Parameters
    ----------
    aus : sequence of int
        AUs to vary (of the 20 study AUs).
    levels : int
        Intensity steps from 0 to 1 (level 0 is the null image, shared by every AU).

    Returns
    -------
    pandas.DataFrame
        ``au, level, intensity``; the null image is ``au = 0, level = 0``.

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

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`stimulus_table`'s rows.
    renderer : Renderer
        ``renderer(aus) -> image`` (:func:`renderer_for`).
    workers : int
        ``> 1`` renders in that many threads (numpy and OpenCV release the GIL); the
        first image is rendered alone first, so per-size caches are built once. The
        images are the same whatever the number of workers.
    progress : callable, optional
        ``progress(done, total)``, called first with 0 and then after each image.

    Returns
    -------
    list of numpy.ndarray
        One image per row of ``table``, in order.
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
    """Write the images as PNGs and ``stimuli.csv``.

    Parameters
    ----------
    out_dir : str or Path
        Folder for ``null.png``, ``AU{au:02d}_L{level:02d}.png`` and ``stimuli.csv``.
    table : pandas.DataFrame
        :func:`stimulus_table`'s rows.
    images : sequence of numpy.ndarray
        :func:`render_stimuli`'s images, in the table's order.

    Returns
    -------
    pandas.DataFrame
        The table with the ``path`` of each image (:data:`STIMULI_COLUMNS`).
    """
    import cv2

    from facedialect.files import atomic_write_bytes, atomic_write_text

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
