"""How recognisable are faces? The expression judge's correct rate per expression.

The judge is fer's TFLite classifier (facedialect.faces.judge), independent of facedialect's
networks. Sources:

    python bench/realism.py --london                      # real photos, ../shared
    python bench/realism.py --manifest faces/manifest.csv # any images with path, expression
    python bench/realism.py --synth east-west --culture A --renderer builtin --subjects 20
    python bench/realism.py --synth east-west --culture A --renderer 3d --subjects 20 \
        --textures ../shared/datasets/london-frl/neutral    # photo-textured

Prints the correct rate per expression and the confusion matrix, and writes them to
bench/results/realism.json (one entry per source; reruns replace their own entry).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from facedialect.faces.judge import (  # noqa: E402
    ExpressionJudge,
    judged_accuracy,
    judged_confusion,
)

LONDON = ROOT.parent / "shared" / "datasets" / "london-frl"
RESULTS = ROOT / "bench" / "results" / "realism.json"


def london_images() -> pd.DataFrame:
    """The London set's neutral and smiling photos of the same 102 people."""
    rows = [{"path": str(p), "expression": e}
            for e, folder in (("neutral", "neutral"), ("happy", "smiling"))
            for p in sorted((LONDON / folder).glob("*.jpg"))]
    return pd.DataFrame(rows)


def manifest_images(path: Path) -> pd.DataFrame:
    """Images of a manifest CSV (``path, expression``; relative paths from its folder)."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table["path"] = [str(p if Path(p).is_absolute() else path.parent / p)
                     for p in table["path"]]
    return table[table["expression"] != ""][["path", "expression"]]


def synth_images(preset: str, culture: str, renderer: str, subjects: int,
                 textures: Path | None, out: Path) -> pd.DataFrame:
    """Make one synthetic culture (as `facedialect synth`) and list its images."""
    from facedialect.synthetic.databases3d import synthesize

    done = synthesize(out, preset, renderer=renderer, n_posers=subjects, seed=0,
                      textures=textures, workers=0)
    if culture not in done:
        raise SystemExit(f"preset {preset!r} has no culture {culture!r}: {sorted(done)}")
    return manifest_images(done[culture] / "manifest.csv")


def main() -> None:
    """Judge one source of faces and record the result."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--london", action="store_true", help="the London photos in ../shared")
    src.add_argument("--manifest", type=Path, help="a CSV with path and expression columns")
    src.add_argument("--synth", metavar="PRESET", help="a synthetic preset (east-west, ...)")
    ap.add_argument("--culture", default="A", help="the culture of --synth")
    ap.add_argument("--renderer", default="3d", choices=["3d", "builtin"])
    ap.add_argument("--subjects", type=int, default=20, help="posers of --synth")
    ap.add_argument("--textures", type=Path, help="photos for photo-textured --synth faces")
    ap.add_argument("--name", help="the entry's name in realism.json (default: from the source)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        if args.london:
            images, name = london_images(), "real London photos (neutral, smiling)"
        elif args.manifest:
            images, name = manifest_images(args.manifest), str(args.manifest)
        else:
            images = synth_images(args.synth, args.culture, args.renderer, args.subjects,
                                  args.textures, Path(tmp))
            kind = "photo-textured" if args.textures else args.renderer
            name = (f"synthetic {args.synth} culture {args.culture}, {kind}, "
                    f"{args.subjects} posers")
        name = args.name or name
        t0 = time.perf_counter()
        judged = ExpressionJudge().judge(images)
        seconds = time.perf_counter() - t0
    acc = judged_accuracy(judged)
    conf = judged_confusion(judged)
    print(f"{name}: {len(images)} images judged in {seconds:.1f} s")
    print(acc.round(3).to_string(index=False))
    print(conf.round(2).to_string())
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[name] = {
        "images": len(images), "seconds": round(seconds, 2),
        "correct_rate": {r.expression: None if pd.isna(r.correct_rate)
                         else round(float(r.correct_rate), 3) for r in acc.itertuples()},
        "confusion": {e: {k: round(float(v), 3) for k, v in row.items()}
                      for e, row in conf.iterrows()},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
