"""Do the recovered mental models find the planted prototypes of the synthetic cultures?

Run the demo (two east-west cultures drawn with the built-in face), enable the stage and
run it, then this script on the run directory:

    facedialect demo --out demo
    printf '\n[mental_models]\nenable = true\n' >> demo/study.toml
    facedialect mental-models demo/study.toml
    python bench/mental_models_validation.py demo/run --west A --east B

It reports, per database and expression, the Spearman r_s between the recovered model
(over the AUs) and the culture's planted prototype (its AU intensities, 0 elsewhere); the
ceiling of that r_s (the r_s of a perfect recovery: the planted AUs ranked first in their
order, the others in any order below; the prototype's zeros are tied, so a 2-AU prototype
over 20 AUs cannot exceed 0.52); and how many of the k planted AUs are the model's k
largest weights (``top_k``). Then,
for every AU that the two cultures' prototypes of an expression treat differently, the
difference of the two databases' model weights with a Welch t-test over their networks.
Results go to bench/results/mental_models_validation.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from facedialect.run.store import RunDir  # noqa: E402
from facedialect.synthetic.cultures import EastWestPreset  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "mental_models_validation.json"


def ceiling_r(planted: np.ndarray) -> float:
    """The Spearman r_s of a perfect recovery of ``planted`` (ties among its zeros)."""
    order = np.argsort(planted, kind="stable")  # zeros first, then the planted AUs rising
    perfect = np.empty(len(planted))
    perfect[order] = np.arange(len(planted))
    return float(stats.spearmanr(perfect, planted)[0])


def main() -> None:
    """Compare the run's models with the planted prototypes."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="the run directory (mental_models done)")
    ap.add_argument("--west", default="A", help="culture of the database 'west'")
    ap.add_argument("--east", default="B", help="culture of the database 'east'")
    args = ap.parse_args()
    run = RunDir(args.run)
    summary = run.read_table("mm_model_summary")
    per_net = run.read_table("mm_models")
    preset = EastWestPreset()
    culture = {"west": args.west, "east": args.east}
    aus = sorted(summary["au"].unique())
    recovery = []
    for db, c in culture.items():
        for unit, proto in preset.prototypes_of(c).items():
            if not proto:  # neutral: no planted AU
                continue
            m = summary[(summary["db"] == db) & (summary["unit"] == unit)].set_index("au")
            planted = np.array([proto.get(a, 0.0) for a in aus])
            model = m.loc[aus, "mean"].to_numpy()
            r, p = stats.spearmanr(model, planted)
            ceiling = ceiling_r(planted)
            k = int((planted > 0).sum())
            top = set(np.argsort(-model, kind="stable")[:k].tolist())
            recovery.append({"db": db, "culture": c, "unit": unit, "spearman_r": round(r, 3),
                             "ceiling": round(ceiling, 3),
                             "of_ceiling": round(r / ceiling, 3),
                             "top_k": f"{len(top & set(np.flatnonzero(planted > 0)))}/{k}",
                             "p": float(f"{p:.3g}")})
    rec = pd.DataFrame(recovery)
    diffs = []
    pa, pb = preset.prototypes_of(args.west), preset.prototypes_of(args.east)
    for unit in pa:
        for au in sorted(set(pa[unit]) ^ set(pb[unit])):
            a = per_net[(per_net["db"] == "west") & (per_net["unit"] == unit)
                        & (per_net["au"] == au)]["weight"]
            b = per_net[(per_net["db"] == "east") & (per_net["unit"] == unit)
                        & (per_net["au"] == au)]["weight"]
            t = stats.ttest_ind(a, b, equal_var=False)
            diffs.append({"unit": unit, "au": au,
                          "planted_in": args.west if au in pa[unit] else args.east,
                          "west": round(float(a.mean()), 4), "east": round(float(b.mean()), 4),
                          "diff": round(float(a.mean() - b.mean()), 4),
                          "p": float(f"{t.pvalue:.3g}")})
    dif = pd.DataFrame(diffs)
    dif["as_planted"] = np.where(dif["planted_in"] == args.west, dif["diff"] > 0,
                                 dif["diff"] < 0)
    print(rec.to_string(index=False))
    print(dif.to_string(index=False))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"run": str(run.path), "recovery": recovery,
                                   "differences": dif.to_dict("records")}, indent=2,
                                  default=str) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
