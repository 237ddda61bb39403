"""The 7-expression vocabulary and the label codes of each database preset."""

from __future__ import annotations

from typing import Final

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
#: CK+ Emotion/ label numbers; 2 (contempt) has no place in the vocabulary.
CKPLUS_CODES: Final[dict[int, str | None]] = {
    0: "neutral", 1: "angry", 2: None, 3: "disgusted", 4: "fearful",
    5: "happy", 6: "sad", 7: "surprised",
}


def normalize_expression(word: str) -> str | None:
    """Map a free-form expression word to the vocabulary.

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
    """Return the position of ``expression`` in :data:`EXPRESSIONS`."""
    return EXPRESSIONS.index(expression)
