"""Small numeric helpers shared by the face renderers (procedural and 3-D)."""

from __future__ import annotations

import numpy as np

__all__ = ["smoothstep"]


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    """Hermite step from 0 (at ``e0``) to 1 (at ``e1``): ``3t^2 - 2t^3`` of the clipped ramp.

    ``e1 < e0`` gives the falling step.
    """
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)
