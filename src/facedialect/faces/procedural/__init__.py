"""The built-in procedural face: a parametric 68-landmark model moved by the 20 study AUs.

The face needs no downloaded asset: a hand-made mean shape in the iBUG 68-point layout,
a few identity modes, one displacement field per action unit (AU), and a 2-D renderer
(OpenCV polygons, anti-aliased by super-sampling, shaded from a fake height field).
It is what the offline demo, the tests and the synthetic cultures
(:mod:`facedialect.synthetic.cultures`) use when the 3-D face model is not installed.

- :mod:`~facedialect.faces.procedural.shape`: the mean shape and the identity modes
  (the canonical frame);
- :mod:`~facedialect.faces.procedural.aus`: the AU catalogue (displacements and render
  parameters), AU validation;
- :mod:`~facedialect.faces.procedural.identity`: :class:`FaceIdentity`;
- :mod:`~facedialect.faces.procedural.geometry`: landmarks with identity, AUs and head
  pose;
- :mod:`~facedialect.faces.procedural.drawing`: 2-D masks, curves and shading helpers;
- :mod:`~facedialect.faces.procedural.relief`: the features' height field;
- :mod:`~facedialect.faces.procedural.render`: :func:`render_face`.

The public names are exported by :mod:`facedialect.faces`.
"""
