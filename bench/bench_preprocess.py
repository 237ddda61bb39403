"""Throughput of face pre-processing against a plain OpenCV read-and-resize loop.

Usage::

    python bench/bench_preprocess.py [--n 102] [--repeats 3] [--out bench/results/preprocess.json]

Per image the pipeline does: read (facedialect.imageio.read_gray), Haar detection,
crop + resize, histogram normalization, oval mask and all 50 augmentation variants.
The reference, timed in the same run on the same files, is ``cv2.imread`` (grayscale)
+ ``cv2.resize`` to 224x224. Modes:

* ``reference``: the plain OpenCV loop, one thread.
* ``serial``: the pipeline in one thread, OpenCV's own thread pool at its default.
* ``serial-cv1``: the same with ``cv2.setNumThreads(1)``.
* ``threads-2-cvdef``: two Python threads (OpenCV releases the GIL), OpenCV's thread
  pool at its default (what a thread-pool stage gets without further settings).
* ``threads-2``: two Python threads, ``cv2.setNumThreads(1)``.
* ``processes-2``: a two-process pool, ``cv2.setNumThreads(1)`` in each worker; workers
  send back the 224x224 image (not the 50 variants, which a stage would consume where
  they are made), and the pool is started and warmed before the clock starts.

Times are the best of ``--repeats`` runs (all runs are kept in the JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from facedialect.imageio import read_gray
from facedialect.preprocess import PreprocessParams, make_variants, preprocess_face

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "london-frl" / "neutral"
PARAMS = PreprocessParams()


def process_one(path: str) -> tuple[bool, np.ndarray | None, int]:
    """Read, pre-process and augment one file; return (detected, image, variant checksum)."""
    result = preprocess_face(read_gray(path), PARAMS)
    if result.image is None:
        return False, None, 0
    variants = make_variants(result.image, PARAMS)
    return True, result.image, int(variants[:, 112, 112].sum())


def reference_one(path: str) -> np.ndarray:
    """The reference: OpenCV's own grayscale read plus a resize to the output size."""
    img = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    return cv2.resize(img, (PARAMS.size, PARAMS.size), interpolation=cv2.INTER_AREA)


def _worker_init() -> None:
    cv2.setNumThreads(1)


def time_it(fn: Callable[[], int], repeats: int) -> tuple[float, list[float], int]:
    times, out = [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), times, out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=102, help="number of images (default 102)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per mode, best kept (3)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of .jpg faces")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "preprocess.json")
    args = ap.parse_args(argv)

    files = [str(p) for p in sorted(args.data.glob("*.jpg"))][: args.n]
    if not files:
        sys.exit(f"no .jpg files in {args.data}: pass --data (the London set sits in ../shared)")
    n = len(files)
    default_threads = cv2.getNumThreads()
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    if load_before is not None and load_before > 0.5:
        print(
            f"note: 1-minute load average is {load_before:.2f} before the run; other work on "
            "this machine slows every mode (ratios suffer less than absolute numbers)"
        )

    # warm-up: decoders, the cascade of this thread, caches
    for f in files[:3]:
        process_one(f)
        reference_one(f)

    modes: dict[str, dict] = {}

    def record(name: str, fn: Callable[[], int], note: str) -> None:
        best, times, detected = time_it(fn, args.repeats)
        modes[name] = {
            "seconds": best,
            "all_seconds": times,
            "images_per_s": n / best,
            "ms_per_image": 1000 * best / n,
            "detected": detected,
            "note": note,
        }

    record("reference", lambda: sum(reference_one(f).size > 0 for f in files), "imread+resize")

    cv2.setNumThreads(default_threads)
    record(
        "serial",
        lambda: sum(process_one(f)[0] for f in files),
        f"1 worker, OpenCV threads={default_threads}",
    )
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(process_one, files[:4]))  # one cascade per thread, loaded
        record(
            "threads-2-cvdef",
            lambda: sum(r[0] for r in pool.map(process_one, files)),
            f"2 threads, OpenCV threads={default_threads} (shared pool)",
        )
    cv2.setNumThreads(1)
    record("serial-cv1", lambda: sum(process_one(f)[0] for f in files), "1 worker, OpenCV 1")
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(process_one, files[:4]))  # one cascade per thread, loaded
        record(
            "threads-2",
            lambda: sum(r[0] for r in pool.map(process_one, files)),
            "2 threads, OpenCV 1 each",
        )
    with ProcessPoolExecutor(max_workers=2, initializer=_worker_init) as pool:
        list(pool.map(process_one, files[:4]))  # start both workers, load their cascades
        record(
            "processes-2",
            lambda: sum(r[0] for r in pool.map(process_one, files, chunksize=4)),
            "2 processes, OpenCV 1 each",
        )
    cv2.setNumThreads(default_threads)

    ref = modes["reference"]["seconds"]
    for m in modes.values():
        m["ratio_to_reference"] = m["seconds"] / ref
    result = {
        "benchmark": "preprocess",
        "command": "python bench/bench_preprocess.py " + " ".join(argv or sys.argv[1:]),
        "n_images": n,
        "data": str(args.data),
        "repeats": args.repeats,
        "per_image": "read + detect + crop/resize + normalize + mask + 50 variants",
        "machine": {
            "cpus": os.cpu_count(),
            "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "opencv": cv2.__version__,
            "opencv_default_threads": default_threads,
            "load_average_1min_before": load_before,
            "load_average_1min_after": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        },
        "modes": modes,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"{n} images, best of {args.repeats}; reference = cv2.imread + cv2.resize")
    print(f"{'mode':<16} {'images/s':>9} {'ms/image':>9} {'x reference':>12}  note")
    for name, m in modes.items():
        print(
            f"{name:<16} {m['images_per_s']:9.1f} {m['ms_per_image']:9.2f} "
            f"{m['ratio_to_reference']:12.1f}  {m['note']}"
        )
    print(f"written: {args.out}")
    return result


if __name__ == "__main__":
    main()
