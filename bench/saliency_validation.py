"""Saliency on the synthetic east-west cultures: the numbers and figures of docs/validation.md.

Run:  .venv/bin/python bench/saliency_validation.py                  (20 posers per culture)
      .venv/bin/python bench/saliency_validation.py --posers 40 --all-runs

Draws the two cultures with the built-in face (:mod:`facedialect.synthetic.saliency`),
trains 8 runs per culture on MobileNetV2 (ImageNet) features, computes plain and guided
saliency maps of every test image (the first run that tested it, or every run with
``--all-runs``), the region statistics, and a modification grid (a neutral face of
culture A raised to each expression by each culture's networks). Writes
bench/results/saliency_validation.json and, with ``--figures``, docs/img/saliency_*.png.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from facedialect.models.runtime import tune_malloc
from facedialect.models.weights import load_backbone
from facedialect.preprocess.normalize import oval_mask
from facedialect.preprocess.params import PreprocessParams
from facedialect.saliency.figures import (
    difference_figure,
    modification_grid_figure,
    region_outline,
    region_shares_figure,
    saliency_grid_figure,
)
from facedialect.saliency.maps import saliency_analysis
from facedialect.saliency.modify import modify_faces
from facedialect.saliency.stats import region_stats
from facedialect.stages.saliency import select_tests
from facedialect.synthetic.saliency import CHECK_PROTOCOL, synthetic_cultures
from facedialect.vocab import EXPRESSIONS

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--posers", type=int, default=20)
    ap.add_argument("--all-runs", action="store_true")
    ap.add_argument("--figures", action="store_true", help="write docs/img/saliency_*.png")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" /
                    "saliency_validation.json")
    args = ap.parse_args()
    tune_malloc()
    torch.manual_seed(0)
    t0 = time.perf_counter()
    backbone = load_backbone("mobilenet_v2", "imagenet").to(memory_format=torch.channels_last)
    c = synthetic_cultures(backbone, args.posers)
    tests = select_tests(c.splits, list(EXPRESSIONS), {"A": set(), "B": set()}, None, 0)
    if not args.all_runs:
        tests = tests.drop_duplicates(["db", "image"])
    res = saliency_analysis(backbone, c.heads, tests, c.faces, c.landmarks)
    stats = region_stats(res.regions, n_resamples=9999, seed=0)
    face = c.faces[c.splits.loc[(c.splits["db"] == "A") & (c.splits["part"] == "test")
                                & (c.splits["expression"] == "neutral"), "path"].iloc[0]]
    mask = oval_mask(224, PreprocessParams())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        from PIL import Image

        Image.fromarray(face).save(folder / "original.png")
        for db, (head, runs) in c.heads.items():
            mod = modify_faces(backbone, head, np.stack([face] * 7), np.arange(7), runs,
                               steps=40, mask=mask)
            for t, e in enumerate(EXPRESSIONS):
                Image.fromarray(np.rint(mod.images[-1, t]).astype(np.uint8)).save(
                    folder / f"{db}_{e}.png")
                for s in range(mod.probabilities.shape[0]):
                    for k, x in enumerate(EXPRESSIONS):
                        rows.append({"db": db, "image": "neutral", "target": e, "step": s,
                                     "expression": x,
                                     "probability": float(mod.probabilities[s, t, k])})
        table = pd.DataFrame(rows)
        grid_png = modification_grid_figure(table, folder)
    mod_summary = (table[(table["target"] == table["expression"])
                         & table["step"].isin([0, table["step"].max()])]
                   .pivot_table(index=["db", "target"], columns="step",
                                values="probability").round(3))
    key = stats[stats["region"].isin(["eyes", "mouth", "brows"])
                & stats["expression"].isin(["fearful", "angry"])]
    result = {
        "posers": args.posers, "runs_per_image": "all" if args.all_runs else "first",
        "protocol": CHECK_PROTOCOL.as_dict(), "seconds": round(time.perf_counter() - t0, 1),
        "pairs": int(len(tests)),
        "key_rows": key.round(4).to_dict(orient="records"),
        "significant": stats[stats["p_fdr"] < 0.05].round(4).to_dict(orient="records"),
        "modification": {f"{db} {t}": [float(v) for v in row]
                         for (db, t), row in mod_summary.iterrows()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(key.round(4).to_string())
    print(mod_summary.to_string())
    if args.figures:
        img = ROOT / "docs" / "img"
        (img / "saliency_grid_guided.png").write_bytes(saliency_grid_figure(res.maps,
                                                                            "guided"))
        (img / "saliency_difference_guided.png").write_bytes(
            difference_figure(res.maps, "guided", "A", "B"))
        (img / "saliency_regions_guided.png").write_bytes(
            region_shares_figure(res.regions, "guided"))
        (img / "saliency_modification.png").write_bytes(grid_png)
        import matplotlib.pyplot as plt

        from facedialect.plots.figures import fig_to_png

        fig, ax = plt.subplots(figsize=(3.2, 3.2))
        ax.imshow(res.maps.face, cmap="gray", vmin=0, vmax=255)
        region_outline(ax, res.maps.shape, color="yellow", lw=1.0)
        ax.plot(res.maps.shape[:, 0], res.maps.shape[:, 1], ".", color="red", ms=2)
        ax.axis("off")
        ax.set_title("regions on the mean shape", fontsize=9)
        (img / "saliency_region_polygons.png").write_bytes(fig_to_png(fig))


if __name__ == "__main__":
    main()
