"""The base face of the AU stimuli: the ``[tuning] base_face`` text, parsed once.

``builtin`` (the procedural face), ``3d`` (the ICT model's own face), ``average`` (the
average neutral face of the study's databases), ``average:RUN_DIR`` (that of another
run) or a path to a face photo (a photo-textured 3-D face). :meth:`BaseFace.parse`
reads the text, :meth:`BaseFace.describe` says it in words, ``str()`` writes it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

__all__ = ["BASE_FACE_FORMS", "BaseFace", "BaseFaceKind"]

BaseFaceKind = Literal["builtin", "3d", "average", "photo"]

#: Every form the base-face text takes (``PHOTO`` is a path to an image file).
BASE_FACE_FORMS: tuple[str, ...] = ("builtin", "3d", "average", "average:RUN_DIR", "PHOTO")


@dataclass(frozen=True)
class BaseFace:
    """A parsed base face.

    Attributes
    ----------
    kind : {"builtin", "3d", "average", "photo"}
        Which face the stimuli are drawn on.
    path : pathlib.Path or None
        ``photo``: the photo file; ``average``: the run directory whose databases are
        averaged (None: the study's own run); None for ``builtin`` and ``3d``.
    """

    kind: BaseFaceKind
    path: Path | None = None

    KINDS: ClassVar[tuple[str, ...]] = ("builtin", "3d", "average", "photo")

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ValueError(f"base face kind must be one of {', '.join(self.KINDS)}, "
                             f"got {self.kind!r}")
        if self.kind == "photo" and self.path is None:
            raise ValueError("a photo base face needs the photo's path")
        if self.kind in ("builtin", "3d") and self.path is not None:
            raise ValueError(f"the {self.kind} base face has no path")

    @classmethod
    def parse(cls, text: str | BaseFace, root: str | Path | None = None, *,
              must_exist: bool = True) -> BaseFace:
        """Parse the base-face text.

        Parameters
        ----------
        text : str or BaseFace
            ``builtin``, ``3d``, ``average``, ``average:RUN_DIR`` or a photo path
            (surrounding spaces ignored; a BaseFace is returned as it is).
        root : str or Path, optional
            Folder that relative paths are relative to (the study file's); default: the
            current folder. Paths are made absolute, ``~`` expanded.
        must_exist : bool
            Check that the photo is an image file (False: read the text only, e.g. from a
            manifest). ``RUN_DIR`` is not looked into here (the caller that reads the run
            does).

        Returns
        -------
        BaseFace

        Raises
        ------
        ValueError
            For empty text, a ``~user`` of no known user, or a photo that is not an image
            file (or cannot be read); the message says which forms are valid.
        """
        if isinstance(text, BaseFace):
            return text
        if not isinstance(text, str):
            raise ValueError(f"base face must be text, one of {', '.join(BASE_FACE_FORMS)}; "
                             f"got {type(text).__name__}")
        v = text.strip()
        if v in ("builtin", "3d", "average"):
            return cls(v)  # type: ignore[arg-type]
        if not v:
            raise ValueError(f"base face is empty: use one of {', '.join(BASE_FACE_FORMS)} "
                             "(PHOTO = a path to a face photo)")
        if v.startswith("average:"):
            face = cls("average", _absolute(v.partition(":")[2].strip() or ".", root))
        else:
            face = cls("photo", _absolute(v, root))
        return face.checked() if must_exist else face

    def checked(self) -> BaseFace:
        """Return this base face after checking that a photo is an image file.

        Raises
        ------
        ValueError
            When the photo is not an image file (or cannot be read).
        """
        from facedialect.imageio import IMAGE_SUFFIXES

        if self.kind == "photo":
            assert self.path is not None
            try:
                ok = self.path.is_file() and self.path.suffix.lower() in IMAGE_SUFFIXES
            except OSError as exc:  # a name too long, a folder without permission
                raise ValueError(f"{self.path}: base face photo cannot be read "
                                 f"({exc.strerror or exc})") from None
            if not ok:
                raise ValueError(f"base face {str(self.path)!r} is neither a photo (not a "
                                 "photo file: not found or not an image) nor one of "
                                 f"{', '.join(BASE_FACE_FORMS[:-1])} (PHOTO = a path to a "
                                 "face photo)")
        return self

    def __str__(self) -> str:
        """The base-face text (``average:RUN_DIR`` and photos with absolute paths)."""
        if self.kind == "photo":
            return str(self.path)
        if self.kind == "average" and self.path is not None:
            return f"average:{self.path}"
        return self.kind

    def describe(self, image: str | Path | None = None) -> str:
        """The base face in words (as the report says it).

        Parameters
        ----------
        image : str or Path, optional
            The image the face was made from (the average face's file, the photo).
        """
        if self.kind == "builtin":
            return "the built-in procedural face"
        if self.kind == "3d":
            return "the ICT 3D model's own face"
        if self.kind == "average":
            return ("the average neutral face of the databases as a photo-textured 3D face: "
                    f"{image or ''}")
        return f"the photo-textured 3D face of {image or self.path}"


def _absolute(text: str, root: str | Path | None) -> Path:
    """``text`` as an absolute path (``~`` expanded, relative to ``root``); ValueError."""
    from facedialect.imageio import absolute_path

    return absolute_path(text, root, ValueError)
