"""Redraw the built-in face's documentation images (docs/img/procedural_*.png).

Run: .venv/bin/python scripts/make_doc_images.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from facedialect.faces.cultures import PROTOTYPES_A  # noqa: E402
from facedialect.faces.procedural import STUDY_AUS, FaceIdentity, render_face  # noqa: E402
from facedialect.labels import EXPRESSIONS  # noqa: E402

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


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    expressions_sheet()
    au_sheet()
    print("wrote", *sorted(OUT.glob("procedural_*.png")))
