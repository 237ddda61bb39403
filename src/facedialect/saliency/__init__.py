"""Where the networks look: saliency per face region, and emotion modification (docs/method.md §8).

- :mod:`~facedialect.saliency.gradients`: plain and guided-backprop input gradients
  through backbone + head, batched over images and runs.
- :mod:`~facedialect.saliency.regions`: face regions from the 68 landmarks and each
  region's share of a map.
- :mod:`~facedialect.saliency.maps`: maps of every test image, region shares, means
  aligned on the mean face (no I/O).
- :mod:`~facedialect.saliency.stats`: region differences between databases (subject-level
  permutation test, Hedges' g, Benjamini-Hochberg).
- :mod:`~facedialect.saliency.modify`: gradient ascent toward a target expression.
- :mod:`~facedialect.saliency.figures`: the saliency figures (maps, differences, regions).

The stage that reads the run directory and writes tables and figures is
:mod:`facedialect.stages.saliency`.

Heavier modules (torch, matplotlib) are imported from their submodules.
"""

from facedialect.saliency.regions import REGIONS, region_labels, region_polygons, region_shares
from facedialect.saliency.stats import REGION_COLUMNS, STATS_COLUMNS, region_stats

__all__ = ["REGIONS", "REGION_COLUMNS", "STATS_COLUMNS", "region_labels", "region_polygons",
           "region_shares", "region_stats"]
