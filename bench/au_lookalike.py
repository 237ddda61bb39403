"""How alike do the study AUs look to the network's input? Difference-image correlations.

Run:  .venv/bin/python bench/au_lookalike.py          # the pairs of docs/faces-3d.md
      .venv/bin/python bench/au_lookalike.py --all    # also every study-AU pair

Measures the table of docs/faces-3d.md, "Look-alike AUs": on the 3-D model's mean face
(``renderer_for("3d")``, i.e. :func:`~facedialect.faces.model3d.render.render_face_3d` of
the default identity, grayscale, 256 px) the null image (no AU) and every study AU at
intensity 1 are rendered and pre-processed like training images
(:func:`~facedialect.preprocess.pipeline.preprocess_face`, default
:class:`~facedialect.preprocess.params.PreprocessParams`) in two ways:

- ``detected``: each image cropped where the Haar detector finds its face (as the study);
- ``null_crop``: every image cropped with the null image's face box, which shows the
  shape change alone (the detected box moves and zooms with the AU).

For each AU the difference image (AU image minus null image) and the feature difference
(MobileNetV2 with ImageNet weights, loaded offline, plain variant, pooled features of the
AU image minus those of the null image) are computed; a pair's similarity is the Pearson
correlation of the two AUs' differences, over all pixels of the pre-processed image
(``pixels``) or over the feature dimensions (``features``). Prints the table's pairs
(``--all`` also prints the full matrices) and writes them, every study-AU pair and the
detected box widths to bench/results/au_lookalike.json. About 10 s on one core of the
shared 2-core development machine (5 s rendering and measuring, the rest imports).

Run on the sources of session 3's AU24 change (commit bbb6555, ``STUDY_AUS`` then in
``facedialect.config``) it gives that session's table in the docs to the last digit.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from _common import cpu_model  # noqa: E402  (bench/ is on sys.path when run)
from facedialect.faces.stimuli import renderer_for  # noqa: E402
from facedialect.models.backbones import Backbone  # noqa: E402
from facedialect.models.weights import load_backbone  # noqa: E402
from facedialect.preprocess.params import PreprocessParams  # noqa: E402
from facedialect.preprocess.pipeline import (  # noqa: E402
    crop_face,
    normalize_face,
    preprocess_face,
)
from facedialect.vocab import STUDY_AUS  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "au_lookalike.json"
#: The pairs of the docs' table (docs/faces-3d.md, "Look-alike AUs"), in its order.
PAIRS: tuple[tuple[int, int], ...] = (
    (23, 24), (15, 17), (17, 24), (15, 24), (23, 17), (23, 15), (20, 24), (12, 24),
    (16, 26), (16, 25), (4, 9),
)
#: The crops, in the table's column order.
CROPS: tuple[str, ...] = ("detected", "null_crop")
#: The measures, in the table's column order.
MEASURES: tuple[str, ...] = ("pixels", "features")


def render_stimuli(aus: tuple[int, ...]) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Render the null image and each AU at intensity 1 on the mean face.

    Parameters
    ----------
    aus : tuple of int
        The AUs to render.

    Returns
    -------
    null : numpy.ndarray
        ``(256, 256)`` uint8 grayscale null image.
    images : dict of int to numpy.ndarray
        Each AU's image, alike.
    """
    render = renderer_for("3d")
    return render({}), {a: render({a: 1.0}) for a in aus}


def preprocess(null: np.ndarray, images: dict[int, np.ndarray], params: PreprocessParams
               ) -> tuple[dict[str, dict[int, np.ndarray]], dict[int, int]]:
    """Pre-process the stimuli with the detected crop and with the null image's crop.

    Parameters
    ----------
    null : numpy.ndarray
        The null image.
    images : dict of int to numpy.ndarray
        Each AU's image.
    params : PreprocessParams
        Pre-processing settings.

    Returns
    -------
    faces : dict of str to dict of int to numpy.ndarray
        Per crop (:data:`CROPS`), the pre-processed faces keyed by AU (0 is the null image).
    widths : dict of int to int
        Width of the detected face box per AU (0 is the null image).

    Raises
    ------
    RuntimeError
        When the detector finds no face in a stimulus.
    """
    grays = {0: null, **images}
    found = {a: preprocess_face(g, params) for a, g in grays.items()}
    for a, res in found.items():
        if res.image is None or res.box is None:
            raise RuntimeError(f"stimulus AU{a}: {res.reason}")
    null_box = found[0].box
    assert null_box is not None
    faces = {
        "detected": {a: res.image for a, res in found.items() if res.image is not None},
        "null_crop": {a: normalize_face(crop_face(g, null_box, params)[0], params)
                      for a, g in grays.items()},
    }
    widths = {a: int(res.box[2]) for a, res in found.items() if res.box is not None}
    return faces, widths


def features(backbone: Backbone, faces: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Pooled backbone features of pre-processed faces (plain variant).

    Parameters
    ----------
    backbone : Backbone
        The frozen backbone.
    faces : dict of int to numpy.ndarray
        ``(size, size)`` uint8 faces keyed by AU.

    Returns
    -------
    dict of int to numpy.ndarray
        float64 feature vector per AU.
    """
    keys = list(faces)
    with torch.inference_mode():
        x = backbone.to_input(np.stack([faces[k] for k in keys]))
        out = torch.cat([backbone(x[i:i + 16]) for i in range(0, len(x), 16)])
    return {k: out[i].double().numpy() for i, k in enumerate(keys)}


def difference_correlations(vectors: dict[int, np.ndarray], aus: tuple[int, ...]
                            ) -> np.ndarray:
    """Correlation matrix of each AU's vector minus the null image's (key 0).

    Parameters
    ----------
    vectors : dict of int to numpy.ndarray
        Images or features keyed by AU, with the null image's under 0.
    aus : tuple of int
        The AUs, in the matrix's order.

    Returns
    -------
    numpy.ndarray
        ``(len(aus), len(aus))`` Pearson correlations of the flattened differences.
    """
    base = np.asarray(vectors[0], dtype=np.float64).ravel()
    diffs = np.stack([np.asarray(vectors[a], dtype=np.float64).ravel() - base for a in aus])
    return np.corrcoef(diffs)


@dataclass
class Measured:
    """What :func:`measure` found.

    Attributes
    ----------
    matrices : dict of str to numpy.ndarray
        ``"<measure>, <crop>"`` (:data:`MEASURES` x :data:`CROPS`) to the correlation
        matrix, rows and columns in the AUs' order.
    box_widths : dict of str to int
        Detected face box width per stimulus (``"null"``, ``"AU1"``, ...).
    weights : str
        The backbone's weights tag.
    seconds : dict of str to float
        Time rendering and in all.
    """

    matrices: dict[str, np.ndarray]
    box_widths: dict[str, int]
    weights: str
    seconds: dict[str, float]


def measure(aus: tuple[int, ...] = STUDY_AUS) -> Measured:
    """Render, pre-process and correlate.

    Parameters
    ----------
    aus : tuple of int
        The AUs compared.

    Returns
    -------
    Measured
        Every correlation matrix, the detected box widths, the weights and the time.
    """
    t0 = time.perf_counter()
    params = PreprocessParams()
    null, images = render_stimuli(aus)
    t_render = time.perf_counter() - t0
    faces, widths = preprocess(null, images, params)
    backbone = load_backbone("mobilenet_v2", "imagenet")
    feats = {crop: features(backbone, faces[crop]) for crop in CROPS}
    vectors = {"pixels": faces, "features": feats}
    matrices = {f"{m}, {c}": difference_correlations(vectors[m][c], aus)
                for m in MEASURES for c in CROPS}
    return Measured(matrices=matrices,
                    box_widths={("null" if a == 0 else f"AU{a}"): w for a, w in widths.items()},
                    weights=backbone.weights_tag,
                    seconds={"render": round(t_render, 1),
                             "total": round(time.perf_counter() - t0, 1)})


def pair_table(matrices: dict[str, np.ndarray], aus: tuple[int, ...],
               pairs: tuple[tuple[int, int], ...]) -> list[dict[str, object]]:
    """The correlations of the given pairs, one row per pair.

    Parameters
    ----------
    matrices : dict of str to numpy.ndarray
        :func:`measure`'s matrices.
    aus : tuple of int
        The matrices' AU order.
    pairs : tuple of tuple of int
        The pairs.

    Returns
    -------
    list of dict
        ``pair`` (``"AU23-AU24"``) and one correlation (3 decimals) per matrix.
    """
    at = {a: i for i, a in enumerate(aus)}
    return [{"pair": f"AU{a}-AU{b}",
             **{k: round(float(m[at[a], at[b]]), 3) for k, m in matrices.items()}}
            for a, b in pairs]


def print_matrix(name: str, m: np.ndarray, aus: tuple[int, ...]) -> None:
    """Print one correlation matrix (2 decimals)."""
    print(f"\n{name}:")
    print("      " + "".join(f"{'AU' + str(a):>6}" for a in aus))
    for a, row in zip(aus, m, strict=True):
        print(f"{'AU' + str(a):>6}" + "".join(f"{v:6.2f}" for v in row))


def compact_json(data: dict[str, object]) -> str:
    """JSON with every object that holds no list or object on one line.

    Parameters
    ----------
    data : dict
        The results (no string in them holds a brace, bracket or newline).

    Returns
    -------
    str
        Indented JSON text ending in a newline.
    """
    text = json.dumps(data, indent=1)
    flat = re.compile(r"\{\n([^{}\[\]]*?)\n\s*\}")
    return flat.sub(lambda m: "{" + " ".join(t.strip() for t in m.group(1).split("\n")) + "}",
                    text) + "\n"


def main() -> None:
    """Measure the look-alike table and record it."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--all", action="store_true",
                    help="also print the full matrices of every study-AU pair")
    ap.add_argument("--out", type=Path, default=RESULTS, help="where the results go")
    args = ap.parse_args()
    torch.set_num_threads(1)
    aus = tuple(STUDY_AUS)
    result = measure(aus)
    matrices = result.matrices
    rows = pair_table(matrices, aus, PAIRS)
    keys = [f"{m}, {c}" for m in MEASURES for c in CROPS]
    print(f"{'pair':10}" + "".join(f"{k:>22}" for k in keys))
    for r in rows:
        print(f"{r['pair']:10}" + "".join(f"{r[k]:22.2f}" for k in keys))
    print(f"detected box widths: {result.box_widths}")
    if args.all:
        for k in keys:
            print_matrix(k, matrices[k], aus)
    print(f"seconds: {result.seconds}")
    out = {
        "command": "python bench/au_lookalike.py",
        "stimuli": "mean face (renderer_for('3d'), 256 px), null image and each study AU "
                   "at intensity 1; default PreprocessParams",
        "measures": "Pearson correlation of (AU - null) differences: pixels of the "
                    "pre-processed image, or MobileNetV2 ImageNet pooled features",
        "weights": result.weights,
        "machine": {"cpu": cpu_model(), "threads": torch.get_num_threads()},
        "seconds": result.seconds,
        "box_widths": result.box_widths,
        "pairs": rows,
        "all_pairs": [{"pair": f"AU{a}-AU{b}",
                       **{k: round(float(matrices[k][i, j]), 3) for k in keys}}
                      for (i, a), (j, b) in combinations(enumerate(aus), 2)],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(compact_json(out))
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
