"""Synthetic cultures as face databases: TOML presets, 3-D posers, ``facedialect synth``.

A preset (TOML, shipped: ``east-west``, ``east-west-controls``, ``messy``; or a user's file)
says which AUs each culture uses for each expression, how posers and images vary and how
each culture's database is shaped (takes per poser and expression, label set, posers
lacking an expression, subject ids). :func:`synthesize` writes one database
folder per culture (images, ``manifest.csv`` for the ``manifest`` preset, ``truth.csv``
with each image's AU intensities), drawn with the 3-D face model (:func:`render_synth_3d`:
random identity coefficients, skin tone and albedo, head pose, light), as photo-textured
3-D faces (:func:`render_synth_photo`, a folder of face photos) or with the built-in
procedural face. docs/method.md §10; docs/synthetic-cultures.md.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
from pydantic import ValidationError

from facedialect.errors import InputError
from facedialect.faces.procedural.identity import FaceIdentity
from facedialect.faces.procedural.render import render_face
from facedialect.synthetic.cultures import (
    PROTOTYPES_A,
    CultureDesign,
    EastWestPreset,
    PoserSample,
    SyntheticImage,
    check_prototypes,
    culture_seed,
    sample_poser_expressions,
    write_posers,
)
from facedialect.vocab import EXPRESSIONS, name_seed

__all__ = [
    "CULTURE_KEYS",
    "RENDERERS",
    "SETTINGS_KEYS",
    "VARIATION_KEYS",
    "add_3d_scenes",
    "add_photo_textures",
    "contact_sheet",
    "culture_folder",
    "load_preset",
    "preset_names",
    "preset_text",
    "preset_toml",
    "render_synth_3d",
    "render_synth_photo",
    "synthesize",
    "texture_photos",
]

#: Renderers of :func:`synthesize`.
RENDERERS: Final[tuple[str, ...]] = ("3d", "builtin")
#: Keys of a preset's ``[variation]`` table (fields of :class:`EastWestPreset`).
VARIATION_KEYS: Final[tuple[str, ...]] = (
    "female_fraction", "intensity_sd", "expressiveness_sd", "roll_sd", "yaw_sd", "shift_sd",
    "scale_sd", "identity_components", "identity_sd", "albedo_sd", "light_azimuth_sd",
    "light_elevation_sd", "ambient_sd", "diffuse_sd", "takes", "expression_takes",
    "missing_expression_share",
)
_TOP_KEYS: Final[tuple[str, ...]] = ("name", "description", "settings", "variation",
                                      "cultures")
#: Keys of a preset's optional ``[settings]`` table (what a ``synth`` run used).
SETTINGS_KEYS: Final[tuple[str, ...]] = ("n_posers", "seed", "size", "color")
#: Keys of a culture's design (:class:`~facedialect.synthetic.cultures.CultureDesign`) in its
#: ``[cultures.NAME]`` table; the first three override ``[variation]``'s.
_DESIGN_KEYS: Final[tuple[str, ...]] = ("takes", "expression_takes", "missing_expression_share",
                                        "subject_ids", "classes")
#: Keys of a preset's ``[cultures.NAME]`` tables.
CULTURE_KEYS: Final[tuple[str, ...]] = ("label", "expressions", *_DESIGN_KEYS)
#: Default light of the renderer (toward the light: x right, y up, z to the viewer).
_LIGHT0: Final[tuple[float, float, float]] = (-0.35, 0.45, 1.0)
_AMBIENT0: Final[float] = 0.38
_DIFFUSE0: Final[float] = 0.66


# ---------------------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------------------


def _preset_dir() -> Any:
    return resources.files("facedialect.synthetic").joinpath("presets")


def preset_names() -> list[str]:
    """Names of the presets shipped with the package.

    Returns
    -------
    list of str
        ``east-west``, ``east-west-controls``, ``messy`` (sorted).
    """
    return sorted(p.name[:-5] for p in _preset_dir().iterdir() if p.name.endswith(".toml"))


def _preset_source(preset: str | Path) -> tuple[str, str]:
    """Return ``(text, where)`` of a shipped preset name or a TOML file path."""
    name = str(preset)
    if isinstance(preset, str) and name in preset_names():
        return _preset_dir().joinpath(f"{name}.toml").read_text(encoding="utf-8"), name
    path = Path(preset).expanduser()
    if path.suffix.lower() == ".toml" or path.exists():
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except OSError as exc:
            raise InputError(f"preset {path}: cannot read it ({exc.strerror or exc}); give a "
                             f"TOML file or one of {', '.join(preset_names())}") from None
    raise InputError(f"unknown preset {name!r}: give a TOML file or one of "
                     f"{', '.join(preset_names())} (see `facedialect synth --show-preset "
                     f"east-west`)")


def preset_text(preset: str | Path = "east-west") -> str:
    """Return a preset's TOML text (a shipped name or a file), to print or copy.

    Raises
    ------
    InputError
        For an unknown name or an unreadable file.
    """
    return _preset_source(preset)[0]


def load_preset(preset: str | Path | Mapping[str, Any] = "east-west", *,
                n_posers: int | None = None, seed: int | None = None,
                size: int | None = None, color: bool | None = None,
                layout: Literal["auto", "kdef", "folder"] | None = None) -> EastWestPreset:
    """Read and validate a culture preset.

    Parameters
    ----------
    preset : str, Path or Mapping
        A shipped preset name (:func:`preset_names`), a TOML file, or its parsed content.
        Top-level keys: ``name``, ``description``, ``[settings]`` (:data:`SETTINGS_KEYS`,
        defaults for the arguments below), ``[variation]`` (:data:`VARIATION_KEYS`)
        and ``[cultures.NAME]`` with ``label``, ``[cultures.NAME.expressions]``
        (expression -> {AU: intensity}) and the culture's design (:data:`CULTURE_KEYS`:
        ``takes``, ``expression_takes`` and ``missing_expression_share`` override
        ``[variation]``'s; ``subject_ids``; ``classes``, its label set). The first
        culture's missing expressions are the classic prototypes; a later culture's are
        copied from the first culture.
    n_posers, seed, size, color, layout : optional
        Override the preset's ``[settings]`` (else :class:`EastWestPreset`'s defaults).

    Returns
    -------
    EastWestPreset

    Raises
    ------
    InputError
        On a TOML syntax error, an unknown key (the valid keys listed), an unknown
        expression or AU (the valid ones listed), an intensity outside 0..1 or a bad
        variation or design value; the message names the preset (and the culture).
    """
    if isinstance(preset, Mapping):
        data, where = dict(preset), "preset"
    else:
        text, where = _preset_source(preset)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"preset {where}: not valid TOML ({exc})") from None

    def bad_keys(table: Mapping[str, Any], valid: tuple[str, ...], at: str) -> None:
        unknown = [k for k in table if k not in valid]
        if unknown:
            raise InputError(f"preset {where}: unknown key(s) {', '.join(map(repr, unknown))} "
                             f"in {at}; valid keys: {', '.join(valid)}")

    bad_keys(data, _TOP_KEYS, "the top level")
    variation = data.get("variation", {})
    if not isinstance(variation, Mapping):
        raise InputError(f"preset {where}: [variation] must be a table")
    bad_keys(variation, VARIATION_KEYS, "[variation]")
    given = data.get("settings", {})
    if not isinstance(given, Mapping):
        raise InputError(f"preset {where}: [settings] must be a table")
    bad_keys(given, SETTINGS_KEYS, "[settings]")
    cultures = data.get("cultures")
    if not isinstance(cultures, Mapping) or not cultures:
        raise InputError(f"preset {where}: no [cultures.NAME] tables; a preset needs at least "
                         "one culture with [cultures.NAME.expressions]")
    prototypes: dict[str, dict[str, dict[int, float]]] = {}
    labels: dict[str, str] = {}
    designs: dict[str, CultureDesign] = {}
    first: dict[str, dict[int, float]] | None = None
    for name, spec in cultures.items():
        at = f"cultures.{name}"
        if not isinstance(spec, Mapping):
            raise InputError(f"preset {where}: [{at}] must be a table with 'label' and "
                             "[expressions]")
        bad_keys(spec, CULTURE_KEYS, f"[{at}]")
        table = spec.get("expressions", {})
        try:
            full = check_prototypes(table, f"preset {where}: {at}.expressions",
                                    fill_from=PROTOTYPES_A if first is None else first)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        first = first if first is not None else full
        prototypes[str(name)] = full
        if "label" in spec:
            labels[str(name)] = str(spec["label"])
        own = {k: spec[k] for k in _DESIGN_KEYS if k in spec}
        if own:
            try:
                designs[str(name)] = CultureDesign(**own)
            except ValidationError as exc:
                raise InputError(f"preset {where}: [{at}] {_messages(exc)}") from None
    settings = {**given, **{k: v for k, v in dict(n_posers=n_posers, seed=seed, size=size,
                                                   color=color, layout=layout).items()
                            if v is not None}}
    try:
        return EastWestPreset(prototypes=prototypes, labels=labels, designs=designs,
                              **variation, **settings)
    except ValidationError as exc:
        raise InputError(f"preset {where}: {_messages(exc)}") from None


def _messages(exc: ValidationError) -> str:
    """Pydantic's errors as ``key: message; ...`` (without its "Value error, " prefix)."""
    out = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e["loc"])
        msg = str(e["msg"]).removeprefix("Value error, ")
        out.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(out)


def preset_toml(preset: EastWestPreset, name: str = "resolved") -> str:
    """Write a preset back as TOML, every culture's table complete (provenance, copying)."""
    import tomli_w

    doc: dict[str, Any] = {
        "name": name,
        "settings": {k: getattr(preset, k) for k in SETTINGS_KEYS},
        "variation": {k: _toml_value(getattr(preset, k)) for k in VARIATION_KEYS},
        "cultures": {},
    }
    for c in preset.cultures:
        entry: dict[str, Any] = {}
        if c in preset.labels:
            entry["label"] = preset.labels[c]
        if c in preset.designs:
            entry.update({k: _toml_value(v) for k, v in
                          preset.designs[c].model_dump(exclude_defaults=True).items()})
        entry["expressions"] = {e: {str(au): v for au, v in aus.items()}
                                for e, aus in preset.prototypes_of(c).items()}
        doc["cultures"][c] = entry
    head = ("# facedialect synthetic cultures: the preset as used (every culture's table "
            "complete).\n# Re-use: facedialect synth --preset THIS_FILE (command-line options "
            "override [settings]).\n")
    return head + tomli_w.dumps(doc)


def _toml_value(value: Any) -> Any:
    """Tuples as lists (also inside tables), for TOML."""
    if isinstance(value, Mapping):
        return {k: _toml_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_toml_value(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------
# 3-D posers
# ---------------------------------------------------------------------------------------


def _scene_seed(seed: int, culture: str) -> np.random.SeedSequence:
    """Seed of a culture's 3-D scene draws, independent of its AU and identity draws."""
    return np.random.SeedSequence([int(seed), name_seed(culture), 3])


def _turn(v: tuple[float, float, float], azimuth: float, elevation: float
          ) -> tuple[float, float, float]:
    """Rotate a direction ``azimuth`` degrees about y, then ``elevation`` degrees up."""
    x, y, z = np.asarray(v, float) / np.linalg.norm(v)
    a, e = math.radians(azimuth), math.radians(elevation)
    x, z = x * math.cos(a) + z * math.sin(a), -x * math.sin(a) + z * math.cos(a)
    h = math.hypot(x, z)
    h2, y2 = h * math.cos(e) - y * math.sin(e), h * math.sin(e) + y * math.cos(e)
    k = h2 / h if h > 1e-12 else 1.0
    return (round(float(x * k), 6), round(float(y2), 6), round(float(z * k), 6))


def add_3d_scenes(posers: list[PoserSample], preset: EastWestPreset, culture: str
                  ) -> list[PoserSample]:
    """Give every image the 3-D model's scene: identity coefficients, albedo and light.

    Per poser: ``identity_components`` coefficients (the first 8 from the poser's
    :class:`FaceIdentity` shape, as :func:`~facedialect.faces.model3d.render.render_face_3d`
    maps them, the others ~N(0, ``identity_sd``)) and a gain per skin RGB channel
    (~N(1, ``albedo_sd``)). Per image: the light turned by ~N(0, ``light_azimuth_sd``)
    and ~N(0, ``light_elevation_sd``) degrees, ambient and diffuse strengths varied.
    The draws come from their own seed (preset seed and culture), one child generator
    per poser, so AU intensities are the same as with the built-in face and the first
    posers do not depend on how many are drawn. Take 1 of each of the 7 expressions
    draws its light in canonical order (also for an expression the poser lacks, so the
    others keep theirs); takes 2, 3, ... draw from a sub-stream per expression.

    Returns
    -------
    list[PoserSample]
        The posers with ``scene`` filled for :func:`render_synth_3d`.
    """
    from facedialect.faces.model3d.render import identity_coefficients

    rng = np.random.default_rng(_scene_seed(preset.seed, culture))
    out: list[PoserSample] = []
    for p, child in zip(posers, rng.spawn(len(posers)), strict=True):
        base = identity_coefficients(p.identity).astype(np.float64)
        extra = child.normal(0.0, preset.identity_sd, preset.identity_components - base.size)
        coeffs = tuple(round(float(c), 5) for c in np.concatenate([base, extra]))
        albedo = tuple(round(float(g), 4) for g in
                       np.clip(child.normal(1.0, preset.albedo_sd, 3), 0.8, 1.2))

        def light(g: np.random.Generator, coeffs: tuple[float, ...] = coeffs,
                  albedo: tuple[float, ...] = albedo) -> dict[str, Any]:
            az = float(np.clip(g.normal(0.0, preset.light_azimuth_sd), -40, 40))
            el = float(np.clip(g.normal(0.0, preset.light_elevation_sd), -25, 25))
            amb = float(np.clip(_AMBIENT0 + g.normal(0.0, preset.ambient_sd), 0.2, 0.6))
            dif = float(np.clip(_DIFFUSE0 + g.normal(0.0, preset.diffuse_sd), 0.4, 0.9))
            return {"coeffs": coeffs, "albedo": albedo, "light": _turn(_LIGHT0, az, el),
                    "ambient": round(amb, 4), "diffuse": round(dif, 4)}

        out.append(replace(p, images=_with_scenes(p.images, child, light)))
    return out


def _with_scenes(images: tuple[SyntheticImage, ...], rng: np.random.Generator,
                 draw: Callable[[np.random.Generator], dict[str, Any]]
                 ) -> tuple[SyntheticImage, ...]:
    """Give a poser's images their per-image scene draws.

    Take 1 of each of the 7 expressions draws from ``rng`` in canonical order, also where
    the poser has no such image (so one poser and expression left out or several takes
    never change another image's draws, and one take per expression draws exactly as
    before takes existed); later takes draw from a sub-stream per expression, in order.
    """
    firsts = {e: draw(rng) for e in EXPRESSIONS}
    streams: dict[str, np.random.Generator] = {}
    if any(img.take > 1 for img in images):
        streams = dict(zip(EXPRESSIONS, rng.spawn(len(EXPRESSIONS)), strict=True))
    return tuple(replace(img, scene=firsts[img.expression] if img.take == 1
                         else draw(streams[img.expression])) for img in images)


def render_synth_3d(identity: FaceIdentity, aus: Mapping[int, float], *, size: int = 256,
                    color: bool = False, coeffs: tuple[float, ...] = (),
                    albedo: tuple[float, float, float] = (1.0, 1.0, 1.0),
                    light: tuple[float, float, float] = _LIGHT0,
                    ambient: float = _AMBIENT0, diffuse: float = _DIFFUSE0) -> np.ndarray:
    """Draw one synthetic poser with the 3-D face model.

    Parameters
    ----------
    identity : FaceIdentity
        Skin tone, brow and iris colour, background, head pose (see
        :func:`~facedialect.faces.model3d.render.render_face_3d`).
    aus : Mapping[int, float]
        AU intensities.
    size, color :
        Image side and RGB vs grayscale.
    coeffs : tuple of float
        Identity coefficients of the model's first components (empty: mapped from
        ``identity.shape``).
    albedo : tuple of 3 float
        Gain on the skin (and lip) RGB.
    light : tuple of 3 float
        Direction toward the light.
    ambient, diffuse : float
        Light strengths.

    Returns
    -------
    numpy.ndarray
        uint8 image, deterministic in its inputs.

    Raises
    ------
    AssetMissingError
        When the 3-D model is not installed.
    """
    from facedialect.faces.model3d.render import appearance_of, render_face_3d

    look = appearance_of(identity)
    gain = np.asarray(albedo, float)
    look = replace(look, skin=tuple(float(x) for x in np.clip(np.asarray(look.skin) * gain, 0, 1)),
                   lips=tuple(float(x) for x in np.clip(np.asarray(look.lips) * gain, 0, 1)),
                   light=tuple(light), ambient=float(ambient), diffuse=float(diffuse))
    c = np.asarray(coeffs, np.float32) if len(coeffs) else None
    return render_face_3d(identity, aus, size=size, color=color, coeffs=c, appearance=look)


def texture_photos(folder: str | Path) -> list[Path]:
    """The image files of a texture folder (sorted by name; the folder is only read).

    Raises
    ------
    InputError
        When the folder does not exist or holds no image.
    """
    from facedialect.imageio import IMAGE_SUFFIXES

    root = Path(folder).expanduser()
    if not root.is_dir():
        raise InputError(f"--textures {root}: no such folder; give a folder of frontal face "
                         "photos (e.g. the London set's neutral faces)")
    files = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"--textures {root}: no image files ({' '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def add_photo_textures(posers: list[PoserSample], preset: EastWestPreset, culture: str,
                       photos: list[Path]) -> list[PoserSample]:
    """Give every poser a face photo (identity and skin from the photo) and each image a light gain.

    Posers take the photos in an order shuffled from the scene seed (poser ``k`` gets photo
    ``order[k % len(photos)]``: with fewer photos than posers, photos repeat, with other AU
    draws). Per image the ambient variation becomes a brightness gain
    (``1 + N(0, ambient_sd) / 0.38``); head roll, shift and scale are applied to the
    rendered photo as a 2-D similarity transform (no yaw: the photo fixes the view).

    Returns
    -------
    list[PoserSample]
        The posers with ``scene = {"photo", "gain"}`` for :func:`render_synth_photo`.
    """
    rng = np.random.default_rng(_scene_seed(preset.seed, culture))
    order = rng.permutation(len(photos))
    out: list[PoserSample] = []
    for k, (p, child) in enumerate(zip(posers, rng.spawn(len(posers)), strict=True)):
        photo = str(photos[int(order[k % len(photos)])].resolve())

        def gain(g: np.random.Generator, photo: str = photo) -> dict[str, Any]:
            value = float(np.clip(1.0 + g.normal(0.0, preset.ambient_sd) / _AMBIENT0,
                                  0.75, 1.25))
            return {"photo": photo, "gain": round(value, 4)}

        out.append(replace(p, images=_with_scenes(p.images, child, gain)))
    return out


def render_synth_photo(identity: FaceIdentity, aus: Mapping[int, float], *, size: int = 256,
                       color: bool = False, photo: str = "", gain: float = 1.0
                       ) -> np.ndarray:
    """Draw one poser as a photo-textured 3-D face (:mod:`facedialect.faces.model3d.photo`).

    The photo is fitted with the 3-D model and rendered with the AUs (the skin texture
    moves with the mesh), cropped to a centred square, then rolled, shifted and scaled by
    the identity's head pose and multiplied by ``gain``.

    Raises
    ------
    FacedialectError
        When the photo cannot be read or has no detectable face (the file is named).
    """
    import cv2

    from facedialect.faces.model3d.photo import photo_face

    face = photo_face(photo)
    h, w = face.photo.shape[:2]
    side = min(h, w)
    width = int(round(size * w / side))
    img = face.render(aus, size=width, color=True).astype(np.float32)
    hh, ww = img.shape[:2]
    y0, x0 = (hh - size) // 2, (ww - size) // 2
    img = img[y0:y0 + size, x0:x0 + size]
    m = cv2.getRotationMatrix2D((size / 2.0, size / 2.0), -identity.roll, identity.scale)
    m[:, 2] += (identity.shift[0] * size, identity.shift[1] * size)
    img = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
    rgb = np.clip(img * gain + 0.5, 0, 255).astype(np.uint8)
    return rgb if color else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


# ---------------------------------------------------------------------------------------
# Databases
# ---------------------------------------------------------------------------------------


def culture_folder(culture: str) -> str:
    """Folder name of a culture's database (its name, spaces as ``_``)."""
    return re.sub(r"\s+", "_", culture.strip())


def contact_sheet(folder: str | Path, n_posers: int = 6, tile: int = 128) -> np.ndarray:
    """A grid of one culture's images: posers (rows) x its expressions (columns).

    Each cell is the poser's first listed image of the expression (take 1), blank where
    the poser lacks it. Without subject ids (an empty subject column), row ``i`` shows the
    ``i``-th listed image of each expression.

    Parameters
    ----------
    folder : str or Path
        A culture's database (with ``manifest.csv``).
    n_posers : int
        First posers (rows) shown.
    tile : int
        Side of each image in the sheet, pixels.

    Returns
    -------
    numpy.ndarray
        uint8 RGB image with the expression names on top.
    """
    import cv2
    from PIL import Image

    root = Path(folder)
    m = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
    columns = [e for e in EXPRESSIONS if e in set(m["expression"])]
    if m["subject"].str.strip().ne("").any():
        subjects = list(dict.fromkeys(m["subject"]))[:n_posers]
        cells = [[m.loc[(m["subject"] == s) & (m["expression"] == e), "path"].head(1).tolist()
                  for e in columns] for s in subjects]
    else:
        by_expr = {e: m.loc[m["expression"] == e, "path"].tolist() for e in columns}
        rows = min(n_posers, max(len(v) for v in by_expr.values()))
        cells = [[by_expr[e][i:i + 1] for e in columns] for i in range(rows)]
    head = 22
    sheet = np.full((head + tile * len(cells), tile * len(columns), 3), 255, np.uint8)
    for j, e in enumerate(columns):
        cv2.putText(sheet, e, (j * tile + 6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
    for i, row in enumerate(cells):
        for j, path in enumerate(row):
            if not path:
                continue
            with Image.open(root / path[0]) as im:
                arr = np.asarray(im.convert("RGB").resize((tile, tile), Image.Resampling.LANCZOS))
            sheet[head + i * tile: head + (i + 1) * tile, j * tile: (j + 1) * tile] = arr
    return sheet


def synthesize(out_dir: str | Path, preset: str | Path | EastWestPreset = "east-west", *,
               renderer: str = "3d", n_posers: int | None = None, seed: int | None = None,
               size: int | None = None, color: bool | None = None,
               textures: str | Path | None = None, workers: int = 0,
               progress: Callable[[str, int, int], None] | None = None) -> dict[str, Path]:
    """Write one synthetic face database per culture of a preset.

    Parameters
    ----------
    out_dir : str or Path
        Output folder (created): ``{culture}/`` per culture (images, ``manifest.csv``,
        ``truth.csv``), ``preset.toml`` (the preset as used, every table complete) and
        ``contact_sheet_{culture}.png``.
    preset : str, Path or EastWestPreset
        A shipped preset name, a TOML file or a preset object.
    renderer : {"3d", "builtin"}
        The ICT 3-D face model (installed asset) or the built-in procedural face.
    n_posers, seed, size, color : optional
        Override the preset's (defaults: 60 posers, seed 0, 256 px, grayscale).
    textures : str or Path, optional
        A folder of frontal face photos: each poser is one photo, fitted with the 3-D model
        and rendered with its AUs (:func:`add_photo_textures`; ``renderer`` must be
        ``"3d"``). The folder is only read.
    workers : int
        Rendering processes (0: one per CPU core). The files do not depend on it.
    progress : callable, optional
        ``progress(culture, done, total)`` after each image.

    Returns
    -------
    dict[str, Path]
        Culture name -> its database folder.

    Raises
    ------
    InputError
        On a bad preset, an unknown renderer, or ``textures`` that is not a folder of
        images or comes with ``renderer="builtin"``.
    AssetMissingError
        When ``renderer="3d"`` and the model is not installed.
    """
    if renderer not in RENDERERS:
        raise InputError(f"unknown renderer {renderer!r}; use one of {', '.join(RENDERERS)}")
    photos = texture_photos(textures) if textures is not None else None
    if photos is not None and renderer != "3d":
        raise InputError("--textures needs the 3-D renderer (--renderer 3d): photos are "
                         "fitted with the 3-D face model")
    if isinstance(preset, EastWestPreset):
        over = {k: v for k, v in dict(n_posers=n_posers, seed=seed, size=size,
                                      color=color).items() if v is not None}
        try:
            p = EastWestPreset.model_validate({**preset.model_dump(), **over})
        except ValidationError as exc:
            raise InputError(f"synthetic cultures: {exc.errors()[0]['loc'][0]}: "
                             f"{exc.errors()[0]['msg']}") from None
    else:
        p = load_preset(preset, n_posers=n_posers, seed=seed, size=size, color=color)
    if renderer == "3d":
        from facedialect.faces.model3d.model import load_model

        load_model()  # fails early, with the install message, when the model is absent
    draw: Callable[..., np.ndarray] = (render_face if renderer == "builtin" else
                                       render_synth_photo if photos else render_synth_3d)
    n_workers = workers if workers > 0 else (os.cpu_count() or 1)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from facedialect.files import atomic_write_bytes, atomic_write_text

    done: dict[str, Path] = {}
    for culture in p.cultures:
        rng = np.random.default_rng(culture_seed(p.seed, culture))
        posers = sample_poser_expressions(culture, p, rng)
        if photos:
            posers = add_photo_textures(posers, p, culture, photos)
        elif renderer == "3d":
            posers = add_3d_scenes(posers, p, culture)
        folder = out / culture_folder(culture)

        def tick(d: int, t: int, c: str = culture) -> None:
            if progress is not None:
                progress(c, d, t)

        write_posers(folder, posers, p, draw, workers=n_workers, progress=tick,
                     culture=culture)
        import cv2

        ok, buf = cv2.imencode(".png", cv2.cvtColor(contact_sheet(folder), cv2.COLOR_RGB2BGR))
        if ok:
            atomic_write_bytes(out / f"contact_sheet_{culture_folder(culture)}.png",
                               buf.tobytes())
        done[culture] = folder
    atomic_write_text(out / "preset.toml", preset_toml(p, name=str(
        preset if not isinstance(preset, EastWestPreset) else "custom")))
    return done


def culture_summary(folder: str | Path) -> str:
    """One culture's database in words: posers, expressions and images of its manifest.

    Parameters
    ----------
    folder : path
        A folder :func:`synthesize` wrote (``manifest.csv``).
    """
    import csv

    with open(Path(folder) / "manifest.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    subjects = {r["subject"] for r in rows} - {""}
    who = f"{len(subjects)} posers" if subjects else "no subject ids"
    return f"{who}, {len({r['expression'] for r in rows})} expressions, {len(rows)} images"
