"""Emotion modification: gradient ascent on a face image toward a target class.

The pre-processed face (gray levels 0..255) is moved step by step along the gradient of
the mean over runs of the target class's log-probability (or FC3 response) of one
database's networks, minus a total-variation penalty that keeps the image smooth
(docs/method.md §8; the seed's "intensify" when the target is the face's own class, "convert"
otherwise). A step moves the image along the gradient, scaled so that its
root-mean-square over the changed pixels is the image's current step size (initially
``step_size`` gray levels), and clamps pixels to 0..255 (projected ascent). A step that
would lower the objective is not taken and that image's step size is halved, so the
objective never falls (near a maximum a fixed step would oscillate). An optional mask
(the pre-processing oval) keeps the background as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from facedialect.errors import InputError
from facedialect.models.backbones import Backbone
from facedialect.saliency.gradients import gray_to_input, head_logits
from facedialect.training.trainer import MultiRunHead

__all__ = ["OBJECTIVES", "ModifyResult", "modify_faces", "total_variation"]

#: What is raised: the mean over runs of the target's log-probability, or of its FC3
#: response before softmax.
OBJECTIVES: tuple[str, ...] = ("log_probability", "logit")


@dataclass
class ModifyResult:
    """The image sequence and the class probabilities at every step.

    Attributes
    ----------
    images : numpy.ndarray
        ``(steps + 1, B, H, W)`` float32 gray levels in 0..255; index 0 is the input.
    probabilities : numpy.ndarray
        ``(steps + 1, B, 7)``: softmax of each run's FC3 responses, averaged over runs.
    objective : numpy.ndarray
        ``(steps + 1, B)``: the raised score minus the TV penalty; never decreasing.
    """

    images: np.ndarray
    probabilities: np.ndarray
    objective: np.ndarray


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels of ``(B, H, W)`` images: ``(B,)``."""
    dx = (x[:, :, 1:] - x[:, :, :-1]).abs().mean((1, 2))
    dy = (x[:, 1:, :] - x[:, :-1, :]).abs().mean((1, 2))
    return dx + dy


def modify_faces(
    backbone: Backbone,
    head: MultiRunHead,
    faces: np.ndarray,
    targets: Sequence[int] | np.ndarray,
    runs: Sequence[int],
    *,
    steps: int = 40,
    step_size: float = 2.0,
    tv_weight: float = 20.0,
    objective: str = "log_probability",
    mask: np.ndarray | None = None,
    device: str | torch.device = "cpu",
) -> ModifyResult:
    """Raise each face's target class by projected gradient ascent on its pixels.

    Parameters
    ----------
    backbone : Backbone
        The frozen backbone.
    head : MultiRunHead
        One database's trained heads.
    faces : numpy.ndarray
        ``(B, H, W)`` pre-processed faces (gray levels 0..255); several faces (or one
        face repeated with different targets) are modified together.
    targets : sequence of int
        ``(B,)`` target expression index of each face.
    runs : sequence of int
        Positions of the runs in ``head`` whose mean is raised.
    steps : int
        Ascent steps.
    step_size : float
        Root-mean-square change of the first step, in gray levels (over the pixels
        ``mask`` allows); halved for an image whenever its step would lower the
        objective.
    tv_weight : float
        Weight of the total-variation penalty, subtracted from the objective: the penalty
        is ``tv_weight`` times :func:`total_variation` (mean absolute difference of
        neighbouring pixels, in gray levels). At the default 20, a change that adds one
        gray level of roughness everywhere costs as much as lowering the target's
        log-probability by 20; 0 lets high-frequency patterns appear.
    objective : {"log_probability", "logit"}
        The score raised, averaged over runs.
    mask : numpy.ndarray, optional
        ``(H, W)`` weights in 0..1 on the update (e.g. the oval mask of pre-processing:
        the background stays as it was).
    device : str or torch.device
        Where to compute.

    Returns
    -------
    ModifyResult
        Images, probabilities and objective at every step (step 0: the input).

    Raises
    ------
    InputError
        On bad shapes, a target outside 0..6, negative steps, step size or TV weight, or
        an unknown objective.
    """
    arr = np.asarray(faces, dtype=np.float32)
    size = backbone.spec.input_size
    if arr.ndim != 3 or arr.shape[1:] != (size, size):
        raise InputError(f"modification needs a (B, {size}, {size}) batch of faces, got "
                         f"shape {arr.shape}")
    tgt = np.asarray(targets, dtype=np.int64).reshape(-1)
    n_out = head.w3.shape[2]
    if len(tgt) != len(arr):
        raise InputError(f"{len(arr)} faces but {len(tgt)} targets")
    if len(tgt) and (tgt.min() < 0 or tgt.max() >= n_out):
        raise InputError(f"targets must lie in 0..{n_out - 1}")
    if objective not in OBJECTIVES:
        raise InputError(f"unknown objective {objective!r}; use one of {list(OBJECTIVES)}")
    if steps < 0 or step_size < 0 or tv_weight < 0:
        raise InputError(f"steps ({steps}), step size ({step_size}) and TV weight "
                         f"({tv_weight}) must not be negative")
    runs = [int(r) for r in runs]
    if not runs:
        raise InputError("modification needs at least one run")
    device = torch.device(device)
    m = (torch.ones((size, size)) if mask is None
         else torch.as_tensor(np.array(mask, np.float32))).to(device)
    if tuple(m.shape) != (size, size):
        raise InputError(f"mask must be {size}x{size}, got {tuple(m.shape)}")
    t = torch.as_tensor(tgt, device=device)
    area = float(m.pow(2).sum().clamp_min(1.0))

    def evaluate(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        g = img.clone().requires_grad_(True)
        with torch.enable_grad():
            feats = backbone(gray_to_input(g, backbone))
            logits = head_logits(head, feats.unsqueeze(0).expand(len(runs), -1, -1), runs)
            score = (torch.log_softmax(logits, -1) if objective == "log_probability"
                     else logits)
            raised = score.gather(-1, t.expand(len(runs), -1).unsqueeze(-1)).squeeze(-1)
            obj = raised.mean(0) - tv_weight * total_variation(g)
            (grad,) = torch.autograd.grad(obj.sum(), g)
        return obj.detach(), torch.softmax(logits.detach(), -1).mean(0), grad * m

    x = torch.as_tensor(arr, device=device).clamp(0.0, 255.0)
    obj, prob, grad = evaluate(x)
    alpha = torch.full((len(arr),), float(step_size), device=device)
    images, probs, objs = [x.cpu().numpy().copy()], [prob.cpu().numpy()], [obj.cpu().numpy()]
    for _ in range(steps):
        rms = grad.pow(2).sum((1, 2)).div(area).sqrt().clamp_min(1e-12)
        cand = (x + (alpha / rms).view(-1, 1, 1) * grad).clamp(0.0, 255.0)
        c_obj, c_prob, c_grad = evaluate(cand)
        ok = c_obj >= obj  # accept a step only if it raises the objective, else halve it
        keep = ok.view(-1, 1, 1)
        x = torch.where(keep, cand, x)
        grad = torch.where(keep, c_grad, grad)
        obj = torch.where(ok, c_obj, obj)
        prob = torch.where(ok.view(-1, 1), c_prob, prob)
        alpha = torch.where(ok, alpha, alpha * 0.5)
        images.append(x.cpu().numpy().copy())
        probs.append(prob.cpu().numpy())
        objs.append(obj.cpu().numpy())
    return ModifyResult(np.stack(images).astype(np.float32), np.stack(probs),
                        np.stack(objs))
