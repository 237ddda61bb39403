"""Faces: the built-in procedural face, the 3-D face model, the average face and the stimuli.

- :mod:`~facedialect.faces.procedural`: the procedural face (shape, AUs, identity,
  landmarks, rendering);
- :mod:`~facedialect.faces.model3d`: the ICT 3-D face model (assets, model, AU recipes,
  rasteriser, renderer, photo-textured faces);
- :mod:`~facedialect.faces.average`: the landmark-aligned average face of photos;
- :mod:`~facedialect.faces.base`: the base face of the stimuli (:class:`BaseFace`);
- :mod:`~facedialect.faces.stimuli`: AU stimulus series on a base face.

Nothing here reads or writes a run directory. The synthetic cultures drawn with these
faces are in :mod:`facedialect.synthetic`.
"""

from facedialect.faces.average import AverageFace, average_face, write_average_face
from facedialect.faces.base import BaseFace
from facedialect.faces.model3d.model import FaceModel3D, load_model
from facedialect.faces.model3d.photo import PhotoFace, photo_face
from facedialect.faces.model3d.recipes import au_weights
from facedialect.faces.model3d.render import render_face_3d
from facedialect.faces.procedural.aus import AU_CATALOGUE_PROCEDURAL
from facedialect.faces.procedural.geometry import landmarks
from facedialect.faces.procedural.identity import FaceIdentity
from facedialect.faces.procedural.render import render_face
from facedialect.faces.stimuli import (
    Renderer,
    render_stimuli,
    renderer_for,
    stimulus_table,
    write_stimuli,
)

__all__ = [
    "AU_CATALOGUE_PROCEDURAL",
    "AverageFace",
    "BaseFace",
    "FaceIdentity",
    "FaceModel3D",
    "PhotoFace",
    "Renderer",
    "au_weights",
    "average_face",
    "landmarks",
    "load_model",
    "photo_face",
    "render_face",
    "render_face_3d",
    "render_stimuli",
    "renderer_for",
    "stimulus_table",
    "write_average_face",
    "write_stimuli",
]
