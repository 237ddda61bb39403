"""Shared dimensions of meaning (docs/method.md §9): per-culture rating heads, PPCA, preservation.

- :mod:`~facedialect.meaning.ratings`: ratings / raters files, validation, image matching;
- :mod:`~facedialect.meaning.heads`: batched per-culture rating heads of several runs;
- :mod:`~facedialect.meaning.ppca`: principal preserved components, cross-validated
  permutation test, the number of shared dimensions (pure analysis);
- :mod:`~facedialect.meaning.preservation`: preservation between cultures, split-half
  reliability, prediction accuracy (pure analysis);
- :mod:`~facedialect.meaning.figures`: the figures of the meaning tables.

The stage that reads the run directory and writes the tables is
:mod:`facedialect.stages.meaning`; simulated raters of cultures sharing known dimensions
are in :mod:`facedialect.synthetic.raters`.
"""

from facedialect.meaning.ppca import PPCAFit, PPCAResult, ppca, ppca_fit, ppca_test
from facedialect.meaning.preservation import (
    mean_preservation,
    meaning_preservation,
    prediction_correlations,
    ridge_cv_r2,
    split_half_reliability,
    weighted_reliability,
)

__all__ = [
    "PPCAFit", "PPCAResult", "mean_preservation", "meaning_preservation", "ppca", "ppca_fit",
    "ppca_test", "prediction_correlations", "ridge_cv_r2", "split_half_reliability",
    "weighted_reliability",
]
