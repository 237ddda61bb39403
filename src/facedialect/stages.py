"""The study's stages: each reads its inputs from the run directory and writes its outputs there.

A stage function takes a :class:`~facedialect.run.store.RunDir` and plain parameters, does the
work (using the cache where it can) and returns a small summary for the CLI. Figures are
drawn from the tables the stage wrote.
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
from facedialect.config import DatabaseConfig, ScreeningConfig, Study
from facedialect.databases.schema import (
    BLURRED,
    CHANGED,
    FACE_TOO_SMALL,
    NEAR_DUPLICATE,
    SCREENING_CATEGORIES,
)
from facedialect.errors import FacedialectWarning, ImageReadError, InputError
from facedialect.imageio import decode_gray, read_image_bytes
from facedialect.preprocess import screening
from facedialect.preprocess.params import PreprocessParams
from facedialect.preprocess.pipeline import FaceResult, preprocess_face
from facedialect.run.store import (
    RUN_HINT,
    ArrayCache,
    RunDir,
    atomic_write_text,
    cache_root,
    sha256_bytes,
)
from facedialect.vocab import DEFAULT_SUBJECTS, EXPRESSIONS

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

Progress = Callable[[int, int], None]


# --------------------------------------------------------------------------------------- ingest
def ingest_stage(run: RunDir, dbs: Sequence[DatabaseConfig],
                 expressions: Sequence[str] = EXPRESSIONS, *,
                 progress: Callable[[str, int, int], None] | None = None,
                 prune: bool = False) -> pd.DataFrame:
    """Parse and validate each database; write ``tables/images.csv``.

    Rows of databases with other names already in the table are kept, so databases can be
    ingested one at a time; with ``prune`` (a whole study) they are dropped instead, with
    their entries in the manifest, so a database renamed or removed from the study file
    leaves no trace for the later stages (which read ``tables/images.csv``).

    Parameters
    ----------
    run : RunDir
        The run directory.
    dbs : sequence of DatabaseConfig
        The databases to ingest.
    expressions : sequence of str
        The study's label set (``[study] expressions``).
    progress : callable, optional
        Called as ``progress(label, done, total)`` while each database's files are hashed
        and decoded (label ``ingest NAME``).
    prune : bool
        Drop the rows and manifest entries of databases not in ``dbs`` (``facedialect
        run``); False keeps them (``facedialect ingest``, one database at a time).

    Returns
    -------
    pandas.DataFrame
        The whole images table.
    """
    with run.stage("ingest") as info:
        frames = []
        inputs: dict[str, str] = {}
        for db in dbs:
            df = databases.ingest(db.preset, db.root, db=db.name, options=db.options,
                                  n_subjects=db.n_subjects, expressions=expressions,
                                  label_map=db.label_map,
                                  exclude_expressions=db.exclude_expressions,
                                  merge_labels=db.merge_labels,
                                  progress=(lambda d, t, _label=f"ingest {db.name}":
                                            progress(_label, d, t)) if progress else None)
            frames.append(df)
            listing = "\n".join(f"{p}\t{h}" for p, h in zip(df["path"], df["sha256"],
                                                             strict=True))
            inputs[f"database:{db.name}"] = hashlib.sha256(
                listing.encode("utf-8", "surrogateescape")).hexdigest()  # any file name
        new = pd.concat(frames, ignore_index=True)
        if prune:
            _forget_databases(run, {db.name for db in dbs})
        elif run.has_table("images"):
            old = run.read_table("images")
            old = old[~old["db"].isin(new["db"].unique())]
            new = pd.concat([old, new], ignore_index=True) if len(old) else new
        run.write_table("images", new)
        run.update_manifest(inputs=inputs, expressions=list(expressions),
                            databases={db.name: {"preset": db.preset, "root": str(db.root),
                                                 "n_subjects": db.n_subjects,
                                                 "options": db.options,
                                                 "label_map": db.label_map,
                                                 "exclude_expressions": db.exclude_expressions}
                                       for db in dbs})
        info["images"] = int(len(new))
    return new


def _forget_databases(run: RunDir, keep: set[str]) -> None:
    """Remove the manifest entries of databases not in ``keep`` (a whole-study ingest)."""
    m = run.read_manifest()
    for key in list(m.get("databases", {})):
        if key not in keep:
            run.forget("databases", key)
    for key in list(m.get("inputs", {})):
        if key.startswith("database:") and key.removeprefix("database:") not in keep:
            run.forget("inputs", key)


# ----------------------------------------------------------------------------------- preprocess
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


def preprocess_key(sha256: str, params: PreprocessParams) -> str:
    """Cache key of one image's pre-processing: content hash + parameters (+ version)."""
    return hashlib.sha256(f"{sha256}:{params.key()}".encode()).hexdigest()


def preprocess_cache(configured: str | Path | None = None) -> ArrayCache:
    """The cache of pre-processed faces."""
    return ArrayCache(cache_root(configured) / "preprocess")


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


def load_face(key: str, cache: ArrayCache) -> np.ndarray:
    """Return the pre-processed face stored under ``key`` (224x224 uint8).

    Raises
    ------
    InputError
        When the cache has no sound face under that key (missing, or damaged: then with a
        :class:`~facedialect.errors.DamagedFileWarning`); ``facedialect preprocess``
        computes it again.
    """
    hit = cache.get(key, required=("image",))
    if hit is None:
        raise InputError(f"no pre-processed face cached under {key} ({cache.path(key)}): "
                         f"run `facedialect preprocess` again (it computes missing and "
                         f"damaged faces again)")
    return hit["image"]


# ------------------------------------------------------------------------------------ screening
def screening_cache(configured: str | Path | None = None) -> ArrayCache:
    """The cache of screening values (perceptual hashes, face sharpness)."""
    return ArrayCache(cache_root(configured) / "screening")


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


def preprocess_stage(run: RunDir, params: PreprocessParams, *,
                     n_subjects: Mapping[str, int | None] | None = None,
                     cache_dir: str | Path | None = None, workers: int | None = None,
                     progress: Progress | None = None,
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
    keys = [preprocess_key(h, params) for h in cand["sha256"]]
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
    from facedialect.report.figures import contact_sheets  # matplotlib only when drawing
    contact_sheets(run, cache, per_expression=faces_per_expression)
    return summary


# ------------------------------------------------------------------------------------ whole study
def save_study(run: RunDir, study: Study) -> None:
    """Write the resolved study file to ``config.toml`` and its seed to the manifest."""
    atomic_write_text(run.path / "config.toml", study.to_toml(), hint=RUN_HINT)
    run.update_manifest(seed=study.study.seed, study=study.study.name,
                        study_file_sha256=hashlib.sha256(study.to_toml().encode()).hexdigest())
