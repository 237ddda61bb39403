"""Face pre-processing: Haar detection, crop, histogram normalization, oval mask, 50 variants.

Pure functions on arrays: no file I/O and no caching (the pipeline stage does both).
"""

from facedialect.preprocess.augment import (
    N_VARIANTS,
    make_variants,
    variant,
    variant_matrix,
    variant_subset,
    variant_table,
)
from facedialect.preprocess.detect import (
    CascadeNotFoundError,
    Detections,
    detect_faces,
    detect_faces_info,
)
from facedialect.preprocess.normalize import apply_mask, normalize_region, oval_mask
from facedialect.preprocess.params import PIPELINE_VERSION, PreprocessParams
from facedialect.preprocess.pipeline import (
    REASON_NO_FACE,
    FaceResult,
    crop_face,
    normalize_face,
    preprocess_face,
)

__all__ = [
    "N_VARIANTS",
    "PIPELINE_VERSION",
    "REASON_NO_FACE",
    "CascadeNotFoundError",
    "Detections",
    "FaceResult",
    "PreprocessParams",
    "apply_mask",
    "crop_face",
    "detect_faces",
    "detect_faces_info",
    "make_variants",
    "normalize_face",
    "normalize_region",
    "oval_mask",
    "preprocess_face",
    "variant",
    "variant_matrix",
    "variant_subset",
    "variant_table",
]
