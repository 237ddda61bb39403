"""Screening of web-collected sets: near-duplicate images, face size and blur (docs/method.md §1).

Pure functions on arrays and tables: no file I/O and no caching (the pre-processing stage,
:func:`facedialect.stages.preprocess_stage`, does both).

Near duplicates are found with a 576-bit perceptual hash (pHash: the signs of the lowest
24x24 DCT coefficients of the image shrunk to 96x96, relative to their median) of the
image and of its mirror image; the distance of two images is the smaller Hamming distance
of the first image's hash to the second's hash and to the second's mirror hash, so a
resized, re-encoded or mirrored copy is close. The 64-bit pHash and dHash (and, on
synthetic faces, the 256-bit pHash) do not separate copies from other photos on a studio
set: see docs/preprocessing.md for the distances measured on the London face set with
``bench/screening_hash_distances.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath

import cv2
import numpy as np
import pandas as pd

from facedialect.databases.schema import BLURRED, FACE_TOO_SMALL, NEAR_DUPLICATE, natural_key

#: Side of the pHash's square hash (24x24 = 576 bits).
HASH_SIZE = 24
#: Bits of one hash.
HASH_BITS = HASH_SIZE * HASH_SIZE
#: Version of the hashing; part of the cache key (bump it when the hash would change).
HASH_VERSION = f"phash{HASH_SIZE}-mirror-1"
#: Default largest distance (bits of 576) at which two images count as near duplicates.
DEFAULT_HASH_DISTANCE = 32
#: Side of the square the face region is resized to before its sharpness is measured.
SHARPNESS_SIZE = 64
#: Standard deviation the resized face region is scaled to before the Laplacian.
SHARPNESS_SD = 32.0
#: Version of the sharpness measure; part of the cache key.
SHARPNESS_VERSION = f"laplacian-var-{SHARPNESS_SIZE}-sd{SHARPNESS_SD:g}-1"

#: Columns of ``tables/duplicates.csv``.
DUPLICATE_COLUMNS = ["group", "db", "path", "kept", "distance"]

_WORDS = HASH_BITS // 64
_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def perceptual_hash(gray: np.ndarray) -> np.ndarray:
    """Return the 576-bit pHash of an image and of its mirror image.

    Parameters
    ----------
    gray : numpy.ndarray
        ``(H, W)`` uint8 grayscale image (the original pixels, any size).

    Returns
    -------
    numpy.ndarray
        ``(2, 9)`` uint64: row 0 the image's hash, row 1 the hash of its left-right mirror.
    """
    import imagehash  # imported here: only the screening needs it
    from PIL import Image

    arr = np.asarray(gray)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"expected a non-empty (H, W) grayscale image, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    out = np.empty((2, _WORDS), dtype=np.uint64)
    for k, img in enumerate((arr, np.ascontiguousarray(arr[:, ::-1]))):
        bits = imagehash.phash(Image.fromarray(img), hash_size=HASH_SIZE).hash
        packed = np.packbits(np.asarray(bits, dtype=bool).ravel())  # 72 bytes, big-endian
        out[k] = packed.view(">u8").astype(np.uint64)
    return out


def _popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x)
    return _POPCOUNT8[x[..., None].view(np.uint8)].sum(axis=-1)  # pragma: no cover


def hash_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distances between two sets of hashes, mirror copies included.

    Parameters
    ----------
    a, b : numpy.ndarray
        ``(n, 2, 9)`` and ``(m, 2, 9)`` uint64 hashes from :func:`perceptual_hash`.

    Returns
    -------
    numpy.ndarray
        ``(n, m)`` int: for each pair the smaller Hamming distance of ``a``'s hash to
        ``b``'s hash and to ``b``'s mirror hash (0..576).
    """
    a = np.asarray(a, dtype=np.uint64).reshape(-1, 2, _WORDS)
    b = np.asarray(b, dtype=np.uint64).reshape(-1, 2, _WORDS)
    direct = np.zeros((len(a), len(b)), dtype=np.int32)
    mirror = np.zeros((len(a), len(b)), dtype=np.int32)
    for w in range(_WORDS):
        col = a[:, 0, w][:, None]
        direct += _popcount(col ^ b[None, :, 0, w])
        mirror += _popcount(col ^ b[None, :, 1, w])
    return np.minimum(direct, mirror)


def near_pairs(hashes: np.ndarray, threshold: int, block: int = 256
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair of images at most ``threshold`` apart.

    Parameters
    ----------
    hashes : numpy.ndarray
        ``(n, 2, 9)`` uint64 hashes.
    threshold : int
        Largest distance of a pair.
    block : int
        Rows compared at once (memory: about ``block * n * 8`` bytes).

    Returns
    -------
    tuple of numpy.ndarray
        ``(i, j, distance)`` with ``i < j``, sorted by ``j`` then ``i``.
    """
    hashes = np.asarray(hashes, dtype=np.uint64).reshape(-1, 2, _WORDS)
    n = len(hashes)
    ii, jj, dd = [], [], []
    for start in range(0, n, block):
        stop = min(n, start + block)
        d = hash_distances(hashes[start:stop], hashes[:stop])  # rows j, columns i <= j
        rows, cols = np.nonzero(d <= threshold)
        j = rows + start
        keep = cols < j
        ii.append(cols[keep])
        jj.append(j[keep])
        dd.append(d[rows[keep], cols[keep]])
    if not ii:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy(), empty.copy()
    i, j, dist = (np.concatenate(x).astype(np.int64) for x in (ii, jj, dd))
    order = np.lexsort((i, j))
    return i[order], j[order], dist[order]


def study_order(items: pd.DataFrame, db_order: Sequence[str]) -> pd.DataFrame:
    """Sort images in keep order: the databases in study order, then the paths.

    Parameters
    ----------
    items : pandas.DataFrame
        At least the columns ``db`` and ``path``.
    db_order : sequence of str
        The study's databases, first first (databases not listed come last, by name).

    Returns
    -------
    pandas.DataFrame
        ``items`` reordered (index kept); paths compare in natural order ("2" before "10").
    """
    rank = {str(db): k for k, db in enumerate(db_order)}
    keys = [(rank.get(str(db), len(rank)), str(db), natural_key(str(p)), str(p))
            for db, p in zip(items["db"], items["path"], strict=True)]
    order = sorted(range(len(items)), key=keys.__getitem__)
    return items.iloc[order]


def group_near_duplicates(items: pd.DataFrame, hashes: np.ndarray, threshold: int, *,
                          within_subject: bool = True) -> pd.DataFrame:
    """Group near-duplicate images and choose the one of each group to keep.

    Images are taken in the given order (see :func:`study_order`). An image within
    ``threshold`` of an image already kept joins the group of the nearest such image (the
    earliest on a tie); otherwise it is kept and starts a group. So every kept image is
    more than ``threshold`` from every other kept image, and every excluded image is within
    ``threshold`` of the kept image of its group; there is no chaining through excluded
    images. With ``within_subject=False`` two images of the same (non-empty) subject in
    the same database are never near duplicates of each other.

    Parameters
    ----------
    items : pandas.DataFrame
        Columns ``db`` and ``path`` (and ``subject`` for ``within_subject=False``), one row
        per image, in keep order.
    hashes : numpy.ndarray
        ``(n, 2, 9)`` uint64 hashes of the rows (see :func:`perceptual_hash`).
    threshold : int
        Largest distance of near duplicates (bits of 576).
    within_subject : bool
        Whether images of one subject in one database are compared too.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`DUPLICATE_COLUMNS` (plus ``kept_db`` and ``kept_path``), one row per
        image in a group of two or more; groups numbered 1, 2, ... in the order of their
        kept image; ``distance`` is 0 for the kept image, else the distance to it. The
        index is that of ``items``.
    """
    n = len(items)
    if len(hashes) != n:
        raise ValueError(f"{n} images but {len(hashes)} hashes")
    i, j, dist = near_pairs(hashes, threshold)
    if not within_subject and "subject" in items.columns and len(i):
        who = (items["db"].astype(str) + "\0" + items["subject"].fillna("").astype(str)
               ).to_numpy()
        has = items["subject"].fillna("").astype(str).str.strip().ne("").to_numpy()
        other = (who[i] != who[j]) | ~has[i]
        i, j, dist = i[other], j[other], dist[other]
    leader = np.full(n, -1, dtype=np.int64)  # -1: kept (a group's first image)
    to_leader = np.zeros(n, dtype=np.int64)
    start = np.searchsorted(j, np.arange(n + 1))  # pairs of image k: start[k]:start[k+1]
    for k in range(n):
        lo, hi = start[k], start[k + 1]
        best = (threshold + 1, n)
        for e in range(lo, hi):
            cand = int(i[e])
            if leader[cand] == -1 and (int(dist[e]), cand) < best:
                best = (int(dist[e]), cand)
        if best[1] < n:
            leader[k], to_leader[k] = best[1], best[0]
    members = np.flatnonzero(leader >= 0)
    heads = sorted(set(leader[members].tolist()))
    number = {h: g for g, h in enumerate(heads, 1)}
    rows = []
    dbs = items["db"].astype(str).to_numpy()
    paths = items["path"].astype(str).to_numpy()
    for k in sorted([*heads, *members.tolist()]):
        head = k if leader[k] == -1 else int(leader[k])
        rows.append({"group": number[head], "db": dbs[k], "path": paths[k],
                     "kept": leader[k] == -1, "distance": int(to_leader[k]),
                     "kept_db": dbs[head], "kept_path": paths[head], "_index": items.index[k]})
    cols = [*DUPLICATE_COLUMNS, "kept_db", "kept_path"]
    if not rows:
        return pd.DataFrame(columns=cols)
    out = pd.DataFrame(rows).set_index("_index")
    out.index.name = items.index.name
    return out.sort_values(["group", "kept"], ascending=[True, False], kind="stable")[cols]


def duplicate_reason(kept_db: str, kept_path: str, distance: int) -> str:
    """Exclusion reason of a near duplicate: ``near duplicate: DB/FILE (distance d)``."""
    return (f"{NEAR_DUPLICATE}: {kept_db}/{PurePosixPath(kept_path).name} "
            f"(distance {int(distance)})")


def sharpness(gray: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Sharpness of a face: variance of the Laplacian of its region at a fixed size.

    The face box (clipped to the image) is resized to :data:`SHARPNESS_SIZE` squared
    (area averaging when shrinking, bilinear when enlarging), its gray values scaled to a
    standard deviation of :data:`SHARPNESS_SD` (as the pipeline normalizes every face), and
    the variance of its 3x3 Laplacian returned. So the value depends on neither the image
    size nor the contrast; a face enlarged from few pixels or out of focus scores low.
    The London studio photos score 244 to 861, the same blurred with a Gaussian of
    4 px (2% of the face width) 17 to 172 (docs/preprocessing.md).

    Parameters
    ----------
    gray : numpy.ndarray
        ``(H, W)`` uint8 image (original pixels).
    box : tuple of int
        Face box ``(x, y, w, h)`` in the image's pixels.

    Returns
    -------
    float
        The sharpness (0 for a flat or empty region).
    """
    x, y, w, h = (int(v) for v in box)
    rows, cols = gray.shape[:2]
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(cols, x + w), min(rows, y + h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return 0.0
    region = np.ascontiguousarray(gray[y0:y1, x0:x1], dtype=np.float32)
    shrink = (x1 - x0) >= SHARPNESS_SIZE and (y1 - y0) >= SHARPNESS_SIZE
    region = cv2.resize(region, (SHARPNESS_SIZE, SHARPNESS_SIZE),
                        interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    sd = float(region.std())
    if sd < 1e-3:
        return 0.0
    region = (region - float(region.mean())) * (SHARPNESS_SD / sd)
    return float(cv2.Laplacian(region, cv2.CV_32F).var())


def quality_reasons(table: pd.DataFrame, min_face: int, min_sharpness: float) -> pd.Series:
    """Exclusion reasons for faces that are too small or blurred.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``w`` (face box width, pixels of the original image) and ``sharpness``
        (NaN where not measured).
    min_face : int
        Smallest face box width kept (0: no limit).
    min_sharpness : float
        Smallest sharpness kept (0: no limit).

    Returns
    -------
    pandas.Series
        Per row "" (kept) or ``"face too small: width W px < MIN px"`` or
        ``"blurred: sharpness S < MIN"`` (the size is checked first).
    """
    out = pd.Series("", index=table.index, dtype=object)
    width = pd.to_numeric(table["w"], errors="coerce")
    sharp = pd.to_numeric(table["sharpness"], errors="coerce")
    if min_sharpness > 0:
        low = sharp < min_sharpness
        out[low] = [f"{BLURRED}: sharpness {s:.1f} < {min_sharpness:g}" for s in sharp[low]]
    if min_face > 0:
        small = width < min_face
        out[small] = [f"{FACE_TOO_SMALL}: width {int(v)} px < {min_face} px"
                      for v in width[small]]
    return out


__all__ = [
    "DEFAULT_HASH_DISTANCE", "DUPLICATE_COLUMNS", "HASH_BITS", "HASH_SIZE", "HASH_VERSION",
    "SHARPNESS_SIZE", "SHARPNESS_VERSION", "duplicate_reason", "group_near_duplicates",
    "hash_distances", "near_pairs", "perceptual_hash", "quality_reasons", "sharpness",
    "study_order",
]
