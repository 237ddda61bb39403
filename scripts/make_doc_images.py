"""Redraw the built-in face's documentation images (docs/img/procedural_*.png).

Run: .venv/bin/python scripts/make_doc_images.py
(``--photo``: the photo-textured faces' images instead, docs/img/photo_*.png;
``--model3d``: the 3-D model's AU and prototype sheets, docs/img/model3d_aus.png and
docs/img/model3d_prototypes.png, needs ../shared/assets)
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from facedialect.faces.procedural.identity import FaceIdentity  # noqa: E402
from facedialect.faces.procedural.render import render_face  # noqa: E402
from facedialect.synthetic.cultures import PROTOTYPES_A  # noqa: E402
from facedialect.vocab import (
    EXPRESSIONS,  # noqa: E402
    STUDY_AUS,  # noqa: E402
)

OUT = Path(__file__).resolve().parents[1] / "docs" / "img"


def expressions_sheet(n: int = 5) -> None:
    """Rows: the 7 culture-A prototypes; columns: random posers."""
    rng = np.random.default_rng(3)
    idents = [FaceIdentity.random(rng) for _ in range(n)]
    fig, axes = plt.subplots(7, n, figsize=(1.6 * n + 1.2, 1.6 * 7))
    for r, expr in enumerate(EXPRESSIONS):
        aus = PROTOTYPES_A[expr]
        for c, ident in enumerate(idents):
            ax = axes[r, c]
            ax.imshow(render_face(ident, aus, size=160, color=True))
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                label = "+".join(str(a) for a in sorted(aus)) or "no AU"
                ax.set_ylabel(f"{expr}\nAUs {label}", fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / "procedural_expressions.png", dpi=72)
    plt.close(fig)


def au_sheet(levels: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)) -> None:
    """Rows: the 20 study AUs; columns: intensities, on the average face."""
    ident = FaceIdentity.default()
    fig, axes = plt.subplots(len(STUDY_AUS), len(levels),
                             figsize=(1.1 * len(levels) + 0.8, 1.1 * len(STUDY_AUS)))
    for r, au in enumerate(STUDY_AUS):
        for c, v in enumerate(levels):
            ax = axes[r, c]
            ax.imshow(render_face(ident, {au: v}, size=112), cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(f"AU{au}", fontsize=8)
            if r == 0:
                ax.set_title(f"{v:g}", fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / "procedural_aus.png", dpi=72)
    plt.close(fig)


def photo_sheets(levels: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)) -> None:
    """Photo-textured faces (docs/img/photo_*.png), AUs x levels (needs ../shared).

    On a London composite (f_white) and on the average of the 102 London neutral faces.
    """
    import cv2

    from facedialect.faces.average import average_face
    from facedialect.faces.model3d.fit import load_photo
    from facedialect.faces.model3d.photo import PhotoFace

    london = OUT.parents[2] / "shared" / "datasets" / "london-frl"
    avg = average_face(sorted((london / "neutral").glob("*.jpg")), size=512, color=True)
    small = cv2.resize(avg.image, (256, 256), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(OUT / "photo_average_neutral.png"), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
    bases = {"composite": load_photo(london / "composite" / "f_white.jpg"),
             "average": avg.image}
    size, tile = 256, 100   # grayscale, as the stimuli are
    for name, photo in bases.items():
        face = PhotoFace(photo)
        lm = face.fit.landmarks * size / photo.shape[1]
        cx, cy = lm[27:36, 0].mean(), lm[17:68, 1].mean() - 0.02 * size
        half = int(0.62 * np.ptp(lm[:, 0]))
        y0, x0 = int(cy - 1.1 * half), int(cx - half)
        blocks = []
        for aus in (STUDY_AUS[:10], STUDY_AUS[10:]):
            rows = []
            for au in aus:
                row = []
                for v in levels:
                    img = face.render({au: v} if v else {}, size)
                    crop = img[max(0, y0): y0 + int(2.2 * half), max(0, x0): x0 + 2 * half]
                    row.append(cv2.resize(crop, (tile, int(tile * 1.1)),
                                          interpolation=cv2.INTER_AREA))
                label = np.full((row[0].shape[0], 44), 255, np.uint8)
                cv2.putText(label, f"AU{au}", (2, row[0].shape[0] // 2 + 4),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.38, 0, 1, cv2.LINE_AA)
                rows.append(np.hstack([label, *row]))
            head = np.full((18, rows[0].shape[1]), 255, np.uint8)
            for i, v in enumerate(levels):
                cv2.putText(head, f"{v:g}", (44 + i * tile + tile // 2 - 10, 13),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.4, 0, 1, cv2.LINE_AA)
            blocks.append(np.vstack([head, *rows]))
        gap = np.full((blocks[0].shape[0], 12), 255, np.uint8)
        sheet = np.hstack([blocks[0], gap, blocks[1]])
        cv2.imwrite(str(OUT / f"photo_{name}_aus.png"), sheet)


#: The 3-D sheets' tile: a 192 px render of the default identity cropped to the face.
_TILE3D = (slice(16, 175), slice(27, 165))


def _tile3d(aus: dict, text: str) -> np.ndarray:
    import cv2

    from facedialect.faces.model3d.render import render_face_3d

    img = np.ascontiguousarray(
        render_face_3d(FaceIdentity.default(), aus, 192, color=True)[_TILE3D])
    cv2.putText(img, text, (3, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (20, 20, 20), 1,
                cv2.LINE_AA)
    return img


def model3d_sheets(levels: tuple[float, ...] = (0.0, 0.5, 1.0)) -> None:
    """Redraw the 3-D model's sheets with the current AU recipes.

    docs/img/model3d_aus.png: the 20 study AUs (two blocks of 10 columns; rows: the
    levels); docs/img/model3d_prototypes.png: the east-west preset's 7 expressions of
    cultures A and B, every AU at its prototype intensity.
    """
    from facedialect.synthetic.databases3d import load_preset

    blocks = []
    for aus in (STUDY_AUS[:10], STUDY_AUS[10:]):
        blocks.append(np.vstack([np.hstack([_tile3d({au: v} if v else {}, f"AU{au} {v:.1f}")
                                            for au in aus]) for v in levels]))
    gap = np.full((6, blocks[0].shape[1], 3), 255, np.uint8)
    sheet = np.vstack([blocks[0], gap, blocks[1]])
    _save_palette(sheet, OUT / "model3d_aus.png")
    preset = load_preset("east-west")
    rows = [np.hstack([_tile3d(preset.prototypes_of(c)[e], f"{c} {e}") for e in EXPRESSIONS])
            for c in preset.cultures]
    _save_palette(np.vstack(rows), OUT / "model3d_prototypes.png")


def _save_palette(rgb: np.ndarray, path: Path) -> None:
    """Write an RGB image as a 256-colour PNG (a fifth of the size, no visible change)."""
    from PIL import Image

    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(
        path, optimize=True)


if __name__ == "__main__":
    import sys

    OUT.mkdir(parents=True, exist_ok=True)
    if "--photo" in sys.argv:   # the photo-textured faces only (needs ../shared)
        photo_sheets()
        print("wrote", *sorted(OUT.glob("photo_*.png")))
    elif "--model3d" in sys.argv:   # the 3-D model's sheets (needs ../shared)
        model3d_sheets()
        print("wrote", OUT / "model3d_aus.png", OUT / "model3d_prototypes.png")
    else:
        expressions_sheet()
        au_sheet()
        print("wrote", *sorted(OUT.glob("procedural_*.png")))
