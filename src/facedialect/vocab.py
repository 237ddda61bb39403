"""The study's vocabulary and defaults, each defined once.

Expressions (the label set a study chooses with ``[study] expressions`` from
:data:`VOCABULARY`: the seven of the reference study, :data:`EXPRESSIONS`, the default,
and contempt, CK+), the label codes of each database preset, the study's action units
(:data:`STUDY_AUS`), the reference study's defaults (:data:`DEFAULT_SUBJECTS`) and the
one way a name (a database, a culture) enters a seed (:func:`name_seed`).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Final

#: Complete subjects per database in the reference study (``n_subjects`` default).
DEFAULT_SUBJECTS: Final[int] = 60

#: The 20 action units whose stimuli the reference study made (docs/method.md §7).
STUDY_AUS: Final[tuple[int, ...]] = (1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 15, 16, 17, 20, 22, 23,
                                     24, 25, 26, 27)

#: Canonical order, used in every table and figure.
EXPRESSIONS: Final[tuple[str, ...]] = (
    "neutral",
    "happy",
    "fearful",
    "sad",
    "angry",
    "surprised",
    "disgusted",
)

#: Every expression a study may use, in canonical order (the reference study's 7, then contempt).
VOCABULARY: Final[tuple[str, ...]] = (*EXPRESSIONS, "contempt")

#: Words accepted for each expression in folder names and manifests (lower case).
SYNONYMS: Final[dict[str, str]] = {
    **{e: e for e in EXPRESSIONS},
    "neu": "neutral", "ne": "neutral", "calm": "neutral",
    "hap": "happy", "ha": "happy", "happiness": "happy", "joy": "happy",
    "fea": "fearful", "fe": "fearful", "af": "fearful", "fear": "fearful",
    "afraid": "fearful", "scared": "fearful",
    "sa": "sad", "sadness": "sad",
    "ang": "angry", "an": "angry", "anger": "angry",
    "sur": "surprised", "su": "surprised", "surprise": "surprised",
    "dis": "disgusted", "di": "disgusted", "disgust": "disgusted",
    "contempt": "contempt", "con": "contempt", "co": "contempt", "contemptuous": "contempt",
}

#: Preset-specific codes (exact, case-sensitive as in the file names).
KDEF_CODES: Final[dict[str, str]] = {
    "AF": "fearful", "AN": "angry", "DI": "disgusted", "HA": "happy",
    "NE": "neutral", "SA": "sad", "SU": "surprised",
}
KRC_CODES: Final[dict[str, str]] = {
    "neu": "neutral", "hap": "happy", "fea": "fearful", "sad": "sad",
    "ang": "angry", "sur": "surprised", "dis": "disgusted",
}
JAFFE_CODES: Final[dict[str, str]] = {
    "NE": "neutral", "HA": "happy", "SA": "sad", "SU": "surprised",
    "AN": "angry", "DI": "disgusted", "FE": "fearful",
}
#: CK+ Emotion/ label numbers.
CKPLUS_CODES: Final[dict[int, str]] = {
    0: "neutral", 1: "angry", 2: "contempt", 3: "disgusted", 4: "fearful",
    5: "happy", 6: "sad", 7: "surprised",
}


def normalize_expression(word: str) -> str | None:
    """Map a free-form expression word to :data:`VOCABULARY`.

    Parameters
    ----------
    word : str
        A label as found in a folder name or manifest ("Happy", "afraid", "NE").

    Returns
    -------
    str or None
        The canonical expression, or None when the word is not known.
    """
    return SYNONYMS.get(word.strip().lower())


def expression_index(expression: str) -> int:
    """Return the position of ``expression`` in :data:`VOCABULARY` (its canonical rank)."""
    return VOCABULARY.index(expression)


def in_order(expressions: Iterable[str]) -> list[str]:
    """The distinct known expressions among ``expressions``, in canonical order.

    Unknown words (not in :data:`VOCABULARY`) are dropped; use it to order the label set
    of a database, a head or a table.
    """
    have = set(expressions)
    return [e for e in VOCABULARY if e in have]


def name_seed(name: str) -> int:
    """The number a name (a culture, a pair of cultures) contributes to a seed: its CRC-32.

    Used with :class:`numpy.random.SeedSequence` (``SeedSequence([seed, name_seed(name)])``)
    wherever a name picks a random stream, so two names give independent streams from one
    study seed. (The training runs' seeds hash database names with SHA-256 instead,
    :func:`facedialect.training.splits.run_seeds`: kept, so that earlier runs' networks stay
    valid and their numbers reproducible.)
    """
    return zlib.crc32(name.encode("utf-8"))
