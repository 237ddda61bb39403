"""The offline demo: two synthetic cultures drawn with the built-in face, and their study file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

DEMO_STUDY = """\
# facedialect demo: two synthetic cultures drawn with the built-in face.
# "west" uses the classic AU prototypes, "east" changes fearful, angry, sad and disgusted
# (docs/method.md §10). Run it again with `facedialect run {study}`.

[study]
name = "facedialect demo: synthetic east-west cultures"
output = "run"
seed = {seed}
cache_dir = "cache"

[model]
backbone = "mobilenet_v2"   # ImageNet weights ship offline in a package (RESOURCES.md)

[training]
protocol = "quick"

[tuning]
base_face = "builtin"       # the procedural face (or "average", "3d", a photo path)
robustness = true           # also train on all posers and correlate the profiles

[saliency]
enable = true               # where the networks look, per face region; a neutral test
                            # face changed toward each expression (a smooth change that
                            # holds over the augmentations, judged by held-out runs)

[[databases]]
name = "west"
preset = "manifest"         # data/west/manifest.csv lists the images (truth.csv: their AUs)
root = "data/west"
n_subjects = {subjects}
culture = "A (classic prototypes)"

[[databases]]
name = "east"
preset = "manifest"
root = "data/east"
n_subjects = {subjects}
culture = "B (changed fearful, angry, sad, disgusted)"
"""


def write_demo(out: str | Path, *, posers: int = 14, seed: int = 0,
               say: Callable[[str], None] | None = None) -> Path:
    """Make two synthetic cultures with the built-in face and write the demo's study file.

    Parameters
    ----------
    out : path
        Folder for the generated data (``data/``), the study file and the run (``run/``).
    posers : int
        Posers per culture; the study uses the first ``posers - 2`` and the robustness
        check trains again on all of them.
    seed : int
        Seed of the synthetic data and the study.
    say : callable, optional
        Called with a line of text for each culture made.

    Returns
    -------
    Path
        The study file (``OUT/study.toml``); run it with ``facedialect run``.
    """
    from facedialect.synthetic.cultures import EastWestPreset, write_synthetic_database

    out = Path(out).resolve()
    preset = EastWestPreset(n_posers=posers, seed=seed)
    for culture, folder in (("A", "west"), ("B", "east")):
        target = out / "data" / folder
        if not (target / "truth.csv").exists():
            if say:
                say(f"synthetic culture {culture}: {posers} posers x 7 expressions -> {target}")
            write_synthetic_database(target, culture, preset)
    study_path = out / "study.toml"
    study_path.write_text(DEMO_STUDY.format(seed=seed, subjects=max(3, posers - 2),
                                            study=study_path), encoding="utf-8")
    return study_path
