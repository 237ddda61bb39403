"""Synthetic cultures with known answers (docs/method.md §10).

Two (or more) cultures pose the 7 expressions with different AU prototypes. Culture A
uses the classic prototypes; the default culture B changes fearful, angry, sad and
disgusted. Each poser has its own face, its own expressiveness, AU intensities drawn
around the prototype values and a small head pose; every image records the AU
intensities it was drawn with, so the method's findings can be checked against the truth.
A culture's design (:class:`CultureDesign`) makes its database look like real data:
several takes per poser and expression, unbalanced classes, posers lacking an
expression, a label set other than the 7, no subject ids.

A culture's folder holds the images, ``manifest.csv`` (for the ``manifest`` database preset)
and ``truth.csv`` (each image's AU intensities). :mod:`facedialect.synthetic.databases3d`
adds the 3-D face model, TOML presets and the ``facedialect synth`` command.
"""

from __future__ import annotations

import copy
import math
import multiprocessing
import os
import re
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal, Protocol

import numpy as np
import pandas as pd
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from facedialect.faces.procedural.identity import FaceIdentity
from facedialect.faces.procedural.render import render_face
from facedialect.vocab import EXPRESSIONS, KDEF_CODES, STUDY_AUS, name_seed

__all__ = [
    "PROTOTYPES_A",
    "PROTOTYPES_B",
    "PROTOTYPE_INTENSITY",
    "MANIFEST_COLUMNS",
    "TRUTH_COLUMNS",
    "TRUTH_FILE",
    "MAX_TAKES",
    "CultureDesign",
    "EastWestPreset",
    "PoserSample",
    "Renderer",
    "SyntheticImage",
    "check_classes",
    "check_prototypes",
    "check_takes",
    "culture_seed",
    "culture_summary",
    "sample_poser_expressions",
    "write_posers",
    "write_synthetic_database",
]

#: Intensity of every AU of a prototype (before per-poser and per-image variation).
PROTOTYPE_INTENSITY: Final[float] = 0.8


def _proto(*aus: int) -> dict[int, float]:
    return dict.fromkeys(aus, PROTOTYPE_INTENSITY)


#: Culture A, the classic prototypes: expression -> {AU: intensity}.
PROTOTYPES_A: Final[dict[str, dict[int, float]]] = {
    "neutral": _proto(),
    "happy": _proto(6, 12),
    "fearful": _proto(1, 2, 4, 5, 7, 20, 26),
    "sad": _proto(1, 4, 15),
    "angry": _proto(4, 5, 7, 23),
    "surprised": _proto(1, 2, 5, 26),
    "disgusted": _proto(9, 15, 16),
}

#: Culture B: A with fearful, angry, sad and disgusted changed.
PROTOTYPES_B: Final[dict[str, dict[int, float]]] = {
    **copy.deepcopy(PROTOTYPES_A),
    "fearful": _proto(1, 2, 5, 25),
    "sad": _proto(1, 17, 24),
    "angry": _proto(4, 7, 24),
    "disgusted": _proto(4, 9, 10),
}

#: Columns of ``truth.csv`` (long format: one row per image and study AU).
TRUTH_COLUMNS: Final[tuple[str, ...]] = ("path", "subject", "expression", "au", "intensity")
#: File of each image's true AU intensities, written last (its presence: folder complete).
TRUTH_FILE: Final[str] = "truth.csv"
#: Columns of ``manifest.csv`` (the ``manifest`` database preset's header).
MANIFEST_COLUMNS: Final[tuple[str, ...]] = ("path", "subject", "expression", "view", "session",
                                            "sex")

_EXPR_TO_KDEF: Final[dict[str, str]] = {v: k for k, v in KDEF_CODES.items()}
_CULTURE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")


def check_prototypes(table: Mapping[str, Mapping[int, float]], where: str = "prototypes",
                     fill_from: Mapping[str, Mapping[int, float]] | None = None,
                     ) -> dict[str, dict[int, float]]:
    """Validate one culture's prototype table and return it complete, in canonical order.

    Parameters
    ----------
    table : Mapping[str, Mapping[int, float]]
        Expression -> {AU: intensity}. Expressions must come from
        :data:`facedialect.vocab.EXPRESSIONS`; AUs from the 20 study AUs; intensities
        in ``[0, 1]``.
    where : str
        Where the table comes from, for error messages.
    fill_from : Mapping, optional
        Prototypes for the expressions ``table`` leaves out (for example
        :data:`PROTOTYPES_A`, so a culture lists only what it changes). When None,
        all 7 expressions are required.

    Returns
    -------
    dict[str, dict[int, float]]
        A new table with the 7 expressions in canonical order, AUs in study order.

    Raises
    ------
    ValueError
        On an unknown expression (the message lists the 7 valid ones), a missing one,
        an AU that is not a study AU or an intensity outside ``[0, 1]``.
    """
    if not isinstance(table, Mapping):
        raise ValueError(f"{where}: expected a table expression -> {{AU: intensity}}, "
                         f"got {type(table).__name__}")
    valid = ", ".join(EXPRESSIONS)
    for expr in table:
        if expr not in EXPRESSIONS:
            raise ValueError(f"{where}: unknown expression {expr!r}; the valid expressions "
                             f"are {valid}")
    missing = [e for e in EXPRESSIONS if e not in table and (fill_from is None
                                                            or e not in fill_from)]
    if missing:
        raise ValueError(f"{where}: missing expression(s) {', '.join(missing)}; a prototype "
                         f"table needs all of {valid}")
    out: dict[str, dict[int, float]] = {}
    for expr in EXPRESSIONS:
        src = table[expr] if expr in table else fill_from[expr]  # type: ignore[index]
        if not isinstance(src, Mapping):
            raise ValueError(f"{where}.{expr}: expected a mapping AU -> intensity, got "
                             f"{type(src).__name__}")
        aus: dict[int, float] = {}
        for key, value in src.items():
            try:
                if isinstance(key, bool):
                    raise ValueError
                au = int(str(key).strip())
            except ValueError:
                raise ValueError(f"{where}.{expr}: AU {key!r} is not a whole number") from None
            if au not in STUDY_AUS:
                raise ValueError(f"{where}.{expr}: unknown AU {key!r}; the study AUs are "
                                 f"{', '.join(str(a) for a in STUDY_AUS)}")
            try:
                v = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{where}.{expr}: AU{au} intensity {value!r} is not a "
                                 "number") from None
            if not math.isfinite(v) or not 0.0 <= v <= 1.0:
                raise ValueError(f"{where}.{expr}: AU{au} intensity must be in 0..1, "
                                 f"got {value!r}")
            aus[au] = v
        out[expr] = {au: aus[au] for au in STUDY_AUS if au in aus}
    return out


#: Most takes (images) one poser may have of one expression.
MAX_TAKES: Final[int] = 20


def check_takes(value: Any) -> tuple[int, int]:
    """Validate a take range ``[min, max]`` (images per poser and expression).

    Parameters
    ----------
    value : Any
        Two whole numbers with ``1 <= min <= max <=`` :data:`MAX_TAKES`.

    Returns
    -------
    tuple of int
        ``(min, max)``.

    Raises
    ------
    ValueError
        Otherwise; the message shows what was given and what is expected.
    """
    want = f"expected [min, max] with 1 <= min <= max <= {MAX_TAKES}, got {value!r}"
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) \
            or len(value) != 2:
        raise ValueError(want)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ValueError(f"{want} (whole numbers)")
    lo, hi = int(value[0]), int(value[1])
    if not 1 <= lo <= hi <= MAX_TAKES:
        raise ValueError(want)
    return lo, hi


def check_classes(value: Any) -> tuple[str, ...]:
    """Validate a culture's label set: at least 2 distinct expressions of the 7.

    Returns
    -------
    tuple of str
        The expressions in canonical order (:data:`facedialect.vocab.EXPRESSIONS`).

    Raises
    ------
    ValueError
        On an unknown expression (the valid ones listed), a repeated one, or fewer than 2.
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ValueError(f"expected a list of expressions, got {value!r}")
    for expr in value:
        if expr not in EXPRESSIONS:
            raise ValueError(f"unknown expression {expr!r}; the valid expressions are "
                             f"{', '.join(EXPRESSIONS)}")
    if len(set(value)) != len(value):
        raise ValueError(f"an expression is listed twice in {list(value)!r}")
    if len(value) < 2:
        raise ValueError(f"a label set needs at least 2 expressions, got {list(value)!r}")
    return tuple(e for e in EXPRESSIONS if e in value)


def _check_expression_takes(value: Any) -> dict[str, tuple[int, int]]:
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a table expression = [min, max], got {value!r}")
    out: dict[str, tuple[int, int]] = {}
    for expr, rng in value.items():
        if expr not in EXPRESSIONS:
            raise ValueError(f"unknown expression {expr!r}; the valid expressions are "
                             f"{', '.join(EXPRESSIONS)}")
        try:
            out[expr] = check_takes(rng)
        except ValueError as exc:
            raise ValueError(f"{expr}: {exc}") from None
    return {e: out[e] for e in EXPRESSIONS if e in out}


class CultureDesign(BaseModel):
    """How one culture's database is sampled: takes, label set, missing images, subject ids.

    ``takes``, ``expression_takes`` and ``missing_expression_share`` left as None take the
    preset's values (:class:`EastWestPreset`); :meth:`EastWestPreset.design_of` returns
    a culture's design with every value filled in.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    takes: tuple[int, int] | None = Field(
        None, description="Images per poser and expression, [min, max], drawn per poser and "
        "expression (None: the preset's).")
    expression_takes: dict[str, tuple[int, int]] | None = Field(
        None, description="Expression -> [min, max] takes, replacing ``takes`` for those "
        "expressions (unbalanced classes; None: the preset's).")
    missing_expression_share: float | None = Field(
        None, ge=0.0, le=1.0, description="Probability that a poser lacks one expression, "
        "drawn at random from the culture's classes (None: the preset's).")
    subject_ids: bool = Field(True, strict=True, description="False: the manifest's subject "
                              "column is empty and the files are named by expression and "
                              "number.")
    classes: tuple[str, ...] = Field(EXPRESSIONS, description="The culture's label set (at "
                                     "least 2 of the 7 expressions).")

    @field_validator("takes", mode="before")
    @classmethod
    def _takes_ok(cls, value: Any) -> Any:
        return value if value is None else check_takes(value)

    @field_validator("expression_takes", mode="before")
    @classmethod
    def _expression_takes_ok(cls, value: Any) -> Any:
        return value if value is None else _check_expression_takes(value)

    @field_validator("classes", mode="before")
    @classmethod
    def _classes_ok(cls, value: Any) -> tuple[str, ...]:
        return check_classes(value)

    @model_validator(mode="after")
    def _takes_of_own_classes(self) -> CultureDesign:
        other = [e for e in self.expression_takes or {} if e not in self.classes]
        if other:
            raise ValueError(f"expression_takes names {', '.join(other)}, not in the "
                             f"culture's classes ({', '.join(self.classes)})")
        return self

    def take_range(self, expression: str) -> tuple[int, int]:
        """``[min, max]`` takes of one expression (``expression_takes``, else ``takes``)."""
        return (self.expression_takes or {}).get(expression, self.takes or (1, 1))

    @property
    def is_plain(self) -> bool:
        """True for one image per poser and expression, all 7, nothing missing."""
        return (self.classes == EXPRESSIONS and not self.missing_expression_share
                and all(self.take_range(e) == (1, 1) for e in EXPRESSIONS))


class EastWestPreset(BaseModel):
    """Settings of the synthetic cultures: who poses what, how much it varies.

    ``prototypes`` maps a culture name to its prototype table (expression ->
    {AU: intensity}). A culture's table may list only the expressions it changes: the
    others are taken from culture A's classic prototypes (:data:`PROTOTYPES_A`), as
    docs/method.md §10 describes culture B ("keeps the rest").

    ``takes``, ``expression_takes``, ``missing_expression_share`` and ``designs`` (one
    :class:`CultureDesign` per culture) shape a culture's database like real data; their
    defaults (one image per poser and expression, all 7, subject ids) draw exactly what
    the generator drew before they existed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    prototypes: dict[str, dict[str, dict[int, float]]] = Field(
        default_factory=lambda: {"A": copy.deepcopy(PROTOTYPES_A),
                                 "B": copy.deepcopy(PROTOTYPES_B)},
        description="Culture name -> expression -> {AU: intensity}. Expressions left out "
        "are taken from culture A's classic prototypes.",
    )
    n_posers: int = Field(60, ge=1, le=9999, description="Posers per culture.")
    female_fraction: float = Field(0.5, ge=0.0, le=1.0, description="Share of female posers.")
    intensity_sd: float = Field(
        0.1, ge=0.0, le=0.5,
        description="SD of each AU's intensity around its (poser-scaled) prototype value, "
        "per image; the result is clipped to 0..1.")
    expressiveness_sd: float = Field(
        0.1, ge=0.0, le=0.5,
        description="SD of each poser's expressiveness, a gain on all prototype intensities "
        "(mean 1, clipped to 0.5..1.5).")
    roll_sd: float = Field(2.0, ge=0.0, le=6.0, description="Head roll SD per image, degrees.")
    yaw_sd: float = Field(0.15, ge=0.0, le=0.5,
                          description="Pseudo-yaw SD per image (1 ~ 10 degrees).")
    shift_sd: float = Field(0.01, ge=0.0, le=0.03,
                            description="Head shift SD per image, fraction of the image side.")
    scale_sd: float = Field(0.03, ge=0.0, le=0.06, description="Head size SD per image.")
    size: int = Field(256, ge=64, le=2048, description="Image side in pixels.")
    color: bool = Field(False, description="Write RGB images instead of grayscale.")
    layout: Literal["auto", "kdef", "folder"] = Field(
        "auto",
        description="File naming: 'kdef' (AF01/AF01NES.png, at most 99 posers), 'folder' "
        "({expression}/{subject}_1.png) or 'auto' (kdef up to 99 posers, else folder).")
    seed: int = Field(0, ge=0, description="Seed of everything random.")
    labels: dict[str, str] = Field(
        default_factory=dict, description="Culture name -> a description (reports, docs).")
    identity_components: int = Field(
        40, ge=8, le=100,
        description="3-D model: identity components drawn per poser (the first 8 follow "
        "the poser's FaceIdentity shape, the rest are drawn at random).")
    identity_sd: float = Field(
        0.6, ge=0.0, le=1.5,
        description="3-D model: SD of the random identity coefficients (the components "
        "are ~N(0, 1) across real faces).")
    albedo_sd: float = Field(
        0.04, ge=0.0, le=0.2,
        description="3-D model: SD of a per-poser gain on each skin RGB channel (mean 1).")
    light_azimuth_sd: float = Field(
        12.0, ge=0.0, le=45.0,
        description="3-D model: SD of the light's azimuth per image, degrees (mean: the "
        "default light, upper left front).")
    light_elevation_sd: float = Field(
        6.0, ge=0.0, le=30.0, description="3-D model: SD of the light's elevation per "
        "image, degrees.")
    ambient_sd: float = Field(0.03, ge=0.0, le=0.15,
                              description="3-D model: SD of the ambient light per image.")
    diffuse_sd: float = Field(0.05, ge=0.0, le=0.2,
                              description="3-D model: SD of the diffuse light per image.")
    takes: tuple[int, int] = Field(
        (1, 1), description="Images (takes) per poser and expression, [min, max]: each "
        "poser and expression draws a number in this range (uniform).")
    expression_takes: dict[str, tuple[int, int]] = Field(
        default_factory=dict, description="Expression -> [min, max] takes, replacing "
        "``takes`` for those expressions (unbalanced classes).")
    missing_expression_share: float = Field(
        0.0, ge=0.0, le=1.0, description="Probability that a poser lacks one expression "
        "(drawn at random from the culture's classes).")
    designs: dict[str, CultureDesign] = Field(
        default_factory=dict, description="Culture name -> its own takes, label set, "
        "missing share and subject ids (cultures left out: the preset's values, all 7 "
        "expressions, subject ids).")

    @field_validator("takes", mode="before")
    @classmethod
    def _takes_ok(cls, value: Any) -> tuple[int, int]:
        return check_takes(value)

    @field_validator("expression_takes", mode="before")
    @classmethod
    def _expression_takes_ok(cls, value: Any) -> dict[str, tuple[int, int]]:
        return _check_expression_takes(value)

    @model_validator(mode="after")
    def _designs_of_known_cultures(self) -> EastWestPreset:
        unknown = [c for c in self.designs if c not in self.prototypes]
        if unknown:
            raise ValueError(f"designs for unknown culture(s) {', '.join(map(repr, unknown))}; "
                             f"this preset has {', '.join(map(repr, self.prototypes))}")
        return self

    @field_validator("prototypes", mode="before")
    @classmethod
    def _check_prototypes(cls, value: Any) -> dict[str, dict[str, dict[int, float]]]:
        if not isinstance(value, Mapping) or not value:
            raise ValueError("prototypes must map at least one culture name to a prototype "
                             "table")
        out: dict[str, dict[str, dict[int, float]]] = {}
        for name, table in value.items():
            if not isinstance(name, str) or not _CULTURE_NAME.match(name):
                raise ValueError(f"culture name {name!r} must be 1-64 letters, digits, spaces, "
                                 "'_', '.' or '-', starting with a letter or digit")
            out[name] = check_prototypes(table, f"prototypes.{name}", fill_from=PROTOTYPES_A)
        return out

    @property
    def cultures(self) -> tuple[str, ...]:
        """The culture names, in the order given."""
        return tuple(self.prototypes)

    def prototypes_of(self, culture: str) -> dict[str, dict[int, float]]:
        """Return a copy of one culture's complete prototype table.

        Raises
        ------
        ValueError
            When the preset has no such culture (the message lists those it has).
        """
        if culture not in self.prototypes:
            raise ValueError(f"unknown culture {culture!r}; this preset has "
                             f"{', '.join(repr(c) for c in self.cultures)}")
        return copy.deepcopy(self.prototypes[culture])

    def design_of(self, culture: str) -> CultureDesign:
        """Return one culture's design with every value filled in.

        Its own ``takes``, ``expression_takes`` and ``missing_expression_share`` where
        :attr:`designs` gives them, else the preset's (``expression_takes`` restricted to
        the culture's classes).

        Raises
        ------
        ValueError
            When the preset has no such culture.
        """
        self.prototypes_of(culture)
        own = self.designs.get(culture, CultureDesign())
        per_expr = (own.expression_takes if own.expression_takes is not None else
                    {e: r for e, r in self.expression_takes.items() if e in own.classes})
        return own.model_copy(update={
            "takes": own.takes if own.takes is not None else self.takes,
            "expression_takes": per_expr,
            "missing_expression_share": (own.missing_expression_share
                                         if own.missing_expression_share is not None
                                         else self.missing_expression_share)})

    def changed_expressions(self, a: str, b: str) -> list[str]:
        """Expressions whose prototypes differ between cultures ``a`` and ``b``."""
        pa, pb = self.prototypes_of(a), self.prototypes_of(b)
        return [e for e in EXPRESSIONS if pa[e] != pb[e]]


@dataclass(frozen=True)
class SyntheticImage:
    """One image to draw: a poser's face in one expression (one take of it).

    Attributes
    ----------
    subject : str
        Poser id, e.g. ``"F01"``.
    expression : str
        One of :data:`facedialect.vocab.EXPRESSIONS`.
    identity : FaceIdentity
        The poser's face with this image's head pose.
    aus : dict[int, float]
        Intensity of every study AU in this image (0 for AUs not posed), rounded to 4
        decimals: exactly what is drawn and written to ``truth.csv``.
    scene : dict[str, Any]
        Extra keyword arguments of the renderer for this image (e.g. the 3-D model's
        identity coefficients and light, :mod:`facedialect.synthetic.databases3d`); empty for the
        built-in face.
    take : int
        Take number 1..n of this poser and expression. Take 1 is drawn exactly as when
        every poser had one image per expression; later takes draw their AU
        intensities, head pose (and 3-D light) anew from a stream of their own.
    """

    subject: str
    expression: str
    identity: FaceIdentity
    aus: dict[int, float]
    scene: dict[str, Any] = field(default_factory=dict)
    take: int = 1


@dataclass(frozen=True)
class PoserSample:
    """One synthetic poser and the images they pose.

    Attributes
    ----------
    number : int
        Poser number 1..n within the culture.
    subject : str
        Poser id: sex and number, e.g. ``"F01"`` (``"F101"`` beyond 99).
    sex : {"F", "M"}
    identity : FaceIdentity
        The face, frontal and centred.
    expressiveness : float
        Gain on the prototype intensities.
    images : tuple[SyntheticImage, ...]
        In canonical expression order, then by take: one per expression with the
        default design; with :class:`CultureDesign` settings, several takes, only the
        culture's classes, possibly one expression left out.
    """

    number: int
    subject: str
    sex: Literal["F", "M"]
    identity: FaceIdentity
    expressiveness: float
    images: tuple[SyntheticImage, ...]


def culture_seed(seed: int, culture: str) -> np.random.SeedSequence:
    """Seed of one culture: the preset seed and a stable hash of the culture's name."""
    return np.random.SeedSequence([int(seed), name_seed(culture)])


def sample_poser_expressions(culture: str, preset: EastWestPreset,
                             rng: np.random.Generator) -> list[PoserSample]:
    """Draw the posers of one culture and the AU intensities of their images.

    Every poser first draws one image of each of the 7 expressions (take 1), always in
    the same way, so a culture's design (:meth:`EastWestPreset.design_of`) never changes
    them. Then, from a stream of its own (spawned from the poser's generator): whether
    the poser lacks one expression (``missing_expression_share``; which one, uniform over
    the culture's classes), a number of takes per expression (uniform in its take range)
    and the images of takes 2, 3, ... (each expression from its own sub-stream, drawn
    like take 1: AU intensities around the poser's prototype values, head pose).
    Expressions outside the culture's classes and the missing one are left out.

    Parameters
    ----------
    culture : str
        A culture of ``preset``.
    preset : EastWestPreset
        Prototypes, number of posers, the variation settings and the culture's design.
    rng : numpy.random.Generator
        Source of randomness; poser ``k`` uses the ``k``-th child generator spawned from
        it, so the first posers are the same whatever ``n_posers`` is.

    Returns
    -------
    list[PoserSample]
        ``preset.n_posers`` posers, numbered from 1.

    Raises
    ------
    ValueError
        When ``culture`` is not in the preset.
    """
    protos = preset.prototypes_of(culture)
    design = preset.design_of(culture)
    wide = preset.n_posers > 99
    posers: list[PoserSample] = []
    for k, child in enumerate(rng.spawn(preset.n_posers), start=1):
        sex: Literal["F", "M"] = "F" if child.random() < preset.female_fraction else "M"
        identity = FaceIdentity.random(child, sex=sex, pose=False)
        gain = float(np.clip(child.normal(1.0, preset.expressiveness_sd), 0.5, 1.5))
        subject = f"{sex}{k:03d}" if wide else f"{sex}{k:02d}"
        images = [_draw_image(child, preset, subject, expr, identity, gain, protos[expr])
                  for expr in EXPRESSIONS]
        if not design.is_plain:
            images = _design_images(child.spawn(1)[0], preset, design, images, identity,
                                    gain, protos)
        posers.append(PoserSample(k, subject, sex, identity, gain, tuple(images)))
    return posers


def _draw_image(rng: np.random.Generator, preset: EastWestPreset, subject: str, expr: str,
                identity: FaceIdentity, gain: float, proto: Mapping[int, float],
                take: int = 1) -> SyntheticImage:
    """One image: AU intensities around the poser-scaled prototype, then the head pose."""
    aus = dict.fromkeys(STUDY_AUS, 0.0)
    for au, value in proto.items():
        v = gain * value + rng.normal(0.0, preset.intensity_sd)
        aus[au] = round(float(np.clip(v, 0.0, 1.0)), 4)
    posed = replace(
        identity,
        roll=float(np.clip(rng.normal(0.0, preset.roll_sd), -12.0, 12.0)),
        yaw=float(np.clip(rng.normal(0.0, preset.yaw_sd), -0.9, 0.9)),
        shift=(float(np.clip(rng.normal(0.0, preset.shift_sd), -0.08, 0.08)),
               float(np.clip(rng.normal(0.0, preset.shift_sd), -0.08, 0.08))),
        scale=float(np.clip(rng.normal(1.0, preset.scale_sd), 0.85, 1.15)),
    )
    return SyntheticImage(subject, expr, posed, aus, take=take)


def _design_images(rng: np.random.Generator, preset: EastWestPreset, design: CultureDesign,
                   firsts: list[SyntheticImage], identity: FaceIdentity, gain: float,
                   protos: Mapping[str, Mapping[int, float]]) -> list[SyntheticImage]:
    """A poser's images under a culture design: the first takes kept, more takes added.

    The draws do not depend on each other's outcome: the missing expression and every
    take count are always drawn, and each expression's extra takes come from its own
    sub-stream, so changing one setting leaves the other draws alone.
    """
    classes = design.classes
    lacks = rng.random() < (design.missing_expression_share or 0.0)
    which = classes[int(rng.integers(len(classes)))]
    lacking = which if lacks else None
    counts = {e: int(rng.integers(design.take_range(e)[0], design.take_range(e)[1] + 1))
              for e in EXPRESSIONS}
    streams = dict(zip(EXPRESSIONS, rng.spawn(len(EXPRESSIONS)), strict=True))
    out: list[SyntheticImage] = []
    for first in firsts:
        e = first.expression
        if e not in classes or e == lacking:
            continue
        out.append(first)
        out.extend(_draw_image(streams[e], preset, first.subject, e, identity, gain,
                               protos[e], take=t) for t in range(2, counts[e] + 1))
    return out


class Renderer(Protocol):
    """What :func:`write_synthetic_database` draws with (e.g. :func:`render_face`).

    It is called as ``renderer(identity, aus, size=..., color=..., **image.scene)`` and
    must be picklable (a module-level function) when ``workers > 1``.
    """

    def __call__(self, identity: FaceIdentity, aus: Mapping[int, float], *, size: int,
                 color: bool) -> np.ndarray:
        """Return a uint8 ``(size, size)`` or ``(size, size, 3)`` RGB image."""
        ...


def _relative_path(img: SyntheticImage, number: int, sex: str, layout: str) -> str:
    """File of an image: take 1 as always, later takes with ``_{take}`` (unique names)."""
    if layout == "kdef":
        stem = f"A{sex}{number:02d}"
        tail = "" if img.take == 1 else f"_{img.take}"
        return f"{stem}/{stem}{_EXPR_TO_KDEF[img.expression]}S{tail}.png"
    return f"{img.expression}/{img.subject}_{img.take}.png"


def _resolve_layout(preset: EastWestPreset) -> str:
    if preset.layout == "folder" or (preset.layout == "auto" and preset.n_posers > 99):
        return "folder"
    if preset.n_posers > 99:
        raise ValueError(f"layout 'kdef' allows at most 99 posers (2-digit ids), got "
                         f"n_posers={preset.n_posers}; use layout 'folder' or 'auto'")
    return "kdef"


def _write_png(path: Path, image: np.ndarray, size: int, color: bool) -> None:
    arr = np.asarray(image)
    want = (size, size, 3) if color else (size, size)
    if arr.dtype != np.uint8 or arr.shape != want:
        raise ValueError(f"renderer returned {arr.dtype} {arr.shape}, expected uint8 {want}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    Image.fromarray(arr, mode="RGB" if color else "L").save(tmp, format="PNG",
                                                            compress_level=6)
    os.replace(tmp, path)


def _render_job(renderer: Callable[..., np.ndarray], out: Path, rel: str, img: SyntheticImage,
                size: int, color: bool) -> None:
    """Render one image and write it (runs in a worker process when ``workers > 1``)."""
    pixels = renderer(img.identity, img.aus, size=size, color=color, **img.scene)
    _write_png(out / rel, pixels, size, color)


def _render_many(renderer: Callable[..., np.ndarray], out: Path,
                 jobs: list[tuple[str, SyntheticImage]], size: int, color: bool,
                 workers: int, progress: Callable[[int, int], None] | None) -> None:
    n = len(jobs)
    if workers <= 1 or n < 2:
        for i, (rel, img) in enumerate(jobs, start=1):
            _render_job(renderer, out, rel, img, size, color)
            if progress is not None:
                progress(i, n)
        return
    with _single_threaded_blas(), ProcessPoolExecutor(
            max_workers=min(workers, n), mp_context=multiprocessing.get_context("spawn"),
    ) as pool:
        futures = [pool.submit(_render_job, renderer, out, rel, img, size, color)
                   for rel, img in jobs]
        for i, fut in enumerate(futures, start=1):
            fut.result()
            if progress is not None:
                progress(i, n)


@contextmanager
def _single_threaded_blas() -> Iterator[None]:
    """One BLAS/OpenMP thread in worker processes (idle BLAS threads slow the renderer)."""
    keys = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {k: os.environ.get(k) for k in keys}
    for k in keys:
        os.environ.setdefault(k, "1")
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _atomic_csv(table: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    table.to_csv(tmp, index=False, float_format="%.4f", lineterminator="\n")
    os.replace(tmp, path)


def write_posers(
    out_dir: str | Path,
    posers: list[PoserSample],
    preset: EastWestPreset,
    renderer: Renderer | Callable[..., np.ndarray] = render_face,
    *,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    culture: str | None = None,
) -> pd.DataFrame:
    """Draw sampled posers to a folder: the images, ``manifest.csv`` and ``truth.csv``.

    Parameters
    ----------
    out_dir : str or Path
        Target folder (created). Files of the same names are overwritten.
    posers : list of PoserSample
        From :func:`sample_poser_expressions` (possibly with a ``scene`` per image).
    preset : EastWestPreset
        Image size, colour and layout.
    renderer : callable
        ``renderer(identity, aus, size=..., color=..., **scene) -> uint8 image``.
    workers : int
        Processes that render in parallel (1: in this process). The files do not depend
        on it.
    progress : callable, optional
        ``progress(done, total)`` after each image.
    culture : str, optional
        The posers' culture: where its design has ``subject_ids = False``, the manifest's
        subject column is empty and the files are ``{expression}/{number:05d}.png``
        (numbered through the database), whatever the layout; ``truth.csv`` keeps the
        poser ids.

    Returns
    -------
    pandas.DataFrame
        The ``truth.csv`` table (:data:`TRUTH_COLUMNS`, and ``take`` last when some
        image is a second or later take).

    Raises
    ------
    ValueError
        On more than 99 posers with ``layout="kdef"`` or a renderer that returns the wrong
        kind of image.
    """
    out = Path(out_dir)
    layout = _resolve_layout(preset)
    out.mkdir(parents=True, exist_ok=True)
    ids = culture is None or preset.design_of(culture).subject_ids
    takes = any(img.take > 1 for p in posers for img in p.images)
    jobs: list[tuple[str, SyntheticImage]] = []
    rows: list[tuple[Any, ...]] = []
    listing: list[tuple[str, str, str, str, str, str]] = []
    for p in posers:
        for img in p.images:
            rel = (_relative_path(img, p.number, p.sex, layout) if ids
                   else f"{img.expression}/{len(jobs) + 1:05d}.png")
            jobs.append((rel, img))
            listing.append((rel, img.subject if ids else "", img.expression, "S", "A", p.sex))
            extra = (img.take,) if takes else ()
            rows.extend((rel, img.subject, img.expression, au, img.aus[au], *extra)
                        for au in STUDY_AUS)
    _render_many(renderer, out, jobs, preset.size, preset.color, workers, progress)
    _atomic_csv(pd.DataFrame(listing, columns=list(MANIFEST_COLUMNS)), out / "manifest.csv")
    table = pd.DataFrame(rows, columns=[*TRUTH_COLUMNS, *(("take",) if takes else ())])
    _atomic_csv(table, out / TRUTH_FILE)
    return table


def write_synthetic_database(
    out_dir: str | Path,
    culture: str,
    preset: EastWestPreset,
    renderer: Renderer | Callable[..., np.ndarray] = render_face,
    *,
    workers: int = 1,
) -> pd.DataFrame:
    """Draw one synthetic culture's face database to a folder.

    Writes one PNG per poser, expression and take (one take per poser and expression
    unless the culture's design, :meth:`EastWestPreset.design_of`, says otherwise),
    ``manifest.csv`` (for the ``manifest`` database preset: ``path, subject, expression,
    view, session, sex``) and ``truth.csv`` beside them. With at most 99 posers
    (``layout`` "auto" or "kdef") the files follow KDEF naming in one folder per poser,
    session A, straight view: ``AF01/AF01NES.png`` (``F``/``M`` sex, 2-digit id,
    expression code AF AN DI HA NE SA SU), so the ``kdef`` preset reads them too (it then
    lists the two CSV files as excluded non-images); takes 2, 3, ... are
    ``AF01/AF01NES_2.png`` (which the ``kdef`` preset does not read). With more posers
    (or ``layout="folder"``) they go to ``{expression}/{subject}_{take}.png``. A culture
    without subject ids gets ``{expression}/{number:05d}.png`` and an empty subject
    column in the manifest.

    Parameters
    ----------
    out_dir : str or Path
        Target folder (created). Files of the same names are overwritten.
    culture : str
        A culture of ``preset`` (e.g. "A" or "B").
    preset : EastWestPreset
        Prototypes, posers, variation, image size and seed.
    renderer : callable
        ``renderer(identity, aus, size=..., color=...) -> uint8 image``;
        :func:`~facedialect.faces.procedural.render.render_face` by default. Another face
        model plugs in here (:mod:`facedialect.synthetic.databases3d` for the 3-D model).
    workers : int
        Rendering processes (the files do not depend on it).

    Returns
    -------
    pandas.DataFrame
        The ``truth.csv`` table: columns ``path`` (relative to ``out_dir``, with
        ``/``), ``subject`` (the poser, also where the manifest has no subject ids),
        ``expression``, ``au``, ``intensity``, and ``take`` when some image is a second or
        later take; one row per image and study AU (0 for the AUs the image does not pose).

    Raises
    ------
    ValueError
        On an unknown culture, more than 99 posers with ``layout="kdef"``, or a renderer
        that returns the wrong kind of image.

    Notes
    -----
    Deterministic: the same preset (seed included) and culture give byte-identical
    files. ``truth.csv`` is written last, so its presence means the folder is complete.
    """
    _resolve_layout(preset)
    rng = np.random.default_rng(culture_seed(preset.seed, culture))
    posers = sample_poser_expressions(culture, preset, rng)
    return write_posers(out_dir, posers, preset, renderer, workers=workers, culture=culture)


def culture_summary(preset: EastWestPreset) -> pd.DataFrame:
    """Tabulate the prototypes of every culture (for docs and reports).

    Parameters
    ----------
    preset : EastWestPreset
        The cultures.

    Returns
    -------
    pandas.DataFrame
        Columns ``culture``, ``expression``, ``aus`` (e.g. ``"1+2+5+26"``) and
        ``changed`` (True where the expression differs from the first culture's).
    """
    first = preset.cultures[0]
    rows = []
    for c in preset.cultures:
        protos = preset.prototypes_of(c)
        base = preset.prototypes_of(first)
        for e in EXPRESSIONS:
            rows.append({"culture": c, "expression": e,
                         "aus": "+".join(str(a) for a in protos[e]) or "none",
                         "changed": protos[e] != base[e]})
    return pd.DataFrame(rows)
