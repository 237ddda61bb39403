"""Time the AU stimulus set (20 AUs x 11 levels at 256 px) on photo-textured 3D faces.

Usage::

    OPENBLAS_NUM_THREADS=1 python bench/bench_stimuli.py [--photo FILE] [--size 256]
        [--levels 11] [--out bench/results/stimuli.json]

The set is the null image plus every study AU at levels 1..N-1 (201 images for 11
levels), rendered as ``facedialect stimuli`` does. Modes, timed in the same run:

* ``reference-3d``: the plain 3D renderer (``render_face_3d``, ``--base-face 3d``), one
  process: the reference the photo modes are compared with.
* ``photo-setup``: making the photo face (landmarks, fit, texture; the dlib models and
  the 3D model already loaded).
* ``photo``: the photo-textured face (``--base-face PHOTO``), one process, the face made
  beforehand (:func:`facedialect.faces.stimuli.render_stimuli`).
* ``photo-threads``: the same through ``render_stimuli(..., workers=2)``.
* ``photo-processes-2``: two worker processes (spawned), each making the photo face
  itself (start-up, model loading and setup included), half of the stimuli each.

Default photo: ../shared/datasets/london-frl/composite/f_white.jpg.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from _common import cpu_model  # noqa: E402

DEFAULT_PHOTO = ROOT.parent / "shared" / "datasets" / "london-frl" / "composite" / "f_white.jpg"


def _jobs(levels: int) -> list[dict[int, float]]:
    from facedialect.faces.stimuli import stimulus_table

    table = stimulus_table(levels=levels)
    return [{} if r.au == 0 else {int(r.au): float(r.intensity)}
            for r in table.itertuples(index=False)]


def _worker(args: tuple[str, int, list[dict[int, float]]]) -> int:
    import cv2

    from facedialect.faces.stimuli import renderer_for

    cv2.setNumThreads(1)
    photo, size, jobs = args
    r = renderer_for(photo, size)
    return sum(int(r(a)[0, 0]) for a in jobs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photo", type=Path, default=DEFAULT_PHOTO)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--levels", type=int, default=11)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "stimuli.json")
    a = ap.parse_args()
    if not a.photo.is_file():
        sys.exit(f"{a.photo} not found: pass --photo (a frontal face photo)")
    import cv2

    from facedialect.faces.model3d.fit import load_photo
    from facedialect.faces.model3d.photo import PhotoFace
    from facedialect.faces.model3d.render import render_face_3d
    from facedialect.faces.procedural.identity import FaceIdentity
    from facedialect.faces.stimuli import render_stimuli, stimulus_table
    from facedialect.landmarks import detect_landmarks

    jobs = _jobs(a.levels)
    table = stimulus_table(levels=a.levels)
    photo = load_photo(a.photo)
    detect_landmarks(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY))      # load dlib's models
    ident = FaceIdentity.default()
    render_face_3d(ident, {}, a.size)                              # load the 3D model
    res: dict[str, float] = {}

    t = time.perf_counter()
    for j in jobs:
        render_face_3d(ident, j, a.size)
    res["reference-3d"] = time.perf_counter() - t

    t = time.perf_counter()
    face = PhotoFace(photo)
    face.render({}, a.size)
    res["photo-setup"] = time.perf_counter() - t

    def r(aus: dict[int, float]):
        return face.render(aus, a.size)

    t = time.perf_counter()
    render_stimuli(table, r)
    res["photo"] = time.perf_counter() - t

    t = time.perf_counter()
    render_stimuli(table, r, workers=2)
    res["photo-threads"] = time.perf_counter() - t

    halves = [jobs[0::2], jobs[1::2]]
    t = time.perf_counter()
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as ex:
        list(ex.map(_worker, [(str(a.photo), a.size, h) for h in halves]))
    res["photo-processes-2"] = time.perf_counter() - t

    n = len(jobs)
    out = {
        "what": f"{n} stimuli ({a.levels} levels) at {a.size} px",
        "photo": str(a.photo.name),
        "seconds": {k: round(v, 2) for k, v in res.items()},
        "ms_per_image": {k: round(1000 * v / n, 1) for k, v in res.items()
                         if k != "photo-setup"},
        "ratio_to_reference": {k: round(v / res["reference-3d"], 2) for k, v in res.items()
                               if k != "photo-setup"},
        "cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
        "load_average": os.getloadavg(),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
