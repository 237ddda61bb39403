"""The saliency and modification stages: read the run directory, compute, write outputs.

``saliency_stage`` takes every test image of every run (matched testing), finds its 68
landmarks, computes saliency maps through the run's network, and writes
``tables/saliency_regions.csv``, ``tables/saliency_stats.csv``,
``tables/saliency_images.csv``, ``saliency/maps.npz`` and the figures
``figures/saliency_*.png``. ``modification_stage`` converts one neutral face to every
expression with each database's networks (``tables/modification.csv``,
``modify/grid/*.png``, ``figures/modification_grid.png``); ``modify_image_stage`` is the
``facedialect modify`` command. docs/saliency.md describes the method, docs/outputs.md
the files.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from facedialect.classification import default_device, included_faces, load_heads
from facedialect.config import Study
from facedialect.errors import InputError
from facedialect.models.backbones import Backbone
from facedialect.models.weights import load_backbone
from facedialect.saliency.analysis import AlignedMaps, saliency_analysis
from facedialect.saliency.modify import ModifyResult, modify_faces
from facedialect.saliency.stats import region_stats
from facedialect.stages import load_face, preprocess_cache
from facedialect.run.store import RunDir, atomic_write_bytes
from facedialect.training.trainer import MultiRunHead

__all__ = [
    "IMAGE_COLUMNS",
    "MODIFICATION_COLUMNS",
    "load_maps",
    "modification_stage",
    "modify_image_stage",
    "saliency_stage",
]

Progress = Callable[[str, int, int], None]

#: Columns of ``tables/saliency_images.csv``.
IMAGE_COLUMNS = ["db", "image", "subject", "expression", "runs", "landmarks", "reason"]
#: Columns of ``tables/modification.csv``.
MODIFICATION_COLUMNS = ["db", "image", "target", "step", "expression", "probability"]
#: Where the aligned mean maps are stored in the run directory.
MAPS_FILE = Path("saliency") / "maps.npz"


def _trained_tag(run: RunDir) -> str:
    tag = run.read_manifest().get("training", {}).get("backbone")
    if tag is None:
        raise InputError(f"{run.path}: no trained networks; run `facedialect train` first")
    return str(tag)


def _backbone(study: Study, tag: str, device: str) -> Backbone:
    if not tag.startswith(f"{study.model.backbone}|"):
        raise InputError(f"the networks were trained on {tag.split('|')[0]!r} features but "
                         f"the study's [model] backbone is {study.model.backbone!r}; train "
                         f"again or restore the study file")
    backbone = load_backbone(study.model.backbone, study.model.weights,
                             allow_download=study.model.allow_download)
    if device == "cpu":
        from facedialect.models.runtime import tune_malloc

        tune_malloc()  # keeps activation buffers mapped (docs/models.md, "Speed")
        backbone = backbone.to(memory_format=torch.channels_last)
    return backbone.to(device).eval()


Heads = tuple[MultiRunHead, list[int], set[int], list[str]]


def _heads(run: RunDir, dbs: list[str], device: str) -> dict[str, Heads]:
    """Per database: its heads, run ids, failed run ids and unit expressions."""
    out = {}
    for db in dbs:
        path = run.path / "heads" / f"{db}.pt"
        if path.exists():
            head, state = load_heads(path)
            out[db] = (head.to(device), [int(r) for r in state["runs"].tolist()],
                       {int(r) for r in state["failed_runs"].tolist()},
                       list(state["expressions"]))
    if not out:
        raise InputError(f"{run.path / 'heads'}: no trained heads; run `facedialect train` "
                         f"first")
    return out


def select_tests(splits: pd.DataFrame, expressions: list[str], failed: Mapping[str, set[int]],
                 per_class: int | None, seed: int) -> pd.DataFrame:
    """The test images of every run of every database with heads (matched testing).

    Parameters
    ----------
    splits : pandas.DataFrame
        ``tables/splits.csv``.
    expressions : list of str
        Expressions to keep.
    failed : mapping
        Database -> failed run ids (left out); databases not in it are left out.
    per_class : int, optional
        Most images per database, run and expression, drawn with ``seed``.
    seed : int
        Seed of that draw.

    Returns
    -------
    pandas.DataFrame
        Columns ``db, run, image, subject, expression``.
    """
    sp = splits[(splits["part"] == "test") & splits["db"].isin(list(failed))
                & splits["expression"].isin(expressions)].copy()
    sp = sp[[int(r) not in failed[db] for db, r in zip(sp["db"], sp["run"], strict=True)]]
    sp = sp.rename(columns={"path": "image"})
    sp["subject"] = sp["subject"].fillna("").astype(str)
    if per_class is not None:
        rng = np.random.default_rng(seed)
        parts = []
        for _, g in sp.groupby(["db", "run", "expression"], sort=True):
            g = g.sort_values("image")
            parts.append(g.iloc[np.sort(rng.permutation(len(g))[:per_class])]
                         if len(g) > per_class else g)
        sp = pd.concat(parts) if parts else sp.iloc[:0]
    return sp[["db", "run", "image", "subject", "expression"]].reset_index(drop=True)


def _detect(face: np.ndarray, study: Study) -> np.ndarray | None:
    from facedialect.landmarks import detect_landmarks, preprocessed_face_box

    return detect_landmarks(face, box=preprocessed_face_box(study.preprocess))


def save_maps(run: RunDir, maps: AlignedMaps) -> Path:
    """Write the aligned mean maps to ``RUN/saliency/maps.npz`` (atomically)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **maps.to_arrays())
    return atomic_write_bytes(run.path / MAPS_FILE, buf.getvalue())


def load_maps(run: RunDir) -> AlignedMaps | None:
    """The aligned mean maps of a run, or None before the saliency stage."""
    path = run.path / MAPS_FILE
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as z:
        return AlignedMaps.from_arrays({k: z[k] for k in z.files})


def saliency_stage(run: RunDir, study: Study, *,
                   landmarks: Mapping[str, np.ndarray] | None = None,
                   device: str | None = None, progress: Progress | None = None
                   ) -> dict[str, Any]:
    """Saliency maps of every test image, region shares, statistics and figures.

    Parameters
    ----------
    run : RunDir
        A trained run (``heads/``, ``tables/splits.csv``).
    study : Study
        The study; its ``[saliency]`` section says what to compute.
    landmarks : mapping, optional
        Image path -> ``(68, 2)`` landmarks in the pre-processed face's pixels (e.g. the
        exact ones of synthetic faces). Default: dlib's 68 points found in each face
        (:func:`facedialect.landmarks.detect_landmarks`).
    device : str, optional
        ``cpu`` or ``cuda`` (default: a GPU when there is one).
    progress : callable, optional
        ``progress(label, done, total)``.

    Returns
    -------
    dict
        Summary for the CLI: images, image-run pairs, images without landmarks, and the
        region differences with FDR-corrected p < 0.05.

    Raises
    ------
    InputError
        When the run is not trained, or no test image has landmarks.
    """
    cfg = study.saliency
    device = device or default_device()
    tag = _trained_tag(run)
    splits = run.read_table("splits")
    faces_tab = included_faces(run)
    dbs = [d.name for d in study.databases]
    heads = _heads(run, dbs, device)
    tests = select_tests(splits, cfg.expressions, {db: h[2] for db, h in heads.items()},
                         cfg.images_per_class, study.study.seed)
    if tests.empty:
        raise InputError("no test images for saliency: check [saliency] expressions and "
                         "tables/splits.csv")
    keys = dict(zip(faces_tab["path"], faces_tab["cache_key"], strict=True))
    pcache = preprocess_cache(study.study.cache_dir)
    with run.stage("saliency", methods=list(cfg.methods), score=cfg.score) as info:
        images = list(dict.fromkeys(tests["image"]))
        faces: dict[str, np.ndarray] = {}
        marks: dict[str, np.ndarray] = {}
        reasons: dict[str, str] = {}
        for i, img in enumerate(images, 1):
            if img not in keys:
                reasons[img] = "no pre-processed face (run `facedialect preprocess`)"
                continue
            faces[img] = load_face(keys[img], pcache)
            lm = (landmarks.get(img) if landmarks is not None
                  else _detect(faces[img], study))
            if lm is None:
                reasons[img] = "no landmarks found in the pre-processed face"
            else:
                marks[img] = np.asarray(lm, dtype=np.float64)
            if progress:
                progress("saliency: landmarks", i, len(images))
        listing = (tests.groupby(["db", "image"], sort=False)
                   .agg(subject=("subject", "first"), expression=("expression", "first"),
                        runs=("run", "size")).reset_index())
        listing["landmarks"] = listing["image"].isin(list(marks))
        listing["reason"] = [reasons.get(i, "") for i in listing["image"]]
        run.write_table("saliency_images", listing[IMAGE_COLUMNS])
        usable = tests[tests["image"].isin(list(marks))]
        if usable.empty:
            raise InputError("no test image has landmarks; see tables/saliency_images.csv")
        backbone = _backbone(study, tag, device)
        result = saliency_analysis(
            backbone, {db: (h[0], h[1]) for db, h in heads.items()}, usable, faces, marks,
            units={db: h[3] for db, h in heads.items()},
            methods=cfg.methods, score=cfg.score, batch_size=cfg.batch_size, device=device,
            progress=(lambda d, t: progress("saliency: maps", d, t)) if progress else None)
        stats = region_stats(result.regions, n_resamples=cfg.resamples,
                             seed=study.study.seed)
        run.write_table("saliency_regions", result.regions)
        run.write_table("saliency_stats", stats)
        save_maps(run, result.maps)
        info.update(images=len(images), pairs=len(usable),
                    without_landmarks=len(images) - len(marks))
    draw_saliency_figures(run)
    sig = stats[stats["p_fdr"] < 0.05]
    return {"images": len(images), "pairs": int(len(usable)),
            "without_landmarks": len(images) - len(marks),
            "significant": [f"{r.method} {r.expression} {r.region}: {r.db_a}-{r.db_b} "
                            f"{r.diff:+.3f} (p_fdr {r.p_fdr:.3g})" for r in sig.itertuples()]}


def draw_saliency_figures(run: RunDir) -> list[str]:
    """Draw ``figures/saliency_*.png`` from ``saliency/maps.npz`` and the region tables."""
    from facedialect.report.figures import safe_name
    from facedialect.saliency.figures import (
        difference_figure,
        region_shares_figure,
        saliency_grid_figure,
    )

    names = []
    maps = load_maps(run)
    if maps is not None:
        for method in maps.methods:
            run.write_figure(f"saliency_grid_{method}", saliency_grid_figure(maps, method))
            names.append(f"saliency_grid_{method}")
            for i, a in enumerate(maps.dbs):
                for b in maps.dbs[i + 1:]:
                    name = safe_name(f"saliency_difference_{method}_{a}_vs_{b}")
                    run.write_figure(name, difference_figure(maps, method, a, b))
                    names.append(name)
    if run.has_table("saliency_regions"):
        regions = run.read_table("saliency_regions")
        for method in dict.fromkeys(regions["method"]):
            run.write_figure(f"saliency_regions_{method}",
                             region_shares_figure(regions, str(method)))
            names.append(f"saliency_regions_{method}")
    return names


# ----------------------------------------------------------------------------- modification
def _preprocessed(path: Path, study: Study) -> np.ndarray:
    from facedialect.imageio import read_gray
    from facedialect.preprocess.pipeline import preprocess_face

    res = preprocess_face(read_gray(path), study.preprocess)
    if res.image is None:
        raise InputError(f"{path}: {res.reason}; give a photo with one frontal face")
    return res.image


def _mask(study: Study) -> np.ndarray:
    from facedialect.preprocess.normalize import oval_mask

    return oval_mask(study.preprocess.size, study.preprocess)


def _live_runs(head: Heads) -> list[int]:
    _, runs, failed, _ = head
    live = [i for i, r in enumerate(runs) if r not in failed]
    if not live:
        raise InputError("every run of this database failed; nothing to modify with")
    return live


def _png(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), mode="L").save(
        buf, format="PNG")
    return buf.getvalue()


def _modification_rows(db: str, image: str, targets: list[str], units: list[str],
                       res: ModifyResult) -> pd.DataFrame:
    steps, n, k = res.probabilities.shape
    return pd.DataFrame({
        "db": db, "image": image,
        "target": np.repeat(np.tile(targets, steps), k),
        "step": np.repeat(np.arange(steps), n * k),
        "expression": np.tile(units, steps * n),
        "probability": res.probabilities.ravel()})


def _grid_face(run: RunDir, study: Study) -> tuple[str, np.ndarray]:
    if study.saliency.modify_image is not None:
        p = Path(study.saliency.modify_image)
        return str(p), _preprocessed(p, study)
    splits = run.read_table("splits")
    first = study.databases[0].name
    sp = splits[(splits["db"] == first) & (splits["part"] == "test")
                & (splits["expression"] == "neutral")].sort_values(["run", "subject", "path"])
    if sp.empty:
        raise InputError(f"database {first!r} has no neutral test image; set [saliency] "
                         f"modify_image to a face photo")
    path = str(sp["path"].iloc[0])
    faces = included_faces(run)
    key = faces.loc[faces["path"] == path, "cache_key"].iloc[0]
    return path, load_face(key, preprocess_cache(study.study.cache_dir))


def modification_stage(run: RunDir, study: Study, *, device: str | None = None
                       ) -> dict[str, Any]:
    """Convert one neutral face to every expression with each database's networks.

    Writes ``tables/modification.csv``, ``modify/grid/original.png``,
    ``modify/grid/{db}_{target}.png`` (the last step) and
    ``figures/modification_grid.png``.

    Returns
    -------
    dict
        The face used and, per database and target, the target probability before and
        after.
    """
    cfg = study.saliency
    device = device or default_device()
    tag = _trained_tag(run)
    heads = _heads(run, [d.name for d in study.databases], device)
    image, face = _grid_face(run, study)
    backbone = _backbone(study, tag, device)
    rows = []
    out: dict[str, Any] = {"image": image, "target_probability": {}}
    grid = run.path / "modify" / "grid"
    with run.stage("modification", steps=cfg.modify_steps, step_size=cfg.modify_step_size,
                   tv_weight=cfg.modify_tv_weight) as info:
        atomic_write_bytes(grid / "original.png", _png(face))
        for db, h in heads.items():
            units = h[3]
            res = modify_faces(backbone, h[0], np.stack([face] * len(units)),
                               np.arange(len(units)), _live_runs(h),
                               steps=cfg.modify_steps, step_size=cfg.modify_step_size,
                               tv_weight=cfg.modify_tv_weight, mask=_mask(study),
                               device=device)
            rows.append(_modification_rows(db, image, units, units, res))
            for t, expr in enumerate(units):
                atomic_write_bytes(grid / f"{db}_{expr}.png", _png(res.images[-1, t]))
                out["target_probability"][f"{db} {expr}"] = (
                    round(float(res.probabilities[0, t, t]), 3),
                    round(float(res.probabilities[-1, t, t]), 3))
        table = pd.concat(rows, ignore_index=True)[MODIFICATION_COLUMNS]
        run.write_table("modification", table)
        info.update(databases=len(heads))
    from facedialect.saliency.figures import modification_grid_figure

    run.write_figure("modification_grid", modification_grid_figure(table, grid))
    return out


def modify_image_stage(run: RunDir, study: Study, image: Path, target: str, *,
                       db: str | None = None, steps: int = 40, step_size: float = 2.0,
                       tv_weight: float = 20.0, device: str | None = None
                       ) -> dict[str, Any]:
    """Raise ``target`` in one photo with one (or every) database's networks.

    For each database writes ``RUN/modify/{image stem}_{target}_{db}/``: ``step_NNN.png``
    (every step, 000 = the pre-processed input), ``strip.png`` and ``probabilities.csv``
    (columns of :data:`MODIFICATION_COLUMNS`).

    Raises
    ------
    InputError
        On an unknown target or database, or a photo without a face.
    """
    if target not in study.study.expressions:
        raise InputError(f"unknown target expression {target!r}; use one of the study's "
                         f"expressions: {', '.join(study.study.expressions)}")
    device = device or default_device()
    tag = _trained_tag(run)
    names = [d.name for d in study.databases]
    if db is not None and db not in names:
        raise InputError(f"unknown database {db!r}; this study has {', '.join(names)}")
    heads = _heads(run, [db] if db else names, device)
    lacking = [name for name, h in heads.items() if target not in h[3]]
    if db is not None and lacking:
        raise InputError(f"database {db!r}'s networks have no {target} unit (its "
                         f"expressions: {', '.join(heads[db][3])})")
    heads = {name: h for name, h in heads.items() if name not in lacking}
    if not heads:
        raise InputError(f"no database's networks have a {target} unit")
    if not Path(image).is_file():
        raise InputError(f"{image}: no such image file")
    face = _preprocessed(Path(image), study)
    backbone = _backbone(study, tag, device)
    from facedialect.report.figures import safe_name
    from facedialect.saliency.figures import modification_strip

    out: dict[str, Any] = {}
    for name, h in heads.items():
        t = h[3].index(target)
        res = modify_faces(backbone, h[0], face[None], [t], _live_runs(h), steps=steps,
                           step_size=step_size, tv_weight=tv_weight, mask=_mask(study),
                           device=device)
        folder = run.path / "modify" / safe_name(f"{Path(image).stem}_{target}_{name}")
        for s in range(len(res.images)):
            atomic_write_bytes(folder / f"step_{s:03d}.png", _png(res.images[s, 0]))
        table = _modification_rows(name, str(image), [target], h[3], res)
        atomic_write_bytes(folder / "probabilities.csv",
                           table.to_csv(index=False, lineterminator="\n").encode())
        atomic_write_bytes(folder / "strip.png",
                           modification_strip(res.images[:, 0], table, target, name))
        out[name] = {"folder": str(folder),
                     "before": round(float(res.probabilities[0, 0, t]), 3),
                     "after": round(float(res.probabilities[-1, 0, t]), 3)}
    return out
