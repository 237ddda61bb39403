"""Saliency: where the networks look, per face region, and faces pushed toward an expression.

:func:`saliency_maps` takes every test image of every run (matched testing), finds its 68
landmarks, computes saliency maps through the run's network, and writes
``tables/saliency_regions.csv``, ``tables/saliency_stats.csv``,
``tables/saliency_images.csv``, ``saliency/maps.npz`` and the figures
``figures/saliency_*.png``. :func:`modification_grid` converts one neutral face to every
expression with each database's networks (``tables/modification.csv``,
``modify/grid/*.png``, ``figures/modification_grid.png``); :func:`modify_image` is the
``facedialect modify`` command. docs/saliency.md describes the method, docs/outputs.md
the files.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from facedialect.compute import get_engine
from facedialect.config import Study
from facedialect.errors import InputError
from facedialect.files import atomic_write_bytes
from facedialect.models.backbones import Backbone
from facedialect.models.weights import load_backbone
from facedialect.plots.figures import safe_name
from facedialect.progress import ProgressFn
from facedialect.report.html import Figure, Section, Table, Text
from facedialect.run.caches import load_face, preprocess_cache
from facedialect.run.heads import trained_backbone
from facedialect.run.store import RunDir
from facedialect.run.tables import included_faces
from facedialect.saliency.figures import (
    difference_figure,
    modification_grid_figure,
    modification_strip,
    region_shares_figure,
    saliency_grid_figure,
)
from facedialect.saliency.gradients import gray_to_input, head_logits
from facedialect.saliency.maps import (
    AlignedMaps,
    DatabaseSaliency,
    MeanGeometry,
    check_tests,
    combine_saliency,
    database_saliency,
    mean_geometry,
)
from facedialect.saliency.modify import ModifyResult, modify_faces, modify_faces_visible
from facedialect.saliency.stats import region_stats
from facedialect.stages.base import (
    Context,
    Stage,
    Summary,
    TrainedHeads,
    draw,
    failed_runs,
    trained_heads,
)

#: Columns of ``tables/saliency_images.csv``.
IMAGE_COLUMNS = ["db", "image", "subject", "expression", "runs", "landmarks", "reason"]
#: Columns of ``tables/modification.csv``.
MODIFICATION_COLUMNS = ["db", "image", "target", "step", "expression", "probability"]
#: Columns of ``tables/modification_transfer.csv``.
TRANSFER_COLUMNS = ["db", "image", "target", "method", "runs_optimised", "runs_held_out",
                    "optimised_before", "optimised_after", "held_out_before",
                    "held_out_after", "other_dbs_before", "other_dbs_after",
                    "mean_abs_change", "max_abs_change"]
#: Where the aligned mean maps are stored in the run directory.
MAPS_FILE = Path("saliency") / "maps.npz"


def _backbone(study: Study, device: str) -> Backbone:
    backbone = load_backbone(study.model.backbone, study.model.weights,
                             allow_download=study.model.allow_download)
    if device == "cpu":
        from facedialect.models.runtime import tune_malloc

        tune_malloc()  # keeps activation buffers mapped (docs/models.md, "Speed")
        backbone = backbone.to(memory_format=torch.channels_last)
    return backbone.to(device).eval()


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


def run(run: RunDir, study: Study, ctx: Context) -> Summary:
    """Saliency maps of every test image; the modification grid when ``[saliency] modify``."""
    res = saliency_maps(run, study, device=ctx.resolved_device(), progress=ctx.progress)
    lines = [f"{', '.join(study.saliency.methods)}: {res['images']} test images "
             f"({res['pairs']} image-run pairs), {res['without_landmarks']} without "
             f"landmarks; {len(res['significant'])} region difference(s) with FDR p < 0.05",
             *(f"  {line}" for line in res["significant"])]
    if ctx.options.get("modify", study.saliency.modify):
        mod = modification_grid(run, study, device=ctx.resolved_device(),
                                progress=ctx.progress)
        lines.append(f"modification grid from {mod['image']}")
        res["modification"] = mod
    return Summary("saliency", lines, res)


def saliency_maps(run: RunDir, study: Study, *,
                  landmarks: Mapping[str, np.ndarray] | None = None,
                  device: str = "cpu", progress: ProgressFn | None = None
                  ) -> dict[str, Any]:
    """Saliency maps of every test image, region shares, statistics and figures.

    The landmarks and the mean face shape every map is warped to are found here; each
    database's maps are one work unit of the study's engine (:func:`saliency_database`:
    a Ray task with ``[compute] engine = "ray"``); the tables and figures are written
    here.

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
    device : str
        Where to compute.
    progress : ProgressFn, optional
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
    trained_backbone(run, study.model.backbone)
    engine = get_engine(study.compute)
    work_device = device if engine.name == "local" else engine.device(device, device)
    splits = run.read_table("splits")
    faces_tab = included_faces(run)
    dbs = [d.name for d in study.databases]
    local = engine.name == "local"
    # a Ray worker reads its database's heads file itself: the driver only needs the
    # failed runs (read without the weights: the paper protocol's are ~9 GB per database)
    heads = trained_heads(run, dbs, device=device) if local else {}
    failed = ({db: set(h.failed) for db, h in heads.items()} if local
              else {db: set(f) for db, f in failed_runs(run, dbs).items()})
    tests = select_tests(splits, cfg.expressions, failed, cfg.images_per_class,
                         study.study.seed)
    if tests.empty:
        raise InputError("no test images for saliency: check [saliency] expressions and "
                         "tables/splits.csv")
    keys = dict(zip(faces_tab["path"], faces_tab["cache_key"], strict=True))
    pcache = preprocess_cache(study.study.cache_dir)
    with run.stage("saliency", methods=list(cfg.methods), score=cfg.score,
                   engine=engine.name) as info:
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
        # the mean face shape all maps are warped to is made here, once; each database's
        # maps are one work unit (a Ray task with [compute] engine = "ray": the worker
        # reads the heads file itself and loads its own backbone)
        geometry = mean_geometry(check_tests(usable, cfg.methods), faces, marks)
        backbone = _backbone(study, device) if local else None
        owners = list(dict.fromkeys(usable["db"]))
        total = len(usable) * len(cfg.methods)

        def jobs() -> Iterator[dict[str, Any]]:
            done = 0
            for db in owners:
                part = usable[usable["db"] == db]
                shown = list(dict.fromkeys(part["image"]))
                tick = ((lambda d, t, _o=done: progress("saliency: maps", _o + d, total))
                        if progress and local else None)
                done += len(part) * len(cfg.methods)
                yield {"heads": heads[db] if local else (run.path, db), "tests": part,
                       "faces": {i: faces[i] for i in shown},
                       "landmarks": {i: marks[i] for i in shown}, "geometry": geometry,
                       "study": study, "device": work_device, "backbone": backbone,
                       "progress": tick}

        parts = list(engine.map(saliency_database, jobs(), device=work_device, progress=(
            (lambda d, t: progress("saliency: maps (ray tasks)", d, t))
            if progress and not local else None)))
        result = combine_saliency(parts, geometry, cfg.methods)
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


def saliency_database(heads: TrainedHeads | tuple[Path, str], tests: pd.DataFrame,
                      faces: Mapping[str, np.ndarray], landmarks: Mapping[str, np.ndarray],
                      geometry: MeanGeometry, study: Study, device: str = "cpu",
                      backbone: Backbone | None = None,
                      progress: Callable[[int, int], None] | None = None
                      ) -> DatabaseSaliency:
    """Saliency maps of one database's test images: one work unit (a Ray task).

    Parameters
    ----------
    heads : TrainedHeads or tuple
        The database's networks, or ``(run directory, database)`` to read them from.
    tests : pandas.DataFrame
        Its test image-run pairs with landmarks (columns
        :data:`~facedialect.saliency.maps.TEST_COLUMNS`).
    faces, landmarks : mapping
        Image -> pre-processed face; image -> ``(68, 2)`` landmarks (its images).
    geometry : MeanGeometry
        The mean face shape of all databases' test images (made by the driver).
    study : Study
        ``[saliency]`` (methods, score, batch size) and ``[model]``.
    device : str
        Where to compute.
    backbone : Backbone, optional
        The loaded backbone (a local run passes the driver's; a Ray worker loads its own).
    progress : callable, optional
        ``progress(done, total)`` in image-run pairs of this database.

    Returns
    -------
    DatabaseSaliency
        Its region shares and aligned map sums
        (:func:`~facedialect.saliency.maps.database_saliency`).
    """
    if isinstance(heads, tuple):
        heads = trained_heads(RunDir(heads[0]), [heads[1]], device=device)[heads[1]]
    cfg = study.saliency
    return database_saliency(
        backbone or _backbone(study, device), heads.head, heads.runs, tests, faces,
        landmarks, geometry, methods=cfg.methods, score=cfg.score,
        batch_size=cfg.batch_size, device=device, progress=progress,
        units=heads.expressions)


def draw_saliency_figures(run: RunDir) -> list[str]:
    """Draw ``figures/saliency_*.png`` from ``saliency/maps.npz`` and the region tables."""
    names = []
    maps = load_maps(run)
    if maps is not None:
        for method in maps.methods:
            if draw(run, f"saliency_grid_{method}", saliency_grid_figure, maps, method,
                    fmt="png"):
                names.append(f"saliency_grid_{method}")
            for i, a in enumerate(maps.dbs):
                for b in maps.dbs[i + 1:]:
                    name = safe_name(f"saliency_difference_{method}_{a}_vs_{b}")
                    if draw(run, name, difference_figure, maps, method, a, b, fmt="png"):
                        names.append(name)
    if run.has_table("saliency_regions"):
        regions = run.read_table("saliency_regions")
        for method in dict.fromkeys(regions["method"]):
            if draw(run, f"saliency_regions_{method}", region_shares_figure, regions,
                    str(method), fmt="png"):
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


def _live_runs(head: TrainedHeads) -> list[int]:
    live = [i for i, _ in head.live]
    if not live:
        raise InputError("every run of this database failed; nothing to modify with")
    return live


def split_runs(live: list[int], held_out: float) -> tuple[list[int], list[int]]:
    """The runs optimised and the runs held out to judge (the last ``held_out`` share).

    At least one run is held out when there are two or more and ``held_out > 0``, and at
    least one is always optimised.
    """
    n = int(len(live) * held_out)
    if held_out > 0 and len(live) >= 2:
        n = max(n, 1)
    n = min(n, len(live) - 1)
    return live[:len(live) - n], live[len(live) - n:]


#: ``[saliency] modify_tv_weight`` when not given: on the change ('visible') or the image.
DEFAULT_TV_WEIGHT = {"visible": 2.0, "gradient": 20.0}


def tv_weight_of(study: Study, method: str) -> float:
    """The total-variation weight of a modification method (``[saliency]`` or its default)."""
    w = study.saliency.modify_tv_weight
    return DEFAULT_TV_WEIGHT[method] if w is None else float(w)


def _modify(backbone: Backbone, h: TrainedHeads, faces: np.ndarray, targets: list[int],
            study: Study, device: str, *, method: str | None = None,
            steps: int | None = None, step_size: float | None = None,
            tv_weight: float | None = None) -> tuple[ModifyResult, list[int], list[int]]:
    """Modify ``faces`` toward ``targets`` with ``[saliency]``'s method and settings."""
    cfg = study.saliency
    method = method or cfg.modify_method
    opt, held = split_runs(_live_runs(h), cfg.modify_held_out)
    kw = dict(steps=cfg.modify_steps if steps is None else steps,
              step_size=cfg.modify_step_size if step_size is None else step_size,
              tv_weight=tv_weight_of(study, method) if tv_weight is None else tv_weight,
              mask=_mask(study), held_out_runs=held, device=device)
    if method == "visible":
        res = modify_faces_visible(backbone, h.head, faces, targets, opt, study.preprocess,
                                   cell=cfg.modify_cell, variants_per_step=cfg.modify_variants,
                                   seed=study.study.seed, **kw)
    else:
        res = modify_faces(backbone, h.head, faces, targets, opt, **kw)
    return res, opt, held


@torch.no_grad()
def _transfer_rows(db: str, image: str, targets: list[str], method: str, res: ModifyResult,
                   opt: list[int], held: list[int], heads: dict[str, TrainedHeads],
                   backbone: Backbone, study: Study, device: str) -> pd.DataFrame:
    """Per target: the probability before and after for optimised, held-out, other networks."""
    mask = _mask(study) > 0.5
    before, after = res.images[0], res.images[-1]
    change = np.abs(after - before)[:, mask]
    units = heads[db].expressions

    def other(images: np.ndarray) -> list[float]:
        x = torch.tensor(images, device=device)  # a copy: Ray hands read-only arrays
        feats = backbone(gray_to_input(x, backbone))
        probs: list[list[float]] = [[] for _ in targets]
        for name, h in heads.items():
            live = [i for i, _ in h.live]
            if name == db or not live:
                continue
            p = torch.softmax(head_logits(h.head, feats.unsqueeze(0).expand(len(live), -1, -1),
                                          live), -1).mean(0).cpu().numpy()
            for j, t in enumerate(targets):
                if t in h.expressions:
                    probs[j].append(float(p[j, h.expressions.index(t)]))
        return [float(np.mean(v)) if v else float("nan") for v in probs]

    ob, oa = other(before), other(after)
    rows = []
    for j, t in enumerate(targets):
        k = units.index(t)
        rows.append({
            "db": db, "image": image, "target": t, "method": method,
            "runs_optimised": len(opt), "runs_held_out": len(held),
            "optimised_before": float(res.probabilities[0, j, k]),
            "optimised_after": float(res.probabilities[-1, j, k]),
            "held_out_before": float(res.held_out[0, j, k]) if held else float("nan"),
            "held_out_after": float(res.held_out[-1, j, k]) if held else float("nan"),
            "other_dbs_before": ob[j], "other_dbs_after": oa[j],
            "mean_abs_change": float(change[j].mean()),
            "max_abs_change": float(change[j].max())})
    return pd.DataFrame(rows, columns=TRANSFER_COLUMNS).round(4)


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


def modify_database(heads: TrainedHeads | tuple[Path, str], face: np.ndarray, study: Study,
                    device: str = "cpu", backbone: Backbone | None = None
                    ) -> tuple[ModifyResult, list[int], list[int]]:
    """Change ``face`` toward every expression of one database's networks: one work unit.

    Parameters
    ----------
    heads : TrainedHeads or tuple
        The database's networks, or ``(run directory, database)`` to read them from.
    face : numpy.ndarray
        The pre-processed face.
    study : Study
        ``[saliency]``'s modification settings, ``[preprocess]``, ``[model]``.
    device : str
        Where to compute.
    backbone : Backbone, optional
        The loaded backbone (a local run passes the driver's; a Ray worker loads its own).

    Returns
    -------
    tuple
        The result (targets in the order of the database's units), the runs optimised
        and the runs held out.
    """
    if isinstance(heads, tuple):
        heads = trained_heads(RunDir(heads[0]), [heads[1]], device=device)[heads[1]]
    units = heads.expressions
    return _modify(backbone or _backbone(study, device), heads,
                   np.stack([face] * len(units)), list(range(len(units))), study, device)


def modification_grid(run: RunDir, study: Study, *, device: str = "cpu",
                      progress: ProgressFn | None = None) -> dict[str, Any]:
    """Convert one neutral face to every expression with each database's networks.

    Writes ``tables/modification.csv``, ``tables/modification_transfer.csv`` (the
    target's probability for the optimised runs, the held-out runs and the other
    databases' networks, and the change in gray levels), ``modify/grid/original.png``,
    ``modify/grid/{db}_{target}.png`` (the last step) and
    ``figures/modification_grid.png``.

    Returns
    -------
    dict
        The face used and, per database and target, the target probability before and
        after.
    """
    cfg = study.saliency
    trained_backbone(run, study.model.backbone)
    engine = get_engine(study.compute)
    work_device = engine.device(device, device)
    heads = trained_heads(run, [d.name for d in study.databases], device=device)
    image, face = _grid_face(run, study)
    backbone = _backbone(study, device)
    rows, transfer = [], []
    out: dict[str, Any] = {"image": image, "target_probability": {}}
    grid = run.path / "modify" / "grid"
    with run.stage("modification", method=cfg.modify_method, steps=cfg.modify_steps,
                   step_size=cfg.modify_step_size,
                   tv_weight=tv_weight_of(study, cfg.modify_method),
                   held_out=cfg.modify_held_out, engine=engine.name) as info:
        atomic_write_bytes(grid / "original.png", _png(face))
        # one work unit per database (a Ray task with [compute] engine = "ray"; a worker
        # reads the heads file itself from the run directory)
        local = engine.name == "local"
        jobs = ({"heads": heads[db] if local else (run.path, db), "face": face,
                 "study": study, "device": work_device, "backbone": backbone if local else None}
                for db in heads)
        results = engine.map(modify_database, jobs, device=work_device)
        if progress:
            progress("modification", 0, len(heads))  # the log shows it begin
        for n, ((db, h), (res, opt, held)) in enumerate(zip(heads.items(), results,
                                                            strict=True), 1):
            units = h.expressions
            rows.append(_modification_rows(db, image, units, units, res))
            transfer.append(_transfer_rows(db, image, units, cfg.modify_method, res, opt,
                                           held, heads, backbone, study, device))
            for t, expr in enumerate(units):
                atomic_write_bytes(grid / f"{db}_{expr}.png", _png(res.images[-1, t]))
                out["target_probability"][f"{db} {expr}"] = (
                    round(float(res.probabilities[0, t, t]), 3),
                    round(float(res.probabilities[-1, t, t]), 3))
            if progress:
                progress("modification", n, len(heads))
        table = pd.concat(rows, ignore_index=True)[MODIFICATION_COLUMNS]
        run.write_table("modification", table)
        run.write_table("modification_transfer", pd.concat(transfer, ignore_index=True))
        info.update(databases=len(heads))
    draw(run, "modification_grid", modification_grid_figure, table, grid, fmt="png")
    return out


def modify_image(run: RunDir, study: Study, image: Path, target: str, *,
                 db: str | None = None, method: str | None = None, steps: int | None = None,
                 step_size: float | None = None, tv_weight: float | None = None,
                 device: str = "cpu") -> dict[str, Any]:
    """Raise ``target`` in one photo with one (or every) database's networks.

    ``method``, ``steps``, ``step_size`` and ``tv_weight`` default to ``[saliency]``'s. For
    each database writes ``RUN/modify/{image stem}_{target}_{db}/``: ``step_NNN.png``
    (every step, 000 = the pre-processed input), ``strip.png``, ``probabilities.csv``
    (columns of :data:`MODIFICATION_COLUMNS`, the optimised runs) and ``transfer.csv``
    (columns of :data:`TRANSFER_COLUMNS`).

    Raises
    ------
    InputError
        On an unknown target or database, or a photo without a face.
    """
    if target not in study.study.expressions:
        raise InputError(f"unknown target expression {target!r}; use one of the study's "
                         f"expressions: {', '.join(study.study.expressions)}")
    trained_backbone(run, study.model.backbone)
    names = [d.name for d in study.databases]
    if db is not None and db not in names:
        raise InputError(f"unknown database {db!r}; this study has {', '.join(names)}")
    heads = trained_heads(run, [db] if db else names, device=device)
    lacking = [name for name, h in heads.items() if target not in h.expressions]
    if db is not None and lacking:
        raise InputError(f"database {db!r}'s networks have no {target} unit (its "
                         f"expressions: {', '.join(heads[db].expressions)})")
    heads = {name: h for name, h in heads.items() if name not in lacking}
    if not heads:
        raise InputError(f"no database's networks have a {target} unit")
    if not Path(image).is_file():
        raise InputError(f"{image}: no such image file")
    face = _preprocessed(Path(image), study)
    backbone = _backbone(study, device)
    method = method or study.saliency.modify_method
    every = trained_heads(run, names, device=device)

    out: dict[str, Any] = {}
    for name, h in heads.items():
        t = h.expressions.index(target)
        res, opt, held = _modify(backbone, h, face[None], [t], study, device, method=method,
                                 steps=steps, step_size=step_size, tv_weight=tv_weight)
        transfer = _transfer_rows(name, str(image), [target], method, res, opt, held, every,
                                  backbone, study, device)
        folder = run.path / "modify" / safe_name(f"{Path(image).stem}_{target}_{name}")
        for s in range(len(res.images)):
            atomic_write_bytes(folder / f"step_{s:03d}.png", _png(res.images[s, 0]))
        table = _modification_rows(name, str(image), [target], h.expressions, res)
        atomic_write_bytes(folder / "probabilities.csv",
                           table.to_csv(index=False, lineterminator="\n").encode())
        atomic_write_bytes(folder / "transfer.csv",
                           transfer.to_csv(index=False, lineterminator="\n").encode())
        atomic_write_bytes(folder / "strip.png",
                           modification_strip(res.images[:, 0], table, target, name))
        row = transfer.iloc[0]
        out[name] = {"folder": str(folder),
                     "before": round(float(res.probabilities[0, 0, t]), 3),
                     "after": round(float(res.probabilities[-1, 0, t]), 3),
                     "held_out_before": float(row["held_out_before"]),
                     "held_out_after": float(row["held_out_after"]),
                     "mean_abs_change": float(row["mean_abs_change"])}
    return out


def _figure(run: RunDir, name: str, caption: str) -> Figure | None:
    path = run.figures / f"{name}.png"
    return Figure(path.read_bytes(), caption, name) if path.exists() else None


def saliency_section(run: RunDir) -> Section | None:
    """Saliency grids, differences, region shares and statistics; the modification grid."""
    has_sal = run.has_table("saliency_regions")
    has_mod = run.has_table("modification")
    if not (has_sal or has_mod):
        return None
    blocks: list = []
    if has_sal:
        regions = run.read_table("saliency_regions")
        images = run.read_table("saliency_images")
        methods = list(dict.fromkeys(regions["method"]))
        missing = images[~images["landmarks"].astype(bool)]
        blocks.append(Text(
            "Saliency: the gradient of each test image's own-class probability with respect "
            "to its pixels, through the frozen backbone and the head of every run that "
            "tested it (matched testing), as plain gradients and with guided "
            "back-propagation (negative gradients stopped at every ReLU). Each |map| is "
            "normalized to sum 1, averaged over runs, warped to the mean face shape by the "
            "image's 68 landmarks and averaged over images (docs/method.md §8, docs/saliency.md). "
            f"{len(images)} test images, {int(images['landmarks'].astype(bool).sum())} with "
            f"landmarks" + (f"; {len(missing)} without landmarks were left out "
                            "(tables/saliency_images.csv)." if len(missing) else ".")))
        for method in methods:
            for fig in (_figure(run, f"saliency_grid_{method}",
                                f"Mean saliency ({method}) per expression (rows) and "
                                "database (columns), over the average test face, from "
                                "saliency/maps.npz."),):
                if fig:
                    blocks.append(fig)
            for path in sorted(run.figures.glob(f"saliency_difference_{method}_*.png")):
                blocks.append(Figure(path.read_bytes(), f"Difference of the mean maps "
                                     f"({method}); red: the first database's networks look "
                                     "there more.", path.stem))
            fig = _figure(run, f"saliency_regions_{method}",
                          f"Share of |saliency| ({method}) per face region: per unit "
                          "(subject) mean over runs and images, mean ± SE over units, "
                          "from tables/saliency_regions.csv.")
            if fig:
                blocks.append(fig)
        if run.has_table("saliency_stats"):
            stats = run.read_table("saliency_stats")
            blocks.append(Text(
                "Region differences between databases per expression: subject means "
                "(shares averaged over runs, then over a subject's images) compared by a "
                "two-sided permutation test of the difference of means; Hedges' g; p "
                "corrected by Benjamini-Hochberg over the expressions and regions of each "
                "method and pair of databases. Rows with p_fdr < 0.05 first."))
            order = stats.assign(_s=stats["p_fdr"].fillna(2.0)).sort_values(
                ["_s", "method", "expression"]).drop(columns="_s")
            blocks.append(Table(order, "Saliency share differences between databases "
                                "(tables/saliency_stats.csv).", "saliency_stats",
                                max_rows=40))
    if has_mod:
        table = run.read_table("modification")
        info = run.read_manifest().get("stages", {}).get("modification", {})
        if info.get("method", "gradient") == "visible":
            how = ("a smooth change (a coarse grid of values, interpolated) optimised over "
                   "the augmentation variants (sizes, positions, mirror images) to raise each "
                   "target expression of a database's networks (mean log-probability over "
                   "the optimised runs), with a total-variation penalty on the change")
        else:
            how = ("gradient ascent on the pre-processed face toward each target "
                   "expression of a database's networks (mean log-probability over the "
                   "optimised runs), with a total-variation penalty")
        blocks.append(Text(
            f"Emotion modification: {how}; pixels kept in 0..255 and the background outside "
            "the face oval unchanged. Above each image: the target probability (mean over "
            "the optimised runs) before → after. A change counts as a modification only "
            "where networks it was not optimised on agree: the held-out runs and the other "
            "databases' networks (table below; docs/saliency.md)."))
        fig = _figure(run, "modification_grid", "A neutral face converted to each "
                      "expression by each database's networks, from "
                      "tables/modification.csv and modify/grid/.")
        if fig:
            blocks.append(fig)
        last = table[table["step"] == table["step"].max()]
        last = last[last["target"] == last["expression"]]
        first = table[(table["step"] == 0) & (table["target"] == table["expression"])]
        summary = first.merge(last, on=["db", "image", "target"], suffixes=("_start", "_end"))
        if run.has_table("modification_transfer"):
            blocks.append(Table(run.read_table("modification_transfer").drop(
                columns=["image"]), "The target's probability before and after, for the "
                "runs optimised, the runs held out and the other databases' networks (mean "
                "over their runs); the change inside the face oval in gray levels "
                "(tables/modification_transfer.csv).", "modification_transfer"))
        else:
            blocks.append(Table(summary[["db", "target", "probability_start",
                                         "probability_end"]],
                                "Target probability before and after the ascent.",
                                "modification_summary"))
    return Section("saliency", "Saliency and emotion modification", blocks)


STAGE = Stage(
    name="saliency", title="where the networks look, per face region",
    reads=("tables/splits.csv", "tables/images.csv", "tables/preprocess.csv", "heads/*.pt"),
    writes=("tables/saliency_images.csv", "tables/saliency_regions.csv",
            "tables/saliency_stats.csv"),
    run=run, section=saliency_section, enabled=lambda study: study.saliency.enable,
    external=lambda study: ([Path(study.saliency.modify_image)]
                            if study.saliency.modify_image else []),
    config=("databases", "preprocess", "model", "training", "saliency"))
