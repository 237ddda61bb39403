"""Saliency maps through the whole network: frozen backbone + one trained head per run.

Two methods (docs/method.md §8): the plain gradient of a class score with respect to the input
pixels, and guided back-propagation (Springenberg et al. 2014), which stops negative
gradients at every ReLU / ReLU6 on the backward pass. The forward pass is never changed:
guided back-propagation is a forward hook on each activation module that returns the same
values through an autograd function with the guided backward, and the head's two ReLUs
use the same function.

Maps are gradients with respect to the pre-processed *gray* image in gray levels
(0..255), so the copy to three channels and the backbone's normalization are part of the
differentiated function; a map has the face's shape ``(H, W)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import numpy as np
import torch
from torch import nn

from facedialect.errors import InputError
from facedialect.models.backbones import Backbone
from facedialect.training.trainer import MultiRunHead

__all__ = [
    "METHODS",
    "SCORES",
    "Method",
    "Score",
    "class_scores",
    "gray_to_input",
    "guided_backprop",
    "guided_relu",
    "head_logits",
    "saliency_maps",
    "saliency_maps_all_runs",
]

Method = Literal["gradient", "guided"]
Score = Literal["probability", "logit", "log_probability"]

#: Saliency methods, in report order.
METHODS: tuple[str, ...] = ("gradient", "guided")
#: What is differentiated: the class probability (docs/method.md §8, the default), the FC3
#: response before softmax, or the log-probability.
SCORES: tuple[str, ...] = ("probability", "logit", "log_probability")


class _GuidedReLU(torch.autograd.Function):
    """``clamp(x, 0, upper)`` forward; guided backward ``max(g, 0) * [0 < x < upper]``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, upper: float | None) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.upper = upper
        return x.clamp(min=0.0) if upper is None else x.clamp(0.0, upper)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        open_ = x > 0
        if ctx.upper is not None:
            open_ = open_ & (x < ctx.upper)
        return grad.clamp(min=0.0) * open_, None


def guided_relu(x: torch.Tensor, upper: float | None = None) -> torch.Tensor:
    """ReLU (or ReLU6 with ``upper=6``) whose backward pass stops negative gradients.

    Parameters
    ----------
    x : torch.Tensor
        Pre-activation.
    upper : float, optional
        Upper clamp (6 for ReLU6); None for a plain ReLU.

    Returns
    -------
    torch.Tensor
        Exactly ``relu(x)`` (or ``relu6(x)``); on the backward pass the incoming gradient
        ``g`` becomes ``max(g, 0)`` where the unit was active (``0 < x < upper``) and 0
        elsewhere.
    """
    return _GuidedReLU.apply(x, upper)


def _activation_upper(module: nn.Module) -> tuple[bool, float | None]:
    if isinstance(module, nn.ReLU6):
        return True, 6.0
    if isinstance(module, nn.ReLU):
        return True, None
    return False, None


@contextmanager
def guided_backprop(model: nn.Module) -> Iterator[int]:
    """Within the block, every ``nn.ReLU`` / ``nn.ReLU6`` of ``model`` back-propagates guided.

    A forward hook on each activation module replaces its output with
    :func:`guided_relu` of its input: the same values, a guided backward. The hooks are
    removed on exit, so the model is unchanged afterwards.

    Parameters
    ----------
    model : torch.nn.Module
        Any model whose rectifiers are modules (the facedialect backbones are).

    Yields
    ------
    int
        The number of activation modules hooked.
    """
    handles = []
    for module in model.modules():
        is_act, upper = _activation_upper(module)
        if not is_act:
            continue

        def hook(mod: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor,
                 upper: float | None = upper) -> torch.Tensor:
            return guided_relu(args[0], upper)

        handles.append(module.register_forward_hook(hook))
    try:
        yield len(handles)
    finally:
        for h in handles:
            h.remove()


def gray_to_input(gray: torch.Tensor, backbone: Backbone) -> torch.Tensor:
    """Differentiable :func:`~facedialect.models.backbones.to_input` for float gray images.

    Parameters
    ----------
    gray : torch.Tensor
        ``(B, H, W)`` float gray levels in 0..255.
    backbone : Backbone
        Whose normalization to apply.

    Returns
    -------
    torch.Tensor
        ``(B, 3, H, W)``: the same numbers as ``to_input`` gives for the uint8 image.
    """
    spec = backbone.spec
    mean = torch.tensor(spec.mean, dtype=gray.dtype, device=gray.device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, dtype=gray.dtype, device=gray.device).view(1, 3, 1, 1)
    return (gray.unsqueeze(1) / 255.0 - mean) / std


def head_logits(head: MultiRunHead, feats: torch.Tensor, runs: Sequence[int],
                relu: Callable[[torch.Tensor], torch.Tensor] = torch.relu) -> torch.Tensor:
    """FC3 responses of the heads ``runs`` (positions in ``head``), batched over runs.

    Parameters
    ----------
    head : MultiRunHead
        The trained heads (no dropout is applied).
    feats : torch.Tensor
        ``(len(runs), B, D)``: the features each run sees.
    runs : sequence of int
        Positions along the head's run axis.
    relu : callable
        The rectifier (:func:`guided_relu` for guided back-propagation).

    Returns
    -------
    torch.Tensor
        ``(len(runs), B, 7)``.
    """
    runs = [int(r) for r in runs]
    if runs == list(range(runs[0], runs[0] + len(runs))):  # a slice: views, no copy
        sel: slice | torch.Tensor = slice(runs[0], runs[0] + len(runs))
    else:  # gathers copy the weights (large for AlexNet's FC1)
        sel = torch.as_tensor(runs, dtype=torch.long, device=head.w1.device)
    h = relu(torch.baddbmm(head.b1[sel], feats, head.w1[sel]))
    h = relu(torch.baddbmm(head.b2[sel], h, head.w2[sel]))
    return torch.baddbmm(head.b3[sel], h, head.w3[sel])


def class_scores(logits: torch.Tensor, classes: torch.Tensor, score: str) -> torch.Tensor:
    """The differentiated score of each sample's class: ``(..., B, 7)`` -> ``(..., B)``."""
    if score == "probability":
        values = torch.softmax(logits, -1)
    elif score == "log_probability":
        values = torch.log_softmax(logits, -1)
    elif score == "logit":
        values = logits
    else:
        raise InputError(f"unknown saliency score {score!r}; use one of {list(SCORES)}")
    idx = classes.expand(*logits.shape[:-1]).unsqueeze(-1)
    return values.gather(-1, idx).squeeze(-1)


def _check_batch(faces: np.ndarray, size: int) -> np.ndarray:
    arr = np.asarray(faces)
    if arr.ndim != 3 or arr.shape[1:] != (size, size):
        raise InputError(f"saliency needs a (B, {size}, {size}) batch of pre-processed faces, "
                         f"got shape {arr.shape}")
    return arr


def saliency_maps(
    backbone: Backbone,
    head: MultiRunHead,
    faces: np.ndarray,
    classes: Sequence[int] | np.ndarray,
    runs: Sequence[int] | np.ndarray,
    method: str = "gradient",
    *,
    score: str = "probability",
    batch_size: int = 16,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Saliency map of each face through the network of its run: the gradient of a class score.

    The faces of a chunk pass the (shared) backbone together; each face's features then
    go through the head of its own run, so one forward and one backward pass serve a
    chunk that mixes runs. Give the same face several times with different runs to get
    its map for each run (:func:`saliency_maps_all_runs` does that).

    Parameters
    ----------
    backbone : Backbone
        The frozen backbone (eval mode).
    head : MultiRunHead
        The trained heads of one database.
    faces : numpy.ndarray
        ``(N, H, W)`` pre-processed faces (uint8, or float gray levels 0..255).
    classes : sequence of int
        ``(N,)`` expression index whose score is differentiated for each face (its own
        class for the usual maps).
    runs : sequence of int
        ``(N,)`` position in ``head`` of the run whose network each face goes through.
    method : {"gradient", "guided"}
        Plain input gradient or guided back-propagation.
    score : {"probability", "logit", "log_probability"}
        What is differentiated (docs/method.md §8: the class probability). The share of a map
        in a region is the same for probability and log-probability (the two gradients
        differ by the factor ``p``).
    batch_size : int
        Faces per forward / backward pass.
    device : str or torch.device
        Where to compute.

    Returns
    -------
    numpy.ndarray
        ``(N, H, W)`` float32 signed maps, in score units per gray level. The same
        numbers whatever ``batch_size`` is (up to float rounding).

    Raises
    ------
    InputError
        On an unknown method or score, a wrong batch shape, a class outside 0..6, a run
        outside the head, or lengths that differ.
    """
    if method not in METHODS:
        raise InputError(f"unknown saliency method {method!r}; use one of {list(METHODS)}")
    if score not in SCORES:
        raise InputError(f"unknown saliency score {score!r}; use one of {list(SCORES)}")
    size = backbone.spec.input_size
    arr = _check_batch(faces, size)
    cls = np.asarray(classes, dtype=np.int64).reshape(-1)
    run_of = np.asarray(runs, dtype=np.int64).reshape(-1)
    n_out = head.w3.shape[2]
    if not len(cls) == len(run_of) == len(arr):
        raise InputError(f"{len(arr)} faces, {len(cls)} classes and {len(run_of)} runs: "
                         f"give one class and one run per face")
    if len(cls) and (cls.min() < 0 or cls.max() >= n_out):
        raise InputError(f"classes must lie in 0..{n_out - 1}, got {sorted(set(cls.tolist()))}")
    if len(run_of) and (run_of.min() < 0 or run_of.max() >= head.runs):
        raise InputError(f"runs must lie in 0..{head.runs - 1} (positions in the head), got "
                         f"{sorted(set(run_of.tolist()))}")
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    device = torch.device(device)
    out = np.empty((len(arr), size, size), dtype=np.float32)
    channels_last = next(backbone.parameters()).is_contiguous(
        memory_format=torch.channels_last)
    relu = guided_relu if method == "guided" else torch.relu
    ctx = guided_backprop(backbone) if method == "guided" else _nullcontext()
    with torch.enable_grad(), ctx:
        for i0 in range(0, len(arr), batch_size):
            sl = slice(i0, i0 + batch_size)
            gray = torch.as_tensor(arr[sl], dtype=torch.float32, device=device)
            gray = gray.clone().requires_grad_(True)
            x = gray_to_input(gray, backbone)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            feats = backbone(x)
            target = torch.as_tensor(cls[sl], device=device)
            total = feats.new_zeros(())
            for r in np.unique(run_of[sl]):
                rows = torch.as_tensor(np.flatnonzero(run_of[sl] == r), device=device)
                logits = head_logits(head, feats[rows].unsqueeze(0), [int(r)], relu)[0]
                total = total + class_scores(logits, target[rows], score).sum()
            (grad,) = torch.autograd.grad(total, gray)
            out[sl] = grad.cpu().numpy()
    return out


def saliency_maps_all_runs(
    backbone: Backbone,
    head: MultiRunHead,
    faces: np.ndarray,
    classes: Sequence[int] | np.ndarray,
    runs: Sequence[int],
    method: str = "gradient",
    **kwargs: object,
) -> np.ndarray:
    """Maps of every face for every run in ``runs``: ``(len(runs), N, H, W)``.

    The faces are repeated once per run and go through :func:`saliency_maps` (same
    keyword arguments), so a chunk batches faces and runs together.
    """
    arr = np.asarray(faces)
    cls = np.asarray(classes, dtype=np.int64).reshape(-1)
    runs = [int(r) for r in runs]
    if not runs:
        raise InputError("saliency needs at least one run")
    n = len(arr)
    maps = saliency_maps(backbone, head, np.concatenate([arr] * len(runs)),
                         np.tile(cls, len(runs)), np.repeat(runs, n), method,
                         **kwargs)  # type: ignore[arg-type]
    return maps.reshape(len(runs), n, *maps.shape[1:])


@contextmanager
def _nullcontext() -> Iterator[int]:
    yield 0
