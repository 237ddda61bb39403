"""Trainer speed (issue 4, "Speed") and the paper protocol's training curve (SCIENCE §5).

Two commands, each one heavy job on the CPU (run one at a time)::

    .venv/bin/python bench/bench_trainer.py speed     # writes bench/results/trainer.json
    .venv/bin/python bench/bench_trainer.py curve     # writes bench/results/paper_curve.{json,png}

``speed`` measures, in one process on ``--threads`` threads (2):

(a) the dense float32 matmul peak: best of ``torch.mm`` 2048^2 and 4096^2, and batched
    ``torch.bmm`` of the trainer's shapes (R x 32 x D @ R x D x 4096: the small-M regime);
(b) the batched trainer (``train_runs``) on random float16 features of dimension D (1280 =
    MobileNetV2, 9216 = AlexNet) for R runs at once: seconds per iteration and GFLOP/s,
    counting 3 x the forward FLOPs per sample (``MultiRunHead.flops_per_sample``) as the
    nominal figure and the FLOPs actually executed (no input gradient for FC1) beside it,
    as a fraction of the peak. Beside it, the previous implementation of the step
    (autograd + ``torch.optim.SGD``) on the same data, as "before". Rounds are
    interleaved (peak, then every case) and each figure is the best over the rounds, so
    load from other processes hits the reference and the trainer alike;
(c) the naive reference of the paper's setup: one run at a time, every sample's variant
    image made on the fly from the cached 224 x 224 face (``preprocess.augment.variant``),
    the whole network run for it (frozen MobileNetV2 forward, then an ``nn.Sequential``
    head forward and backward, ``torch.optim.SGD``). Both it and the batched trainer train
    the same runs (same split, initial weights and sample order) of a synthetic-culture
    database (culture A, ``--posers`` posers) with the quick protocol; their test correct
    rates are compared, and the time of one paper-protocol run (12,000 iterations, plus the
    per-epoch validation and, for the batched trainer, its share of the feature
    extraction) is extrapolated from the measured time per iteration. The same naive
    timing is taken for AlexNet (random weights: speed only).

``curve`` trains culture A (``--posers`` posers, MobileNetV2 ImageNet features) with the
paper protocol through the features and train stages (``facedialect.stages.features``,
``facedialect.stages.train``) once per momentum (``--momenta``),
``--runs`` runs each, reads ``tables/training_curves.csv`` and reports when the training
correct rate (moving average) first exceeds 0.7, its mean over iterations 8,001-12,000,
the validation correct rate per epoch and the test correct rate, with a figure.

Synthetic data, caches and run folders go to ``--workdir`` (default
``/tmp/facedialect-bench``); features are computed once and reused.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from _common import cpu_model  # noqa: E402  (bench/ is on sys.path when run)
from facedialect.run.heads import read_heads
from facedialect.run.tables import included_faces
from facedialect.training.protocol import PAPER, QUICK, Protocol
from facedialect.training.splits import run_seeds, split_run
from facedialect.training.trainer import (
    MultiRunHead,
    RunPlan,
    _gen,
    evaluate_head,
    train_runs,
)
from facedialect.vocab import EXPRESSIONS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DB = "A"
HIDDEN = 4096
BATCH = 32


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "load_average": list(os.getloadavg())}


def _best(fn: Any, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


# --------------------------------------------------------------------------------------
# (a) matmul peak and the trainer's batched shapes
# --------------------------------------------------------------------------------------
class MatmulProbe:
    """Dense ``mm`` peak and ``bmm`` of the trainer's shapes, measured on demand."""

    def __init__(self, shapes: list[tuple[int, int]]) -> None:
        g = torch.Generator().manual_seed(0)
        self.square = {n: (torch.randn(n, n, generator=g), torch.randn(n, n, generator=g),
                           torch.empty(n, n)) for n in (2048, 4096)}
        self.shapes = shapes
        self.batched = {}
        for r, d in shapes:
            self.batched[r, d] = (torch.randn(r, BATCH, d, generator=g),
                                  torch.randn(r, d, HIDDEN, generator=g),
                                  torch.empty(r, BATCH, HIDDEN))

    def peak(self) -> dict[str, float]:
        """GFLOP/s of ``torch.mm`` n x n (best of 3), n = 2048 and 4096."""
        out = {}
        for n, (a, b, c) in self.square.items():
            t = _best(lambda a=a, b=b, c=c: torch.mm(a, b, out=c), 3)
            out[f"mm{n}"] = 2 * n**3 / t / 1e9
        return out

    def bmm(self) -> dict[str, float]:
        """GFLOP/s of ``torch.bmm`` R x 32 x D @ R x D x 4096 (best of 3)."""
        out = {}
        for (r, d), (x, w, y) in self.batched.items():
            t = _best(lambda x=x, w=w, y=y: torch.bmm(x, w, out=y), 3)
            out[f"bmm R={r} 32x{d}@{d}x{HIDDEN}"] = 2 * r * BATCH * d * HIDDEN / t / 1e9
        return out


# --------------------------------------------------------------------------------------
# (b) the batched trainer, and the previous (autograd) step as "before"
# --------------------------------------------------------------------------------------
def random_features(n_img: int, dim: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-negative float16 features (like pooled ReLU maps) and balanced labels."""
    g = torch.Generator().manual_seed(seed)
    feats = torch.rand(n_img, 50, dim, generator=g).half()
    return feats, torch.arange(n_img) % len(EXPRESSIONS)


def random_plans(n_img: int, runs: int, n_train: int, n_val: int) -> list[RunPlan]:
    """Runs with their own seeds and random image splits."""
    plans = []
    for r in range(runs):
        perm = np.random.default_rng(r).permutation(n_img)
        plans.append(RunPlan(r, run_seeds(0, DB, r), np.sort(perm[:n_train]),
                             np.sort(perm[n_train:n_train + n_val])))
    return plans


def trainer_iteration_times(feats: torch.Tensor, labels: torch.Tensor,
                            plans: list[RunPlan], proto: Protocol, n: int,
                            warmup: int) -> list[float]:
    """Seconds of each of ``n`` iterations of ``train_runs`` after ``warmup`` ones."""
    stamps: list[float] = []
    train_runs(feats, labels, plans, proto, stop_after=warmup + n + 1,
               progress=lambda d, t: stamps.append(time.perf_counter()))
    return list(np.diff(stamps)[warmup:])


def autograd_iteration_times(feats: torch.Tensor, labels: torch.Tensor,
                             plans: list[RunPlan], proto: Protocol, n: int,
                             warmup: int) -> list[float]:
    """The step of the previous trainer (commit e931678): autograd + torch.optim.SGD.

    Same data path as ``train_runs`` (per-run order, gathers from float16, per-run
    dropout streams); ``MultiRunHead.forward`` with boolean masks, per-run mean
    cross-entropy, ``backward`` of their sum, ``SGD.step``.
    """
    cpu = torch.device("cpu")
    dim = feats.shape[2]
    head = MultiRunHead([p.seeds.init for p in plans], dim, proto.hidden,
                        dropout=proto.dropout)
    opt = torch.optim.SGD(head.parameters(), lr=proto.lr_at(0), momentum=proto.momentum)
    v = min(proto.variants, feats.shape[1])
    n_samples = len(plans[0].train_idx) * v
    perms = [torch.randperm(n_samples, generator=_gen(p.seeds.order, 0, device=cpu))
             for p in plans]
    train_idx = [torch.as_tensor(p.train_idx) for p in plans]
    times = []
    for t in range(warmup + n):
        t0 = time.perf_counter()
        sel = [perm[t * proto.batch_size:(t + 1) * proto.batch_size] for perm in perms]
        img = torch.stack([train_idx[r][s // v] for r, s in enumerate(sel)])
        var = torch.stack([s % v for s in sel])
        x = feats[img, var].float()
        y = labels[img]
        bt = x.shape[1]
        m1 = torch.stack([torch.rand(bt, dim, generator=_gen(p.seeds.dropout, t, 1, device=cpu))
                          for p in plans]) >= proto.dropout
        m2 = torch.stack([torch.rand(bt, proto.hidden,
                                     generator=_gen(p.seeds.dropout, t, 2, device=cpu))
                          for p in plans]) >= proto.dropout
        logits = head(x, (m1, m2))
        per = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                              reduction="none").reshape(len(plans), bt).mean(1)
        opt.zero_grad(set_to_none=False)
        per.sum().backward()
        opt.step()
        per.detach().numpy()
        (logits.argmax(-1) == y).float().mean(1).numpy()
        times.append(time.perf_counter() - t0)
    return times[warmup:]


def executed_flops_per_sample(dim: int, hidden: int = HIDDEN) -> int:
    """FLOPs one training sample really costs: 3 x forward, less FC1's input gradient."""
    fwd = 2 * (dim * hidden + hidden * hidden + hidden * len(EXPRESSIONS))
    return 3 * fwd - 2 * dim * hidden


def bench_trainer(args: argparse.Namespace) -> dict[str, Any]:
    """Sections (a) and (b): peak, bmm shapes, trainer GFLOP/s before and after."""
    n_img, n_train, n_val = 60 * 7, 40 * 7, 8 * 7  # the paper's 60-subject database
    proto = replace(PAPER, iterations=PAPER.iterations)
    probe = MatmulProbe([(r, d) for d in args.dims for r in (1, max(args.runs))])
    feats = {d: random_features(n_img, d) for d in args.dims}
    cases = [(d, r) for d in args.dims for r in args.runs]
    impls = ["batched (this trainer)"] + ([] if args.skip_before else ["autograd (before)"])
    times: dict[tuple[str, int, int], list[float]] = {(i, d, r): [] for i in impls
                                                       for d, r in cases}
    peaks: list[dict[str, float]] = []
    bmms: list[dict[str, float]] = []
    for rnd in range(args.rounds):
        peaks.append(probe.peak())
        bmms.append(probe.bmm())
        print(f"round {rnd + 1}/{args.rounds}: "
              + ", ".join(f"{k} {v:.0f}" for k, v in peaks[-1].items()) + " GFLOP/s",
              flush=True)
        for d, r in cases:
            f, lab = feats[d]
            plans = random_plans(n_img, r, n_train, n_val)
            for impl in impls:
                fn = (trainer_iteration_times if impl.startswith("batched")
                      else autograd_iteration_times)
                ts = fn(f, lab, plans, proto, args.iters, args.warmup)
                times[impl, d, r].extend(ts)
                print(f"  D={d:5d} R={r}: {impl:24s} {min(ts):.3f} s/it (best), "
                      f"{statistics.median(ts):.3f} (median)", flush=True)
    fwd_flops = {d: MultiRunHead([0], d, HIDDEN).flops_per_sample() for d in args.dims}
    peak_by = {k: max(p[k] for p in peaks) for k in peaks[0]}
    peak = max(peak_by.values())
    rows = []
    for impl in impls:
        for d, r in cases:
            ts = times[impl, d, r]
            nominal = 3 * fwd_flops[d] * BATCH * r
            executed = executed_flops_per_sample(d) * BATCH * r
            best, med = min(ts), statistics.median(ts)
            rows.append({
                "implementation": impl, "feature_dim": d, "runs": r,
                "seconds_per_iteration_best": best, "seconds_per_iteration_median": med,
                "seconds_per_iteration_per_run": best / r,
                "gflop_per_iteration_nominal": nominal / 1e9,
                "gflop_per_iteration_executed": executed / 1e9,
                "gflop_s_nominal": nominal / best / 1e9,
                "gflop_s_executed": executed / best / 1e9,
                "fraction_of_peak_nominal": nominal / best / 1e9 / peak,
                "fraction_of_peak_executed": executed / best / 1e9 / peak,
                "gflop_s_nominal_median": nominal / med / 1e9,
                "iterations_timed": len(ts),
            })
    return {"peak_gflop_s": peak, "peak_by_size": peak_by, "peak_rounds": peaks,
            "bmm_gflop_s": {k: max(b[k] for b in bmms) for k in bmms[0]},
            "bmm_fraction_of_peak": {k: max(b[k] for b in bmms) / peak for k in bmms[0]},
            "trainer": rows}


# --------------------------------------------------------------------------------------
# The synthetic-culture database (shared by the naive comparison and the curve)
# --------------------------------------------------------------------------------------
STUDY_TOML = """\
[study]
name = "bench: synthetic culture A, {posers} posers"
output = "{output}"
seed = 0
cache_dir = "cache"

[model]
backbone = "{backbone}"

[training]
protocol = "{protocol}"
{training}

[[databases]]
name = "{db}"
preset = "kdef"
root = "data/A"
n_subjects = {posers}
culture = "A (classic prototypes)"
"""


def prepare_database(workdir: Path, posers: int, *, output: str = "run-prep",
                     protocol: str = "quick", training: str = "",
                     backbone: str = "mobilenet_v2") -> tuple[Any, Any]:
    """Draw culture A, ingest and pre-process it; return ``(run, study)``."""
    from facedialect.config import load_study
    from facedialect.pipeline import save_study
    from facedialect.run.store import RunDir
    from facedialect.stages.ingest import ingest_databases
    from facedialect.stages.preprocess import preprocess_images
    from facedialect.synthetic.cultures import EastWestPreset, write_synthetic_database

    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data" / "A"
    if not (data / "truth.csv").exists():
        t = time.perf_counter()
        write_synthetic_database(data, "A", EastWestPreset(n_posers=posers, seed=0))
        print(f"drew culture A, {posers} posers: {time.perf_counter() - t:.0f} s", flush=True)
    study_path = workdir / f"{output}.toml"
    study_path.write_text(STUDY_TOML.format(posers=posers, output=output, backbone=backbone,
                                            protocol=protocol, training=training, db=DB),
                          encoding="utf-8")
    study = load_study(study_path)
    run = RunDir(study.study.output)
    if not run.has_table("preprocess"):
        with run.lock():
            save_study(run, study)
            ingest_databases(run, study.databases)
            preprocess_images(run, study.preprocess, n_subjects={DB: posers},
                              cache_dir=study.study.cache_dir)
    return run, study


def database_features(run: Any, study: Any, backbone: Any) -> tuple[pd.DataFrame, torch.Tensor,
                                                                     float]:
    """Included faces, their cached ``(N, 50, D)`` features, and extraction images/s.

    The rate is measured on 6 faces extracted into a temporary cache, whatever is cached.
    """
    from facedialect.run.caches import load_face, preprocess_cache
    from facedialect.training.features import FeatureCache, backbone_tag, extract_features

    faces = included_faces(run)
    pcache = preprocess_cache(study.study.cache_dir)
    fcache = FeatureCache(backbone_tag(backbone), study.study.cache_dir)
    keys = list(faces["cache_key"])
    t = time.perf_counter()
    n = extract_features(keys, lambda k: load_face(k, pcache), backbone, study.preprocess,
                         fcache)
    if n:
        print(f"extracted features of {n} faces: {time.perf_counter() - t:.0f} s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        probe = FeatureCache(backbone_tag(backbone), tmp)
        extract_features(keys[:2], lambda k: load_face(k, pcache), backbone,
                         study.preprocess, probe)  # warm-up
        t = time.perf_counter()
        extract_features(keys[2:8], lambda k: load_face(k, pcache), backbone,
                         study.preprocess, probe)
        ips = 6 * 50 / (time.perf_counter() - t)
    feats = torch.from_numpy(fcache.load(keys))
    return faces, feats, ips


def run_plans(faces: pd.DataFrame, proto: Protocol, runs: int, seed: int = 0
              ) -> tuple[list[RunPlan], list[np.ndarray]]:
    """The runs' plans as the train stage makes them (by subject), and their test images."""
    plans, tests = [], []
    for r in range(runs):
        seeds = run_seeds(seed, DB, r)
        where = split_run(faces, seeds.split, proto.split)
        plans.append(RunPlan(r, seeds, np.flatnonzero(where == "train"),
                             np.flatnonzero(where == "validation")))
        tests.append(np.flatnonzero(where == "test"))
    return plans, tests


def correct_rates(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Test correct rate on all variants and on the plain image from ``(n, V, 7)``."""
    pred = logits.argmax(-1)
    return {"all_variants": float((pred == labels[:, None]).float().mean()),
            "plain": float((pred[:, 0] == labels).float().mean())}


# --------------------------------------------------------------------------------------
# (c) the naive reference: augment on the fly, whole network per sample, one run at a time
# --------------------------------------------------------------------------------------
def naive_head(plan: RunPlan, dim: int, proto: Protocol) -> nn.Sequential:
    """A standard ``nn.Sequential`` head with the run's own initial weights."""
    ref = MultiRunHead([plan.seeds.init], dim, proto.hidden, dropout=proto.dropout)
    head = nn.Sequential(nn.Dropout(proto.dropout), nn.Linear(dim, proto.hidden), nn.ReLU(),
                         nn.Dropout(proto.dropout), nn.Linear(proto.hidden, proto.hidden),
                         nn.ReLU(), nn.Linear(proto.hidden, len(EXPRESSIONS)))
    with torch.no_grad():
        for lin, w, b in ((head[1], ref.w1, ref.b1), (head[4], ref.w2, ref.b2),
                          (head[6], ref.w3, ref.b3)):
            lin.weight.copy_(w[0].T)
            lin.bias.copy_(b[0, 0])
    return head


def naive_train(plan: RunPlan, faces_img: list[np.ndarray], labels: torch.Tensor,
                backbone: Any, params: Any, proto: Protocol, iterations: int,
                cached: torch.Tensor | None = None) -> dict[str, Any]:
    """Train one run the naive way; per-iteration seconds split by part.

    The sample order is the batched trainer's (same per-run stream); dropout masks come
    from ``nn.Dropout`` (torch's global generator, seeded per run). When ``cached`` is
    given, the on-the-fly features of the first batch are compared with it.
    """
    from facedialect.preprocess.augment import variant

    torch.manual_seed(plan.seeds.dropout)
    dim = backbone.spec.feature_dim
    head = naive_head(plan, dim, proto)
    opt = torch.optim.SGD(head.parameters(), lr=proto.lr_at(0), momentum=proto.momentum)
    v = proto.variants
    n_samples = len(plan.train_idx) * v
    bpe = math.ceil(n_samples / proto.batch_size)
    parts: dict[str, list[float]] = {"variants": [], "backbone": [], "head": []}
    perm, perm_epoch, diff = None, -1, None
    for t in range(iterations):
        epoch, b = divmod(t, bpe)
        if epoch != perm_epoch:
            perm = torch.randperm(n_samples, generator=_gen(plan.seeds.order, epoch,
                                                            device=torch.device("cpu")))
            perm_epoch = epoch
        sel = perm[b * proto.batch_size:(b + 1) * proto.batch_size]
        img = torch.as_tensor(plan.train_idx)[sel // v]
        var = sel % v
        t0 = time.perf_counter()
        batch = np.stack([variant(faces_img[i], j, params)
                          for i, j in zip(img.tolist(), var.tolist(), strict=True)])
        t1 = time.perf_counter()
        with torch.inference_mode():
            x = backbone.to_input(batch).contiguous(memory_format=torch.channels_last)
            f = backbone(x)
        t2 = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = proto.lr_at(t)
        head.train()
        loss = F.cross_entropy(head(f.clone()), labels[img])
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()
        t3 = time.perf_counter()
        if cached is not None and diff is None:
            ref = cached[img, var].float()
            diff = float((f - ref).abs().max() / ref.abs().max())
        parts["variants"].append(t1 - t0)
        parts["backbone"].append(t2 - t1)
        parts["head"].append(t3 - t2)
    return {"head": head, "parts": parts, "feature_max_rel_diff_vs_cache": diff}


def naive_totals(parts: dict[str, list[float]], skip: int) -> list[float]:
    """Seconds of each naive iteration after ``skip`` warm-up ones."""
    return [sum(x) for x in zip(*(v[skip:] for v in parts.values()), strict=True)]


def naive_iteration(parts: dict[str, list[float]], skip: int = 3) -> dict[str, float]:
    """Median seconds per iteration, in total and by part, after ``skip`` warm-up ones."""
    per = {k: statistics.median(v[skip:]) for k, v in parts.items()}
    total = naive_totals(parts, skip)
    per["total"] = statistics.median(total)
    per["total_best"] = min(total)
    return per


def bench_naive(args: argparse.Namespace, trainer: dict[str, Any]) -> dict[str, Any]:
    """Section (c): naive reference against the batched trainer, accuracy and time."""
    from facedialect.models import build_backbone, load_backbone
    from facedialect.models.runtime import tune_malloc
    from facedialect.run.caches import load_face, preprocess_cache

    tune_malloc()  # as feature extraction does; the naive reference gets it too
    run, study = prepare_database(args.workdir, args.posers)
    backbone = load_backbone("mobilenet_v2").to(memory_format=torch.channels_last).eval()
    faces, feats, ips = database_features(run, study, backbone)
    labels = torch.tensor([EXPRESSIONS.index(e) for e in faces["expression"]])
    pcache = preprocess_cache(study.study.cache_dir)
    faces_img = [load_face(k, pcache) for k in faces["cache_key"]]
    proto = QUICK
    plans, tests = run_plans(faces, proto, args.naive_runs)
    print(f"culture A: {len(faces)} faces, features {tuple(feats.shape)}; feature "
          f"extraction {ips:.0f} images/s", flush=True)

    t = time.perf_counter()
    stamps: list[float] = []
    batched = train_runs(feats, labels, plans, proto,
                         progress=lambda d, n: stamps.append(time.perf_counter()))
    batched_s = time.perf_counter() - t
    batched_its = list(np.diff(stamps))
    out_runs = []
    for r, (plan, test) in enumerate(zip(plans, tests, strict=True)):
        acc_b = correct_rates(evaluate_head(batched.head, r, feats, test, 50,
                                            torch.device("cpu")), labels[test])
        res = naive_train(plan, faces_img, labels, backbone, study.preprocess, proto,
                          args.naive_iters, cached=feats)
        head = res["head"].eval()
        with torch.no_grad():
            x = feats[torch.as_tensor(test)].float()
            acc_n = correct_rates(head(x), labels[test])
        it = naive_iteration(res["parts"])
        out_runs.append({"run": plan.run, "test_images": len(test),
                         "batched_test_correct": acc_b, "naive_test_correct": acc_n,
                         "naive_seconds_per_iteration": it,
                         "feature_max_rel_diff_vs_cache": res["feature_max_rel_diff_vs_cache"]})
        print(f"  run {plan.run}: test correct rate (all variants / plain) batched "
              f"{acc_b['all_variants']:.3f} / {acc_b['plain']:.3f}, naive "
              f"{acc_n['all_variants']:.3f} / {acc_n['plain']:.3f}; naive "
              f"{it['total']:.3f} s/it (variants {it['variants']:.3f}, backbone "
              f"{it['backbone']:.3f}, head {it['head']:.3f})", flush=True)

    # time per iteration: naive and batched, interleaved in rounds (same load for both)
    alex = build_backbone("alexnet").to(memory_format=torch.channels_last).eval()
    alex_ips = _backbone_ips(alex, faces_img[:5], study.preprocess)
    rb = args.ratio_runs
    ratio_plans, _ = run_plans(faces, PAPER, rb)
    feats_alex, _ = random_features(len(faces), alex.spec.feature_dim)
    cases = {"mobilenet_v2": (backbone, feats), "alexnet": (alex, feats_alex)}
    naive_t: dict[str, list[float]] = {k: [] for k in cases}
    batched_t: dict[str, list[float]] = {k: [] for k in cases}
    for rnd in range(args.ratio_rounds):
        for name, (bb, ft) in cases.items():
            res = naive_train(ratio_plans[0], faces_img, labels, bb, study.preprocess, PAPER,
                              args.ratio_iters + 2)
            naive_t[name].extend(naive_totals(res["parts"], skip=2))
            batched_t[name].extend(trainer_iteration_times(ft, labels, ratio_plans, PAPER,
                                                           args.ratio_iters, 2))
        print(f"  ratio round {rnd + 1}/{args.ratio_rounds}: " + ", ".join(
            f"{k} naive {statistics.median(naive_t[k]):.3f} s/it, batched (R={rb}) "
            f"{statistics.median(batched_t[k]):.3f} s/it" for k in cases), flush=True)

    # extrapolate one paper-protocol run (12,000 iterations + per-epoch validation)
    n_train, n_val = len(plans[0].train_idx), len(plans[0].val_idx)
    bpe = math.ceil(n_train * PAPER.variants / PAPER.batch_size)
    epochs = math.ceil(PAPER.iterations / bpe)
    extrap = {}
    for name, (bb, _) in cases.items():
        ext_ips = ips if name == "mobilenet_v2" else alex_ips
        naive_it = statistics.median(naive_t[name])
        batched_it = statistics.median(batched_t[name]) / rb
        naive_val = n_val * 50 / ext_ips  # backbone over every validation variant
        val_b = _batched_validation_seconds(bb.spec.feature_dim, n_val, PAPER)
        naive_run = PAPER.iterations * naive_it + epochs * naive_val
        extraction_share = len(faces) * 50 / ext_ips / PAPER.runs
        batched_run = PAPER.iterations * batched_it + epochs * val_b + extraction_share
        extrap[name] = {
            "naive_seconds_per_iteration_median": naive_it,
            "naive_seconds_per_iteration_best": min(naive_t[name]),
            "naive_iterations_timed": len(naive_t[name]),
            "naive_seconds_per_run": naive_run,
            "naive_validation_seconds_per_epoch": naive_val,
            "batched_runs_together": rb,
            "batched_seconds_per_iteration_median": statistics.median(batched_t[name]),
            "batched_seconds_per_iteration_best": min(batched_t[name]),
            "batched_iterations_timed": len(batched_t[name]),
            "batched_seconds_per_iteration_per_run": batched_it,
            "batched_validation_seconds_per_epoch": val_b,
            "feature_extraction_images_per_s": ext_ips,
            "feature_extraction_seconds_share_per_run": extraction_share,
            "batched_seconds_per_run": batched_run,
            "speed_ratio": naive_run / batched_run,
            "speed_ratio_iterations_only": naive_it / batched_it,
            "speed_ratio_iterations_only_best": (min(naive_t[name])
                                                 / (min(batched_t[name]) / rb)),
        }
        print(f"  {name}: one paper run naive {naive_run / 3600:.2f} h, batched "
              f"{batched_run / 60:.1f} min -> {naive_run / batched_run:.1f}x", flush=True)
    return {"database": {"culture": "A", "posers": args.posers, "faces": len(faces),
                         "feature_shape": list(feats.shape),
                         "feature_extraction_images_per_s": ips},
            "protocol": proto.as_dict(), "accuracy_iterations": args.naive_iters,
            "batched_seconds_for_all_runs": batched_s,
            "batched_seconds_per_iteration_median": statistics.median(batched_its[3:]),
            "runs": out_runs,
            "paper_run_epochs": epochs, "extrapolated_paper_run": extrap,
            "load_average_after": list(os.getloadavg())}


def _backbone_ips(backbone: Any, faces_img: list[np.ndarray], params: Any) -> float:
    """Images/s of making 50 variants and running the backbone on them (feature stage)."""
    from facedialect.preprocess.augment import make_variants

    def once(k: int) -> None:
        stack = make_variants(faces_img[k], params)
        with torch.inference_mode():
            backbone(backbone.to_input(stack).contiguous(memory_format=torch.channels_last))

    once(0)
    t = time.perf_counter()
    for k in range(1, 5):
        once(k)
    return 4 * 50 / (time.perf_counter() - t)


def _batched_validation_seconds(dim: int, n_val: int, proto: Protocol) -> float:
    """Seconds of one run's per-epoch validation on cached features (all 50 variants)."""
    feats, _ = random_features(n_val, dim)
    head = MultiRunHead([0], dim, proto.hidden)
    return _best(lambda: evaluate_head(head, 0, feats, np.arange(n_val), 50,
                                       torch.device("cpu")), 2)


# --------------------------------------------------------------------------------------
# printing
# --------------------------------------------------------------------------------------
def print_speed_table(res: dict[str, Any]) -> None:
    """The trainer table and the naive comparison, as Markdown."""
    tr = res["trainer"]
    print(f"\nmatmul peak {tr['peak_gflop_s']:.0f} GFLOP/s ("
          + ", ".join(f"{k} {v:.0f}" for k, v in tr["peak_by_size"].items()) + ")")
    for k, v in tr["bmm_gflop_s"].items():
        print(f"  {k}: {v:.0f} GFLOP/s = {v / tr['peak_gflop_s']:.0%} of peak")
    print("\n| implementation | D | R | s/iteration | s/iteration/run | GFLOP/s (3x fwd) "
          "| % of peak | GFLOP/s executed | % of peak |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in tr["trainer"]:
        print(f"| {row['implementation']} | {row['feature_dim']} | {row['runs']} "
              f"| {row['seconds_per_iteration_best']:.3f} "
              f"| {row['seconds_per_iteration_per_run']:.3f} "
              f"| {row['gflop_s_nominal']:.0f} | {row['fraction_of_peak_nominal']:.0%} "
              f"| {row['gflop_s_executed']:.0f} | {row['fraction_of_peak_executed']:.0%} |")
    nv = res.get("naive")
    if not nv:
        return
    print("\n| run | batched test correct (all / plain) | naive test correct (all / plain) "
          "| naive s/iteration |")
    print("| --- | --- | --- | ---: |")
    for r in nv["runs"]:
        b, n = r["batched_test_correct"], r["naive_test_correct"]
        print(f"| {r['run']} | {b['all_variants']:.3f} / {b['plain']:.3f} "
              f"| {n['all_variants']:.3f} / {n['plain']:.3f} "
              f"| {r['naive_seconds_per_iteration']['total']:.3f} |")
    print("\n| backbone | naive s/iteration | batched s/iteration/run (R) | naive s/run "
          "| batched s/run | ratio per run | ratio, iterations only |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, e in nv["extrapolated_paper_run"].items():
        print(f"| {name} | {e['naive_seconds_per_iteration_median']:.3f} "
              f"| {e['batched_seconds_per_iteration_per_run']:.3f} "
              f"({e['batched_runs_together']}) | {e['naive_seconds_per_run']:.0f} "
              f"| {e['batched_seconds_per_run']:.0f} "
              f"| {e['speed_ratio']:.1f} | {e['speed_ratio_iterations_only']:.1f} |")


# --------------------------------------------------------------------------------------
# The paper protocol's training curve
# --------------------------------------------------------------------------------------
def moving_average(x: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (shorter windows at the start)."""
    c = np.cumsum(np.insert(x.astype(float), 0, 0.0))
    n = np.arange(1, len(x) + 1)
    lo = np.maximum(n - window, 0)
    return (c[n] - c[lo]) / (n - lo)


def first_above(x: np.ndarray, level: float) -> int | None:
    """1-based iteration where ``x`` first exceeds ``level`` (None if never)."""
    hit = np.flatnonzero(x > level)
    return int(hit[0]) + 1 if len(hit) else None


def curve(args: argparse.Namespace) -> dict[str, Any]:
    """Train with the paper protocol per momentum; curve facts, JSON and figure."""
    from facedialect.stages import features, train
    from facedialect.stages.base import Context

    results: dict[str, Any] = {"command": "python bench/bench_trainer.py curve "
                               + " ".join(args.argv), "machine": machine(),
                               "posers": args.posers, "backbone": "mobilenet_v2 (ImageNet)",
                               "window": args.window, "iterations": args.iterations,
                               "momenta": {}}
    for m in args.momenta:
        tag = f"m{m:g}".replace(".", "")
        training = (f"runs = {args.runs}\nmomentum = {m}\niterations = {args.iterations}")
        run, study = prepare_database(args.workdir, args.posers, output=f"run-paper-{tag}",
                                      protocol="paper", training=training)
        stamps: list[float] = []
        t = time.perf_counter()
        ctx = Context(device="cpu",
                      progress=lambda label, d, n, st=stamps: st.append(time.perf_counter()))
        with run.lock():
            extracted = features.run(run, study, ctx)  # features, then training, as before
            train.run(run, study, ctx)
        seconds = time.perf_counter() - t
        curves = run.read_table("training_curves")
        faces = included_faces(run)
        labels = torch.tensor([EXPRESSIONS.index(e) for e in faces["expression"]])
        head = MultiRunHead.from_state(read_heads(run.path / "heads" / f"{DB}.pt"))
        from facedialect.training.features import FeatureCache

        feats = torch.from_numpy(FeatureCache(extracted.facts["backbone"],
                                              study.study.cache_dir,
                                              runtime=extracted.facts["runtime"])
                                 .load(list(faces["cache_key"])))
        splits = run.read_table("splits")
        per_run = []
        for r in range(args.runs):
            tr = curves[(curves["run"] == r) & (curves["split"] == "train")].sort_values(
                "iteration")
            va = curves[(curves["run"] == r) & (curves["split"] == "validation")].sort_values(
                "iteration")
            corr = tr["correct_rate"].to_numpy()
            ma = moving_average(corr, args.window)
            test = np.flatnonzero((splits[splits["run"] == r]["part"] == "test").to_numpy())
            acc = correct_rates(evaluate_head(head, r, feats, test, 50, torch.device("cpu")),
                                labels[test])
            its = tr["iteration"].to_numpy()
            loss = tr["loss"].to_numpy()

            def mean(x: np.ndarray, lo: int, hi: int, its: np.ndarray = its) -> float | None:
                sel = x[(its >= lo) & (its <= hi)]
                return float(sel.mean()) if len(sel) else None

            per_run.append({
                "run": r,
                "first_iteration_moving_average_above_0.5": first_above(ma, 0.5),
                "first_iteration_moving_average_above_0.7": first_above(ma, 0.7),
                "first_iteration_moving_average_above_0.9": first_above(ma, 0.9),
                "mean_correct_1_2000": mean(corr, 1, 2000),
                "mean_correct_2001_4000": mean(corr, 2001, 4000),
                "mean_correct_4001_8000": mean(corr, 4001, 8000),
                "mean_correct_8001_12000": mean(corr, 8001, 12000),
                "mean_loss_8001_12000": mean(loss, 8001, 12000),
                "moving_average_at": {str(k): float(ma[k - 1]) for k in
                                      (500, 1000, 2000, 4000, 8000, 12000) if k <= len(ma)},
                "validation": va[["iteration", "loss", "correct_rate"]].to_dict("list"),
                "test_correct": acc,
                "train_correct_rate": corr.round(4).tolist(),
                "train_loss": loss.round(4).tolist(),
            })
            print(f"momentum {m}: run {r}: MA{args.window} > 0.7 at iteration "
                  f"{per_run[-1]['first_iteration_moving_average_above_0.7']}, mean 8001-12000 "
                  f"{per_run[-1]['mean_correct_8001_12000']}, last validation "
                  f"{va['correct_rate'].iloc[-1]:.3f}, test {acc['all_variants']:.3f}",
                  flush=True)
        dts = np.diff(stamps)
        results["momenta"][f"{m:g}"] = {
            "train_seconds": seconds, "seconds_per_iteration_median": float(np.median(dts)),
            "runs": per_run, "run_dir": str(run.path)}
    return results


def plot_curve(res: dict[str, Any], path: Path) -> None:
    """Training correct rate (moving average) and validation per epoch, per momentum."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharex=True)
    colors = {"0.9": "tab:blue", "0": "tab:orange"}
    w = res["window"]
    for m, info in res["momenta"].items():
        c = colors.get(m, None)
        for k, r in enumerate(info["runs"]):
            corr = np.asarray(r["train_correct_rate"])
            loss = np.asarray(r["train_loss"])
            its = np.arange(1, len(corr) + 1)
            lab = f"momentum {m}" if k == 0 else None
            axes[0].plot(its, moving_average(corr, w), color=c, lw=1, label=lab)
            axes[1].plot(its, moving_average(loss, w), color=c, lw=1, label=lab)
            v = r["validation"]
            axes[0].plot(v["iteration"], v["correct_rate"], "o", color=c, ms=3,
                         label=f"validation, momentum {m}" if k == 0 else None)
            axes[1].plot(v["iteration"], v["loss"], "o", color=c, ms=3)
    for ax in axes:
        for x in (2000, 4000, 8000):
            ax.axvline(x, color="0.7", ls=":", lw=0.8)
        ax.set_xlabel("iteration")
        ax.set_xlim(0, res["iterations"])
    axes[0].axhline(0.7, color="0.5", ls="--", lw=0.8)
    axes[0].axhline(0.8, color="0.5", ls="-.", lw=0.8)
    axes[0].set_ylim(0, 1.02)
    axes[0].set_ylabel(f"training correct rate ({w}-iteration moving average)")
    axes[1].set_ylabel(f"training loss ({w}-iteration moving average)")
    axes[1].set_yscale("log")
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle(f"Paper protocol (SCIENCE §5) on synthetic culture A, {res['posers']} posers, "
                 "MobileNetV2 ImageNet features; lr 1e-4 / 1e-5 at 4000 / 1e-6 at 8000",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    import sys

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("speed", help="matmul peak, trainer GFLOP/s, naive reference")
    sp.add_argument("--dims", type=int, nargs="+", default=[1280, 9216])
    sp.add_argument("--runs", type=int, nargs="+", default=[1, 4, 8])
    sp.add_argument("--rounds", type=int, default=3)
    sp.add_argument("--iters", type=int, default=6, help="timed iterations per case and round")
    sp.add_argument("--warmup", type=int, default=2)
    sp.add_argument("--skip-before", action="store_true",
                    help="do not time the previous (autograd) step")
    sp.add_argument("--skip-naive", action="store_true")
    sp.add_argument("--naive-runs", type=int, default=2)
    sp.add_argument("--naive-iters", type=int, default=QUICK.iterations)
    sp.add_argument("--ratio-runs", type=int, default=4,
                    help="runs trained together for the time-per-run comparison")
    sp.add_argument("--ratio-rounds", type=int, default=4)
    sp.add_argument("--ratio-iters", type=int, default=8,
                    help="timed iterations per round, naive and batched")
    sp.add_argument("--out", type=Path, default=RESULTS / "trainer.json")
    cp = sub.add_parser("curve", help="paper protocol training curve per momentum")
    cp.add_argument("--momenta", type=float, nargs="+", default=[0.9, 0.0])
    cp.add_argument("--runs", type=int, default=1)
    cp.add_argument("--iterations", type=int, default=PAPER.iterations)
    cp.add_argument("--window", type=int, default=50)
    cp.add_argument("--out", type=Path, default=RESULTS / "paper_curve.json")
    for p in (sp, cp):
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--posers", type=int, default=60)
        p.add_argument("--workdir", type=Path, default=Path("/tmp/facedialect-bench"))
    args = ap.parse_args()
    args.argv = sys.argv[2:]
    torch.set_num_threads(args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.cmd == "speed":
        before = machine()
        res: dict[str, Any] = {"command": "python bench/bench_trainer.py speed "
                               + " ".join(args.argv), "machine_before": before}
        res["trainer"] = bench_trainer(args)
        if not args.skip_naive:
            res["naive"] = bench_naive(args, res["trainer"])
        res["machine_after"] = machine()
        args.out.write_text(json.dumps(res, indent=1) + "\n")
        print_speed_table(res)
    else:
        res = curve(args)
        args.out.write_text(json.dumps(res) + "\n")
        plot_curve(res, args.out.with_suffix(".png"))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
