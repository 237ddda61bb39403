"""The trained heads on disk (``heads/{db}.pt``) and the trained backbone they belong to.

A heads file holds every run of one database: the stacked weights of the runs' heads,
their run ids, training curves, failed runs with reasons and the output units
(``expressions``). This module reads and writes the files; the training package builds
the networks from them (:meth:`~facedialect.training.trainer.MultiRunHead.from_state`).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from facedialect.errors import DamagedFileError, InputError
from facedialect.files import RUN_HINT, atomic_write_bytes, load_state, read_state
from facedialect.run.store import RunDir
from facedialect.vocab import EXPRESSIONS

#: Entries every ``heads/{db}.pt`` has (a file without one of them is damaged).
HEADS_KEYS = ("signature", "dropout", "runs", "w1", "b1", "w2", "b2", "w3", "b3",
              "train_loss", "train_correct", "validation", "failed_runs", "failed_reasons")

#: The message of every stage that needs trained networks and finds none.
NOT_TRAINED = "no trained networks; run `facedialect train` (or `facedialect run`) first"


def heads_path(run: RunDir, db: str, folder: str = "heads") -> Path:
    """The heads file of database ``db`` (``RUN/heads/{db}.pt``; ``folder``: a variant's)."""
    return run.path / folder / f"{db}.pt"


def write_heads(target: Path, state: dict[str, Any]) -> None:
    """Write a heads state atomically (``torch.save`` of tensors, lists and strings)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(target, buf.getvalue(), hint=RUN_HINT)


def saved_heads(target: Path) -> dict[str, Any] | None:
    """The heads state at ``target``, or None when absent or damaged (warned: trained again)."""
    if not target.exists():
        return None
    return read_state(target, HEADS_KEYS, "training its networks again")


def read_heads(path: Path, *, mmap: bool = False) -> dict[str, Any]:
    """Read ``heads/{db}.pt``; ``state["expressions"]`` names the output units in order.

    Files written before label sets existed have the first ``n_out`` of the seven
    expressions. ``mmap``: the weights are mapped from the file, not read
    (:func:`~facedialect.files.load_state`), for a reader of the run ids only.

    Raises
    ------
    InputError
        When the file is damaged (``facedialect train`` trains its networks again).
    """
    try:
        state = load_state(path, HEADS_KEYS, mmap=mmap)
    except DamagedFileError as exc:
        raise InputError(f"{exc}: run `facedialect train` again (it trains the networks of "
                         f"a damaged heads file again)") from None
    state.setdefault("expressions", list(EXPRESSIONS[:state["w3"].shape[2]]))
    return state


def trained_backbone(run: RunDir, backbone: str | None = None) -> tuple[str, str]:
    """The backbone tag and feature runtime the run's networks were trained on.

    Parameters
    ----------
    run : RunDir
        The run directory.
    backbone : str, optional
        The study's ``[model] backbone``: checked against the trained one.

    Returns
    -------
    tuple
        ``(tag, runtime)``, e.g. ``("mobilenet_v2|imagenet|…", "torch")``.

    Raises
    ------
    InputError
        When the run has no trained networks, or they were trained on another backbone.
    """
    training = run.read_manifest().get("training", {})
    tag = training.get("backbone")
    if tag is None:
        raise InputError(f"{run.path}: {NOT_TRAINED}")
    if backbone is not None and not str(tag).startswith(f"{backbone}|"):
        raise InputError(f"the networks were trained on {str(tag).split('|')[0]!r} features "
                         f"but the study's [model] backbone is {backbone!r}; train again or "
                         f"restore the study file")
    return str(tag), str(training.get("runtime", "torch"))
