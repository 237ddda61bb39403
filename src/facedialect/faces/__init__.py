"""Faces: the built-in procedural face, synthetic cultures (and later the 3-D face model)."""

from facedialect.faces.procedural import (
    AU_CATALOGUE_PROCEDURAL,
    STUDY_AUS,
    FaceIdentity,
    landmarks,
    render_face,
)

__all__ = ["AU_CATALOGUE_PROCEDURAL", "STUDY_AUS", "FaceIdentity", "landmarks", "render_face"]
