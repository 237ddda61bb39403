"""Near-duplicate hash distances and face sharpness on the London face set (SCIENCE §1).

Usage::

    python bench/screening_hash_distances.py [--out bench/results/screening.json]

Measures, on the 204 photos of ``../shared/datasets/london-frl`` (102 people, neutral and
smiling, 512x512 JPEG), the distance of facedialect's near-duplicate hash (576-bit pHash,
the smaller distance to the other image and to its mirror image) and, for comparison, of
the 256-bit pHash and the 64-bit pHash and dHash:

* true copies: every photo resized, re-encoded as JPEG, mirrored, and combinations;
* different people: every pair of photos of two different people (neutral and smiling);
* the same person, neutral vs smiling: a different photo, which must not count.

Also the sharpness (:func:`facedialect.preprocess.screening.sharpness`) of every detected
face as it is, Gaussian-blurred and enlarged from a quarter size, and the widths of the
detected face boxes. With ``--synthetic DIR`` (a folder written by ``facedialect synth``:
one sub-folder per culture with ``manifest.csv``), also the smallest distance of two
images of different posers and of one poser. The figures are quoted in
docs/preprocessing.md.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import imagehash
import numpy as np
from PIL import Image

from facedialect.imageio import read_gray
from facedialect.preprocess import PreprocessParams, preprocess_face
from facedialect.preprocess.screening import (
    DEFAULT_HASH_DISTANCE,
    HASH_BITS,
    hash_distances,
    perceptual_hash,
    sharpness,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "london-frl"


def jpeg(g: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(g).save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("L"))


def resize(g: np.ndarray, s: float) -> np.ndarray:
    h, w = g.shape
    return np.asarray(Image.fromarray(g).resize((max(8, round(w * s)), max(8, round(h * s))),
                                                Image.Resampling.BICUBIC))


def mirror(g: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(g[:, ::-1])


#: Copies that must be found (and, last, two harsher ones for information).
COPIES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "resized x0.5 (256 px)": lambda g: resize(g, 0.5),
    "resized x0.25 (128 px)": lambda g: resize(g, 0.25),
    "resized x1.5 (768 px)": lambda g: resize(g, 1.5),
    "JPEG quality 75": lambda g: jpeg(g, 75),
    "JPEG quality 50": lambda g: jpeg(g, 50),
    "JPEG quality 20": lambda g: jpeg(g, 20),
    "mirrored": mirror,
    "x0.5 + JPEG 50 + mirrored": lambda g: mirror(jpeg(resize(g, 0.5), 50)),
    "x0.25 + JPEG 20 (harsh)": lambda g: jpeg(resize(g, 0.25), 20),
    "brightness +20 (harsh)": lambda g: np.clip(g.astype(int) + 20, 0, 255).astype(np.uint8),
    "cropped 5% each side (not targeted)": lambda g: g[round(g.shape[0] * .05):
                                                       round(g.shape[0] * .95),
                                                       round(g.shape[1] * .05):
                                                       round(g.shape[1] * .95)],
}


#: The hashes compared with facedialect's: name -> function of a PIL image.
OTHERS: dict[str, Callable[[Image.Image], imagehash.ImageHash]] = {
    "phash256": lambda im: imagehash.phash(im, 16),
    "phash64": imagehash.phash,
    "dhash64": imagehash.dhash,
}


def small_hashes(g: np.ndarray) -> dict[str, np.ndarray]:
    """The other hashes of the image and its mirror (bool arrays (2, bits))."""
    return {name: np.stack([fn(Image.fromarray(x)).hash.ravel() for x in (g, mirror(g))])
            for name, fn in OTHERS.items()}


def small_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, m) min Hamming distance of a's hash to b's hash and b's mirror hash."""
    a0 = a[:, 0].astype(np.int32)
    res = []
    for k in (0, 1):
        bk = b[:, k].astype(np.int32)
        res.append(a0 @ (1 - bk).T + (1 - a0) @ bk.T)
    return np.minimum(*res)


def summary(values: np.ndarray) -> dict[str, float]:
    v = np.asarray(values, dtype=float)
    return {"n": int(v.size), "min": float(v.min()), "p1": float(np.percentile(v, 1)),
            "p5": float(np.percentile(v, 5)), "median": float(np.median(v)),
            "p95": float(np.percentile(v, 95)), "max": float(v.max())}


def synthetic(folder: Path) -> dict:
    """Smallest distances between the images of a synthetic study folder."""
    import pandas as pd

    frames = [pd.read_csv(m, keep_default_na=False).assign(db=m.parent.name)
              .assign(path=lambda t, r=m.parent: [str(r / p) for p in t["path"]])
              for m in sorted(folder.glob("*/manifest.csv"))]
    items = pd.concat(frames, ignore_index=True)
    truth = {}  # the poser of every image, also where the manifest has no subject ids
    for m in sorted(folder.glob("*/truth.csv")):
        t = pd.read_csv(m, keep_default_na=False)
        truth.update({str(m.parent / p): s for p, s in zip(t["path"], t["subject"],
                                                             strict=True)})
    poser = np.array([f"{d}/{truth.get(p, s)}" for d, p, s in
                      zip(items["db"], items["path"], items["subject"], strict=True)])
    h = np.stack([perceptual_hash(read_gray(p)) for p in items["path"]])
    d = hash_distances(h, h)
    iu = np.triu_indices(len(items), 1)
    same = poser[iu[0]] == poser[iu[1]]
    pair = d[iu]
    return {"images": len(items), "different posers": summary(pair[~same]),
            "one poser": summary(pair[same])}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the london-frl folder")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "screening.json")
    ap.add_argument("--synthetic", type=Path, action="append", default=[],
                    help="a `facedialect synth` output folder (repeatable)")
    args = ap.parse_args(argv)
    files = sorted((args.data / "neutral").glob("*.jpg")) + sorted(
        (args.data / "smiling").glob("*.jpg"))
    if not files:
        sys.exit(f"no photos in {args.data}/neutral: pass --data (../shared/datasets/london-frl)")
    person = np.array([f.name.split("_")[0] for f in files])
    grays = [read_gray(f) for f in files]
    hashes = np.stack([perceptual_hash(g) for g in grays])
    small = [small_hashes(g) for g in grays]
    iu = np.triu_indices(len(files), 1)
    same = person[iu[0]] == person[iu[1]]
    kinds = {f"phash{HASH_BITS}": (hashes, lambda a, b: hash_distances(a, b))}
    for name in OTHERS:
        kinds[name] = (np.stack([s[name] for s in small]), small_dist)
    result: dict = {"data": str(args.data), "images": len(files), "people": len(set(person)),
                    "threshold": DEFAULT_HASH_DISTANCE, "hash_bits": HASH_BITS, "hashes": {}}
    copies = {name: [fn(g) for g in grays] for name, fn in COPIES.items()}
    for kind, (h, dist) in kinds.items():
        pair = dist(h, h)[iu]
        entry = {"different people": summary(pair[~same]),
                 "same person, neutral vs smiling": summary(pair[same]), "copies": {}}
        for name, imgs in copies.items():
            if kind == f"phash{HASH_BITS}":
                hc = np.stack([perceptual_hash(x) for x in imgs])
            else:
                hc = np.stack([small_hashes(x)[kind] for x in imgs])
            entry["copies"][name] = summary(np.diag(dist(h, hc)))
        result["hashes"][kind] = entry

    # sharpness and face width
    params = PreprocessParams()
    boxes = [preprocess_face(g, params).box for g in grays]
    ok = [k for k, b in enumerate(boxes) if b is not None]
    result["detected"] = len(ok)
    result["face_width"] = summary([boxes[k][2] for k in ok])
    blurs: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "as is": lambda g: g,
        "JPEG quality 20": lambda g: jpeg(g, 20),
        "Gaussian sigma 1 px": lambda g: cv2.GaussianBlur(g, (0, 0), 1.0),
        "Gaussian sigma 2 px": lambda g: cv2.GaussianBlur(g, (0, 0), 2.0),
        "Gaussian sigma 4 px": lambda g: cv2.GaussianBlur(g, (0, 0), 4.0),
        "enlarged from x0.25": lambda g: resize(resize(g, 0.25), 4.0),
        "enlarged from x0.125": lambda g: resize(resize(g, 0.125), 8.0),
    }
    result["sharpness"] = {name: summary([sharpness(fn(grays[k]), boxes[k]) for k in ok])
                           for name, fn in blurs.items()}
    for f in (2.0, 0.5, 0.25):  # the whole image resized, the box with it
        result["sharpness"][f"image resized x{f:g}"] = summary(
            [sharpness(resize(grays[k], f), tuple(round(v * f) for v in boxes[k]))
             for k in ok])

    result["synthetic"] = {d.name: synthetic(d) for d in args.synthetic}

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for kind, entry in result["hashes"].items():
        print(f"\n{kind}:  min / p1 / median / max")
        rows = [(k, v) for k, v in entry.items() if k != "copies"]
        rows += [(f"copy: {k}", v) for k, v in entry["copies"].items()]
        for name, s in rows:
            print(f"  {name:42s} {s['min']:5.0f} {s['p1']:5.0f} {s['median']:6.1f} "
                  f"{s['max']:5.0f}  (n={s['n']})")
    print("\nface width (px):", {k: round(v) for k, v in result["face_width"].items()})
    print("sharpness:  min / p5 / median / max")
    for name, s in result["sharpness"].items():
        print(f"  {name:30s} {s['min']:7.0f} {s['p5']:7.0f} {s['median']:7.0f} {s['max']:7.0f}")
    for folder, entry in result["synthetic"].items():
        print(f"{folder}: {entry}")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
