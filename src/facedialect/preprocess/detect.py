"""Face detection with OpenCV's Haar frontal-face cascade (largest face first)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facedialect.errors import FacedialectError
from facedialect.preprocess.params import PreprocessParams

#: File name of the cascade, looked up in ``cv2.data.haarcascades``.
CASCADE_FILE = "haarcascade_frontalface_default.xml"

_local = threading.local()


class CascadeNotFoundError(FacedialectError):
    """OpenCV's Haar cascade file is not available in this installation."""


def cascade_path() -> Path:
    """Return the path of the Haar frontal-face cascade shipped with OpenCV.

    Returns
    -------
    Path
        ``cv2.data.haarcascades / "haarcascade_frontalface_default.xml"``.

    Raises
    ------
    CascadeNotFoundError
        When this OpenCV has no ``cv2.data`` or the file is missing (OpenCV 5 ships no
        Haar cascades).
    """
    data = getattr(cv2, "data", None)
    folder = getattr(data, "haarcascades", None)
    hint = (
        "facedialect needs OpenCV 4.x from pip, which ships the Haar cascades: "
        "pip install 'opencv-python-headless>=4.8,<5'"
    )
    if folder is None:
        raise CascadeNotFoundError(
            f"OpenCV {cv2.__version__} has no cv2.data.haarcascades folder, so the Haar face "
            f"cascade cannot be found. {hint}"
        )
    path = Path(folder) / CASCADE_FILE
    if not path.is_file():
        raise CascadeNotFoundError(
            f"Haar face cascade not found: {path} (OpenCV {cv2.__version__}). {hint}"
        )
    return path


def _cascade() -> cv2.CascadeClassifier:
    """Return this thread's cascade, loading it on first use.

    ``cv2.CascadeClassifier`` must not be used by two threads at once, so every thread
    gets its own instance (loading takes a few tens of milliseconds).
    """
    clf = getattr(_local, "cascade", None)
    if clf is None:
        path = cascade_path()
        clf = cv2.CascadeClassifier(str(path))
        if clf.empty():
            raise CascadeNotFoundError(
                f"OpenCV could not load the Haar face cascade {path}: the file is damaged; "
                "reinstall opencv-python-headless"
            )
        _local.cascade = clf
    return clf


def check_gray(gray: np.ndarray) -> np.ndarray:
    """Validate a grayscale image for the pipeline.

    Parameters
    ----------
    gray : numpy.ndarray
        Image to check.

    Returns
    -------
    numpy.ndarray
        The same image as a C-contiguous ``(H, W)`` uint8 array.

    Raises
    ------
    ValueError
        When the image is not 2-D uint8 or is empty.
    """
    if not isinstance(gray, np.ndarray):
        raise ValueError(f"expected a numpy array, got {type(gray).__name__}")
    if gray.ndim != 2:
        raise ValueError(
            f"expected a 2-D grayscale image (H, W), got shape {gray.shape}; "
            "read images with facedialect.imageio.read_gray"
        )
    if gray.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {gray.dtype}")
    if gray.shape[0] < 2 or gray.shape[1] < 2:
        raise ValueError(f"image too small: shape {gray.shape}")
    return np.ascontiguousarray(gray)


@dataclass(frozen=True)
class Detections:
    """Faces found in one image.

    Attributes
    ----------
    boxes : numpy.ndarray
        ``(k, 4)`` int64 boxes ``(x, y, w, h)`` in the image's pixels, largest first.
    neighbors : numpy.ndarray
        ``(k,)`` int64: how many raw cascade detections were merged into each box (OpenCV's
        ``numDetections``), a measure of confidence.
    equalized : bool
        True when the faces were found only on the histogram-equalized copy.
    """

    boxes: np.ndarray
    neighbors: np.ndarray
    equalized: bool

    def choose(self, rule: str) -> int:
        """Return the index of the face to use: ``"largest"`` or ``"strongest"``.

        Ties in neighbours go to the larger face. Raises ``IndexError`` when empty.
        """
        if len(self.boxes) == 0:
            raise IndexError("no face to choose from")
        if rule == "largest":
            return 0
        if rule == "strongest":
            return int(np.argmax(self.neighbors))  # first maximum = largest among ties
        raise ValueError(f"unknown face choice {rule!r}: use 'largest' or 'strongest'")


def detect_faces(gray: np.ndarray, params: PreprocessParams) -> np.ndarray:
    """Find frontal faces with OpenCV's Haar cascade.

    Parameters
    ----------
    gray : numpy.ndarray
        ``(H, W)`` uint8 grayscale image.
    params : PreprocessParams
        Uses ``scale_factor``, ``min_neighbors``, ``min_face_fraction`` (the smallest
        face side searched for is ``min_face_fraction * min(H, W)`` pixels, at least 24)
        and ``retry_equalized``.

    Returns
    -------
    numpy.ndarray
        ``(k, 4)`` int64 array of boxes ``(x, y, w, h)`` in the image's pixels, sorted
        by area, largest first (ties broken by position, so the order is deterministic);
        ``k`` is 0 when no face is found.

    Raises
    ------
    ValueError
        When ``gray`` is not a 2-D uint8 array.
    CascadeNotFoundError
        When OpenCV's cascade file is missing.

    See Also
    --------
    detect_faces_info : the same boxes with their confidence and the equalization flag.
    """
    return detect_faces_info(gray, params).boxes


def detect_faces_info(gray: np.ndarray, params: PreprocessParams) -> Detections:
    """Find frontal faces, with their confidence and whether equalization was needed.

    The cascade runs on the image as given. If it finds nothing and
    ``params.retry_equalized`` is set, it runs once more on a copy whose histogram is
    equalized (``cv2.equalizeHist``); the boxes refer to the same pixels either way.

    Parameters
    ----------
    gray : numpy.ndarray
        ``(H, W)`` uint8 grayscale image.
    params : PreprocessParams
        Detection settings, as for :func:`detect_faces`.

    Returns
    -------
    Detections
        Boxes (largest first), neighbour counts and the equalization flag.
    """
    gray = check_gray(gray)
    found = _run_cascade(gray, params)
    if len(found.boxes) == 0 and params.retry_equalized:
        found = _run_cascade(cv2.equalizeHist(gray), params)
        return Detections(found.boxes, found.neighbors, len(found.boxes) > 0)
    return found


def _run_cascade(gray: np.ndarray, params: PreprocessParams) -> Detections:
    side = max(24, int(round(params.min_face_fraction * min(gray.shape))))
    empty = Detections(np.zeros((0, 4), dtype=np.int64), np.zeros(0, dtype=np.int64), False)
    if side > min(gray.shape):
        return empty
    found, counts = _cascade().detectMultiScale2(
        gray,
        scaleFactor=params.scale_factor,
        minNeighbors=params.min_neighbors,
        minSize=(side, side),
    )
    boxes = np.asarray(found, dtype=np.int64).reshape(-1, 4)
    if len(boxes) == 0:
        return empty
    neighbors = np.asarray(counts, dtype=np.int64).reshape(-1)
    area = boxes[:, 2] * boxes[:, 3]
    order = np.lexsort((boxes[:, 0], boxes[:, 1], -area))
    return Detections(boxes[order], neighbors[order], False)
