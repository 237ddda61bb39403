"""The 3-D face: the ICT Face Model Light, its AU recipes, its renderers and photo faces.

- :mod:`~facedialect.faces.model3d.assets`: where the model file is found; its install
  (download or local copy, conversion, fingerprint check);
- :mod:`~facedialect.faces.model3d.model`: :class:`FaceModel3D` (identity PCA +
  blendshapes) and :func:`load_model`;
- :mod:`~facedialect.faces.model3d.recipes`: FACS AUs as blendshape recipes
  (:func:`au_weights`);
- :mod:`~facedialect.faces.model3d.raster`: the vectorised triangle z-buffer;
- :mod:`~facedialect.faces.model3d.render`: :func:`render_model` and
  :func:`render_face_3d` (a :class:`~facedialect.faces.procedural.identity.FaceIdentity`
  drawn with the model);
- :mod:`~facedialect.faces.model3d.fit`: the model fitted to a photo's landmarks;
- :mod:`~facedialect.faces.model3d.photo`: :class:`PhotoFace`, a photo-textured 3-D face
  animated with AUs.

The public names researchers reuse are exported by :mod:`facedialect.faces`.
"""
