"""The Ray engine against the local one on the same study (issue 18, docs/scaling.md).

Draws two synthetic cultures (``east-west``, ``--subjects`` posers each, built-in face),
runs ingest, pre-processing, features, train and evaluate locally, then again with
``[compute] engine = "ray"`` into another run directory after emptying the feature
cache (so Ray Data computes every feature and Ray tasks train every head), on a Ray
instance started here with ``--cpus`` CPUs (and the GPUs it finds). Reports each stage's
seconds from the manifests, Ray's start-up, and whether every table and heads file is
byte-identical.

    .venv/bin/python bench/bench_ray.py --out /tmp/fdray                 # 2 CPUs
    .venv/bin/python bench/bench_ray.py --out /tmp/fdray --device cuda --cpus 8

Writes ``bench/results/ray_{device}.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import time
from pathlib import Path

from _common import cpu_model  # noqa: E402  (bench/ is on sys.path when run)
from facedialect.api import Study
from facedialect.pipeline import run_stages
from facedialect.stages.base import Context
from facedialect.synthetic.databases3d import synthesize

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"
STAGES = ["ingest", "preprocess", "features", "train", "evaluate"]

STUDY = """
[study]
name = "bench-ray"
output = "{output}"
seed = 7
cache_dir = "cache"

[[databases]]
name = "A"
preset = "manifest"
root = "data/A"

[[databases]]
name = "B"
preset = "manifest"
root = "data/B"

[model]
backbone = "{backbone}"

[training]
protocol = "quick"
runs = {runs}
iterations = {iterations}
{compute}"""


def digests(run_dir: Path) -> dict[str, str]:
    files = [*sorted((run_dir / "tables").glob("*.csv")), *sorted((run_dir / "heads")
                                                                  .glob("*.pt"))]
    return {f"{p.parent.name}/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest()
            for p in files}


def stage_seconds(run_dir: Path) -> dict[str, float]:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return {k: round(v["seconds"], 2) for k, v in manifest["stages"].items() if k in STAGES}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--subjects", type=int, default=8)
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--iterations", type=int, default=240)
    ap.add_argument("--backbone", default="mobilenet_v2")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cpus", type=int, default=2)
    args = ap.parse_args()
    root = args.out.resolve()
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    synthesize(root / "data", "east-west", renderer="builtin", n_posers=args.subjects, seed=0)

    def study(name: str, compute: str = "") -> Study:
        path = root / f"{name}.toml"
        path.write_text(STUDY.format(output=name, backbone=args.backbone, runs=args.runs,
                                     iterations=args.iterations, compute=compute))
        return Study.from_toml(path)

    t = time.perf_counter()
    run_stages(study("local"), STAGES, ctx=Context(device=args.device))
    local_wall = time.perf_counter() - t
    load_before = os.getloadavg()

    import ray

    t = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="ERROR")
    ray_start = time.perf_counter() - t
    shutil.rmtree(root / "cache" / "features")
    t = time.perf_counter()
    run_stages(study("onray", '\n[compute]\nengine = "ray"\n'), STAGES,
               ctx=Context(device=args.device))
    ray_wall = time.perf_counter() - t
    resources = ray.cluster_resources()
    ray.shutdown()
    same = digests(root / "local") == digests(root / "onray")
    out = {
        "command": "python bench/bench_ray.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
        "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(),
                    "python": platform.python_version(), "ray": ray.__version__,
                    "load_average_before_ray": load_before},
        "study": {"faces": 2 * 7 * args.subjects, "runs": args.runs,
                  "iterations": args.iterations, "backbone": args.backbone},
        "ray_resources": resources,
        "seconds_local": stage_seconds(root / "local"),
        "seconds_ray": stage_seconds(root / "onray"),
        "wall_local": round(local_wall, 2), "wall_ray": round(ray_wall, 2),
        "ray_start": round(ray_start, 2),
        "identical_tables_and_heads": same,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    target = RESULTS / f"ray_{args.device.split(':')[0]}.json"
    target.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
