"""Who the procedural face draws: :class:`FaceIdentity` (shape, colours, head pose)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from facedialect.faces.procedural.shape import MODE_NAMES

__all__ = ["FaceIdentity"]

_SKIN_DARK = np.array([0.36, 0.24, 0.18])
_SKIN_LIGHT = np.array([0.94, 0.79, 0.69])


@dataclass(frozen=True)
class FaceIdentity:
    """Who is drawn, and how the head sits in the picture.

    Attributes
    ----------
    shape : tuple[float, ...]
        One coefficient per identity mode (:data:`IDENTITY_MODES`, in order), in
        standard deviations, each in ``[-3, 3]``.
    sex : {"F", "M"}
        Sets brow thickness and the hair style default; ``random`` also shifts the
        shape coefficients a little (wider jaw for "M", fuller lips for "F").
    skin_tone : float
        0 (dark) .. 1 (light) skin albedo.
    hair_gray : float
        Hair brightness 0 (black) .. 1 (blond/white).
    hair_style : int
        0 short, 1 chin length, 2 long.
    hairline : float
        Hairline height offset in canonical units (``-0.15 .. 0.15``, positive = higher).
    iris_gray : float
        Iris brightness 0 .. 1.
    background_gray : float
        Background brightness 0 .. 1 (an evenly lit studio wall).
    clothing_gray : float
        Brightness of the shoulders' clothing 0 .. 1.
    roll : float
        In-plane head rotation in degrees (``-15 .. 15``; positive turns the face
        clockwise on screen).
    yaw : float
        Pseudo-yaw ``-1 .. 1``: the features slide sideways on the head outline
        (nose most), as in a small turn of the head (1 ~ 10 degrees).
    shift : tuple[float, float]
        Head offset ``(dx, dy)`` as a fraction of the image side (each ``-0.1 .. 0.1``).
    scale : float
        Head size factor (``0.8 .. 1.2``; 1 makes the face about 55% of the width).
    texture_seed : int
        Seed of the fine skin and hair texture.
    """

    shape: tuple[float, ...] = (0.0,) * len(MODE_NAMES)
    sex: Literal["F", "M"] = "F"
    skin_tone: float = 0.65
    hair_gray: float = 0.25
    hair_style: int = 1
    hairline: float = 0.0
    iris_gray: float = 0.35
    background_gray: float = 0.62
    clothing_gray: float = 0.3
    roll: float = 0.0
    yaw: float = 0.0
    shift: tuple[float, float] = (0.0, 0.0)
    scale: float = 1.0
    texture_seed: int = 0

    def __post_init__(self) -> None:
        shape = tuple(float(v) for v in self.shape)
        if len(shape) != len(MODE_NAMES):
            raise ValueError(
                f"shape needs {len(MODE_NAMES)} coefficients ({', '.join(MODE_NAMES)}), "
                f"got {len(shape)}"
            )
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "shift", (float(self.shift[0]), float(self.shift[1])))
        checks: list[tuple[str, float, float, float]] = [
            ("skin_tone", self.skin_tone, 0.0, 1.0),
            ("hair_gray", self.hair_gray, 0.0, 1.0),
            ("iris_gray", self.iris_gray, 0.0, 1.0),
            ("background_gray", self.background_gray, 0.0, 1.0),
            ("clothing_gray", self.clothing_gray, 0.0, 1.0),
            ("hairline", self.hairline, -0.15, 0.15),
            ("roll", self.roll, -15.0, 15.0),
            ("yaw", self.yaw, -1.0, 1.0),
            ("shift[0]", self.shift[0], -0.1, 0.1),
            ("shift[1]", self.shift[1], -0.1, 0.1),
            ("scale", self.scale, 0.8, 1.2),
        ] + [(f"shape[{i}] ({n})", v, -3.0, 3.0) for i, (n, v) in
             enumerate(zip(MODE_NAMES, shape, strict=True))]
        for name, value, lo, hi in checks:
            if not (math.isfinite(float(value)) and lo <= float(value) <= hi):
                raise ValueError(f"FaceIdentity.{name} must be in {lo}..{hi}, got {value!r}")
        if self.sex not in ("F", "M"):
            raise ValueError(f"FaceIdentity.sex must be 'F' or 'M', got {self.sex!r}")
        if self.hair_style not in (0, 1, 2):
            raise ValueError(f"FaceIdentity.hair_style must be 0, 1 or 2, got {self.hair_style!r}")

    @classmethod
    def default(cls) -> FaceIdentity:
        """Return the average face: mean shape, mid skin tone, frontal and centred."""
        return cls()

    @classmethod
    def random(cls, rng: np.random.Generator, sex: Literal["F", "M"] | None = None,
               pose: bool = True) -> FaceIdentity:
        """Draw a random adult identity.

        Parameters
        ----------
        rng : numpy.random.Generator
            Source of randomness (the only one used).
        sex : {"F", "M"}, optional
            Fixed sex; drawn 50/50 when None.
        pose : bool
            Draw a small head pose (roll within about 4 degrees, a little yaw, shift
            and scale); ``False`` leaves the head frontal and centred.

        Returns
        -------
        FaceIdentity
        """
        s: Literal["F", "M"] = sex if sex is not None else ("F" if rng.random() < 0.5 else "M")
        coef = np.clip(rng.normal(0.0, 1.0, len(MODE_NAMES)), -2.5, 2.5)
        bias = {"jaw_width": 0.6, "face_width": 0.3, "lip_thickness": -0.5, "brow_height": -0.4}
        sign = 1.0 if s == "M" else -1.0
        for k, b in bias.items():
            coef[MODE_NAMES.index(k)] += sign * b
        coef = np.clip(coef, -3.0, 3.0)
        style = int(rng.choice([0, 1, 2], p=[0.6, 0.3, 0.1] if s == "M" else [0.15, 0.4, 0.45]))
        u = rng.random(9)
        roll, yaw, dx, dy, sc = (0.0, 0.0, 0.0, 0.0, 1.0)
        if pose:
            roll = float(np.clip(rng.normal(0.0, 2.0), -6.0, 6.0))
            yaw = float(np.clip(rng.normal(0.0, 0.25), -0.7, 0.7))
            dx = float(np.clip(rng.normal(0.0, 0.015), -0.04, 0.04))
            dy = float(np.clip(rng.normal(0.0, 0.015), -0.04, 0.04))
            sc = float(np.clip(rng.normal(1.0, 0.03), 0.92, 1.08))
        return cls(
            shape=tuple(float(v) for v in coef),
            sex=s,
            skin_tone=float(0.15 + 0.8 * u[0]),
            hair_gray=float(0.05 + 0.7 * u[1] ** 1.5),
            hair_style=style,
            hairline=float(0.2 * (u[2] - 0.5)),
            iris_gray=float(0.15 + 0.5 * u[3]),
            background_gray=float(0.35 + 0.5 * u[4]),
            clothing_gray=float(0.1 + 0.7 * u[5]),
            roll=roll,
            yaw=yaw,
            shift=(dx, dy),
            scale=sc,
            texture_seed=int(rng.integers(0, 2**31 - 1)),
        )

    def skin_rgb(self) -> np.ndarray:
        """Return the skin albedo as RGB in ``[0, 1]``."""
        return _SKIN_DARK + (_SKIN_LIGHT - _SKIN_DARK) * self.skin_tone

    def hair_rgb(self) -> np.ndarray:
        """Return the hair albedo as RGB in ``[0, 1]``."""
        g = 0.04 + 0.8 * self.hair_gray
        return np.clip(g * np.array([1.05, 0.92, 0.72]) + 0.02, 0.0, 1.0)

