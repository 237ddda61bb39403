"""The ICT Face Model Light as arrays: a linear 3-D face model (identity PCA + blendshapes).

Vertices are in centimetres, ``x`` toward the image's right (the subject's left), ``y`` up
and ``z`` toward the viewer. A face is ``neutral + sum(identity_coeffs * identity_deltas)
+ sum(blend_weights * expression_deltas)`` (:meth:`FaceModel3D.shape`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from facedialect.faces.model3d.assets import AssetMissingError, find_ict_facekit

__all__ = ["VERTEX_RANGES", "FaceModel3D", "load_model"]

#: Vertex ranges (inclusive, 0-based) from the model's documentation.
VERTEX_RANGES: Final[dict[str, tuple[int, int]]] = {
    "face": (0, 9408),
    "head_neck": (9409, 11247),
    "mouth_socket": (11248, 13293),
    "eye_sockets": (13294, 14061),
    "gums_tongue": (14062, 17038),
    "teeth": (17039, 21450),
    "eyeballs": (21451, 24590),
    "eye_extras": (24591, 26718),
}


@dataclass(frozen=True, eq=False)
class FaceModel3D:
    """A linear face model (read-only arrays).

    Attributes
    ----------
    neutral : numpy.ndarray
        ``(V, 3)`` float32 generic neutral mesh.
    triangles : numpy.ndarray
        ``(T, 3)`` int32 vertex indices (counter-clockwise seen from outside).
    triangle_material : numpy.ndarray
        ``(T,)`` int16 index into ``materials``.
    materials : tuple[str, ...]
        Material names (``M_Face``, ``M_Teeth``, ...).
    expression_names : tuple[str, ...]
        The 53 ARKit-style blendshape names (``_L`` = the subject's left, image right).
    expression_deltas : numpy.ndarray
        ``(53, V, 3)`` float32 blendshape minus neutral.
    identity_deltas : numpy.ndarray
        ``(100, V, 3)`` float32 identity PCA shapes minus neutral (coefficients ~ N(0, 1)).
    landmarks68 : numpy.ndarray
        ``(68,)`` int32 vertex of each iBUG 68-point landmark.
    source : str
        File the model was read from.
    """

    neutral: np.ndarray
    triangles: np.ndarray
    triangle_material: np.ndarray
    materials: tuple[str, ...]
    expression_names: tuple[str, ...]
    expression_deltas: np.ndarray
    identity_deltas: np.ndarray
    landmarks68: np.ndarray
    source: str = ""

    @property
    def n_vertices(self) -> int:
        """Number of vertices."""
        return int(self.neutral.shape[0])

    @property
    def n_expressions(self) -> int:
        """Number of blendshapes (53)."""
        return len(self.expression_names)

    @property
    def n_identity(self) -> int:
        """Number of identity components (100)."""
        return int(self.identity_deltas.shape[0])

    def expression_index(self, name: str) -> int:
        """Index of a blendshape by name (ValueError listing the names when unknown)."""
        try:
            return self.expression_names.index(name)
        except ValueError:
            raise ValueError(f"unknown blendshape {name!r}; the model has "
                             f"{', '.join(self.expression_names)}") from None

    def shape(self, identity_coeffs: np.ndarray | None = None,
              blend_weights: np.ndarray | None = None) -> np.ndarray:
        """Return the vertices of a face (linear in both arguments).

        Parameters
        ----------
        identity_coeffs : array_like, optional
            Up to ``n_identity`` coefficients (the first components; missing ones are 0).
        blend_weights : array_like, optional
            ``n_expressions`` blendshape weights (usually 0..1).

        Returns
        -------
        numpy.ndarray
            ``(V, 3)`` float32 vertex positions.

        Raises
        ------
        ValueError
            On a wrong length or non-finite value.
        """
        v = self.neutral.astype(np.float32, copy=True)
        if identity_coeffs is not None:
            c = np.asarray(identity_coeffs, dtype=np.float32).ravel()
            if c.size > self.n_identity or not np.all(np.isfinite(c)):
                raise ValueError(f"identity_coeffs: at most {self.n_identity} finite values, "
                                 f"got {c.size}")
            nz = np.flatnonzero(c)
            if nz.size:
                v += np.tensordot(c[nz], self.identity_deltas[nz], axes=1)
        if blend_weights is not None:
            w = np.asarray(blend_weights, dtype=np.float32).ravel()
            if w.size != self.n_expressions or not np.all(np.isfinite(w)):
                raise ValueError(f"blend_weights: need {self.n_expressions} finite values, "
                                 f"got {w.size}")
            nz = np.flatnonzero(w)
            if nz.size:
                v += np.tensordot(w[nz], self.expression_deltas[nz], axes=1)
        return v


def _ro(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


@functools.lru_cache(maxsize=4)
def _load(path: str) -> FaceModel3D:
    try:
        with np.load(path, allow_pickle=False) as d:
            model = FaceModel3D(
                neutral=_ro(d["neutral"].astype(np.float32)),
                triangles=_ro(d["triangles"].astype(np.int32)),
                triangle_material=_ro(d["triangle_material"].astype(np.int16)),
                materials=tuple(str(s) for s in d["materials"]),
                expression_names=tuple(str(s) for s in d["expression_names"]),
                expression_deltas=_ro(d["expression_deltas"].astype(np.float32)),
                identity_deltas=_ro(d["identity_deltas"].astype(np.float32)),
                landmarks68=_ro(d["landmarks68"].astype(np.int32)),
                source=path,
            )
    except (OSError, KeyError, ValueError) as exc:
        raise AssetMissingError(f"{path}: cannot read the face model ({exc}); reinstall it "
                                "with `facedialect assets install ict-facekit --from PATH`"
                                ) from exc
    n = model.neutral.shape[0]
    if (model.expression_deltas.shape[1:] != (n, 3) or model.identity_deltas.shape[1:] != (n, 3)
            or model.landmarks68.shape != (68,) or int(model.triangles.max()) >= n):
        raise AssetMissingError(f"{path}: inconsistent array shapes; reinstall the model")
    return model


def load_model(path: str | Path | None = None) -> FaceModel3D:
    """Load the ICT Face Model Light (cached per file).

    Parameters
    ----------
    path : str or Path, optional
        The npz file or its folder; otherwise looked for as
        :func:`facedialect.faces.model3d.assets.find_ict_facekit` describes.

    Returns
    -------
    FaceModel3D

    Raises
    ------
    AssetMissingError
        When the file is not found (the message says how to install it) or unreadable.
    """
    return _load(str(find_ict_facekit(path).resolve()))
