"""A database's labels against the study's label set: label maps, merges, exclusions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from facedialect.databases.schema import (
    NOT_STUDIED,
    UNKNOWN_CODE,
    UNKNOWN_FOLDER,
    Candidate,
    reason,
    reason_category,
)
from facedialect.errors import InputError
from facedialect.vocab import EXPRESSIONS, VOCABULARY

#: Reasons a label map can lift: the preset did not know the label.
_UNKNOWN = frozenset({UNKNOWN_CODE, UNKNOWN_FOLDER})


def apply_label_set(cands: Sequence[Candidate], *, db: str,
                    expressions: Sequence[str] = EXPRESSIONS,
                    label_map: Mapping[str, str] | None = None,
                    exclude: Sequence[str] = (), merge: bool = False) -> None:
    """Map each candidate's label onto the study's label set, in place.

    1. ``label_map`` keys are matched, ignoring case, against the label as the database
       gives it (``Candidate.label``: a file-name code, folder name, manifest word or CK+
       number), then against the expression the preset read from it. A mapped label
       that the preset did not know is no longer excluded for that.
    2. Two different labels that end up as one expression through the map (e.g.
       ``{ surprised = "fearful" }`` beside real fearful images, or an unknown folder
       mapped onto an existing expression) are an error unless ``merge`` is true.
    3. Candidates whose expression is not in ``expressions`` or is in ``exclude`` are
       excluded as ``expression not studied``.

    Parameters
    ----------
    cands : sequence of Candidate
        Every file the preset found.
    db : str
        The database's name (for messages).
    expressions : sequence of str
        The study's label set.
    label_map : mapping, optional
        Label -> expression (already checked to be in the vocabulary).
    exclude : sequence of str
        Study expressions not used from this database.
    merge : bool
        Allow the map to merge two labels into one expression.

    Raises
    ------
    InputError
        When the map merges labels without ``merge``, or maps a label that no file has.
    """
    lowered = {k.strip().lower(): v for k, v in (label_map or {}).items()}
    used: set[str] = set()
    sources: dict[str, set[str]] = {}
    mapped_into: set[str] = set()
    for cand in cands:
        raw = cand.label.strip().lower()
        key = raw if raw in lowered else (cand.expression if cand.expression in lowered
                                           else None)
        if key is not None:
            used.add(key)
        cat = reason_category(cand.reason)
        if cand.reason and cat not in _UNKNOWN:
            continue
        source = cand.expression or f"label {cand.label!r}"
        if key is not None:
            cand.expression = lowered[key]
            if cat in _UNKNOWN:
                cand.reason = ""
            if source != cand.expression:
                mapped_into.add(cand.expression)
        if cand.reason:
            continue
        sources.setdefault(cand.expression, set()).add(source)
    merged = {e: sorted(s) for e, s in sources.items() if len(s) > 1 and e in mapped_into}
    if merged and not merge:
        what = "; ".join(f"{', '.join(s)} onto {e!r}" for e, s in merged.items())
        raise InputError(f"database {db!r}: label_map merges two labels into one expression "
                         f"({what}); set merge_labels = true for this database if that is "
                         f"meant, or map only one of them")
    unused = sorted(set(lowered) - used)
    if unused:
        raise InputError(f"database {db!r}: label_map names label(s) {unused} that no file of "
                         f"the database has; check their spelling (labels as in the file "
                         f"names, folders or manifest)")
    studied = [e for e in VOCABULARY if e in set(expressions) and e not in set(exclude)]
    for cand in cands:
        if cand.reason or not cand.expression or cand.expression in studied:
            continue
        if cand.expression in exclude:
            detail = f"{cand.expression} (exclude_expressions of database {db})"
        else:
            detail = (f"{cand.expression} is not among the study's expressions "
                      f"({', '.join(expressions)}); add it to [study] expressions to use it")
        cand.reason = reason(NOT_STUDIED, detail)
