"""A whole quick study at real size: seconds per stage, before and after, and the levers.

Usage::

    python bench/bench_study.py --out /tmp/fdbench            # 3 configurations, levers
    python bench/bench_study.py --out /tmp/fdbench --config after:auto:default --no-levers
    python bench/bench_study.py --out /tmp/fdbench --preset-b east-west --subjects-b 170

Two synthetic databases of real size, drawn once into ``OUT/data`` (reused when there):

* ``a``: culture A of the ``east-west`` preset, ``--subjects-a`` posers x 7 expressions,
  one take each (60: 420 images, the size of KDEF's frontal set);
* ``b``: culture ``--culture-b`` of ``--preset-b`` (default ``messy``: 1-6 takes per poser
  and expression, unbalanced classes, posers that lack an expression), ``--subjects-b``
  posers (112: about 1,200 images of complete subjects).

Each configuration ``NAME:RUNTIME:TEST_VARIANTS`` (``--config``, repeatable; default
``before:torch:50`` = the defaults before this bench, ``torch-10:torch:10`` and
``after:auto:default`` = the defaults now) runs
``facedialect run`` (:func:`facedialect.pipeline.run_stages`) on a study of both databases:
MobileNetV2 with its ImageNet weights (shipped offline), the quick protocol, ``[model]
runtime = RUNTIME``, ``[training] test_variants = TEST_VARIANTS`` (``default``: the
protocol's own), AU tuning on the average face and the robustness check (each database
uses all but ``--spare`` of its complete subjects, so the check trains on more). Every
configuration starts from an empty cache (``OUT/NAME/cache``): the first run of a new
study. Seconds per stage are read from the run's ``manifest.json`` (``stages``; the
robustness stage's features and training are not in its entry); "other" is the wall time
not in a timed stage (the average face, the robustness check's features and training,
loading). The wall seconds of each pipeline stage, from its start to its summary, are
recorded beside them (``stage_wall_s``).

Levers, measured after the studies in the same process (so under the same load):

* ``runtime``: the backbone on ``--lever-faces`` of the study's pre-processed faces x the
  quick protocol's 10 training variants, eager PyTorch (channels-last, ``tune_malloc``)
  against ONNX Runtime (threads blocking, as the study runs it; spinning; and OpenVINO
  when installed), each also on 1 thread, interleaved rounds, best and median images/s,
  and the max abs difference of the features (float32, and after the cache's float16);
* ``test_variants``: the first configuration's trained networks evaluated again on 10
  test variants (the training variants), from the cached features: matched and swapped
  correct rates on 10 and on 50 variants, the same networks;
* ``robustness``: what the robustness stage did (its wall seconds with features and
  training on all complete subjects, the profiles' seconds, subjects per database).

Results go to bench/results/study.json (``--json``) and a table is printed. The data, the
runs and the caches stay in ``--out`` (never in the repository).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from _common import cpu_model  # noqa: E402  (bench/ is on sys.path when run)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGS = ["before:torch:50", "torch-10:torch:10", "after:auto:default"]
#: Stages in the order a study runs them (the timed entries of manifest.json).
STAGES = ["ingest", "preprocess", "features", "train", "evaluate", "tuning", "robustness",
          "report"]


class LoadSampler:
    """Samples the 1-minute load average every few seconds in a thread."""

    def __init__(self, every: float = 5.0) -> None:
        self.every, self.samples = every, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(self.every)

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        s = self.samples or [os.getloadavg()[0]]
        return {"mean": round(statistics.fmean(s), 2), "min": round(min(s), 2),
                "max": round(max(s), 2), "samples": len(s)}


# ------------------------------------------------------------------------------ data

def make_data(out: Path, args: argparse.Namespace) -> dict:
    """Draw the two databases into ``out/a`` and ``out/b`` unless they are there."""
    from facedialect.synthetic.databases3d import synthesize

    made = {}
    for key, preset, n, culture in (("a", "east-west", args.subjects_a, "A"),
                                    ("b", args.preset_b, args.subjects_b, args.culture_b)):
        folder = out / key
        if not (folder / culture / "manifest.csv").exists():
            print(f"drawing {preset} x {n} posers into {folder} ...", flush=True)
            t = time.perf_counter()
            synthesize(folder, preset, renderer=args.renderer, n_posers=n, seed=args.seed,
                       workers=0)
            made[key] = round(time.perf_counter() - t, 1)
    return made


def complete_subjects(manifest: Path) -> tuple[int, int, int]:
    """Rows, subjects and complete subjects (every expression the database has)."""
    with open(manifest, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    have: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        have[r["subject"]].add(r["expression"])
    exprs = {r["expression"] for r in rows}
    return len(rows), len(have), sum(1 for e in have.values() if e == exprs)


STUDY = """\
[study]
name = "bench_study {name}"
output = "{run}"
seed = {seed}
cache_dir = "{cache}"

[model]
backbone = "mobilenet_v2"
runtime = "{runtime}"

[training]
protocol = "quick"
{test_variants}
[tuning]
base_face = "average"
robustness = true

[[databases]]
name = "a"
preset = "manifest"
root = "{root_a}"
n_subjects = {n_a}

[[databases]]
name = "b"
preset = "manifest"
root = "{root_b}"
n_subjects = {n_b}
"""


def write_study(folder: Path, name: str, runtime: str, test_variants: str, data: Path,
                args: argparse.Namespace, n_a: int, n_b: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tv = "" if test_variants == "default" else f"test_variants = {int(test_variants)}\n"
    path = folder / "study.toml"
    path.write_text(STUDY.format(
        name=name, run=(folder / "run").as_posix(), cache=(folder / "cache").as_posix(),
        seed=args.seed, runtime=runtime, test_variants=tv,
        root_a=(data / "a" / "A").as_posix(), root_b=(data / "b" / args.culture_b).as_posix(),
        n_a=n_a, n_b=n_b), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- studies

def stage_seconds(run: Path) -> dict[str, float]:
    """Seconds per stage of a run (manifest.json)."""
    mf = run / "manifest.json"
    if not mf.exists():
        return {}
    return {name: float(info["seconds"])
            for name, info in json.loads(mf.read_text())["stages"].items()}


def correct_rates(run: Path) -> dict[str, float]:
    """Mean correct rate (over expressions, then runs) per train -> test database."""
    import pandas as pd

    acc = pd.read_csv(run / "tables" / "accuracy.csv")
    acc = acc[acc["variants"] == "all"]
    per_run = acc.groupby(["train_db", "test_db", "condition", "run"])["correct_rate"].mean()
    means = per_run.groupby(["train_db", "test_db", "condition"]).mean()
    return {f"{a} -> {b} ({c})": round(float(v), 4) for (a, b, c), v in means.items()}


def run_config(spec: str, data: Path, out: Path, args: argparse.Namespace,
               n_a: int, n_b: int) -> dict:
    """Run one configuration from an empty cache and collect its numbers."""
    from facedialect.api import Study
    from facedialect.pipeline import run_stages
    from facedialect.progress import progress_factory
    from facedialect.stages.base import Context

    name, runtime, test_variants = spec.split(":")
    folder = out / name
    if folder.exists() and not args.keep:
        shutil.rmtree(folder)
    study_file = write_study(folder, name, runtime, test_variants, data, args, n_a, n_b)
    print(f"\n== {name}: runtime {runtime}, test variants {test_variants} "
          f"(load {os.getloadavg()[0]:.1f})", flush=True)
    started: dict[str, float] = {}
    wall: dict[str, float] = {}
    with LoadSampler() as load:
        t = time.perf_counter()
        summaries = run_stages(
            Study.from_toml(study_file), ctx=Context(), progress=progress_factory(),
            on_start=lambda stage: started.__setitem__(stage.name, time.perf_counter()),
            on_done=lambda s: wall.__setitem__(
                s.stage, round(time.perf_counter() - started[s.stage], 1)))
        total = time.perf_counter() - t
    run = folder / "run"
    stages = stage_seconds(run)
    mf = json.loads((run / "manifest.json").read_text())
    robustness = next((s for s in summaries if s.stage == "robustness"), None)
    feats = mf["stages"]["features"]
    print(f"   {total:.0f} s in all; features {stages.get('features', 0):.0f} s "
          f"({feats.get('runtime')}, {feats['variants']} face-variants)", flush=True)
    return {
        "name": name, "runtime_asked": runtime, "test_variants_asked": test_variants,
        "runtime": mf.get("training", {}).get("runtime", "torch"),
        "test_variants": mf["training"]["protocol"].get("test_variants", 50),
        "study_file": str(study_file), "total_s": round(total, 1), "stages_s": stages,
        "other_s": round(total - sum(stages.values()), 1), "stage_wall_s": wall,
        "load_average_1min": load.summary(), "features": feats,
        "robustness": {"facts": robustness.facts if robustness else None,
                       "skipped": robustness.skipped if robustness else "not run",
                       "manifest": mf["stages"].get("robustness")},
        "images": {db: int(n) for db, n in _included(run).items()},
        "correct_rates": correct_rates(run),
    }


def _included(run: Path) -> dict[str, int]:
    import pandas as pd

    from facedialect.run.store import RunDir
    from facedialect.run.tables import included_faces

    faces = included_faces(RunDir(run))
    return pd.Series(faces["db"]).value_counts().sort_index().to_dict()


# ----------------------------------------------------------------------------- levers

def lever_runtime(run: Path, n_faces: int, rounds: int) -> dict:
    """PyTorch against ONNX Runtime (and OpenVINO) on the study's own faces."""
    from facedialect.config import load_study
    from facedialect.models.runtime import export_onnx, feature_runner, onnx_installed
    from facedialect.models.weights import load_backbone
    from facedialect.preprocess.augment import variant, variant_subset
    from facedialect.run.caches import load_face, preprocess_cache
    from facedialect.run.store import RunDir
    from facedialect.run.tables import included_faces

    study = load_study(run.parent / "study.toml")
    faces = included_faces(RunDir(run)).sample(frac=1.0, random_state=0).head(n_faces)
    pcache = preprocess_cache(study.study.cache_dir)
    gray = np.stack([variant(load_face(k, pcache), v, study.preprocess)
                     for k in faces["cache_key"] for v in variant_subset(10)])
    backbone = load_backbone("mobilenet_v2")
    x = backbone.to_input(gray)
    batch = 50
    threads = torch.get_num_threads()
    torch_runner = feature_runner(backbone, "torch")
    runners = {"torch": torch_runner}
    if threads > 1:
        runners["torch-1-thread"] = _one_thread(torch_runner, threads)
    out: dict = {"faces": len(faces), "images": len(x), "batch": batch, "threads": threads}
    if onnx_installed():
        t = time.perf_counter()
        runners["onnx"] = feature_runner(backbone, "onnx", cache_dir=study.study.cache_dir)
        out["onnx_setup_s"] = round(time.perf_counter() - t, 2)
        runners["onnx-spinning"] = feature_runner(backbone, "onnx", spinning=True,
                                                  cache_dir=study.study.cache_dir)
        if threads > 1:
            runners["onnx-1-thread"] = feature_runner(backbone, "onnx", threads=1,
                                                      cache_dir=study.study.cache_dir)
        try:
            import openvino as ov

            core = ov.Core()
            model = core.compile_model(
                str(export_onnx(backbone, study.study.cache_dir)), "CPU",
                {"INFERENCE_NUM_THREADS": torch.get_num_threads(),
                 "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"})
            runners["openvino"] = lambda xb: model(xb.numpy())[0]
        except ImportError:
            pass
    feats = {k: np.concatenate([r(x[i:i + batch]) for i in range(0, len(x), batch)])
             for k, r in runners.items()}  # also the warm-up
    times: dict[str, list[float]] = {k: [] for k in runners}
    with LoadSampler() as load:
        for _ in range(rounds):
            for k, r in runners.items():
                t = time.perf_counter()
                for i in range(0, len(x), batch):
                    r(x[i:i + batch])
                times[k].append(time.perf_counter() - t)
    ref = feats["torch"]
    out["load_average_1min"] = load.summary()
    out["results"] = {k: {
        "images_per_s_best": round(len(x) / min(v), 1),
        "images_per_s_median": round(len(x) / statistics.median(v), 1),
        "x_torch_speed_median": round(statistics.median(times["torch"]) / statistics.median(v),
                                      2),
        "max_abs_diff_vs_torch": float(np.abs(feats[k] - ref).max()),
        "max_abs_diff_vs_torch_float16": float(np.abs(feats[k].astype(np.float16).astype(
            np.float32) - ref.astype(np.float16).astype(np.float32)).max()),
    } for k, v in times.items()}
    out["feature_max_abs"] = float(np.abs(ref).max())
    return out


def _one_thread(runner, threads: int):
    def run(xb: torch.Tensor) -> np.ndarray:
        torch.set_num_threads(1)
        try:
            return runner(xb)
        finally:
            torch.set_num_threads(threads)
    return run


def lever_test_variants(cfg: dict, out: Path, n: int = 10) -> dict:
    """The configuration's networks evaluated again on ``n`` test variants."""
    from facedialect.config import load_study
    from facedialect.run.store import RunDir
    from facedialect.stages import evaluate
    from facedialect.stages.base import Context

    src = Path(cfg["study_file"]).parent
    dst = out / f"{cfg['name']}-eval{n}"
    if dst.exists():
        shutil.rmtree(dst)
    (dst / "run").mkdir(parents=True)
    for part in ("heads", "tables"):
        shutil.copytree(src / "run" / part, dst / "run" / part)
    for f in ("manifest.json", "config.toml"):
        if (src / "run" / f).exists():
            shutil.copy2(src / "run" / f, dst / "run" / f)
    text = (src / "study.toml").read_text(encoding="utf-8")
    text = text.replace((src / "run").as_posix(), (dst / "run").as_posix())
    text = "\n".join(line for line in text.splitlines() if not line.startswith("test_variants"))
    text = text.replace('protocol = "quick"', f'protocol = "quick"\ntest_variants = {n}')
    (dst / "study.toml").write_text(text, encoding="utf-8")
    run = RunDir(dst / "run")
    t = time.perf_counter()
    with run.lock():
        evaluate.run(run, load_study(dst / "study.toml"), Context())
    seconds = time.perf_counter() - t
    return {"networks_of": cfg["name"], "test_variants": n, "evaluate_s": round(seconds, 1),
            "correct_rates_50": cfg["correct_rates"],
            f"correct_rates_{n}": correct_rates(dst / "run")}


def lever_robustness(cfg: dict) -> dict:
    """What the robustness stage did: wall seconds (features and training on all complete
    subjects included), the profiles' seconds, subjects per database (main, all)."""
    rob = cfg.get("robustness") or {}
    facts = rob.get("facts") or {}
    return {"config": cfg["name"], "wall_s": cfg["stage_wall_s"].get("robustness"),
            "profiles_s": cfg["stages_s"].get("robustness"),
            "subjects_main_all": facts.get("subjects"), "mean_r": facts.get("mean_r"),
            "skipped": rob.get("skipped")}


# ------------------------------------------------------------------------------ table

def print_table(configs: list[dict]) -> None:
    names = [c["name"] for c in configs]
    print("\nseconds per stage" + "".join(f" | {n:>10s}" for n in names))
    keys = [s for s in STAGES if any(s in c["stages_s"] for c in configs)]
    keys += sorted({s for c in configs for s in c["stages_s"]} - set(keys))
    for s in keys:
        print(f"{s:21s}" + "".join(f" | {c['stages_s'].get(s, float('nan')):10.1f}"
                                   for c in configs))
    print(f"{'other':21s}" + "".join(f" | {c['other_s']:10.1f}" for c in configs))
    print(f"{'total':21s}" + "".join(f" | {c['total_s']:10.1f}" for c in configs))
    print(f"{'load (1-min, mean)':21s}" + "".join(
        f" | {c['load_average_1min']['mean']:10.1f}" for c in configs))
    for c in configs:
        print(f"{c['name']}: runtime {c['runtime']}, test variants {c['test_variants']}, "
              f"correct rates {c['correct_rates']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True,
                    help="folder for the data, the runs and their caches (not the repository)")
    ap.add_argument("--data", type=Path, default=None, help="data folder (default OUT/data)")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--config", action="append", default=None,
                    help="NAME:RUNTIME:TEST_VARIANTS, e.g. before:torch:50, after:auto:default "
                         f"(default: {' '.join(DEFAULT_CONFIGS)})")
    ap.add_argument("--subjects-a", type=int, default=60)
    ap.add_argument("--preset-b", default="messy")
    ap.add_argument("--culture-b", default="B")
    ap.add_argument("--subjects-b", type=int, default=112)
    ap.add_argument("--renderer", default="builtin")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--spare", type=int, default=4,
                    help="complete subjects per database left to the robustness check")
    ap.add_argument("--no-levers", action="store_true")
    ap.add_argument("--lever-faces", type=int, default=40)
    ap.add_argument("--lever-rounds", type=int, default=5)
    ap.add_argument("--keep", action="store_true",
                    help="keep an existing run and cache of a configuration (resume)")
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "study.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    configs = args.config or DEFAULT_CONFIGS
    out = args.out.resolve()
    data = (args.data or out / "data").resolve()
    load_before = os.getloadavg()
    drawn = make_data(data, args)
    rows_a, subj_a, comp_a = complete_subjects(data / "a" / "A" / "manifest.csv")
    rows_b, subj_b, comp_b = complete_subjects(data / "b" / args.culture_b / "manifest.csv")
    n_a, n_b = max(1, comp_a - args.spare), max(1, comp_b - args.spare)
    print(f"a: {rows_a} images, {comp_a}/{subj_a} complete subjects, study uses {n_a}; "
          f"b: {rows_b} images, {comp_b}/{subj_b} complete, study uses {n_b}", flush=True)
    results = [run_config(spec, data, out, args, n_a, n_b) for spec in configs]
    levers: dict = {}
    if not args.no_levers:
        first = results[0]
        print("\n== levers", flush=True)
        levers["runtime"] = lever_runtime(Path(first["study_file"]).parent / "run",
                                          args.lever_faces, args.lever_rounds)
        if first["test_variants"] == 50:
            levers["test_variants"] = lever_test_variants(first, out)
        levers["robustness"] = [lever_robustness(c) for c in results]
        print(json.dumps(levers, indent=1))
    print_table(results)
    import facedialect

    result = {
        "command": "python bench/bench_study.py " + " ".join(sys.argv[1:]),
        "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(),
                    "torch": torch.__version__, "facedialect": facedialect.__version__,
                    "threads": args.threads, "load_average_before": load_before,
                    "load_average_after": os.getloadavg()},
        "data": {"a": {"preset": "east-west", "culture": "A", "images": rows_a,
                       "subjects": subj_a, "complete": comp_a, "used": n_a},
                 "b": {"preset": args.preset_b, "culture": args.culture_b, "images": rows_b,
                       "subjects": subj_b, "complete": comp_b, "used": n_b},
                 "renderer": args.renderer, "drawn_s": drawn},
        "timing": "wall seconds per stage from each run's manifest.json (stages), and "
                  "from each stage's start to its summary (stage_wall_s); every "
                  "configuration from an empty cache",
        "configs": results,
        "levers": levers,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
