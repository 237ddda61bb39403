"""The AU tuning stage: stimuli through every trained network, profiles and comparisons.

Writes ``stimuli/`` (images and ``stimuli.csv``) and the tables ``au_responses``,
``au_profiles``, ``profile_similarity``, ``similarity_vs_confusion``, ``pca`` and
``pca_variance`` (docs/outputs.md). SCIENCE §7.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from facedialect.analysis.classification import mean_confusion
from facedialect.analysis.tuning import (
    profile_pca,
    profile_similarity,
    similarity_vs_confusion,
    tuning_profiles,
    tuning_responses,
)
from facedialect.classification import load_heads
from facedialect.config import Study
from facedialect.errors import InputError
from facedialect.faces.average import average_face, neutral_images, write_average_face
from facedialect.faces.base import BaseFace
from facedialect.faces.stimuli import (
    Renderer,
    check_stimulus_size,
    render_stimuli,
    renderer_for,
    stimulus_table,
    write_stimuli,
)
from facedialect.imageio import file_sha256
from facedialect.models.runtime import feature_runner
from facedialect.models.weights import load_backbone
from facedialect.preprocess.pipeline import preprocess_face
from facedialect.run.store import RunDir, atomic_write_text


# run I/O: moves to stages/ in main
def run_neutral_images(run_dir: str | Path, dbs: Sequence[str] | None = None) -> list[Path]:
    """Neutral images of the included faces of a run (every database, or ``dbs``).

    Reads ``RUN/tables/images.csv`` (ingest; pre-processing marks images without a face
    as excluded) and selects with :func:`~facedialect.faces.average.neutral_images`.

    Raises
    ------
    InputError
        When the run has no images table or no included neutral image.
    """
    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise InputError(f"{run.path}: no such run directory")
    try:
        return neutral_images(run.read_table("images"), dbs)
    except InputError as exc:
        raise InputError(f"{run.table_path('images')}: {exc}") from None


# run I/O: moves to stages/ in main
def cached_run_average(run_dir: str | Path, size: int = 512,
                       dbs: Sequence[str] | None = None,
                       progress: Callable[[int, int], None] | None = None) -> Path:
    """Build (or reuse) ``RUN/faces/average_neutral.png`` and return its path.

    The image is rebuilt when the set of neutral images (their content hashes), the size
    or the databases change; ``average_neutral.json`` beside it records them.
    ``progress(done, total)`` is called while it is built (see
    :func:`~facedialect.faces.average.average_face`).
    """
    run = Path(run_dir).expanduser().resolve()
    paths = run_neutral_images(run, dbs)
    images = RunDir(run).read_table("images")
    known = dict(zip(images["path"], images.get("sha256", pd.Series(dtype=str)),
                     strict=False))
    h = hashlib.sha256()
    for p in sorted(str(p) for p in paths):
        digest = known.get(p)
        if not isinstance(digest, str) or not digest:
            digest = file_sha256(p) if Path(p).is_file() else "missing"
        h.update(f"{p}\0{digest}\n".encode())
    key = {"size": int(size), "images": len(paths), "sha256": h.hexdigest()}
    out = run / "faces" / "average_neutral.png"
    meta = out.with_suffix(".json")
    if out.is_file() and meta.is_file():
        try:
            if json.loads(meta.read_text(encoding="utf-8")) == key:
                return out
        except (OSError, json.JSONDecodeError):
            pass
    face = average_face(paths, size=size, progress=progress)
    write_average_face(face, out)
    atomic_write_text(meta, json.dumps(key, indent=2) + "\n")
    return out


# run I/O: moves to stages/ in main
def base_face_renderer(base_face: BaseFace | str, size: int = 256, *,
                       run_dir: str | Path | None = None, dbs: Sequence[str] | None = None,
                       progress: Callable[[int, int], None] | None = None
                       ) -> tuple[Renderer, str]:
    """The renderer of a base face; an average face is built once into its run directory.

    Parameters
    ----------
    base_face : BaseFace or str
        The base face (:class:`~facedialect.faces.base.BaseFace`). ``average:RUN_DIR``
        averages that run's databases; ``average`` averages ``run_dir``'s, over ``dbs``.
    size : int
        Output width in pixels (checked before the average face is built).
    run_dir : str or Path, optional
        The study's run directory (for ``average``).
    dbs : sequence of str, optional
        Databases whose neutral faces make ``average`` (default: all of the run's).
    progress : callable, optional
        ``progress(done, total)`` while an average face is built.

    Returns
    -------
    renderer : Renderer
        :func:`~facedialect.faces.stimuli.renderer_for`'s renderer.
    image : str
        The image the face is made from (the average face's PNG, the photo); "" for the
        built-in and 3D model faces.

    Raises
    ------
    ValueError
        For a bad base face or size, or ``average`` without ``run_dir``.
    FacedialectError
        When the photo cannot be read or has no detectable face, or the run has no
        neutral images.
    """
    base = BaseFace.parse(base_face)
    check_stimulus_size(base, size)
    if base.kind != "average":
        return renderer_for(base, size), "" if base.path is None else str(base.path)
    run = base.path if base.path is not None else run_dir
    if not run:
        raise ValueError("base face 'average' needs a run directory: use "
                         "average:RUN_DIR (a run whose databases are ingested)")
    image = cached_run_average(run, dbs=dbs if base.path is None else None,
                               progress=progress)
    return renderer_for(base, size, image=image), str(image)


def tuning_stage(run: RunDir, study: Study,
                 progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Render the AU stimuli, pass them through every network, write the tuning tables.

    Parameters
    ----------
    run : RunDir
        The trained run directory.
    study : Study
        The study (``[tuning]``, ``[preprocess]``, ``[model]``).
    progress : callable, optional
        Called as ``progress(label, done, total)`` while the average base face is built
        and while the stimuli are rendered.

    Raises
    ------
    InputError
        When the base face cannot be made yet or a stimulus has no detectable face.
    """
    cfg = study.tuning
    try:
        # 'average': the average neutral face of this study's databases, built once into
        # RUN/faces/average_neutral.png; a photo path: the photo-textured 3D face
        renderer, base_image = base_face_renderer(
            cfg.base_face, run_dir=run.path, dbs=[d.name for d in study.databases],
            progress=(lambda d, t: progress("AU tuning: average face", d, t))
            if progress else None)
    except ValueError as exc:
        raise InputError(f"[tuning] {exc}") from None
    manifest = run.read_manifest()
    tag = manifest.get("training", {}).get("backbone")
    if tag is None:
        raise InputError(f"{run.path}: no trained networks; run `facedialect train` first")
    with run.stage("tuning", base_face=cfg.base_face, base_face_image=base_image) as info:
        table = stimulus_table(cfg.aus, cfg.levels)
        images = render_stimuli(
            table, renderer,
            progress=(lambda d, t: progress("AU tuning: stimuli", d, t)) if progress else None)
        table = write_stimuli(run.path / "stimuli", table, images)
        feats = stimulus_features(table, images, study)
        resp = network_responses(run.path / "heads", [d.name for d in study.databases],
                                 feats, table)
        prof = tuning_profiles(resp)
        run.write_table("au_responses", resp)
        run.write_table("au_profiles", prof)
        dbs = list(dict.fromkeys(prof["db"]))
        sims, links = [], []
        conf = (mean_confusion(run.read_table("confusion"))
                if run.has_table("confusion") else None)
        for i, a in enumerate(dbs):
            for b in dbs[i + 1:]:
                sim = profile_similarity(prof, a, b)
                sims.append(sim)
                if conf is None:
                    continue
                c = conf[conf["variants"] == "all"]
                for trained, tested in ((a, b), (b, a)):
                    summary, cells = similarity_vs_confusion(sim, c, trained, tested)
                    links.append(cells.assign(trained=trained, tested=tested,
                                              spearman_r=summary["spearman_r"],
                                              p=summary["p"]))
        if sims:
            run.write_table("profile_similarity", pd.concat(sims, ignore_index=True))
        if links:
            cols = ["trained", "tested", "spearman_r", "p", "true", "predicted",
                    "profile_r", "confusion_rate"]
            run.write_table("similarity_vs_confusion",
                            pd.concat(links, ignore_index=True)[cols])
        scores, variance = profile_pca(prof)
        run.write_table("pca", scores)
        run.write_table("pca_variance", variance)
        info.update(stimuli=len(table), networks=int(resp[["db", "run"]]
                                                     .drop_duplicates().shape[0]))
    same = (pd.concat(sims) if sims else pd.DataFrame())
    same = same[same["unit_a"] == same["unit_b"]] if len(same) else same
    return {"stimuli": len(table),
            "same_unit_r": {f"{r.db_a}-{r.db_b} {r.unit_a}": round(r.spearman_r, 2)
                            for r in same.itertuples()}}


def stimulus_features(table: pd.DataFrame, images: list[np.ndarray], study: Study
                      ) -> torch.Tensor:
    """Pre-process the stimuli like training images and pass them through the backbone.

    Raises
    ------
    InputError
        When a stimulus has no detectable face.
    """
    faces = []
    for r, img in zip(table.itertuples(index=False), images, strict=True):
        res = preprocess_face(img, study.preprocess)
        if res.image is None:
            raise InputError(f"stimulus {r.path}: {res.reason}; the base face must be "
                             f"detectable at every AU level")
        faces.append(res.image)
    backbone = load_backbone(study.model.backbone, study.model.weights,
                             allow_download=study.model.allow_download)
    runner = feature_runner(backbone, study.model.runtime, cache_dir=study.study.cache_dir)
    x = backbone.to_input(np.stack(faces))
    return torch.from_numpy(np.concatenate([runner(x[i:i + 32])
                                            for i in range(0, len(x), 32)]))


def network_responses(heads_dir: Path, dbs: list[str], feats: torch.Tensor,
                      table: pd.DataFrame) -> pd.DataFrame:
    """FC3 responses (minus the null image's) of every trained run of every database.

    Databases without ``heads_dir/{db}.pt`` and failed runs are left out.
    """
    responses = []
    for db in dbs:
        path = heads_dir / f"{db}.pt"
        if not path.exists():
            continue
        head, state = load_heads(path)
        failed = set(state["failed_runs"].tolist())
        runs = state["runs"].tolist()
        keep = [i for i, r in enumerate(runs) if r not in failed]
        with torch.no_grad():
            logits = np.stack([head.forward_run(i, feats.float()).numpy() for i in keep])
        responses.append(tuning_responses(logits, table, db=db, runs=[runs[i] for i in keep],
                                          units=list(state["expressions"])))
    if not responses:
        raise InputError(f"{heads_dir}: no trained networks; run `facedialect train` first")
    return pd.concat(responses, ignore_index=True)
