"""Synthetic data with known answers: cultures of faces, their databases, simulated raters.

- :mod:`~facedialect.synthetic.cultures`: cultures that pose the expressions with
  different AU prototypes (:class:`EastWestPreset`), drawn as face databases with a
  ``truth.csv`` (:func:`write_synthetic_database`);
- :mod:`~facedialect.synthetic.databases3d`: TOML presets and one database per culture
  drawn with the 3-D face model or photo textures (:func:`synthesize`,
  ``facedialect synth``);
- :mod:`~facedialect.synthetic.raters`: raters of cultures sharing known dimensions of
  meaning (:func:`simulate_ratings`);
- :mod:`~facedialect.synthetic.meaning_example`: a ready-to-run meaning study
  (``facedialect synth-ratings``);
- :mod:`~facedialect.synthetic.saliency`: two synthetic cultures trained in memory, the
  known-answer check of the saliency method (imports torch; not exported here).
"""

from facedialect.synthetic.cultures import (
    PROTOTYPES_A,
    PROTOTYPES_B,
    CultureDesign,
    EastWestPreset,
    culture_summary,
    sample_poser_expressions,
    write_synthetic_database,
)
from facedialect.synthetic.databases3d import (
    load_preset,
    preset_names,
    render_synth_3d,
    synthesize,
)
from facedialect.synthetic.meaning_example import write_meaning_example
from facedialect.synthetic.raters import (
    MeaningSimulator,
    SimCulture,
    SimulatedRatings,
    au_matrix,
    sample_au_vectors,
    shared_dims_simulator,
    simulate_ratings,
)

__all__ = [
    "PROTOTYPES_A",
    "PROTOTYPES_B",
    "CultureDesign",
    "EastWestPreset",
    "MeaningSimulator",
    "SimCulture",
    "SimulatedRatings",
    "au_matrix",
    "culture_summary",
    "load_preset",
    "preset_names",
    "render_synth_3d",
    "sample_au_vectors",
    "sample_poser_expressions",
    "shared_dims_simulator",
    "simulate_ratings",
    "synthesize",
    "write_meaning_example",
    "write_synthetic_database",
]
