"""Feature extraction speed of every backbone, against a dense-matmul reference.

Run:  .venv/bin/python bench/bench_features.py            (2 threads, batches 32 and 64)
      .venv/bin/python bench/bench_features.py --threads 2 1 --batches 8 32 --repeats 3

For each backbone it measures images/s of ``backbone(x)`` under ``torch.inference_mode``
(input already normalized; ``to_input`` is timed apart) in three variants, each in its own
process: as built; with ``facedialect.models.runtime.tune_malloc()``; and with that plus
``torch.channels_last``. It counts the FLOPs of its conv and
linear layers with forward hooks (2 x multiply-adds), and reports the achieved GFLOP/s as
a fraction of a 2048x2048 float32 matmul measured in the same run on the same threads.
Inputs are London faces from ../shared (gray, resized to 224) when present, else random
gray images. Results go to bench/results/features.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from _common import cpu_model  # noqa: E402  (bench/ is on sys.path when run)
from facedialect.models import BACKBONES, WeightsError, build_backbone, load_backbone
from facedialect.models.runtime import tune_malloc

ROOT = Path(__file__).resolve().parents[1]
LONDON = ROOT.parent / "shared" / "datasets" / "london-frl" / "neutral"


def gray_faces(n: int, seed: int = 0) -> tuple[np.ndarray, str]:
    """Return ``n`` 224x224 uint8 gray images and where they come from."""
    files = sorted(LONDON.glob("*.jpg")) if LONDON.is_dir() else []
    if files:
        from PIL import Image

        imgs = [
            np.asarray(Image.open(files[i % len(files)]).convert("L").resize((224, 224)))
            for i in range(n)
        ]
        return np.stack(imgs), f"London faces ({LONDON}), gray, resized to 224"
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 224, 224), dtype=np.uint8), "random uint8 gray images"


def matmul_gflops(n: int = 2048, repeats: int = 3) -> float:
    """Best-of GFLOP/s of an ``n x n`` float32 matmul (2 n^3 FLOPs)."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    out = torch.empty(n, n)
    torch.mm(a, b, out=out)  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b, out=out)
        times.append(time.perf_counter() - t)
    return 2 * n**3 / min(times) / 1e9


def count_flops(model: nn.Module, x: torch.Tensor) -> int:
    """FLOPs (2 x multiply-adds) of the conv and linear layers for input ``x``."""
    total = 0

    def conv_hook(m: nn.Conv2d, args, out) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        total += 2 * out.numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m: nn.Linear, args, out) -> None:
        nonlocal total
        total += 2 * out.numel() * m.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    with torch.inference_mode():
        model(x)
    for h in hooks:
        h.remove()
    return total


VARIANTS = {
    "plain": "as built: NCHW, glibc malloc defaults",
    "malloc": "facedialect.models.runtime.tune_malloc() applied",
    "malloc+channels_last": "tune_malloc() and model/input in torch.channels_last",
}


def measure(variant: str, threads: int, batches: list[int], repeats: int) -> dict:
    """Measure every backbone in this process under one variant.

    Rounds are interleaved: each round times the matmul reference and every
    (backbone, batch) once, and each figure is the best over the rounds, so that load
    from other processes on a shared machine hits the reference and the backbones alike.
    """
    if variant != "plain":
        tune_malloc()
    torch.set_num_threads(threads)
    gray, source = gray_faces(max(batches))
    cases = []
    for name in sorted(BACKBONES):
        try:
            model = load_backbone(name)
        except WeightsError:
            model = build_backbone(name)  # same speed; AlexNet has no offline file
        x_all = model.to_input(gray)
        flops = count_flops(model, x_all[:1])
        if variant.endswith("channels_last"):
            model = model.to(memory_format=torch.channels_last)
            x_all = x_all.contiguous(memory_format=torch.channels_last)
        for bs in batches:
            cases.append((name, model, bs, x_all[:bs], flops))

    peaks: list[float] = []
    times: dict[tuple[str, int], list[float]] = {(c[0], c[2]): [] for c in cases}
    t_in: dict[tuple[str, int], list[float]] = {(c[0], c[2]): [] for c in cases}
    with torch.inference_mode():
        for _, model, _, x, _ in cases:  # warm-up
            model(x)
        for _ in range(repeats):
            peaks.append(matmul_gflops(repeats=3))
            for name, model, bs, x, _ in cases:
                t = time.perf_counter()
                model(x)
                times[name, bs].append(time.perf_counter() - t)
                t = time.perf_counter()
                model.to_input(gray[:bs])
                t_in[name, bs].append(time.perf_counter() - t)
    peak = max(peaks)
    print(f"[{variant}] threads={threads}  matmul 2048^2 float32: {peak:.1f} GFLOP/s  "
          f"inputs: {source}", flush=True)
    rows = []
    for name, model, bs, _, flops in cases:
        best = min(times[name, bs])
        ips = bs / best
        gflops = flops * ips / 1e9
        rows.append({
            "variant": variant, "backbone": name, "weights": model.weights_tag,
            "batch": bs, "feature_dim": model.spec.feature_dim,
            "gflop_per_image": flops / 1e9,
            "seconds_per_batch_best": best,
            "seconds_per_batch_median": statistics.median(times[name, bs]),
            "images_per_s": ips, "achieved_gflop_s": gflops,
            "fraction_of_matmul_peak": gflops / peak,
            "to_input_images_per_s": bs / min(t_in[name, bs]),
        })
        print(f"[{variant}] {name:18s} batch {bs:3d}: {ips:6.1f} img/s  "
              f"{flops / 1e9:4.2f} GFLOP/img  {gflops:5.1f} GFLOP/s = "
              f"{gflops / peak:4.0%} of matmul  (to_input {rows[-1]['to_input_images_per_s']:,.0f}"
              " img/s)", flush=True)
    return {"variant": variant, "what": VARIANTS[variant], "inputs": source,
            "matmul_gflop_s": peak, "matmul_gflop_s_rounds": peaks, "results": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[2],
                    help="torch threads; several values are measured one after another")
    ap.add_argument("--batches", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "features.json")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:  # one variant per process: tune_malloc() cannot be undone
        part = measure(args.variants[0], args.threads[0], args.batches, args.repeats)
        args.out.write_text(json.dumps(part))
        return

    sizes = ["--batches", *map(str, args.batches), "--repeats", str(args.repeats)]
    parts = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for threads in args.threads:
            for variant in args.variants:
                out = Path(tmp) / f"{variant}-{threads}.json"
                subprocess.run([sys.executable, __file__, "--child", "--variants", variant,
                                "--threads", str(threads), "--out", str(out), *sizes],
                               check=True)
                part = json.loads(out.read_text())
                part["threads"] = threads
                parts.append(part)
    result = {
        "command": "python bench/bench_features.py " + " ".join(
            ["--threads", *map(str, args.threads), *sizes]),
        "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(),
                    "torch": torch.__version__,
                    "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "timing": "images/s from the best of --repeats interleaved rounds after one warm-up; "
                  "each (threads, variant) in its own process with its own matmul reference",
        "reference": "2048x2048 float32 torch.mm, best over the rounds, same process and threads",
        "variants": parts,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
