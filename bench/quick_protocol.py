"""Compare training settings for the quick protocol on a finished study's cached features.

Run:  .venv/bin/python bench/quick_protocol.py RUN_DIR [--cache CACHE_DIR]
      ... --settings 240:4096:1e-3 480:1024:1e-2      (iterations:hidden:learning rate)
      ... --settings 480:1024:1e-2:10                 (:factor = features 10x larger)

RUN_DIR is a run directory whose train stage is done (for docs/training.md, "Why the quick
protocol is what it is": the run of tests/test_validation.py, kept with
``pytest --basetemp=DIR``; its cache is ``DIR/validation0/cache``). For every setting,
each database's runs are trained again on the same splits (``tables/splits.csv``) and the
same spread training variants as the quick protocol, with the learning rate divided by 10
at 2/3 of the iterations, and tested on each run's test images (in the run's test
variants: all 50 for runs made before ``test_variants`` existed, else the protocol's). Prints
one line per setting and database (matched test correct rate per run and mean, training
correct rate over the last 20 iterations, seconds) and writes
``bench/results/quick_protocol.json``. Test images' features must be cached (they are,
after the study's evaluation).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from facedialect.preprocess.augment import variant_subset
from facedialect.run.store import RunDir
from facedialect.run.tables import included_faces
from facedialect.training.features import FeatureCache
from facedialect.training.protocol import QUICK
from facedialect.training.splits import run_seeds
from facedialect.training.trainer import RunPlan, train_runs
from facedialect.vocab import EXPRESSIONS

ROOT = Path(__file__).resolve().parents[1]


def evaluate_setting(run: RunDir, cache: FeatureCache, its: int, hidden: int, lr: float,
                     seed: int, feature_scale: float = 1.0) -> list[dict[str, object]]:
    """Train and test every database's runs with one setting (features x feature_scale)."""
    tested_in = variant_subset(run.read_manifest()["training"]["protocol"].get(
        "test_variants", 50))
    faces = included_faces(run)
    splits = run.read_table("splits")
    proto = replace(QUICK, iterations=its, hidden=hidden,
                    lr_schedule=((0, lr), (int(its * 2 / 3), lr / 10)))
    out = []
    for db in sorted(faces["db"].unique()):
        part = faces[faces["db"] == db].reset_index(drop=True)
        labels = torch.tensor([EXPRESSIONS.index(e) for e in part["expression"]])
        sp = splits[splits["db"] == db]
        runs = sorted(sp["run"].unique())
        plans, tests = [], []
        for r in runs:
            where = sp[sp["run"] == r].set_index("path").loc[part["path"], "part"].to_numpy()
            plans.append(RunPlan(int(r), run_seeds(seed, db, int(r)),
                                 np.flatnonzero(where == "train"),
                                 np.flatnonzero(where == "validation")))
            tests.append(np.flatnonzero(where == "test"))
        feats = torch.from_numpy(cache.load(list(part["cache_key"]),
                                            variant_subset(proto.variants))).float()
        feats *= feature_scale
        t0 = time.perf_counter()
        res = train_runs(feats, labels, plans, proto)
        seconds = time.perf_counter() - t0
        head = res.head.eval()
        accs = []
        for pos, idx in enumerate(tests):
            x = torch.from_numpy(cache.load(list(part["cache_key"].iloc[idx]),
                                            tested_in)).float()
            x *= feature_scale
            n, v, d = x.shape
            with torch.no_grad():
                pred = head.forward_run(pos, x.reshape(n * v, d)).argmax(-1).reshape(n, v)
            accs.append(float((pred == labels[idx][:, None]).float().mean()))
        out.append({"db": db, "iterations": its, "hidden": hidden, "lr": lr,
                    "feature_scale": feature_scale, "lr_scale": round(res.lr_scale, 6),
                    "matched_per_run": [round(a, 4) for a in accs],
                    "matched": round(float(np.mean(accs)), 4),
                    "train_correct_end": round(float(np.nanmean(res.train_correct[-20:])), 4),
                    "seconds": round(seconds, 1)})
        print(f"{db}  iterations {its:5d}  hidden {hidden:5d}  lr {lr:g} (x{res.lr_scale:.3g})"
              f"  features x{feature_scale:g}  matched "
              f"{out[-1]['matched']:.3f} {out[-1]['matched_per_run']}  train end "
              f"{out[-1]['train_correct_end']:.3f}  {seconds:.0f} s", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--cache", type=Path, default=None,
                    help="the study's cache_dir (default: RUN_DIR/../cache)")
    ap.add_argument("--seed", type=int, default=0, help="the study's seed")
    ap.add_argument("--settings", nargs="+", default=["240:4096:1e-3", "720:1024:1e-3",
                                                      "240:4096:1e-2", "480:1024:3e-3",
                                                      "480:1024:1e-2", "480:1024:1e-2:10"],
                    help="ITERATIONS:HIDDEN:LR[:FACTOR]; FACTOR multiplies the features "
                    "(what the quick protocol's lr_cap is for)")
    args = ap.parse_args()
    run = RunDir(args.run_dir)
    training = run.read_manifest()["training"]
    tag = training["backbone"]
    cache = FeatureCache(tag, args.cache or args.run_dir.parent / "cache",
                         runtime=training.get("runtime", "torch"))
    rows = []
    for spec in args.settings:
        its, hidden, lr, *factor = spec.split(":")
        rows += evaluate_setting(run, cache, int(its), int(hidden), float(lr), args.seed,
                                 float(factor[0]) if factor else 1.0)
    result = {"command": "python bench/quick_protocol.py " + " ".join(
        [str(args.run_dir), "--settings", *args.settings]),
        "machine": {"cpu_count": torch.get_num_threads(), "python": platform.python_version(),
                    "torch": torch.__version__},
        "backbone": tag, "training_variants": list(variant_subset(QUICK.variants)),
        "results": rows}
    target = ROOT / "bench" / "results" / "quick_protocol.json"
    target.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
