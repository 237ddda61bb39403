"""A fast proxy of the planted-AU check of tests/test_validation.py (docs/validation.md).

Run:  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/planted_au_proxy.py
      ... --recipes old          (the AU15/17/23/24 recipes before the look-alike fix)
      ... --posers 30 --runs 8 --seed 1

Draws both cultures of the ``east-west`` preset in memory with the 3-D face model
(:func:`facedialect.synthetic.databases3d.render_synth_3d`: random identities, skin, light and head
pose as ``facedialect synth``), pre-processes them like training images, extracts
plain-variant MobileNetV2 (ImageNet) features, trains each culture's heads with the quick
protocol of session 2 on the plain variant only (``PROXY_PROTOCOL``: 240 iterations, 4096
hidden units, learning rate 1e-3 then 1e-4 at 160; the numbers in
bench/results/planted_au_proxy.json were measured with it), renders the
AU stimuli on the model's mean face (``base_face = "3d"``: the null image and every study
AU at intensity 1, the only level the check reads), takes every unit's response minus
the null image's and applies :func:`facedialect.stats.validation.planted_au_check`
to the 5 planted AUs. A diagnostic repeats the check with every stimulus cropped with
the null image's face box (the study crops each stimulus where the Haar detector finds
it, and the box moves by a few pixels with the AU), so one can see whether a response
comes from the crop. Prints the tables and writes ``bench/results/planted_au_proxy.json``
(one entry per recipe set and seed, merged with what the file already holds).

It differs from the real check in size (20 posers, not 30), in training on the plain
variant (the quick protocol trains on 10 variants) and in the stimulus levels (1.0
only): a proxy to compare recipes, not the validation's numbers. About 6-7 minutes on
one core of the shared 2-core development machine (most of it training the quick
4096-unit heads).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from facedialect.faces.model3d import recipes  # noqa: E402
from facedialect.faces.stimuli import renderer_for  # noqa: E402
from facedialect.models.weights import load_backbone  # noqa: E402
from facedialect.preprocess.params import PreprocessParams  # noqa: E402
from facedialect.preprocess.pipeline import (  # noqa: E402
    crop_face,
    normalize_face,
    preprocess_face,
)
from facedialect.stats.tuning import tuning_responses  # noqa: E402
from facedialect.stats.validation import planted_au_check  # noqa: E402
from facedialect.synthetic.cultures import culture_seed, sample_poser_expressions  # noqa: E402
from facedialect.synthetic.databases3d import (  # noqa: E402
    add_3d_scenes,
    load_preset,
    render_synth_3d,
)
from facedialect.synthetic.saliency import train_cultures  # noqa: E402
from facedialect.training.protocol import QUICK  # noqa: E402
from facedialect.vocab import STUDY_AUS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: (unit, AU, culture that uses it, culture that does not), as tests/test_validation.py.
PLANTED = [("angry", 24, "B", "A"), ("angry", 23, "A", "B"), ("fearful", 20, "A", "B"),
           ("sad", 17, "B", "A"), ("sad", 15, "A", "B")]
#: The protocol the proxy's recorded numbers were measured with (the quick protocol of
#: session 2, plain variant only).
PROXY_PROTOCOL = replace(QUICK, variants=1, iterations=240, hidden=4096,
                         lr_schedule=((0, 1e-3), (160, 1e-4)))
#: The recipes before the look-alike fix (docs/faces-3d.md), for ``--recipes old``.
OLD_RECIPES: dict[int, dict[str, float]] = {
    15: {"mouthFrown_L": 1.6, "mouthFrown_R": 1.6},
    17: {"mouthShrugLower": 1.0},
    23: {"mouthRollUpper": 0.55, "mouthRollLower": 0.55, "mouthPucker": 0.25},
    24: {"mouthPress_L": 1.3, "mouthPress_R": 1.3, "mouthShrugLower": 0.35},
}


def use_recipes(which: str) -> None:
    """Replace the catalogue's AU15/17/23/24 recipes by the old ones (``which='old'``)."""
    if which == "current":
        return
    for n, recipe in OLD_RECIPES.items():
        e = recipes.AU_CATALOGUE[n]
        recipes.AU_CATALOGUE[n] = recipes.AUEntry(n, e.name, recipe, "old recipe")


def draw_cultures(posers: int, seed: int, params: PreprocessParams
                  ) -> tuple[pd.DataFrame, list[np.ndarray], int]:
    """Render and pre-process both cultures: the image table, faces and images lost.

    A poser with an image lost to face detection is left out.
    """
    preset = load_preset("east-west", n_posers=posers, seed=seed)
    rows, faces, lost = [], [], 0
    for culture in preset.cultures:
        rng = np.random.default_rng(culture_seed(preset.seed, culture))
        for poser in add_3d_scenes(sample_poser_expressions(culture, preset, rng), preset,
                                   culture):
            found = [preprocess_face(render_synth_3d(im.identity, im.aus, size=preset.size,
                                                     **im.scene), params).image
                     for im in poser.images]
            if any(f is None for f in found):
                # a poser with an image lost to face detection is left out whole, so every
                # run's training set has the same size (the study drops the image only)
                lost += sum(f is None for f in found)
                continue
            faces += found
            rows += [{"db": culture, "subject": poser.subject, "expression": im.expression}
                     for im in poser.images]
    return pd.DataFrame(rows), faces, lost


def features(backbone, faces: list[np.ndarray]) -> torch.Tensor:
    with torch.inference_mode():
        x = backbone.to_input(np.stack(faces))
        return torch.cat([backbone(x[i:i + 32]) for i in range(0, len(x), 32)]).float()


def proxy(posers: int = 20, runs: int = 6, seed: int = 0) -> dict:
    """Train both cultures and check the planted AUs; returns the results as a dict."""
    params = PreprocessParams()
    backbone = load_backbone("mobilenet_v2", "imagenet")
    t0 = time.perf_counter()
    images, faces, lost = draw_cultures(posers, seed, params)
    t_draw = time.perf_counter() - t0
    feats = features(backbone, faces)
    heads, _ = train_cultures(images, feats, replace(PROXY_PROTOCOL, runs=runs))
    t_train = time.perf_counter() - t0 - t_draw
    # stimuli: the null image and every study AU at intensity 1 (the level the check reads)
    render = renderer_for("3d")
    table = pd.DataFrame([{"au": 0, "level": 0, "intensity": 0.0}]
                         + [{"au": a, "level": 10, "intensity": 1.0} for a in STUDY_AUS])
    grays = [render({} if r.au == 0 else {int(r.au): 1.0}) for r in table.itertuples()]
    found = [preprocess_face(g, params) for g in grays]
    for r, res in zip(table.itertuples(), found, strict=True):
        if res.image is None:
            raise RuntimeError(f"stimulus AU{r.au}: {res.reason}")
    null_box = found[0].box
    stimuli = {
        # as the study: each stimulus cropped where the Haar detector finds its face
        "detected": [res.image for res in found],
        # diagnostic: every stimulus cropped with the null image's box, so that a
        # response cannot come from the detector's box moving with the AU
        "null_box": [normalize_face(crop_face(g, null_box, params)[0], params)
                     for g in grays],
    }
    checks = {}
    for crop, stim in stimuli.items():
        sfeats = features(backbone, stim)
        resp = []
        for db, (head, keep) in heads.items():
            with torch.no_grad():
                logits = np.stack([head.forward_run(i, sfeats).numpy() for i in keep])
            resp.append(tuning_responses(logits, table, db=db, runs=keep))
        responses = pd.concat(resp, ignore_index=True)
        checks[crop] = [{k: (round(v, 4) if isinstance(v, float) else v)
                         for k, v in planted_au_check(responses, unit=u, au=a, present=p,
                                                      absent=n).items()}
                        for u, a, p, n in PLANTED]
    return {"posers": posers, "runs": runs, "seed": seed, "images_lost": lost,
            "stimulus_boxes": {int(r.au): int(res.box[2]) for r, res in
                               zip(table.itertuples(), found, strict=True)},
            "seconds": {"draw": round(t_draw, 1), "train": round(t_train, 1),
                        "total": round(time.perf_counter() - t0, 1)},
            "checks": checks["detected"], "checks_null_box": checks["null_box"]}


def print_table(checks: list[dict]) -> None:
    print(f"{'planted AU, unit':24} {'used: mean ± SD (share)':26} pos "
          f"{'not used: mean ± SD (share)':28} pos {'t':>6} {'p':>7}  passed")
    for c in checks:
        name = f"AU{c['au']} {c['unit']} ({c['present']} not {c['absent']})"
        used = f"{c['mean_present']:.2f} ± {c['sd_present']:.2f} ({c['share_present']:.2f})"
        notu = f"{c['mean_absent']:.2f} ± {c['sd_absent']:.2f} ({c['share_absent']:.2f})"
        print(f"{name:24} {used:26} {'yes' if c['positive_present'] else 'no':3} "
              f"{notu:28} {'yes' if c['positive_absent'] else 'no':3} {c['t']:6.1f} "
              f"{c['p']:7.4f}  {'PASS' if c['passed'] else 'fail'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", choices=("current", "old"), default="current")
    ap.add_argument("--posers", type=int, default=20)
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" /
                    "planted_au_proxy.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    use_recipes(args.recipes)
    result = proxy(args.posers, args.runs, args.seed)
    result["recipes"] = {str(n): recipes.AU_CATALOGUE[n].recipe for n in OLD_RECIPES}
    print(f"recipes: {args.recipes}; {args.posers} posers per culture, {args.runs} runs, "
          f"seed {args.seed}; {result['images_lost']} images lost to face detection (their "
          f"posers left out); "
          f"{result['seconds']['total']:.0f} s")
    print("stimuli cropped where the detector finds the face (as the study):")
    print_table(result["checks"])
    print("diagnostic: every stimulus cropped with the null image's box:")
    print_table(result["checks_null_box"])
    data = json.loads(args.out.read_text()) if args.out.is_file() else {}
    data.setdefault("machine", {"cpu": platform.processor() or platform.machine(),
                                "threads": torch.get_num_threads()})
    data.setdefault("results", {})[f"{args.recipes} seed {args.seed} posers "
                                   f"{args.posers} runs {args.runs}"] = result
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    main()
