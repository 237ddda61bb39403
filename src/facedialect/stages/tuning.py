"""AU tuning: stimuli through every trained network; profiles and their comparisons.

Writes ``stimuli/`` (images and ``stimuli.csv``) and the tables ``au_responses``,
``au_profiles``, ``profile_similarity``, ``similarity_vs_confusion``, ``pca`` and
``pca_variance`` (docs/outputs.md), and the tuning figures. docs/method.md §7.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from facedialect.compute import Engine
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
from facedialect.files import atomic_write_bytes, atomic_write_text
from facedialect.imageio import file_sha256
from facedialect.models.runtime import feature_runner
from facedialect.models.weights import load_backbone
from facedialect.plots.figures import (
    pca_figure,
    profile_heatmaps,
    safe_name,
    similarity_confusion_figure,
    stimuli_sheet,
    sum_difference_figure,
    tuning_curves_figure,
)
from facedialect.preprocess.pipeline import preprocess_face
from facedialect.progress import ProgressFn
from facedialect.report.html import Figure, Section, Table, Text, figure_file
from facedialect.run.heads import heads_path, trained_backbone
from facedialect.run.store import RunDir
from facedialect.stages.base import (
    Context,
    Stage,
    Summary,
    TrainedHeads,
    draw,
    trained_heads,
    work_engine,
)
from facedialect.stats.classification import mean_confusion
from facedialect.stats.tuning import (
    profile_pca,
    profile_similarity,
    similarity_vs_confusion,
    tuning_profiles,
    tuning_responses,
)
from facedialect.vocab import STUDY_AUS


def run(run: RunDir, study: Study, ctx: Context) -> Summary:
    """Render the AU stimuli, pass them through every network, write the tuning tables.

    The stimuli and their features are made here; each database's networks respond to
    them in one work unit of the study's engine (:func:`database_responses`: a Ray task
    with ``[compute] engine = "ray"``). ``ctx.progress`` is called while the average base
    face is built and while the stimuli are rendered.

    Raises
    ------
    InputError
        When the base face cannot be made yet or a stimulus has no detectable face.
    """
    cfg = study.tuning
    progress = ctx.progress
    engine, device = work_engine(study, ctx)
    tag, _ = trained_backbone(run, study.model.backbone)
    try:
        # 'average': the average neutral face of this study's databases, built once into
        # RUN/faces/average_neutral.png; a photo path: the photo-textured 3D face
        renderer, base_image = base_face_renderer(
            cfg.base_face, run_dir=run.path, dbs=[d.name for d in study.databases],
            progress=ctx.tick("AU tuning: average face"))
    except ValueError as exc:
        raise InputError(f"[tuning] {exc}") from None
    with run.stage("tuning", base_face=cfg.base_face, base_face_image=base_image,
                   engine=engine.name) as info:
        table = stimulus_table(cfg.aus, cfg.levels)
        images = render_stimuli(
            table, renderer,
            progress=(lambda d, t: progress("AU tuning: stimuli", d, t)) if progress else None)
        table = write_stimuli(run.path / "stimuli", table, images)
        feats = stimulus_features(table, images, study)
        # one work unit per database (a Ray task on a cluster; locally on the CPU, as
        # always): the stimuli are rendered and their features computed here, once
        resp = network_responses(run, [d.name for d in study.databases], feats, table,
                                 engine=engine,
                                 device="cpu" if engine.name == "local" else device)
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
    draw_tuning_figures(run)
    same = (pd.concat(sims) if sims else pd.DataFrame())
    same = same[same["unit_a"] == same["unit_b"]] if len(same) else same
    same_r = {f"{r.db_a}-{r.db_b} {r.unit_a}": round(r.spearman_r, 2)
              for r in same.itertuples()}
    lines = [f"base face {cfg.base_face}: {len(table)} stimuli"
             + ("; same-expression profile r_s: " + ", ".join(f"{k} {v}"
                                                            for k, v in same_r.items())
                if same_r else "")]
    return Summary("tuning", lines, {"stimuli": len(table), "same_unit_r": same_r})


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



def write_stimulus_series(out: str | Path, base_face: str, aus: str | Sequence[int] = "",
                          levels: int = 11, size: int = 256, *,
                          progress: ProgressFn | None = None) -> tuple[pd.DataFrame, int]:
    """Render an AU stimulus series into a folder, with its contact sheet (no study needed).

    Parameters
    ----------
    out : path
        The folder: the images, ``stimuli.csv`` and ``contact_sheet.png``.
    base_face : str
        ``builtin``, ``3d``, a photo or ``average:RUN_DIR``.
    aus : str or sequence of int
        The AUs (comma-separated text or numbers; empty: the 20 study AUs).
    levels, size : int
        Intensity steps from 0 to 1; image side in pixels.
    progress : ProgressFn, optional
        ``progress(label, done, total)``.

    Returns
    -------
    tuple
        The stimulus table and the number of AUs.

    Raises
    ------
    InputError
        For an invalid AU list, base face or size.
    """
    try:
        au_list = ([int(a) for a in aus.split(",") if a.strip()] if isinstance(aus, str)
                   else [int(a) for a in aus]) or list(STUDY_AUS)
        table = stimulus_table(au_list, levels)
        renderer, _ = base_face_renderer(base_face, size, progress=(
            (lambda d, t: progress("average face", d, t)) if progress else None))
    except ValueError as exc:
        raise InputError(str(exc)) from None
    images = render_stimuli(table, renderer, progress=(
        (lambda d, t: progress("stimuli", d, t)) if progress else None))
    done = write_stimuli(out, table, images)
    sheet = stimuli_sheet(done)
    if sheet is not None:
        atomic_write_bytes(Path(out) / "contact_sheet.png", sheet)
    return done, len(au_list)


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


def network_responses(run: RunDir, dbs: list[str], feats: torch.Tensor,
                      table: pd.DataFrame, folder: str = "heads", *,
                      engine: Engine | None = None, device: str = "cpu") -> pd.DataFrame:
    """FC3 responses (minus the null image's) of every trained run of every database.

    Databases without ``RUN/{folder}/{db}.pt`` and failed runs are left out. Each
    database is one work unit of ``engine`` (:func:`database_responses`; a Ray task
    with ``[compute] engine = "ray"``, which reads the heads file itself); the default
    computes here.
    """
    engine = engine or Engine()
    present = [db for db in dbs if heads_path(run, db, folder).exists()]
    if engine.name == "local":
        heads: list[TrainedHeads | tuple[Path, str, str]] = list(
            trained_heads(run, present, folder=folder).values())
    else:
        if not present:  # the error a local run gives
            trained_heads(run, present, folder=folder)
        heads = [(run.path, db, folder) for db in present]
    shared = engine.share(feats)
    jobs = ({"heads": h, "feats": shared, "table": table, "device": device} for h in heads)
    return pd.concat(list(engine.map(database_responses, jobs, device=device)),
                     ignore_index=True)


@torch.no_grad()
def database_responses(heads: TrainedHeads | tuple[Path, str, str], feats: torch.Tensor,
                       table: pd.DataFrame, device: str = "cpu") -> pd.DataFrame:
    """The tuning responses of one database's live runs: one work unit (a Ray task).

    Parameters
    ----------
    heads : TrainedHeads or tuple
        The database's networks, or ``(run directory, database, heads folder)`` to read
        them from.
    feats : torch.Tensor
        ``(S, D)`` backbone features of the stimuli (rows of ``table``).
    table : pandas.DataFrame
        The stimulus table (:func:`~facedialect.faces.stimuli.stimulus_table`).
    device : str
        Where the heads run.

    Returns
    -------
    pandas.DataFrame
        :func:`~facedialect.stats.tuning.tuning_responses` of every live run.
    """
    if isinstance(heads, tuple):
        run_dir, db, folder = heads
        heads = trained_heads(RunDir(run_dir), [db], folder=folder)[db]
    head = heads.head.to(device)
    x = feats.float().to(device)
    logits = np.stack([head.forward_run(i, x).cpu().numpy() for i, _ in heads.live])
    return tuning_responses(logits, table, db=heads.db, runs=[r for _, r in heads.live],
                            units=heads.expressions)


def _base_face_files(study: Study) -> list[Path]:
    """A photo base face is an input of the stage (its content is fingerprinted)."""
    base = study.tuning.base_face
    if base in ("builtin", "3d") or base.startswith("average"):
        return []
    return [Path(base)]


def draw_tuning_figures(run: RunDir) -> None:
    """Draw the tuning figures from the tables and stimuli the stage wrote."""
    prof = run.read_table("au_profiles")
    sim = run.read_table("profile_similarity") if run.has_table("profile_similarity") else None
    stim = run.path / "stimuli" / "stimuli.csv"
    if stim.exists():
        draw(run, "stimuli", stimuli_sheet, pd.read_csv(stim))
    draw(run, "tuning_curves", tuning_curves_figure, prof)
    draw(run, "profiles", profile_heatmaps, prof, sim)
    dbs = list(dict.fromkeys(prof["db"]))
    for i, a in enumerate(dbs):
        for b in dbs[i + 1:]:
            draw(run, f"sum_difference_{safe_name(a)}_{safe_name(b)}", sum_difference_figure,
                 prof, a, b)
    if run.has_table("similarity_vs_confusion"):
        draw(run, "similarity_confusion", similarity_confusion_figure,
             run.read_table("similarity_vs_confusion"))
    if run.has_table("pca"):
        draw(run, "pca", pca_figure, run.read_table("pca"), run.read_table("pca_variance"))


def _base_face_text(run: RunDir) -> str:
    """The base face of the tuning stimuli, in words (from the manifest)."""
    info = run.read_manifest().get("stages", {}).get("tuning", {})
    base = str(info.get("base_face", "builtin"))
    image = info.get("base_face_image") or ""
    try:
        face = BaseFace.parse(base, must_exist=False)
    except ValueError:  # text no parser reads (e.g. a ~user of another computer)
        return f"the photo-textured 3D face of {image or base}"
    return face.describe(image)


def tuning_section(run: RunDir) -> Section | None:
    """AU stimuli, tuning profiles, similarity vs confusion, PCA (paper Figs. 7-10)."""
    skipped = run.read_manifest().get("skipped", {}).get("tuning")
    if not run.has_table("au_profiles"):
        return Section("tuning", "AU tuning", [Text(skipped)]) if skipped else None
    prof = run.read_table("au_profiles")
    sim = run.read_table("profile_similarity") if run.has_table("profile_similarity") else None
    blocks: list = [Text(
        f"Each AU rose from 0 to 1 in steps on the base face ({_base_face_text(run)}) "
        "while every other AU stayed off; level 0 is the same null image for all AUs. The "
        "stimuli were pre-processed like the training images and passed through every "
        "network; a unit's response is its FC3 value before softmax minus its value for "
        "the null image, averaged over runs (docs/method.md §7). Reading a profile: a unit "
        "that tunes to an AU finds that AU's appearance to be evidence for its expression; "
        "it does not show that the database's posers use that AU. AUs that look alike "
        "(AU23 lip tightener and AU24 lip pressor narrow the lips' red alike; AU15 and AU17 "
        "both turn the mouth down) tune the same units: on synthetic cultures, the angry "
        "unit of a culture that uses AU23 responds to AU24 nearly as strongly as that of "
        "a culture that uses AU24; the response falls when AU23 is taken out of its angry "
        "prototype and vanishes when sad's AU15 is taken out too (docs/validation.md). "
        "Compare databases by the difference of their profiles "
        "(below) rather than by single positive tunings.")]
    stim = run.path / "stimuli" / "stimuli.csv"
    if stim.exists():
        blocks.append(figure_file(run, "stimuli", caption="The stimuli: rows AUs, columns "
                                  "intensity (every second level), from stimuli/.",
                                  missing="No AU stimuli to show: stimuli/stimuli.csv lists "
                                  "none."))
    null = run.path / "stimuli" / "null.png"
    if null.exists():
        blocks.append(Figure(null.read_bytes(), "The base face used for the stimuli (the "
                             "null image: every AU at 0), stimuli/null.png.", "base_face"))
    blocks.append(figure_file(
        run, "tuning_curves", caption="Example tuning curves (paper Figs. 5-6): for "
        "each unit, the three AUs it responds to most; solid and dashed lines are the "
        "databases, bands ± SD across runs; from tables/au_profiles.csv.",
        missing="No AU tuning profiles to draw: "
        "tables/au_profiles.csv has no rows."))
    blocks.append(figure_file(
        run, "profiles", caption="Tuning profiles (AU x level), each normalised "
        "by its largest absolute value; r_s: Spearman correlation of the same unit's profiles "
        "across databases (null level excluded), from tables/au_profiles.csv (paper Fig. 7)."))
    dbs = list(dict.fromkeys(prof["db"]))
    for i, a in enumerate(dbs):
        for b in dbs[i + 1:]:
            blocks.append(figure_file(
                run, f"sum_difference_{safe_name(a)}_{safe_name(b)}",
                caption=f"Sum ({a} + {b}: what both databases' networks share) and "
                f"difference ({a} − {b}) of each unit's "
                "normalised profiles (paper Fig. 8), from tables/au_profiles.csv.",
                missing=f"{a} and {b} have no expression "
                "unit in common: no sum and difference of their profiles."))
    if sim is not None:
        same = sim[sim["unit_a"] == sim["unit_b"]]
        blocks.append(Table(same, "Same-expression profile correlations with p and "
                            "Bonferroni-corrected p (over the units both databases have: the "
                            "paper's 7).", "profile_similarity"))
    if run.has_table("similarity_vs_confusion"):
        links = run.read_table("similarity_vs_confusion")
        blocks.append(figure_file(
            run, "similarity_confusion", caption="Profile similarity (7 x 7 r_s, or "
            "units x units with other label sets) beside the swapped confusion matrix and "
            "their scatter over the cells (paper Fig. 9: 49), from "
            "tables/similarity_vs_confusion.csv.",
            missing="No profile similarity to set against confusion: "
            "tables/similarity_vs_confusion.csv has no rows."))
        blocks.append(Table(links[["trained", "tested", "spearman_r", "p"]]
                            .drop_duplicates(), "Similarity vs confusion.",
                            "similarity_vs_confusion_summary"))
    if run.has_table("pca"):
        blocks.append(figure_file(
            run, "pca", caption="PCA of the profiles reduced to their peak or trough per AU "
            "(paper Fig. 10), from tables/pca.csv.",
            missing="No PCA to draw: tables/pca.csv has no rows."))
    return Section("tuning", "AU tuning", blocks)


STAGE = Stage(
    name="tuning", title="AU tuning profiles of every network",
    reads=("heads/*.pt",), optional=("tables/confusion.csv",),
    writes=("stimuli/stimuli.csv", "tables/au_responses.csv", "tables/au_profiles.csv",
            "tables/pca.csv", "tables/pca_variance.csv"),
    run=run, section=tuning_section, config=("databases", "preprocess", "model", "tuning"),
    external=_base_face_files, command="tune")
