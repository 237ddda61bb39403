"""Calibrate the AU6/AU12 recipe gains on the London set's neutral/smiling pairs.

    python bench/calibrate_smile.py                 # all 102 pairs in ../shared
    python bench/calibrate_smile.py --pairs 20      # the first 20

Fits the 3-D model to each person's neutral photo, then the smiling photo's landmarks
with AU6, AU12, AU25 and AU26 (intensities 0..1), before (today's recipes) and after
(the people's mean mix of shapes, scaled so that intensity 1 is the set's
95th-percentile smile), and writes the gains and
residuals to bench/results/smile_calibration.json (no photo data: numbers only).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from facedialect.faces.model3d.calibrate import calibrate_smile, london_pairs  # noqa: E402

LONDON = ROOT.parent / "shared" / "datasets" / "london-frl"
RESULTS = ROOT / "bench" / "results" / "smile_calibration.json"


def main() -> None:
    """Run the calibration and record it."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, help="first N pairs only")
    ap.add_argument("--percentile", type=float, default=95.0)
    ap.add_argument("--before", help="recipes to compare with, e.g. "
                    "6:cheekSquint=1.4,12:mouthSmile=1.0 (default: today's recipes)")
    args = ap.parse_args()
    pairs = london_pairs(LONDON)[: args.pairs]
    before: dict[int, dict[str, float]] | None = None
    if args.before:
        before = {}
        for item in args.before.split(","):
            au, rest = item.split(":")
            shape, w = rest.split("=")
            before.setdefault(int(au), {})[shape] = float(w)
    t0 = time.perf_counter()
    cal = calibrate_smile(pairs, percentile=args.percentile, recipes_before=before)
    out = asdict(cal)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    out["unit"] = "residual: RMS landmark distance, jaw excluded, % of the eye distance"
    print(json.dumps({k: v for k, v in out.items() if k != "per_person"}, indent=1))
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
