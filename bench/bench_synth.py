"""Speed of ``facedialect synth``: the east-west preset drawn with the 3-D face model.

Usage::

    python bench/bench_synth.py [--posers 60] [--workers 2] [--out bench/results/synth.json]

Times :func:`facedialect.synthetic.databases3d.synthesize` on the shipped ``east-west`` preset
(2 cultures x ``--posers`` posers x 7 expressions, 256 px, grayscale, 3-D renderer) with
``--workers`` processes, from a cold start (worker processes spawned, the model loaded in
each) to the last file written. References measured in the same run:

* ``one_image``: one 256 px render in this process (model already loaded), best of 5;
  ``serial_estimate`` = images x one_image is what one core would need, so
  ``ratio_to_serial_estimate`` < 1 is the gain from the workers;
* ``matmul``: a 1024 x 1024 float64 numpy matmul, best of 5 (a machine-speed yardstick:
  ``ratio_to_matmul`` compares machines).

It also checks that 1 and ``--workers`` processes write byte-identical files (3 posers).
Needs the ICT model (``../shared/assets`` or an installed copy). Results go to
bench/results/synth.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import cpu_model  # noqa: E402  (bench/ is on sys.path when run)

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.name.startswith("contact_sheet"):
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def best_of(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--posers", type=int, default=60)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "synth.json")
    args = ap.parse_args(argv)

    from facedialect.faces.procedural.identity import FaceIdentity
    from facedialect.synthetic.databases3d import render_synth_3d, synthesize

    load_before = os.getloadavg()[0]
    ident = FaceIdentity.default()
    render_synth_3d(ident, {6: 0.8, 12: 0.8})  # loads the model
    one = best_of(lambda: render_synth_3d(ident, {6: 0.8, 12: 0.8}, size=256))
    a = np.random.default_rng(0).random((1024, 1024))
    matmul = best_of(lambda: a @ a)

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        synthesize(Path(tmp) / "full", "east-west", renderer="3d", n_posers=args.posers,
                   workers=args.workers)
        wall = time.perf_counter() - t
        # determinism across worker counts (3 posers)
        synthesize(Path(tmp) / "w1", "east-west", n_posers=3, workers=1)
        synthesize(Path(tmp) / "wn", "east-west", n_posers=3, workers=args.workers)
        same = _digest(Path(tmp) / "w1") == _digest(Path(tmp) / "wn")

    n = 2 * args.posers * 7
    result = {
        "benchmark": "synth",
        "command": "python bench/bench_synth.py " + " ".join(argv or sys.argv[1:]),
        "preset": "east-west",
        "renderer": "3d",
        "images": n,
        "workers": args.workers,
        "seconds": wall,
        "images_per_s": n / wall,
        "one_image_s": one,
        "serial_estimate_s": n * one,
        "ratio_to_serial_estimate": wall / (n * one),
        "matmul_1024_s": matmul,
        "ratio_to_matmul": wall / matmul,
        "identical_files_1_vs_n_workers": same,
        "machine": {
            "cpu": cpu_model(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "load_average_1min_before": load_before,
            "load_average_1min_after": os.getloadavg()[0],
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{n} images (2 cultures x {args.posers} posers x 7), {args.workers} workers: "
          f"{wall:.1f} s ({n / wall:.2f} images/s)")
    print(f"one image {one * 1000:.0f} ms -> serial estimate {n * one:.1f} s "
          f"(x{wall / (n * one):.2f}); matmul 1024 {matmul * 1000:.1f} ms "
          f"(x{wall / matmul:.0f})")
    print(f"1 vs {args.workers} workers identical: {same}; load {load_before:.1f} -> "
          f"{result['machine']['load_average_1min_after']:.1f}")
    print(f"written: {args.out}")
    return result


if __name__ == "__main__":
    main()
