"""Wall time of the full paper protocol on one device (issue 4, "Speed", GPU item).

The paper protocol (SCIENCE §5): 2 databases x 40 runs x 12,000 iterations, batch 32,
AlexNet's 9,216 pooled features into the FC 4096-4096-7 head, 60 subjects x 7
expressions x 50 variants per database, 40/8/12 split. The batched trainer
(``train_runs``) trains ``--group`` runs of a database at once on random float16
features of that size (the feature extraction is measured separately in
bench_features.py); ``--measure`` iterations are timed after ``--warmup`` and the
12,000-iteration wall time is extrapolated (``--full`` trains all iterations instead).
In the same process the dense float32 matmul peak of the device is measured, so the
trainer's GFLOP/s is reported as a fraction of it.

    .venv/bin/python bench/bench_paper_protocol.py --device cuda      # on a GPU machine
    .venv/bin/python bench/bench_paper_protocol.py --device cpu --runs 4 --measure 20

Writes ``bench/results/paper_protocol_{device}.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from _common import cpu_model  # noqa: E402  (bench/ is on sys.path when run)
from facedialect.training.protocol import PAPER
from facedialect.training.splits import run_seeds
from facedialect.training.trainer import MultiRunHead, RunPlan, train_runs

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, n: int) -> float:
    """GFLOP/s of a float32 ``n x n`` matmul (best of 5, after a warm-up)."""
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device)
    b = torch.randn(n, n, generator=g).to(device)
    c = torch.empty(n, n, device=device)
    torch.mm(a, b, out=c)
    _sync(device)
    best = math.inf
    for _ in range(5):
        t = time.perf_counter()
        torch.mm(a, b, out=c)
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def plans_for(n_img: int, runs: int, seed: int = 0) -> list[RunPlan]:
    """Runs with the paper's 40/8/12 shares (by image here: the speed is the same)."""
    n_train, n_val = round(n_img * 40 / 60), round(n_img * 8 / 60)
    plans = []
    for r in range(runs):
        perm = np.random.default_rng([seed, r]).permutation(n_img)
        plans.append(RunPlan(r, run_seeds(seed, "db", r), np.sort(perm[:n_train]),
                             np.sort(perm[n_train:n_train + n_val])))
    return plans


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dim", type=int, default=9216, help="feature size (AlexNet 9216)")
    ap.add_argument("--subjects", type=int, default=60)
    ap.add_argument("--runs", type=int, default=40, help="runs per database")
    ap.add_argument("--group", type=int, default=0, help="runs trained at once (0: all)")
    ap.add_argument("--databases", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--measure", type=int, default=200)
    ap.add_argument("--full", action="store_true", help="train all 12,000 iterations")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    group = args.group or args.runs
    n_img = args.subjects * 7
    g = torch.Generator().manual_seed(0)
    feats = torch.rand(n_img, PAPER.variants, args.dim, generator=g).half()
    labels = torch.arange(n_img) % 7
    peak = max(matmul_peak(device, n) for n in (4096, 8192 if device.type == "cuda" else 2048))
    proto = PAPER if args.full else replace(PAPER, iterations=args.warmup + args.measure)
    flops = MultiRunHead([0], args.dim).flops_per_sample() * 3 * PAPER.batch_size
    groups = [list(range(s, min(s + group, args.runs))) for s in range(0, args.runs, group)]
    per_group = []
    for gi in groups:
        plans = [p for p in plans_for(n_img, args.runs) if p.run in gi]
        stamps: list[float] = []

        def tick(done: int, total: int, stamps: list[float] = stamps) -> None:
            _sync(device)
            stamps.append(time.perf_counter())

        t0 = time.perf_counter()
        train_runs(feats, labels, plans, proto, device=device, progress=tick)
        _sync(device)
        wall = time.perf_counter() - t0
        steps = np.diff(stamps)[args.warmup:] if not args.full else np.diff(stamps)
        # includes the per-epoch validation passes that fall inside the measured window
        sec_it = float(np.mean(steps))
        per_group.append({"runs": len(gi), "seconds_per_iteration": sec_it,
                          "measured_wall_s": wall,
                          "gflops": flops * len(gi) / sec_it / 1e9})
    sec_db = sum(p["seconds_per_iteration"] for p in per_group) * PAPER.iterations
    res: dict[str, Any] = {
        "device": (torch.cuda.get_device_name(device) if device.type == "cuda"
                   else cpu_model()),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "dim": args.dim, "images_per_database": n_img, "variants": PAPER.variants,
        "runs_per_database": args.runs, "runs_at_once": group, "databases": args.databases,
        "iterations": PAPER.iterations, "measured_iterations": (PAPER.iterations if args.full
                                                                else args.measure),
        "matmul_peak_gflops": peak, "groups": per_group,
        "trainer_gflops": float(np.mean([p["gflops"] for p in per_group])),
        "fraction_of_peak": float(np.mean([p["gflops"] for p in per_group]) / peak),
        "paper_protocol_wall_s": sec_db * args.databases,
        "paper_protocol_wall_h": sec_db * args.databases / 3600,
        "extrapolated": not args.full,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"paper_protocol_{device.type}.json"
    out.write_text(json.dumps(res, indent=2))
    print(json.dumps({k: v for k, v in res.items() if k != "groups"}, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
