"""Does emotion modification carry over to networks it was not optimised on?

Runs both modification methods ([saliency] modify_method: "visible" and "gradient") on a
trained run's grid face (the first neutral test face of the first database, or
``--image``), for every database and target, with the study's settings, and reports per
method and target the target's probability before -> after for the optimised runs, the
held-out runs and the other databases' networks, the mean absolute change inside the face
oval (gray levels), and the verdict of an independent expression classifier (fer's, the
judge of bench/realism.py; not a facedialect network) on the final image:

    facedialect demo --out demo
    python bench/modification_transfer.py demo/study.toml [--targets happy,sad,angry]

Writes bench/results/modification_transfer.json and, per method, a PNG strip of the final
images (bench/results/modification_{method}.png, not kept in the repository;
docs/img/saliency_modification_visible.png is the visible one, scaled to 2/3).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from facedialect.api import Study  # noqa: E402
from facedialect.run.store import RunDir  # noqa: E402
from facedialect.stages import saliency as S  # noqa: E402
from facedialect.stages.base import trained_heads  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def judge_probabilities(images: np.ndarray, targets: list[str]) -> list[float | None]:
    """fer's probability of each target for each image (None: no face found or no judge)."""
    try:
        from facedialect.faces.judge import ExpressionJudge

        judge = ExpressionJudge()
    except Exception as exc:  # the judge is a test extra (fer, ai-edge-litert)
        print(f"no judge: {exc}")
        return [None] * len(targets)
    out = []
    for img, t in zip(images, targets, strict=True):
        p = judge.probabilities(np.clip(np.rint(img), 0, 255).astype(np.uint8))
        out.append(None if p is None else round(float(p.get(t, float("nan"))), 3))
    return out


def main() -> None:
    """Run both methods and print the transfer table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", type=Path, help="a study file whose networks are trained")
    ap.add_argument("--targets", default="", help="comma-separated (default: every unit)")
    ap.add_argument("--methods", default="gradient,visible")
    args = ap.parse_args()
    study = Study.from_toml(args.study)
    run = RunDir(study.study.output)
    heads = trained_heads(run, [d.name for d in study.databases])
    image, face = S._grid_face(run, study)
    backbone = S._backbone(study, "cpu")
    rows, strips = [], {}
    for method in args.methods.split(","):
        finals = []
        for db, h in heads.items():
            targets = ([t for t in args.targets.split(",") if t in h.expressions]
                       if args.targets else list(h.expressions))
            idx = [h.expressions.index(t) for t in targets]
            t0 = time.perf_counter()
            res, opt, held = S._modify(backbone, h, np.stack([face] * len(idx)), idx, study,
                                       "cpu", method=method)
            seconds = time.perf_counter() - t0
            tr = S._transfer_rows(db, image, targets, method, res, opt, held, heads,
                                  backbone, study, "cpu")
            tr["judge_before"] = judge_probabilities(res.images[0], targets)
            tr["judge_after"] = judge_probabilities(res.images[-1], targets)
            tr["seconds"] = round(seconds, 1)
            rows.append(tr)
            finals.append(np.concatenate([face, *res.images[-1]], axis=1))
        strips[method] = np.concatenate(finals, axis=0)
    table = pd.concat(rows, ignore_index=True).drop(columns=["image"])
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.to_string(index=False))
    RESULTS.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    for method, strip in strips.items():
        Image.fromarray(np.clip(np.rint(strip), 0, 255).astype(np.uint8)).save(
            RESULTS / f"modification_{method}.png")
    (RESULTS / "modification_transfer.json").write_text(json.dumps({
        "study": str(args.study), "image": image, "machine": platform.machine(),
        "rows": json.loads(table.to_json(orient="records"))}, indent=1) + "\n")


if __name__ == "__main__":
    main()
