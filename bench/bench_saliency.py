"""Saliency speed: maps for N images through AlexNet + a trained-size head, on the CPU.

Run:  .venv/bin/python bench/bench_saliency.py                 (1,000 images, 2 threads)
      .venv/bin/python bench/bench_saliency.py --n 200 --batches 1 16 --threads 2

AlexNet has random weights here (its ImageNet file is not available offline); speed does
not depend on the weights. The head is the paper's FC 4096-4096-7, 4 runs; every image is
paired with one run (as in the saliency stage, where each test image goes through the
networks of the runs that tested it). Inputs are London faces from ../shared (gray,
resized to 224) when present, else random gray images.

Measured in the same process: the reference, one forward pass of backbone + head without
gradients (``torch.inference_mode``), and plain-gradient and guided-backprop maps
(:func:`facedialect.saliency.gradients.saliency_maps`) at each batch size. Reported:
images/s and time per image as a multiple of the reference. Results go to
bench/results/saliency.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from _common import cpu_model  # noqa: E402  (bench/ is on sys.path when run)
from facedialect.models.backbones import build_backbone
from facedialect.models.runtime import tune_malloc
from facedialect.saliency.gradients import gray_to_input, head_logits, saliency_maps
from facedialect.training.trainer import MultiRunHead

ROOT = Path(__file__).resolve().parents[1]
LONDON = ROOT.parent / "shared" / "datasets" / "london-frl" / "neutral"


def gray_faces(n: int, seed: int = 0) -> tuple[np.ndarray, str]:
    """``n`` 224x224 uint8 gray images and where they come from."""
    files = sorted(LONDON.glob("*.jpg")) if LONDON.is_dir() else []
    if files:
        from PIL import Image

        imgs = [np.asarray(Image.open(files[i % len(files)]).convert("L").resize((224, 224)))
                for i in range(n)]
        return np.stack(imgs), f"London faces ({LONDON}), gray, resized to 224"
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 224, 224), dtype=np.uint8), "random uint8 gray images"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "saliency.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tune_malloc()
    faces, source = gray_faces(args.n)
    backbone = build_backbone("alexnet").to(memory_format=torch.channels_last)
    head = MultiRunHead(list(range(args.runs)), backbone.spec.feature_dim).eval()
    head.requires_grad_(False)
    classes = np.arange(args.n) % 7
    runs = np.arange(args.n) % args.runs
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() \
        else "n/a"

    def reference(batch: int) -> float:
        t = time.perf_counter()
        with torch.inference_mode():
            for i in range(0, args.n, batch):
                x = gray_to_input(torch.as_tensor(faces[i:i + batch], dtype=torch.float32),
                                  backbone).contiguous(memory_format=torch.channels_last)
                feats = backbone(x)
                for r in np.unique(runs[i:i + batch]):
                    rows = torch.as_tensor(np.flatnonzero(runs[i:i + batch] == r))
                    head_logits(head, feats[rows][None], [int(r)])
        return time.perf_counter() - t

    saliency_maps(backbone, head, faces[:4], classes[:4], runs[:4], "guided")  # warm-up
    rows = []
    for batch in args.batches:
        ref = reference(batch)
        rows.append({"batch": batch, "method": "reference (forward only)", "seconds": ref,
                     "images_per_s": args.n / ref, "x_reference": 1.0})
        for method in ("gradient", "guided"):
            t = time.perf_counter()
            maps = saliency_maps(backbone, head, faces, classes, runs, method,
                                 batch_size=batch)
            sec = time.perf_counter() - t
            assert np.isfinite(maps).all()
            rows.append({"batch": batch, "method": method, "seconds": sec,
                         "images_per_s": args.n / sec, "x_reference": sec / ref})
        for r in rows[-3:]:
            print(f"batch {batch:3d}  {r['method']:26s} {r['seconds']:8.1f} s  "
                  f"{r['images_per_s']:7.1f} img/s  x{r['x_reference']:.2f}")
    result = {"cpu": cpu_model(), "threads": args.threads, "n_images": args.n,
              "runs": args.runs, "source": source, "backbone": "alexnet (random weights)",
              "head": "FC 4096-4096-7", "torch": torch.__version__, "load_before": load,
              "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
