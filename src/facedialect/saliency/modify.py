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

Such a change can raise the optimised networks' probability with no visible change (an
adversarial perturbation). :func:`modify_faces_visible` asks for a change that holds up:
it optimises the expectation over the augmentation variants (sizes, positions, mirror
images: the transformations the networks were trained to ignore), through a smooth
parameterisation (a coarse grid of changes, bilinearly interpolated) with a total-variation
penalty, and both functions report the probabilities of held-out runs that the change
was not optimised on (docs/method.md §8 and §11).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from facedialect.errors import InputError
from facedialect.models.backbones import Backbone
from facedialect.preprocess.augment import N_VARIANTS, variant_table
from facedialect.preprocess.params import PreprocessParams
from facedialect.saliency.gradients import gray_to_input, head_logits
from facedialect.training.trainer import MultiRunHead

__all__ = ["OBJECTIVES", "ModifyResult", "modify_faces", "modify_faces_visible",
           "total_variation", "variant_grids"]

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
        ``(steps + 1, B)``: the raised score minus the TV penalty (never decreasing for
        :func:`modify_faces`; for :func:`modify_faces_visible` the score is the mean over
        the variants drawn at that step).
    held_out : numpy.ndarray or None
        ``(steps + 1, B, 7)``: the class probabilities of the held-out runs (averaged over
        them) for the plain image at every step; ``None`` when no run was held out.
    """

    images: np.ndarray
    probabilities: np.ndarray
    objective: np.ndarray
    held_out: np.ndarray | None = None


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
    held_out_runs: Sequence[int] = (),
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
    held_out_runs : sequence of int
        Positions of runs that judge every step without being optimised
        (:attr:`ModifyResult.held_out`).
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
    arr, tgt = _check_faces(backbone, head, faces, targets)
    size = backbone.spec.input_size
    if objective not in OBJECTIVES:
        raise InputError(f"unknown objective {objective!r}; use one of {list(OBJECTIVES)}")
    if steps < 0 or step_size < 0 or tv_weight < 0:
        raise InputError(f"steps ({steps}), step size ({step_size}) and TV weight "
                         f"({tv_weight}) must not be negative")
    runs, held = _check_runs(runs, held_out_runs)
    device = torch.device(device)
    m = _mask_tensor(mask, size, device)
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
    held_probs = [_probabilities(backbone, head, x, held)] if held else []
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
        if held:
            held_probs.append(_probabilities(backbone, head, x, held))
    return ModifyResult(np.stack(images).astype(np.float32), np.stack(probs),
                        np.stack(objs), np.stack(held_probs) if held else None)


def _check_faces(backbone: Backbone, head: MultiRunHead, faces: np.ndarray,
                 targets: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The faces as float32 ``(B, S, S)`` and the targets as int64 ``(B,)``, checked."""
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
    return arr, tgt


def _check_runs(runs: Sequence[int], held_out: Sequence[int]) -> tuple[list[int], list[int]]:
    runs, held = [int(r) for r in runs], [int(r) for r in held_out]
    if not runs:
        raise InputError("modification needs at least one run")
    if set(runs) & set(held):
        raise InputError(f"runs {sorted(set(runs) & set(held))} are both optimised and "
                         "held out")
    return runs, held


def _mask_tensor(mask: np.ndarray | None, size: int, device: torch.device) -> torch.Tensor:
    m = (torch.ones((size, size)) if mask is None
         else torch.as_tensor(np.array(mask, np.float32))).to(device)
    if tuple(m.shape) != (size, size):
        raise InputError(f"mask must be {size}x{size}, got {tuple(m.shape)}")
    return m


@torch.no_grad()
def _probabilities(backbone: Backbone, head: MultiRunHead, x: torch.Tensor,
                   runs: Sequence[int]) -> np.ndarray:
    """Class probabilities of ``(B, H, W)`` images, averaged over ``runs``: ``(B, 7)``."""
    feats = backbone(gray_to_input(x, backbone))
    logits = head_logits(head, feats.unsqueeze(0).expand(len(runs), -1, -1), runs)
    return torch.softmax(logits, -1).mean(0).cpu().numpy()


def variant_grids(params: PreprocessParams, variants: Sequence[int] | None = None,
                  device: str | torch.device = "cpu") -> torch.Tensor:
    """Sampling grids that make the augmentation variants with ``grid_sample``.

    The same geometry as :func:`facedialect.preprocess.augment.make_variants` (scale about
    the image centre, shift, then the mirror image), differentiable; with bilinear
    sampling and the background gray outside the image the variants agree with
    ``make_variants`` to rounding.

    Parameters
    ----------
    params : PreprocessParams
        ``size``, ``variant_scales`` and ``variant_shift_px``.
    variants : sequence of int, optional
        Variant indices (default all 50).
    device : str or torch.device
        Where the grids live.

    Returns
    -------
    torch.Tensor
        ``(len(variants), size, size, 2)`` grids (``align_corners=True``).
    """
    table = variant_table(params)
    idx = list(range(N_VARIANTS)) if variants is None else [int(v) for v in variants]
    rows = table.iloc[idx]
    size = params.size
    theta = torch.zeros((len(idx), 2, 3), dtype=torch.float32)
    scale = torch.as_tensor(rows["scale"].to_numpy(np.float32))
    flip = torch.as_tensor(np.where(rows["flip"].to_numpy(), -1.0, 1.0), dtype=torch.float32)
    # output pixel p = s (q - c) + c + d for source pixel q (cv2's map), in [-1, 1] units
    # (a mirror image reflects the output's x before the map: the x scale changes sign)
    theta[:, 0, 0] = flip / scale
    theta[:, 0, 2] = -2.0 * torch.as_tensor(rows["dx"].to_numpy(np.float32)) / (
        (size - 1) * scale)
    theta[:, 1, 1] = 1.0 / scale
    theta[:, 1, 2] = -2.0 * torch.as_tensor(rows["dy"].to_numpy(np.float32)) / (
        (size - 1) * scale)
    grids = torch.nn.functional.affine_grid(theta, [len(idx), 1, size, size],
                                            align_corners=True)
    return grids.to(device)


def _warp(x: torch.Tensor, grids: torch.Tensor, background: float) -> torch.Tensor:
    """Every image of ``(B, H, W)`` in every variant: ``(V * B, H, W)`` (variant-major)."""
    v, b = grids.shape[0], x.shape[0]
    src = (x - background).unsqueeze(0).expand(v, -1, -1, -1).reshape(v * b, 1, *x.shape[1:])
    g = grids.unsqueeze(1).expand(-1, b, -1, -1, -1).reshape(v * b, *grids.shape[1:])
    out = torch.nn.functional.grid_sample(src, g, mode="bilinear", padding_mode="zeros",
                                          align_corners=True)
    return out[:, 0] + background


def modify_faces_visible(
    backbone: Backbone,
    head: MultiRunHead,
    faces: np.ndarray,
    targets: Sequence[int] | np.ndarray,
    runs: Sequence[int],
    params: PreprocessParams,
    *,
    held_out_runs: Sequence[int] = (),
    steps: int = 40,
    step_size: float = 2.0,
    tv_weight: float = 20.0,
    cell: int = 8,
    variants_per_step: int = 8,
    mask: np.ndarray | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> ModifyResult:
    """Raise each face's target class with a change that carries over to other networks.

    Expectation over transformation: each step draws ``variants_per_step`` of the 50
    augmentation variants (seeded; the plain image always among them), warps the current
    image into each (:func:`variant_grids`) and raises the target's log-probability
    averaged over those variants and the optimised runs, less ``tv_weight`` times the
    :func:`total_variation` of the change (the face's own edges cost nothing). The change
    is a coarse grid of values, one per ``cell`` x ``cell`` pixels, bilinearly interpolated
    to the image and multiplied by ``mask``, so it cannot hide in single pixels; Adam moves
    the grid by about ``step_size`` gray levels a step; the image is clamped to 0..255.

    Parameters
    ----------
    backbone, head, faces, targets, runs
        As for :func:`modify_faces`.
    params : PreprocessParams
        The study's pre-processing (the variants' geometry and background gray).
    held_out_runs : sequence of int
        Runs that judge every step without being optimised
        (:attr:`ModifyResult.held_out`): a change that raises only the optimised runs'
        probability is not a modification.
    steps : int
        Optimisation steps.
    step_size : float
        Adam's learning rate in gray levels.
    tv_weight : float
        Weight of the total-variation penalty on the change (mean absolute difference of
        neighbouring pixels of the change, in gray levels).
    cell : int
        Side in pixels of one value of the change's grid (1: every pixel free).
    variants_per_step : int
        Augmentation variants averaged per step (1..50).
    mask : numpy.ndarray, optional
        ``(H, W)`` weights in 0..1 on the change (the pre-processing oval).
    seed : int
        Seed of the variants drawn.
    device : str or torch.device
        Where to compute.

    Returns
    -------
    ModifyResult
        Images, probabilities of the optimised runs (plain image), objective and the
        held-out runs' probabilities at every step (step 0: the input).

    Raises
    ------
    InputError
        On bad shapes or targets, a run both optimised and held out, or settings out of
        range.
    """
    arr, tgt = _check_faces(backbone, head, faces, targets)
    size = backbone.spec.input_size
    if params.size != size:
        raise InputError(f"the faces are pre-processed to {params.size} px, the backbone "
                         f"takes {size} px")
    if steps < 0 or step_size <= 0 or tv_weight < 0 or not 1 <= cell <= size \
            or not 1 <= variants_per_step <= N_VARIANTS:
        raise InputError(f"steps ({steps}) and TV weight ({tv_weight}) must not be "
                         f"negative, step size ({step_size}) must be positive, cell "
                         f"({cell}) 1..{size}, variants per step ({variants_per_step}) "
                         f"1..{N_VARIANTS}")
    runs, held = _check_runs(runs, held_out_runs)
    device = torch.device(device)
    m = _mask_tensor(mask, size, device)
    t = torch.as_tensor(tgt, device=device)
    bg = float(params.background_gray)
    grids = variant_grids(params, device=device)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 17]))
    coarse = -(-size // cell)
    x0 = torch.as_tensor(arr, device=device).clamp(0.0, 255.0)
    z = torch.zeros((len(arr), 1, coarse, coarse), device=device, requires_grad=True)
    opt = torch.optim.Adam([z], lr=float(step_size))

    def image() -> torch.Tensor:
        delta = torch.nn.functional.interpolate(z, size=(size, size), mode="bilinear",
                                                align_corners=False)[:, 0]
        return (x0 + delta * m).clamp(0.0, 255.0)

    def record(x: torch.Tensor, logits: torch.Tensor, feats: torch.Tensor,
               obj: torch.Tensor) -> None:
        # the plain image is variant 0 of the batch: its features serve every run
        images.append(x.detach().cpu().numpy().copy())
        probs.append(torch.softmax(logits.detach()[:, :len(arr)], -1).mean(0).cpu().numpy())
        objs.append(obj.detach().cpu().numpy())
        if held:
            f = feats.detach()[:len(arr)]
            held_logits = head_logits(head, f.unsqueeze(0).expand(len(held), -1, -1), held)
            held_probs.append(torch.softmax(held_logits, -1).mean(0).cpu().numpy())

    images: list[np.ndarray] = []
    probs: list[np.ndarray] = []
    objs: list[np.ndarray] = []
    held_probs: list[np.ndarray] = []
    nv = len(runs)
    for step in range(steps + 1):
        drawn = [0, *rng.choice(np.arange(1, N_VARIANTS), size=variants_per_step - 1,
                                replace=False).tolist()]
        with torch.enable_grad():
            x = image()
            warped = _warp(x, grids[drawn], bg)
            feats = backbone(gray_to_input(warped, backbone))
            logits = head_logits(head, feats.unsqueeze(0).expand(nv, -1, -1), runs)
            score = torch.log_softmax(logits, -1)
            idx = t.repeat(len(drawn)).expand(nv, -1).unsqueeze(-1)
            raised = score.gather(-1, idx).squeeze(-1).view(nv, len(drawn), len(arr))
            obj = raised.mean((0, 1)) - tv_weight * total_variation(x - x0)
            with torch.no_grad():
                record(x, logits, feats, obj)
            if step == steps:
                break
            opt.zero_grad()
            (-obj.sum()).backward()
        opt.step()
    return ModifyResult(np.stack(images).astype(np.float32), np.stack(probs),
                        np.stack(objs), np.stack(held_probs) if held else None)
