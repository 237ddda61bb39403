"""Pre-processing: detect, normalise and mask every candidate face; screen the faces.

Writes ``tables/preprocess.csv``, ``tables/screening.csv``, ``tables/duplicates.csv``,
updates the exclusions and the subject selection in ``tables/images.csv`` and draws a
contact sheet per database. Faces and screening values are cached by image content hash
(docs/preprocessing.md).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from facedialect import databases
from facedialect.config import ScreeningConfig, Study
from facedialect.databases.schema import (
    BLURRED,
    CHANGED,
    FACE_TOO_SMALL,
    NEAR_DUPLICATE,
    SCREENING_CATEGORIES,
)
from facedialect.errors import FacedialectWarning, ImageReadError, InputError
from facedialect.files import ArrayCache, sha256_bytes
from facedialect.imageio import decode_gray, read_image_bytes
from facedialect.plots.figures import contact_sheet, exclusions_figure, safe_name
from facedialect.preprocess import screening
from facedialect.preprocess.params import PreprocessParams
from facedialect.preprocess.pipeline import FaceResult, preprocess_face
from facedialect.report.html import Figure, Section, Table, Text
from facedialect.run.caches import (
    preprocess_cache,
    preprocess_key,
    screening_cache,
)
from facedialect.run.store import RunDir
from facedialect.stages.base import Context, Stage, Summary, draw
from facedialect.vocab import DEFAULT_SUBJECTS


def run(run: RunDir, study: Study, ctx: Context) -> Summary:
    """Pre-process every candidate image of the study (cached) and screen the faces."""
    s = preprocess_images(
        run, study.preprocess, n_subjects={d.name: d.n_subjects for d in study.databases},
        cache_dir=study.study.cache_dir, workers=ctx.options.get("workers"),
        progress=ctx.tick("pre-processing"),
        faces_per_expression=study.report.contact_sheet_per_expression,
        screen=study.screening)
    # the final exclusions: the databases section's figure shows the images used
    draw(run, "images_per_expression", exclusions_figure, run.read_table("images"))
    lines = [f"{s.detected}/{s.processed} faces detected ({s.from_cache} from cache); "
             f"{s.not_detected} excluded (no face or unreadable), {s.several_faces} with "
             "several faces (largest used)",
             f"screening: {s.near_duplicates} near duplicate(s) in {s.duplicate_groups} "
             f"group(s), {s.too_small} face(s) too small, {s.blurred} blurred"]
    return Summary("preprocess", lines, {k: v for k, v in vars(s).items()})


def draw_contact_sheets(run: RunDir, cache: ArrayCache, per_expression: int = 4) -> list[str]:
    """Draw ``figures/contact_sheet_{db}.png`` for every database; return the names."""
    images = run.read_table("images")
    prep = run.read_table("preprocess")
    merged = images.merge(prep[["db", "path", "detected", "x", "y", "w", "h", "cache_key"]],
                          on=["db", "path"], how="inner")
    merged = merged[merged["included"].astype(bool) & merged["detected"].astype(bool)]

    def face_of(key: str) -> np.ndarray | None:
        hit = cache.get(key)
        return hit["image"] if hit is not None and "image" in hit else None

    names = []
    for db in dict.fromkeys(images["db"].astype(str)):
        name = f"contact_sheet_{safe_name(db)}"
        if draw(run, name, contact_sheet, merged[merged["db"] == db], db, face_of,
                per_expression, fmt="png"):
            names.append(name)
    for stale in run.figures.glob("contact_sheet_*.png"):  # databases no longer in the run
        if stale.stem not in names:
            stale.unlink()
    return names


#: Columns of ``tables/preprocess.csv``.
PREPROCESS_COLUMNS = ["db", "path", "detected", "x", "y", "w", "h", "n_faces", "reason",
                      "cache_key"]


#: Columns of ``tables/screening.csv``: every detected face's width and sharpness.
SCREENING_COLUMNS = ["db", "path", "face_width", "sharpness", "reason"]


#: Exclusion categories decided by subject selection or by this stage itself (face
#: detection, screening): such images are candidates again on every run (e.g. after a change
#: of detection parameters or screening thresholds).
RECONSIDERED_CATEGORIES = (databases.SELECTION_CATEGORIES | {"no face detected", CHANGED}
                           | SCREENING_CATEGORIES)


#: Arrays of every pre-processing cache entry (a detected face's has ``image`` too).
RESULT_ARRAYS = ("detected", "n_faces", "box", "reason")


@dataclass
class PreprocessSummary:
    """What the pre-processing stage did."""

    processed: int = 0
    from_cache: int = 0
    detected: int = 0
    not_detected: int = 0
    several_faces: int = 0
    unreadable: int = 0
    changed: int = 0
    near_duplicates: int = 0
    duplicate_groups: int = 0
    too_small: int = 0
    blurred: int = 0
    per_db: dict[str, dict[str, int]] = field(default_factory=dict)


def _candidate_mask(images: pd.DataFrame) -> pd.Series:
    cat = images["reason"].fillna("").map(databases.reason_category)
    return images["included"].astype(bool) | cat.isin(RECONSIDERED_CATEGORIES)


def _read_checked(path: str, sha: str) -> tuple[np.ndarray | None, str]:
    """Decode the image at ``path`` if it still holds the bytes ingest hashed (``sha``).

    The file is read once and the bytes hashed are the bytes decoded, so a file replaced
    after ingest is never cached under the hash of the file it replaced (the cache is
    shared by every study).

    Returns
    -------
    tuple
        ``(gray, "")``, or ``(None, reason)`` with reason ``unreadable image: ...`` or
        ``changed since ingest: ...`` (an exclusion reason of ``tables/images.csv``).
    """
    try:
        data = read_image_bytes(path)
    except ImageReadError as exc:
        return None, f"unreadable image: {exc}"
    actual = sha256_bytes(data)
    if sha and actual != sha:
        return None, (f"{CHANGED}: {path} is not the file ingest hashed (sha256 "
                      f"{actual[:12]} instead of {sha[:12]}); run `facedialect ingest` again")
    try:
        return decode_gray(data, path), ""
    except ImageReadError as exc:
        return None, f"unreadable image: {exc}"


def _process_one(path: str, key: str, params: PreprocessParams, cache: ArrayCache,
                 sha: str = "", screen_cache: ArrayCache | None = None
                 ) -> tuple[FaceResult, bool]:
    hit = cache.get(key, required=RESULT_ARRAYS)
    if hit is not None and bool(hit["detected"]) and "image" not in hit:
        cache.damaged(key, "lacks image")
        hit = None
    if hit is not None:
        return _result_from_cache(hit), True
    gray, why = _read_checked(path, sha)
    if gray is None:
        return FaceResult(image=None, detected=False, n_faces=0, box=None, reason=why), False
    res = preprocess_face(gray, params)
    arrays: dict[str, np.ndarray] = {
        "detected": np.array(res.detected), "n_faces": np.array(res.n_faces),
        "box": np.array(res.box if res.box is not None else (-1, -1, -1, -1)),
        "reason": np.array(res.reason),
    }
    if res.image is not None:
        arrays["image"] = res.image
    cache.put(key, **arrays)
    if screen_cache is not None and sha and res.box is not None:
        _screen_compute(gray, sha, res.box, screen_cache)  # while the image is decoded
    return res, False


def _result_from_cache(hit: Mapping[str, np.ndarray]) -> FaceResult:
    box = tuple(int(v) for v in hit["box"])
    return FaceResult(image=hit.get("image"), detected=bool(hit["detected"]),
                      n_faces=int(hit["n_faces"]),
                      box=None if box[0] < 0 else box,  # type: ignore[arg-type]
                      reason=str(hit["reason"]))


def _hash_key(sha: str) -> str:
    return hashlib.sha256(f"{screening.HASH_VERSION}:{sha}".encode()).hexdigest()


def _sharpness_key(sha: str, box: Sequence[int]) -> str:
    x, y, w, h = (int(v) for v in box)
    return hashlib.sha256(f"{screening.SHARPNESS_VERSION}:{sha}:{x},{y},{w},{h}".encode()
                          ).hexdigest()


def _screen_compute(gray: np.ndarray, sha: str, box: Sequence[int], cache: ArrayCache
                    ) -> tuple[np.ndarray, float]:
    """Hash and sharpness of one decoded image; both are cached."""
    hashes = screening.perceptual_hash(gray)
    cache.put(_hash_key(sha), hash=hashes)
    sharp = screening.sharpness(gray, tuple(int(v) for v in box))  # type: ignore[arg-type]
    cache.put(_sharpness_key(sha, box), sharpness=np.array(sharp))
    return hashes, sharp


def _screen_one(path: str, sha: str, box: Sequence[int], cache: ArrayCache
                ) -> tuple[np.ndarray | None, float, bool, str]:
    """Return (hash, sharpness, from cache, error) of one image, decoding it only if needed."""
    h = cache.get(_hash_key(sha), required=("hash",))
    s = cache.get(_sharpness_key(sha, box), required=("sharpness",))
    if h is not None and s is not None:
        return h["hash"], float(s["sharpness"]), True, ""
    gray, why = _read_checked(path, sha)
    if gray is None:
        return None, float("nan"), False, why
    hashes, sharp = _screen_compute(gray, sha, box, cache)
    return hashes, sharp, False, ""


def _screen(faces: pd.DataFrame, settings: ScreeningConfig, db_order: Sequence[str],
            cache: ArrayCache, workers: int) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Screen the detected faces: size, sharpness, near duplicates.

    Parameters
    ----------
    faces : pandas.DataFrame
        One row per detected face: ``db, path, subject, sha256, x, y, w, h``.
    settings : ScreeningConfig
        The thresholds.
    db_order : sequence of str
        The databases in study order (the first keeps a duplicate).
    cache : ArrayCache
        The screening cache.
    workers : int
        Threads for decoding.

    Returns
    -------
    tuple
        The screening table (:data:`SCREENING_COLUMNS`, index of ``faces``), the duplicate
        groups (:data:`~facedialect.preprocess.screening.DUPLICATE_COLUMNS` plus the kept
        image's ``kept_db``, ``kept_path``) and the number of images read from the cache.
    """
    faces = faces.reset_index(drop=True)
    n = len(faces)
    hashes: list[np.ndarray | None] = [None] * n
    sharp = np.full(n, np.nan)
    errors = [""] * n
    hits = 0
    if n and (settings.near_duplicates or settings.min_sharpness > 0):
        boxes = faces[["x", "y", "w", "h"]].astype(int).to_numpy()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            done = pool.map(lambda k: _screen_one(faces["path"].iat[k], faces["sha256"].iat[k],
                                                  boxes[k], cache), range(n))
            for k, (h, s, hit, err) in enumerate(done):
                hashes[k], sharp[k], errors[k] = h, s, err
                hits += hit
    table = pd.DataFrame({"db": faces["db"], "path": faces["path"],
                          "face_width": faces["w"].astype(int), "sharpness": sharp.round(1)})
    table["reason"] = screening.quality_reasons(
        table.rename(columns={"face_width": "w"}), settings.min_face, settings.min_sharpness)
    bad = np.array([bool(e) for e in errors], dtype=bool)
    table.loc[bad, "reason"] = [e for e in errors if e]
    dups = pd.DataFrame(columns=[*screening.DUPLICATE_COLUMNS, "kept_db", "kept_path"])
    if settings.near_duplicates:
        left = table[(table["reason"] == "").to_numpy()]
        ordered = screening.study_order(left, db_order)
        if len(ordered):
            stack = np.stack([hashes[k] for k in ordered.index])  # type: ignore[misc]
            dups = screening.group_near_duplicates(
                ordered.assign(subject=faces.loc[ordered.index, "subject"]), stack,
                settings.hash_distance, within_subject=settings.within_subject)
            gone = dups[~dups["kept"].astype(bool)]
            table.loc[gone.index, "reason"] = [
                screening.duplicate_reason(kdb, kpath, d) for kdb, kpath, d
                in zip(gone["kept_db"], gone["kept_path"], gone["distance"], strict=True)]
    return table[SCREENING_COLUMNS], dups, hits


def _warn_changed(images: pd.DataFrame) -> int:
    """Warn about images excluded as changed since ingest; return how many."""
    paths = images.loc[images["reason"].map(databases.reason_category) == CHANGED, "path"]
    if len(paths):
        warnings.warn(f"{len(paths)} image(s) {CHANGED} were excluded (e.g. {paths.iat[0]}; "
                      f"see tables/images.csv): run `facedialect ingest` again",
                      FacedialectWarning, stacklevel=3)
    return len(paths)


def _check_left(table: pd.DataFrame, dups: pd.DataFrame) -> None:
    """Raise InputError for a database of which screening left no image."""
    for db, part in table.groupby("db", sort=False):
        if (part["reason"] == "").any():
            continue
        cats = part["reason"].map(databases.reason_category).value_counts()
        what = ", ".join(f"{n} {c}" for c, n in cats.items())
        msg = (f"database {db!r}: screening left no image (of {len(part)} detected faces: "
               f"{what})")
        lost = dups[(dups["db"] == db) & ~dups["kept"].astype(bool)]
        others = sorted(set(lost["kept_db"]) - {str(db)})
        if others:
            msg += (f"; its images are near duplicates of images in {', '.join(others)} "
                    f"(see tables/duplicates.csv): is it a copy of that database? Remove one "
                    f"of them from the study, or set [screening] near_duplicates = false")
        if cats.drop(NEAR_DUPLICATE, errors="ignore").sum():
            msg += ("; see tables/screening.csv and lower [screening] min_face or "
                    "min_sharpness")
        raise InputError(msg)


def preprocess_images(run: RunDir, params: PreprocessParams, *,
                     n_subjects: Mapping[str, int | None] | None = None,
                     cache_dir: str | Path | None = None, workers: int | None = None,
                     progress: Callable[[int, int], None] | None = None,
                     faces_per_expression: int = 4,
                     screen: ScreeningConfig | None = None) -> PreprocessSummary:
    """Detect, normalise and mask every candidate image; write ``tables/preprocess.csv``.

    Images without a detected face are excluded in ``tables/images.csv``; then the detected
    faces are screened (face size, blur, near duplicates within and between the databases;
    ``tables/screening.csv``, ``tables/duplicates.csv``) and subject selection is re-done,
    so a subject who lost an expression is replaced where possible. Results are cached by
    image content hash and parameters: a second run reads no image. An image read is hashed
    as it is decoded: one whose bytes are not those ingest hashed is excluded
    (``changed since ingest: ...``, with a warning) and never cached under ingest's hash. A
    damaged cache entry is computed again (with a warning).

    Parameters
    ----------
    run : RunDir
        The run directory (must hold ``tables/images.csv``).
    params : PreprocessParams
        Pre-processing parameters.
    n_subjects : mapping, optional
        Subjects to keep per database (default: as recorded at ingestion, else 60).
    cache_dir : path, optional
        The shared cache folder.
    workers : int, optional
        Threads (default: CPU count).
    progress : callable, optional
        Called as ``progress(done, total)``.
    faces_per_expression : int
        Faces per expression on the contact sheets.
    screen : ScreeningConfig, optional
        The ``[screening]`` thresholds (default: the study file's defaults).

    Returns
    -------
    PreprocessSummary
        Counts for the CLI.

    Raises
    ------
    InputError
        When screening leaves no image of a database (e.g. every image is a near duplicate
        of another database's); the tables are written first.
    """
    screen = screen if screen is not None else ScreeningConfig()
    images = run.read_table("images")
    cache = preprocess_cache(cache_dir)
    screen_store = screening_cache(cache_dir)
    is_cand = _candidate_mask(images)
    images.loc[is_cand, "included"] = True  # decided afresh below
    images.loc[is_cand, "reason"] = ""
    cand = images[is_cand]
    keys = [preprocess_key(h, params.key()) for h in cand["sha256"]]
    summary = PreprocessSummary()
    with run.stage("preprocess", params_key=params.key(),
                   screening=screen.model_dump(mode="json")) as info:
        results: list[FaceResult] = []
        hits = 0
        total = len(cand)
        workers = workers or os.cpu_count() or 1
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = pool.map(lambda pk: _process_one(pk[0], pk[1], params, cache, pk[2],
                                                       screen_store),
                               zip(cand["path"], keys, cand["sha256"], strict=True))
            for i, (res, hit) in enumerate(futures, 1):
                results.append(res)
                hits += hit
                if progress:
                    progress(i, total)
        rows = []
        for (_, r), key, res in zip(cand.iterrows(), keys, results, strict=True):
            x, y, w, h = res.box if res.box is not None else ("", "", "", "")
            rows.append({"db": r["db"], "path": r["path"], "detected": res.detected,
                         "x": x, "y": y, "w": w, "h": h, "n_faces": res.n_faces,
                         "reason": res.reason, "cache_key": key if res.detected else ""})
        table = pd.DataFrame(rows, columns=PREPROCESS_COLUMNS)
        run.write_table("preprocess", table)

        # Exclude images without a face, then redo the subject selection.
        failed = dict(zip(table.loc[~table["detected"], "path"],
                          table.loc[~table["detected"], "reason"], strict=True))
        hit_rows = images["path"].isin(failed)
        images.loc[hit_rows, "included"] = False
        images.loc[hit_rows, "reason"] = images.loc[hit_rows, "path"].map(failed)

        # Screen the detected faces (size, blur, near duplicates across the study).
        faces = cand.loc[:, ["db", "path", "subject", "sha256"]].reset_index(drop=True)
        faces = pd.concat([faces, table[["x", "y", "w", "h"]]], axis=1)[table["detected"]]
        db_order = list(dict.fromkeys(images["db"].astype(str)))
        screened, dups, screen_hits = _screen(faces, screen, db_order, screen_store, workers)
        run.write_table("screening", screened)
        run.write_table("duplicates", dups[screening.DUPLICATE_COLUMNS])
        out = screened[screened["reason"] != ""]
        why = dict(zip(zip(out["db"], out["path"], strict=True), out["reason"], strict=True))
        at = pd.Series(list(zip(images["db"], images["path"], strict=True)),
                       index=images.index).map(why)
        hit_rows = at.notna()
        images.loc[hit_rows, "included"] = False
        images.loc[hit_rows, "reason"] = at[hit_rows]
        recorded = run.read_manifest().get("databases", {})
        parts = []
        for db, part in images.groupby("db", sort=False):
            n = (n_subjects or {}).get(str(db), recorded.get(str(db), {}).get(
                "n_subjects", DEFAULT_SUBJECTS))
            parts.append(databases.select_subjects(part, n))
        images = pd.concat(parts, ignore_index=True)
        run.write_table("images", images)
        summary.changed = _warn_changed(images)
        _check_left(screened, dups)

        cats = screened["reason"].map(databases.reason_category)
        summary.near_duplicates = int((cats == NEAR_DUPLICATE).sum())
        summary.duplicate_groups = int(dups["group"].nunique()) if len(dups) else 0
        summary.too_small = int((cats == FACE_TOO_SMALL).sum())
        summary.blurred = int((cats == BLURRED).sum())
        summary.processed = total
        summary.from_cache = hits
        summary.detected = int(table["detected"].sum())
        summary.not_detected = int((~table["detected"]).sum())
        summary.several_faces = int(table["reason"].str.startswith("several faces").sum())
        summary.unreadable = int(table["reason"].str.startswith("unreadable").sum())
        for db, part in table.groupby("db", sort=False):
            summary.per_db[str(db)] = {"candidates": len(part),
                                       "detected": int(part["detected"].sum())}
        info.update(processed=total, from_cache=hits, detected=summary.detected,
                    screening_from_cache=screen_hits, near_duplicates=summary.near_duplicates,
                    duplicate_groups=summary.duplicate_groups, too_small=summary.too_small,
                    blurred=summary.blurred)
    draw_contact_sheets(run, cache, faces_per_expression)
    return summary



def preprocess_section(run: RunDir) -> Section | None:
    """Detection results, contact sheets and faces that were not detected."""
    if not run.has_table("preprocess"):
        return None
    prep = run.read_table("preprocess")
    rate = (prep.groupby("db", sort=False)
            .agg(candidates=("detected", "size"), detected=("detected", "sum"))
            .reset_index())
    rate["detection_rate"] = rate["detected"] / rate["candidates"]
    several = prep[prep["reason"].fillna("").str.startswith("several faces")]
    rate["several_faces"] = rate["db"].map(several.groupby("db").size()).fillna(0).astype(int)
    blocks: list = [
        Text("Every candidate image was converted to grayscale, the largest face found by "
             "OpenCV's Haar frontal-face cascade was cropped, its histogram set to mean 128 "
             "and SD 32, everything outside a feathered oval set to 128, and the result "
             "resized to 224x224 (docs/method.md §2). Training uses 50 deterministic variants of "
             "each face (5 sizes x 5 positions x 2 reflections, docs/method.md §3)."),
        Table(rate, "Face detection per database.", "detection"),
    ]
    for fig in sorted(run.figures.glob("contact_sheet_*.png")):
        db = fig.stem.removeprefix("contact_sheet_")
        blocks.append(Figure(fig.read_bytes(), f"{db}: included faces per expression, the "
                             "original (around the detected box) beside the pre-processed "
                             "face.", fig.stem))
    missed = prep[~prep["detected"].astype(bool)]
    if len(missed):
        blocks.append(Table(missed[["db", "path", "reason"]], "Images without a usable face "
                            "(excluded).", "faces_not_detected"))
    return Section("preprocessing", "Pre-processing", blocks)


STAGE = Stage(
    name="preprocess", title="detect, normalise and screen the faces",
    reads=("tables/images.csv",),
    writes=("tables/preprocess.csv", "tables/screening.csv", "tables/duplicates.csv"),
    run=run, section=preprocess_section, config=("preprocess", "screening", "databases"),
    always=True)
