"""Downloadable face assets: the ICT Face Model Light, where it is looked for and its install.

The 3-D face model (``faces.model3d``) is not shipped with the package. It is looked for,
in order, at an explicit path, under ``$FACEDIALECT_ASSETS``, in the shared cache
(``cache_root()/assets``) and, for development and CI, in ``../shared/assets`` beside
the repository. :func:`install_ict_facekit` puts it into the cache: from a local copy of
the converted file, from a local copy of the model's OBJ files, or by downloading the OBJ
files of a pinned commit of the public ICT-FaceKit repository (:func:`download_ict_facekit`)
and converting them (:func:`convert_ict_facekit`). Every result is checked against the
fingerprint of the reference conversion (:data:`ICT_FACEKIT_FINGERPRINT`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from facedialect.errors import FacedialectError
from facedialect.files import atomic_write_bytes, atomic_write_text, cache_root
from facedialect.imageio import file_sha256

__all__ = [
    "ICT_FACEKIT_COMMIT",
    "ICT_FACEKIT_FILE",
    "ICT_FACEKIT_FINGERPRINT",
    "ICT_FACEKIT_NAME",
    "ICT_FACEKIT_RAW_URL",
    "ICT_FACEKIT_SHA256",
    "ICT_FACEKIT_SOURCE_SHA256",
    "AssetMissingError",
    "array_fingerprint",
    "candidate_paths",
    "check_fingerprint",
    "convert_ict_facekit",
    "download_ict_facekit",
    "find_ict_facekit",
    "ict_facekit_source_files",
    "install_ict_facekit",
    "parse_obj",
]

#: Asset folder name (``facedialect assets install ict-facekit``).
ICT_FACEKIT_NAME: Final[str] = "ict-facekit"
#: File name of the converted model.
ICT_FACEKIT_FILE: Final[str] = "ict_facekit_light.npz"
#: sha256 of the reference ``ict_facekit_light.npz`` (ICT-FaceKit commit da5f95a6, converted
#: to one npz). A conversion made here is a different file (zip timestamps), so files are
#: also accepted when their arrays match :data:`ICT_FACEKIT_FINGERPRINT`.
ICT_FACEKIT_SHA256: Final[str] = (
    "f7f6d7121821d6ba52573fd2ea0c3f7a9f0477e829de04b3cdf77344789989ee"
)
#: The ICT-FaceKit commit the model is converted from.
ICT_FACEKIT_COMMIT: Final[str] = "da5f95a607f5e6b37755b38d3385d7f2853732e5"
#: Public repository.
ICT_FACEKIT_REPO: Final[str] = "https://github.com/ICT-VGL/ICT-FaceKit"
#: Raw-file URL prefix of the pinned commit (``{prefix}/{path}``).
ICT_FACEKIT_RAW_URL: Final[str] = (
    f"https://raw.githubusercontent.com/ICT-VGL/ICT-FaceKit/{ICT_FACEKIT_COMMIT}"
)
#: Model folder inside the repository.
ICT_FACEKIT_MODEL_DIR: Final[str] = "FaceXModel"
#: Identity components of the Light model.
ICT_FACEKIT_N_IDENTITY: Final[int] = 100
#: sha256 of source files of the pinned commit, by repository path, where known. Empty:
#: they could not be fetched where this was written (no network). Files are then checked
#: by the cache's own ``SHA256SUMS`` (recorded at download, verified on every reuse) and the
#: conversion by :data:`ICT_FACEKIT_FINGERPRINT`.
ICT_FACEKIT_SOURCE_SHA256: Final[dict[str, str]] = {}

#: Fingerprint of the reference conversion: per array, its shape and dtype kind and either
#: the sha256 of its little-endian bytes (integers, strings) or its sum, sum of absolute
#: values and sum of squares in float64 (floats, compared with a relative tolerance so that
#: float32 rounding of another conversion passes). Derived from the reference npz.
ICT_FACEKIT_FINGERPRINT: Final[dict[str, dict[str, Any]]] = {
    "neutral": {"shape": [26719, 3], "kind": "f",
                "sums": [183296.3184138988, 386541.40037684934, 2737986.7318651695]},
    "triangles": {"shape": [52220, 3], "kind": "i", "sha256":
                  "9eabca46486196aa984f388df189eba8e924f3c67bfa42aed44e007f52aea03e"},
    "uv": {"shape": [28911, 2], "kind": "f",
           "sums": [67384.69564576936, 67384.69564576936, 179549.27238930052]},
    "triangle_uv": {"shape": [52220, 3], "kind": "i", "sha256":
                    "28697bb37ced96009ce5d3ec4b87df2e7ae4c80217588b705d9cc881891e772f"},
    "triangle_material": {"shape": [52220], "kind": "i", "sha256":
                          "8e2666b4a185ab2518216e175212475340ce96ad004f5421f5f7964706776c30"},
    "materials": {"shape": [12], "kind": "U", "sha256":
                  "c3d2db61726b533dd0e5f452b8f92112b927df08ad087effa834dc9c6e46786c"},
    "expression_names": {"shape": [53], "kind": "U", "sha256":
                         "a3b7c36cb0fd2e602690a4f3efd22624132fb795132506f89304db842d61b53f"},
    "expression_deltas": {"shape": [53, 26719, 3], "kind": "f",
                          "sums": [-1653.4811330266284, 108832.24014077941,
                                   97560.55297257131]},
    "identity_deltas": {"shape": [100, 26719, 3], "kind": "f",
                        "sums": [9275.832433993504, 94687.28523344397, 9318.667276609345]},
    "landmarks68": {"shape": [68], "kind": "i", "sha256":
                    "56af14add570e48821553b669f10d250490f84b594bab0937aed7b7e1bcec0f6"},
    "vertex_indices_json": {"shape": [], "kind": "U", "sha256":
                            "4a17f7c2750f370b070bbdba20511fc7f1f140ee7ebb58b7497c8fba6d7cc02a"},
}

_GET_SOURCE = (
    f"git clone {ICT_FACEKIT_REPO} && git -C ICT-FaceKit checkout {ICT_FACEKIT_COMMIT}, then "
    "`facedialect assets install ict-facekit --from ICT-FaceKit`"
)
_HOW_TO_GET = (
    "get it with `facedialect assets install ict-facekit` (downloads the model's OBJ files "
    f"from {ICT_FACEKIT_REPO} at commit {ICT_FACEKIT_COMMIT[:8]} and converts them), or "
    f"offline with `--from PATH` (a local {ICT_FACEKIT_FILE}, or a local copy of the "
    "repository or its FaceXModel folder), or set FACEDIALECT_ASSETS to a folder holding "
    f"{ICT_FACEKIT_NAME}/{ICT_FACEKIT_FILE}"
)

Fetch = Callable[[str, Path], None]
Progress = Callable[[int, int], None]


class AssetMissingError(FacedialectError):
    """A downloadable asset (e.g. the 3-D face model) is not installed or is corrupt."""


def _repo_shared_assets() -> Path | None:
    """``../shared/assets`` beside the repository root (development/CI), when it exists."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file():
            cand = parent.parent / "shared" / "assets"
            return cand if cand.is_dir() else None
    return None


def candidate_paths(path: str | Path | None = None) -> list[Path]:
    """Return where the model file is looked for, in order of preference.

    Parameters
    ----------
    path : str or Path, optional
        An explicit file (or a folder holding ``ict_facekit_light.npz``); when given it
        is the only candidate.

    Returns
    -------
    list[Path]
        Candidate files (they need not exist).
    """
    if path is not None:
        p = Path(path).expanduser()
        return [p / ICT_FACEKIT_FILE if p.is_dir() else p]
    out: list[Path] = []
    env = os.environ.get("FACEDIALECT_ASSETS")
    if env:
        out.append(Path(env).expanduser() / ICT_FACEKIT_NAME / ICT_FACEKIT_FILE)
    out.append(cache_root() / "assets" / ICT_FACEKIT_NAME / ICT_FACEKIT_FILE)
    shared = _repo_shared_assets()
    if shared is not None:
        out.append(shared / ICT_FACEKIT_NAME / ICT_FACEKIT_FILE)
    return out


def find_ict_facekit(path: str | Path | None = None) -> Path:
    """Locate ``ict_facekit_light.npz``.

    Parameters
    ----------
    path : str or Path, optional
        Explicit file or folder; otherwise ``$FACEDIALECT_ASSETS/ict-facekit``, the cache
        (``cache_root()/assets/ict-facekit``) and ``../shared/assets/ict-facekit`` beside
        the repository are tried in this order.

    Returns
    -------
    Path
        The first existing candidate.

    Raises
    ------
    AssetMissingError
        When none exists; the message lists the places tried and how to install it.
    """
    cands = candidate_paths(path)
    for c in cands:
        if c.is_file():
            return c
    tried = "; ".join(str(c) for c in cands)
    raise AssetMissingError(
        f"the 3-D face model (ICT Face Model Light) is not installed (looked in: {tried}); "
        + _HOW_TO_GET
    )


# ---------------------------------------------------------------------------------------
# Fingerprints
# ---------------------------------------------------------------------------------------


def _canonical_bytes(a: np.ndarray) -> bytes:
    if a.dtype.kind == "U":
        return "\n".join(str(s) for s in a.ravel()).encode("utf-8")
    if a.dtype.kind in "iu":
        return np.ascontiguousarray(a, dtype="<i8").tobytes()
    return np.ascontiguousarray(a).tobytes()


def array_fingerprint(arrays: Mapping[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """Fingerprint arrays the way :data:`ICT_FACEKIT_FINGERPRINT` records them.

    Parameters
    ----------
    arrays : Mapping[str, numpy.ndarray]
        Name -> array (an open npz works).

    Returns
    -------
    dict
        Name -> ``{"shape", "kind", "sha256"}`` for integer and string arrays (integers
        hashed as little-endian int64, strings as UTF-8 lines) or ``{"shape", "kind",
        "sums"}`` for floats (sum, sum of absolute values, sum of squares, in float64).
    """
    out: dict[str, dict[str, Any]] = {}
    for name in arrays:
        a = np.asarray(arrays[name])
        kind = "f" if a.dtype.kind == "f" else ("U" if a.dtype.kind in "US" else "i")
        entry: dict[str, Any] = {"shape": list(a.shape), "kind": kind}
        if kind == "f":
            x = a.astype(np.float64)
            entry["sums"] = [float(x.sum()), float(np.abs(x).sum()), float((x * x).sum())]
        else:
            entry["sha256"] = hashlib.sha256(_canonical_bytes(a.astype(str) if kind == "U"
                                                              else a)).hexdigest()
        out[name] = entry
    return out


def check_fingerprint(arrays: Mapping[str, np.ndarray],
                      expected: Mapping[str, Mapping[str, Any]] = ICT_FACEKIT_FINGERPRINT,
                      rtol: float = 1e-5) -> list[str]:
    """Compare arrays with a recorded fingerprint.

    Parameters
    ----------
    arrays : Mapping[str, numpy.ndarray]
        The arrays (e.g. an open npz).
    expected : Mapping
        A fingerprint as :func:`array_fingerprint` makes it.
    rtol : float
        Relative tolerance of the float sums (the signed sum is compared relative to the
        sum of absolute values).

    Returns
    -------
    list[str]
        One line per difference (empty when the arrays match).
    """
    names = list(arrays)
    problems = [f"missing array {k!r}" for k in expected if k not in names]
    got = array_fingerprint({k: arrays[k] for k in expected if k in names})
    for k, want in expected.items():
        if k not in got:
            continue
        have = got[k]
        if have["shape"] != list(want["shape"]) or have["kind"] != want["kind"]:
            problems.append(f"{k}: shape {tuple(have['shape'])} ({have['kind']}), expected "
                            f"{tuple(want['shape'])} ({want['kind']})")
        elif "sha256" in want:
            if have["sha256"] != want["sha256"]:
                problems.append(f"{k}: content differs")
        else:
            s, sa, sq = have["sums"]
            ws, wsa, wsq = want["sums"]
            if (abs(s - ws) > rtol * max(wsa, 1.0) or not math.isclose(sa, wsa, rel_tol=rtol)
                    or not math.isclose(sq, wsq, rel_tol=rtol)):
                problems.append(f"{k}: values differ (sums {s:.6g}, {sa:.6g}, {sq:.6g}; "
                                f"expected {ws:.6g}, {wsa:.6g}, {wsq:.6g})")
    return problems


# ---------------------------------------------------------------------------------------
# OBJ conversion
# ---------------------------------------------------------------------------------------


def parse_obj(path: str | Path, *, faces: bool = True) -> dict[str, Any]:
    """Read a Wavefront OBJ mesh (vertices, texture coordinates, polygons, materials).

    Parameters
    ----------
    path : str or Path
        The ``.obj`` file.
    faces : bool
        Also read texture coordinates, faces and materials (False: vertices only, faster).

    Returns
    -------
    dict
        ``vertices`` ``(V, 3)`` float64; with ``faces``: ``uv`` ``(U, 2)`` float64,
        ``triangles`` and ``triangle_uv`` ``(T, 3)`` int32 (0-based; polygons split into
        a fan of triangles ``(0, i, i + 1)``; ``triangle_uv`` is -1 where a corner has no
        texture coordinate), ``triangle_material`` ``(T,)`` int16 (index into
        ``materials``, in order of first ``usemtl``; -1 before any) and ``materials``.

    Raises
    ------
    AssetMissingError
        When the file cannot be read or a line is malformed (file and line named).
    """
    p = Path(path)
    try:
        lines = p.read_bytes().splitlines()
    except OSError as exc:
        raise AssetMissingError(f"{p}: cannot read ({exc.strerror or exc})") from exc
    verts: list[list[bytes]] = []
    uvs: list[list[bytes]] = []
    tris: list[tuple[int, int, int]] = []
    tuv: list[tuple[int, int, int]] = []
    tmat: list[int] = []
    materials: list[str] = []
    current = -1
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if line.startswith(b"v "):
            f = line.split()
            if len(f) < 4:
                raise AssetMissingError(f"{p}, line {number}: a vertex needs 3 coordinates")
            verts.append(f[1:4])
        elif not faces:
            continue
        elif line.startswith(b"vt "):
            f = line.split()
            if len(f) < 3:
                raise AssetMissingError(f"{p}, line {number}: a texture coordinate needs 2 "
                                        "values")
            uvs.append(f[1:3])
        elif line.startswith(b"usemtl"):
            name = line[6:].strip().decode("utf-8", "replace")
            if name not in materials:
                materials.append(name)
            current = materials.index(name)
        elif line.startswith(b"f "):
            corners = line.split()[1:]
            if len(corners) < 3:
                raise AssetMissingError(f"{p}, line {number}: a face needs 3 corners or more")
            vi, ti = [], []
            try:
                for c in corners:
                    parts = c.split(b"/")
                    v = int(parts[0])
                    vi.append(v - 1 if v > 0 else len(verts) + v)
                    t = int(parts[1]) if len(parts) > 1 and parts[1] else 0
                    ti.append(t - 1 if t > 0 else (len(uvs) + t if t < 0 else -1))
            except ValueError:
                raise AssetMissingError(f"{p}, line {number}: malformed face "
                                        f"{line.decode('utf-8', 'replace')!r}") from None
            for i in range(1, len(vi) - 1):
                tris.append((vi[0], vi[i], vi[i + 1]))
                tuv.append((ti[0], ti[i], ti[i + 1]))
                tmat.append(current)
    try:
        vertices = np.array(verts, dtype=np.float64).reshape(-1, 3)
        out: dict[str, Any] = {"vertices": vertices}
        if faces:
            out["uv"] = np.array(uvs, dtype=np.float64).reshape(-1, 2)
    except ValueError as exc:
        raise AssetMissingError(f"{p}: a coordinate is not a number ({exc})") from None
    if faces:
        t = np.array(tris, dtype=np.int64).reshape(-1, 3)
        if t.size and (t.min() < 0 or t.max() >= len(vertices)):
            raise AssetMissingError(f"{p}: a face refers to a vertex that does not exist")
        out.update(triangles=t.astype(np.int32),
                   triangle_uv=np.array(tuv, dtype=np.int32).reshape(-1, 3),
                   triangle_material=np.array(tmat, dtype=np.int16),
                   materials=materials)
    return out


def _model_dir(src: Path) -> Path:
    """The folder holding ``generic_neutral_mesh.obj``: ``src`` or ``src/FaceXModel``."""
    for cand in (src, src / ICT_FACEKIT_MODEL_DIR):
        if (cand / "generic_neutral_mesh.obj").is_file():
            return cand
    raise AssetMissingError(
        f"{src}: no ICT-FaceKit model files (generic_neutral_mesh.obj, here or in "
        f"{ICT_FACEKIT_MODEL_DIR}/); " + _HOW_TO_GET)


def convert_ict_facekit(src: str | Path, out_file: str | Path, *,
                        n_identity: int = ICT_FACEKIT_N_IDENTITY,
                        progress: Progress | None = None) -> Path:
    """Convert the model's OBJ files to one npz (what :mod:`.model3d.model` reads).

    Parameters
    ----------
    src : str or Path
        A copy of the ICT-FaceKit repository or its ``FaceXModel`` folder: the generic
        neutral mesh, ``identity000.obj`` ..., one OBJ per expression named in
        ``vertex_indices.json`` (``"expressions"``) and ``vertex_indices.json``. Only read.
    out_file : str or Path
        The npz to write (atomically: a temporary file, then renamed).
    n_identity : int
        Identity components to read (``identity000.obj`` ... ).
    progress : callable, optional
        ``progress(done, total)`` after each OBJ file.

    Returns
    -------
    Path
        ``out_file``, holding ``neutral``, ``triangles``, ``uv``, ``triangle_uv``,
        ``triangle_material``, ``materials``, ``expression_names``,
        ``expression_deltas``, ``identity_deltas`` (shapes minus the neutral mesh, float32),
        ``landmarks68`` (``idx_to_landmark_verts``) and ``vertex_indices_json`` (the file's
        text).

    Raises
    ------
    AssetMissingError
        When a file is missing or malformed, or the meshes disagree in vertex count.
    """
    folder = _model_dir(Path(src))
    vi_path = folder / "vertex_indices.json"
    try:
        vi_text = vi_path.read_text(encoding="utf-8")
        vi = json.loads(vi_text)
        expressions = [str(e) for e in vi["expressions"]]
        landmarks = np.asarray(vi["idx_to_landmark_verts"], dtype=np.int32)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AssetMissingError(f"{vi_path}: cannot read the expression list and landmarks "
                                f"({exc}); " + _HOW_TO_GET) from exc
    base = parse_obj(folder / "generic_neutral_mesh.obj")
    neutral = base["vertices"]
    n = len(neutral)
    if landmarks.shape != (68,) or landmarks.min() < 0 or landmarks.max() >= n:
        raise AssetMissingError(f"{vi_path}: idx_to_landmark_verts must be 68 vertex indices "
                                f"below {n}")
    names = [*expressions, *(f"identity{k:03d}" for k in range(n_identity))]
    deltas = np.empty((len(names), n, 3), np.float32)
    for i, name in enumerate(names):
        path = folder / f"{name}.obj"
        if not path.is_file():
            raise AssetMissingError(f"{path}: missing; " + _HOW_TO_GET)
        v = parse_obj(path, faces=False)["vertices"]
        if v.shape != (n, 3):
            raise AssetMissingError(f"{path}: {len(v)} vertices, the neutral mesh has {n}")
        deltas[i] = (v - neutral).astype(np.float32)
        if progress is not None:
            progress(i + 1, len(names))
    arrays = {
        "neutral": neutral.astype(np.float32),
        "triangles": base["triangles"],
        "uv": base["uv"].astype(np.float32),
        "triangle_uv": base["triangle_uv"],
        "triangle_material": base["triangle_material"],
        "materials": np.array(base["materials"]),
        "expression_names": np.array(expressions),
        "expression_deltas": deltas[: len(expressions)],
        "identity_deltas": deltas[len(expressions):],
        "landmarks68": landmarks,
        "vertex_indices_json": np.array(vi_text),
    }
    out = Path(out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part.npz")
    try:
        np.savez_compressed(tmp, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


# ---------------------------------------------------------------------------------------
# Download
# ---------------------------------------------------------------------------------------


def ict_facekit_source_files(expressions: Sequence[str] | None = None,
                             n_identity: int = ICT_FACEKIT_N_IDENTITY) -> list[str]:
    """Repository paths of the files the conversion needs.

    Parameters
    ----------
    expressions : sequence of str, optional
        Expression shape names (default: the 53 of
        :data:`facedialect.faces.model3d.recipes.BLENDSHAPE_NAMES`, the order of the model's
        ``vertex_indices.json``).
    n_identity : int
        Identity components.

    Returns
    -------
    list[str]
        ``LICENSE``, ``FaceXModel/vertex_indices.json``,
        ``FaceXModel/generic_neutral_mesh.obj``, the identity and the expression OBJs.
    """
    if expressions is None:
        from facedialect.faces.model3d.recipes import BLENDSHAPE_NAMES

        expressions = BLENDSHAPE_NAMES
    d = ICT_FACEKIT_MODEL_DIR
    return (["LICENSE", f"{d}/vertex_indices.json", f"{d}/generic_neutral_mesh.obj"]
            + [f"{d}/identity{k:03d}.obj" for k in range(n_identity)]
            + [f"{d}/{e}.obj" for e in expressions])


def _urllib_fetch(url: str, dest: Path) -> None:
    """Stream ``url`` to ``dest`` (the caller makes it atomic)."""
    with urllib.request.urlopen(url, timeout=60) as resp, open(dest, "wb") as f:  # noqa: S310
        shutil.copyfileobj(resp, f, length=1 << 20)


def _read_sums(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        digest, _, name = line.partition("  ")
        if digest and name:
            out[name] = digest
    return out


def _write_sums(path: Path, sums: Mapping[str, str]) -> None:
    atomic_write_text(path, "".join(f"{sums[k]}  {k}\n" for k in sorted(sums)))


def download_ict_facekit(dest_dir: str | Path, *, base_url: str = ICT_FACEKIT_RAW_URL,
                         files: Sequence[str] | None = None,
                         sha256: Mapping[str, str] | None = None,
                         fetch: Fetch | None = None,
                         progress: Progress | None = None) -> Path:
    """Download the model's source files into a folder (a resumable, checksummed cache).

    Each file goes to a temporary name and is renamed when complete; its sha256 is
    recorded in ``dest_dir/SHA256SUMS``. A file already there whose sha256 matches the
    record (and the known hash, when there is one) is not fetched again; one that does not
    match is fetched again.

    Parameters
    ----------
    dest_dir : str or Path
        Target folder (created); files keep their repository paths.
    base_url : str
        URL prefix; ``{base_url}/{path}`` is fetched (default: raw files of the pinned
        commit, :data:`ICT_FACEKIT_RAW_URL`).
    files : sequence of str, optional
        Repository paths (default: :func:`ict_facekit_source_files`).
    sha256 : Mapping[str, str], optional
        Known sha256 per path (default: :data:`ICT_FACEKIT_SOURCE_SHA256`); a download
        that differs is deleted and raises.
    fetch : callable, optional
        ``fetch(url, dest)`` writes the body of ``url`` to ``dest`` (default: urllib).
    progress : callable, optional
        ``progress(done, total)`` after each file.

    Returns
    -------
    Path
        ``dest_dir``.

    Raises
    ------
    AssetMissingError
        When a download fails (offline: the message says what to download and where to put
        it) or a file differs from its known sha256.
    """
    dest = Path(dest_dir)
    names = list(files) if files is not None else ict_facekit_source_files()
    known = dict(ICT_FACEKIT_SOURCE_SHA256 if sha256 is None else sha256)
    get = fetch or _urllib_fetch
    sums_path = dest / "SHA256SUMS"
    sums = _read_sums(sums_path)
    base = base_url.rstrip("/")
    for i, name in enumerate(names):
        target = dest / name
        want = known.get(name)
        if target.is_file() and name in sums and (want is None or sums[name] == want):
            if file_sha256(target) == sums[name]:
                if progress is not None:
                    progress(i + 1, len(names))
                continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        url = f"{base}/{name}"
        try:
            get(url, tmp)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            tmp.unlink(missing_ok=True)
            why = getattr(exc, "reason", None) or exc
            raise AssetMissingError(
                f"could not download {url} ({why}); offline? Get the files another way: "
                f"{_GET_SOURCE}, or download {ICT_FACEKIT_MODEL_DIR}/ of commit "
                f"{ICT_FACEKIT_COMMIT} into {dest} and run the install again") from exc
        digest = file_sha256(tmp)
        if want is not None and digest != want:
            tmp.unlink(missing_ok=True)
            raise AssetMissingError(f"{url}: sha256 {digest} differs from the expected {want}; "
                                    "the download is corrupt or the file changed")
        os.replace(tmp, target)
        sums[name] = digest
        _write_sums(sums_path, sums)
        if progress is not None:
            progress(i + 1, len(names))
    return dest


# ---------------------------------------------------------------------------------------
# Install
# ---------------------------------------------------------------------------------------


def _verify_npz(path: Path, fingerprint: Mapping[str, Mapping[str, Any]] | None) -> None:
    if fingerprint is None:
        return
    try:
        with np.load(path, allow_pickle=False) as d:
            problems = check_fingerprint(d, fingerprint)
    except (OSError, ValueError) as exc:
        raise AssetMissingError(f"{path}: not a readable npz ({exc}); " + _HOW_TO_GET) from exc
    if problems:
        raise AssetMissingError(
            f"{path}: not the ICT Face Model Light of commit {ICT_FACEKIT_COMMIT[:8]} (sha256 "
            f"{file_sha256(path)} differs from {ICT_FACEKIT_SHA256} and the arrays differ: "
            + "; ".join(problems[:4]) + "); the file is corrupt or a different version")


def install_ict_facekit(from_path: str | Path | None = None, allow_download: bool = False,
                        cache_dir: str | Path | None = None, *,
                        base_url: str = ICT_FACEKIT_RAW_URL, fetch: Fetch | None = None,
                        fingerprint: Mapping[str, Mapping[str, Any]] | None = (
                            ICT_FACEKIT_FINGERPRINT),
                        progress: Progress | None = None) -> Path:
    """Install the ICT Face Model Light into the cache.

    Parameters
    ----------
    from_path : str or Path, optional
        A local ``ict_facekit_light.npz`` (or a folder holding it, with its LICENSE), or a
        local copy of the ICT-FaceKit repository or its ``FaceXModel`` folder (converted).
        Never written to.
    allow_download : bool
        Without ``from_path``: download the source files of the pinned commit
        (:func:`download_ict_facekit`, cached under ``<cache>/assets/ict-facekit/source``)
        and convert them.
    cache_dir : str or Path, optional
        Cache root (default :func:`facedialect.files.cache_root`).
    base_url : str
        Where to download from (default :data:`ICT_FACEKIT_RAW_URL`).
    fetch : callable, optional
        ``fetch(url, dest)`` (default: urllib); for tests and mirrors.
    fingerprint : Mapping, optional
        What the converted arrays must match (default :data:`ICT_FACEKIT_FINGERPRINT`;
        None skips the check, for other conversions).
    progress : callable, optional
        ``progress(done, total)`` during download and conversion.

    Returns
    -------
    Path
        The installed file, ``<cache>/assets/ict-facekit/ict_facekit_light.npz``.

    Raises
    ------
    AssetMissingError
        When ``from_path`` does not exist or holds neither the npz nor the model files,
        when the result differs from the reference (sha256 and fingerprint), when no
        source is given and downloading is not allowed, or when a download fails.
    """
    dest_dir = cache_root(cache_dir) / "assets" / ICT_FACEKIT_NAME
    dest = dest_dir / ICT_FACEKIT_FILE
    if from_path is None:
        if not allow_download:
            raise AssetMissingError("no source given: " + _HOW_TO_GET)
        src = download_ict_facekit(dest_dir / "source", base_url=base_url, fetch=fetch,
                                   progress=progress)
        return _convert_into(src, dest, fingerprint, progress)
    src = Path(from_path).expanduser()
    if not src.exists():
        raise AssetMissingError(f"{src}: no such file or folder; " + _HOW_TO_GET)
    if src.is_dir():
        if not (src / ICT_FACEKIT_FILE).is_file():
            return _convert_into(src, dest, fingerprint, progress)
        src = src / ICT_FACEKIT_FILE
    digest = file_sha256(src)
    if digest != ICT_FACEKIT_SHA256:
        try:
            _verify_npz(src, fingerprint if fingerprint is not None else {})
        except AssetMissingError:
            raise AssetMissingError(
                f"{src}: sha256 {digest} differs from the expected {ICT_FACEKIT_SHA256} and "
                "its arrays are not the model's; the file is corrupt or a different "
                "conversion") from None
    if not (dest.is_file() and file_sha256(dest) == digest):
        atomic_write_bytes(dest, src.read_bytes())
    for extra in ("LICENSE", "README.md"):
        side = src.parent / extra
        if side.is_file():
            atomic_write_bytes(dest_dir / extra, side.read_bytes())
    return dest


def _convert_into(src: Path, dest: Path,
                  fingerprint: Mapping[str, Mapping[str, Any]] | None,
                  progress: Progress | None) -> Path:
    folder = _model_dir(src)
    tmp = dest.with_name(dest.name + ".new.npz")
    try:
        convert_ict_facekit(folder, tmp, progress=progress)
        _verify_npz(tmp, fingerprint)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    for lic in (folder / "LICENSE", folder.parent / "LICENSE"):
        if lic.is_file():
            atomic_write_bytes(dest.parent / "LICENSE", lic.read_bytes())
            break
    return dest
