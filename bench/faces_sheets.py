"""Contact sheets of the photo-textured 3-D face: single AUs and culture A's prototypes.

    python bench/faces_sheets.py --out docs/img            # both sheets
    python bench/faces_sheets.py --out /tmp/x --photos 3   # fewer faces

Writes ``photo_aus_sheet.png`` (faces, rows; no AU and each AU at intensity 1, columns)
and ``photo_prototypes_sheet.png`` (faces, rows; culture A's classic prototypes at their
preset intensity, columns), each labelled. The faces are the London set's composite
(average) faces by default (``--set neutral``: the individual neutral photos). Face
Research Lab London Set, DeBruine & Jones (2017), CC BY 4.0.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from facedialect.faces.model3d.photo import PhotoFace, photo_face  # noqa: E402
from facedialect.synthetic.cultures import PROTOTYPES_A  # noqa: E402

LONDON = ROOT.parent / "shared" / "datasets" / "london-frl"
SHEET_AUS = (1, 2, 4, 5, 6, 7, 9, 10, 12, 15, 17, 20, 23, 24, 25, 26, 27)


def sheet(rows: list[list[np.ndarray]], labels: list[str], tile: int) -> np.ndarray:
    """Rows of RGB images as one labelled grid."""
    head = 18
    cols = max(len(r) for r in rows)
    out = np.full((head + tile * len(rows), tile * cols, 3), 255, np.uint8)
    for j, text in enumerate(labels):
        cv2.putText(out, text, (j * tile + 4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1,
                    cv2.LINE_AA)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            out[head + i * tile: head + (i + 1) * tile, j * tile: (j + 1) * tile] = cv2.resize(
                img, (tile, tile), interpolation=cv2.INTER_AREA)
    return out


def crop(img: np.ndarray, face: PhotoFace) -> np.ndarray:
    """The square around the face (its fitted landmarks, with a margin) of a render."""
    k = img.shape[1] / face.photo.shape[1]
    lm = face.fit.landmarks * k
    c = (lm.min(0) + lm.max(0)) / 2
    half = 0.75 * float((lm.max(0) - lm.min(0)).max())
    x0, y0 = (max(0, int(round(v - half))) for v in c)
    s = int(round(2 * half))
    return img[y0:y0 + s, x0:x0 + s]


def main() -> None:
    """Render the sheets."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    ap.add_argument("--photos", type=int, default=4, help="faces (rows)")
    ap.add_argument("--set", choices=["composite", "neutral"], default="composite",
                    help="the London composites or individual neutral photos")
    ap.add_argument("--size", type=int, default=512, help="render width")
    ap.add_argument("--tile", type=int, default=128)
    ap.add_argument("--only", choices=["aus", "prototypes"], help="one sheet only")
    args = ap.parse_args()
    found = sorted((LONDON / args.set).glob("*.jpg"))
    photos = found[:: max(1, len(found) // args.photos)][: args.photos]
    faces = [photo_face(p) for p in photos]
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only != "prototypes":
        rows = [[crop(f.render({}, size=args.size, color=True), f)]
                + [crop(f.render({a: 1.0}, size=args.size, color=True), f) for a in SHEET_AUS]
                for f in faces]
        img = sheet(rows, ["AU 0"] + [f"AU{a}" for a in SHEET_AUS], args.tile)
        cv2.imwrite(str(args.out / "photo_aus_sheet.png"), img[:, :, ::-1],
                    [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if args.only != "aus":
        names = list(PROTOTYPES_A)
        rows = [[crop(f.render(PROTOTYPES_A[e], size=args.size, color=True), f) for e in names]
                for f in faces]
        img = sheet(rows, names, args.tile)
        cv2.imwrite(str(args.out / "photo_prototypes_sheet.png"), img[:, :, ::-1],
                    [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote sheets to {args.out}")


if __name__ == "__main__":
    main()
