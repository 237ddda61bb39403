"""Parameters of the pre-processing pipeline: the ``[preprocess]`` section of a study file."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator, model_validator

#: Version of the pre-processing *algorithm*. Bump it whenever a change to the code would
#: change the output images for the same parameters, so that cached results are not reused.
PIPELINE_VERSION = "preprocess-1"

#: Number of augmentation scales the design requires (5 scales x 5 positions x 2 flips = 50).
N_SCALES = 5


class PreprocessParams(BaseModel):
    """Settings of face detection, cropping, normalization, masking and augmentation.

    Every field has a default; a study file only lists what it changes. The object is
    immutable, and :meth:`key` gives a stable hash of it for cache keys.
    """

    # strict: true is not the number 1 and "7" is not 7 (a TOML list still makes the tuple)
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    size: int = Field(
        224,
        ge=32,
        le=4096,
        description="Side of the square output image in pixels.",
    )
    scale_factor: float = Field(
        1.1,
        gt=1.0,
        le=2.0,
        description=(
            "Haar cascade: step between detection window sizes "
            "(OpenCV detectMultiScale scaleFactor)."
        ),
    )
    min_neighbors: int = Field(
        5,
        ge=0,
        le=100,
        description=(
            "Haar cascade: overlapping raw detections needed to keep a face "
            "(OpenCV minNeighbors); higher means fewer false faces."
        ),
    )
    min_face_fraction: float = Field(
        0.15,
        gt=0.0,
        le=1.0,
        description=(
            "Smallest face searched for, as a fraction of the image's shorter side "
            "(OpenCV minSize)."
        ),
    )
    face_choice: Literal["largest", "strongest"] = Field(
        "largest",
        description=(
            "Which face to use when the cascade finds several: 'largest' (the paper's rule) "
            "or 'strongest' (the one supported by most raw detections, which passes over "
            "large false detections around the head)."
        ),
    )
    retry_equalized: bool = Field(
        True,
        description=(
            "When the cascade finds no face, search once more on a histogram-equalized copy "
            "of the image (rescues dark faces on light backgrounds); the result's reason "
            "says so."
        ),
    )
    crop_scale: float = Field(
        1.6,
        gt=0.0,
        le=10.0,
        description=(
            "Side of the square face crop relative to the width of the Haar face box; "
            "the crop is resized to `size`."
        ),
    )
    crop_shift_y: float = Field(
        0.12,
        ge=-1.0,
        le=1.0,
        description=(
            "Move the crop centre down by this fraction of the Haar box width "
            "(Haar boxes sit high on the face: forehead to chin)."
        ),
    )
    target_mean: float = Field(
        128.0,
        gt=0.0,
        lt=255.0,
        description="Mean gray value of the face region (inside the oval) after normalization.",
    )
    target_sd: float = Field(
        32.0,
        gt=0.0,
        lt=127.5,
        description=(
            "Standard deviation of the gray values of the face region (inside the oval) "
            "after normalization."
        ),
    )
    oval_width: float = Field(
        0.62,
        gt=0.0,
        le=1.0,
        description=(
            "Full horizontal axis of the oval mask as a fraction of `size`; outside the oval "
            "every pixel is the mean gray (`target_mean`, rounded)."
        ),
    )
    oval_height: float = Field(
        0.85,
        gt=0.0,
        le=1.0,
        description="Full vertical axis of the oval mask as a fraction of `size`.",
    )
    feather: float = Field(
        0.04,
        gt=0.0,
        le=0.5,
        description=(
            "Width of the oval's smooth (raised-cosine) edge as a fraction of `size`; the edge "
            "lies inside the oval."
        ),
    )
    variant_scales: Annotated[tuple[float, float, float, float, float], Strict(False)] = Field(
        (1.00, 0.90, 0.95, 1.05, 1.10),
        description=(
            "Augmentation: the 5 sizes of the face relative to the plain image; the first "
            "must be 1.0 so that variant 0 is the plain image."
        ),
    )
    variant_shift_px: int = Field(
        8,
        gt=0,
        le=1024,
        description=(
            "Augmentation: shift in output pixels for the left/right/up/down positions "
            "(the 5 positions are centre, left, right, up, down)."
        ),
    )

    @field_validator("variant_scales")
    @classmethod
    def _check_scales(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(not math.isfinite(s) or s <= 0 for s in v):
            raise ValueError(f"every variant scale must be a positive number, got {list(v)}")
        if v[0] != 1.0:
            raise ValueError(
                f"the first variant scale must be exactly 1.0 (variant 0 is the plain image), "
                f"got {v[0]}"
            )
        if len(set(v)) != len(v):
            raise ValueError(f"variant scales must be distinct, got {list(v)}")
        return v

    @property
    def background_gray(self) -> int:
        """Gray value outside the oval and at the borders of shifted variants.

        It is ``target_mean`` rounded to an integer (128 by default), so the background is
        the mean gray of the face.
        """
        return int(round(self.target_mean))

    @model_validator(mode="after")
    def _check_feather(self) -> PreprocessParams:
        half_minor = min(self.oval_width, self.oval_height) / 2
        if self.feather >= half_minor:
            raise ValueError(
                f"feather ({self.feather}) must be smaller than half the oval's shorter axis "
                f"({half_minor:g}), otherwise no pixel is fully inside the mask"
            )
        return self

    def key(self) -> str:
        """Return a stable hash of these parameters and the pipeline version.

        Returns
        -------
        str
            Hex sha256 of the sorted JSON of every field plus :data:`PIPELINE_VERSION`;
            equal parameters give equal keys across processes and sessions.
        """
        payload = json.dumps(
            {"pipeline_version": PIPELINE_VERSION, "params": self.model_dump(mode="json")},
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()
