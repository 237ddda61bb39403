"""Time the mental-models stage: 2,400 trials on 4 identities (target: 5 minutes, 2 cores).

Usage::

    facedialect demo --out demo      # any study whose networks are trained
    python bench/bench_mental_models.py demo/study.toml [--trials 2400] [--identities 4]
        [--faces builtin | ../shared/datasets/london-frl/neutral] [--reference 100]

Timed in the same run, with an empty cache folder for each cold measurement (renders,
pre-processed faces and features not cached; the trained heads are the study's):

* ``reference``: rendering ``--reference`` trials of the same faces alone (the face
  renderer, no pre-processing, no networks): the unit the stage's time is compared with.
* ``cold``: the whole stage (``facedialect mental-models``) from an empty cache.
* ``cached``: the stage again with that cache (renders, faces and features read back).

The stage writes its tables into the study's run, as `facedialect mental-models` does.
Prints the seconds and the ratios to the reference per trial, and writes
bench/results/mental_models.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from _common import cpu_model  # noqa: E402
from facedialect.api import Study  # noqa: E402
from facedialect.stages.mental_models import identity_renderers, trial_table  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "mental_models.json"


def main() -> None:
    """Time the reference, the cold stage and the cached stage."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", type=Path, help="a study file whose networks are trained")
    ap.add_argument("--trials", type=int, default=2400)
    ap.add_argument("--identities", type=int, default=4)
    ap.add_argument("--faces", default="builtin")
    ap.add_argument("--reference", type=int, default=100, help="trials rendered alone")
    args = ap.parse_args()
    base = Study.from_toml(args.study)
    faces = args.faces if args.faces == "builtin" else str(Path(args.faces).resolve())
    with tempfile.TemporaryDirectory(prefix="fd-mm-bench-") as tmp:
        mm = base.mental_models.model_copy(update={
            "enable": True, "trials": args.trials, "identities": args.identities,
            "faces": faces})
        study = base.model_copy(update={
            "mental_models": mm,
            "study": base.study.model_copy(update={"cache_dir": Path(tmp) / "cache"})})
        t0 = time.perf_counter()
        renderers = identity_renderers(study)
        trials = trial_table(study).head(args.reference)
        au_cols = [c for c in trials.columns if c.startswith("AU")]
        for row in trials.itertuples(index=False):
            renderers[int(row.identity)][1]({int(c[2:]): float(getattr(row, c))
                                             for c in au_cols if getattr(row, c) > 0})
        reference = time.perf_counter() - t0
        times = {}
        for mode in ("cold", "cached"):
            t0 = time.perf_counter()
            study.run(["mental_models"], force=True)
            times[mode] = time.perf_counter() - t0
    per_ref = reference / args.reference
    result = {
        "study": str(args.study), "trials": args.trials, "identities": args.identities,
        "faces": args.faces, "cpu": cpu_model(), "machine": platform.machine(),
        "reference_trials": args.reference, "reference_s": round(reference, 2),
        "cold_s": round(times["cold"], 1), "cached_s": round(times["cached"], 1),
        "cold_per_trial_over_reference": round(times["cold"] / args.trials / per_ref, 2),
        "cached_per_trial_over_reference": round(times["cached"] / args.trials / per_ref, 3),
    }
    for k, v in result.items():
        print(f"{k}: {v}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
