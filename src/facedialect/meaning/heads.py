"""Per-culture rating heads of several runs, trained together as one batched model.

On frozen backbone features (the classification's feature cache), every culture has its
own head predicting its K concept ratings: FC ``hidden`` units, ReLU, FC K (or one linear
layer with ``hidden = 0``), with dropout before each layer. The heads of all cultures and
all runs are stacked into batched tensors (run axis first, the cultures' hidden units
side by side), so one batched matrix product serves them all; the cultures share no
weights. The loss is the mean squared error over the (image, concept) entries a culture
rated, per culture and run (masked where a culture did not rate an image), summed. Each
run has its own initialisation, sample order and dropout seeds, and AdamW's update is
element-wise, so a run's numbers do not depend on the other runs trained beside it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from facedialect.training.splits import RunSeeds


@dataclass(frozen=True)
class HeadSettings:
    """Numbers of the rating heads' training.

    Attributes
    ----------
    runs : int
        Runs (each with its own seeds and, without groups, its own cross-validation fold).
    iterations : int
        AdamW steps.
    batch_size : int
        (image, variant) samples per step and run.
    lr : float
        AdamW learning rate.
    weight_decay : float
        AdamW (decoupled) weight decay.
    hidden : int
        Hidden units of each culture's head (0: a linear head).
    dropout : float
        Dropout probability before each layer.
    variants : int
        Augmentation variants per image used in training and averaged in prediction
        (:func:`~facedialect.preprocess.augment.variant_subset`: spread over sizes,
        positions and mirror images).
    """

    runs: int
    iterations: int
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    hidden: int = 128
    dropout: float = 0.1
    variants: int = 10

    def as_dict(self) -> dict[str, float | int]:
        """Plain dict (for the manifest and the report)."""
        return asdict(self)


#: Defaults per ``[training] protocol``: 'paper' sized for a GPU or patient CPU, 'quick'
#: for 2 CPU cores. ``[meaning]`` keys override single values.
HEAD_DEFAULTS = {
    "paper": HeadSettings(runs=10, iterations=2000, batch_size=64, hidden=256, variants=50),
    "quick": HeadSettings(runs=4, iterations=300, batch_size=32, hidden=64, variants=10),
}


@dataclass
class RatingPlan:
    """One run: its seeds, and the rows of the feature array it trains and is tested on."""

    run: int
    seeds: RunSeeds
    train_idx: np.ndarray
    test_idx: np.ndarray


class MultiCultureHead(nn.Module):
    """The rating heads of R runs and C cultures, weights stacked along a run axis.

    Parameters
    ----------
    init_seeds : sequence of int
        One initialisation seed per run.
    in_dim : int
        Feature size.
    n_concepts : sequence of int
        K of every culture; outputs are padded to the largest K.
    hidden : int
        Hidden units per culture head (0: linear).
    dropout : float
        Dropout probability before each layer.
    """

    def __init__(self, init_seeds: Sequence[int], in_dim: int, n_concepts: Sequence[int],
                 hidden: int = 128, dropout: float = 0.1) -> None:
        super().__init__()
        r, c, k = len(init_seeds), len(n_concepts), max(n_concepts)
        self.n_concepts = list(n_concepts)
        self.hidden = int(hidden)
        self.dropout = float(dropout)
        self.register_buffer("x_mean", torch.zeros(r, 1, in_dim))
        self.register_buffer("x_scale", torch.ones(r, 1, in_dim))
        if self.hidden:
            self.w1 = nn.Parameter(torch.empty(r, in_dim, c * self.hidden))
            self.b1 = nn.Parameter(torch.zeros(r, 1, c * self.hidden))
            self.w2 = nn.Parameter(torch.empty(r, c, self.hidden, k))
        else:
            self.w2 = nn.Parameter(torch.empty(r, in_dim, c * k))
        self.b2 = nn.Parameter(torch.zeros(r, 1, c, k))
        with torch.no_grad():  # the output layer starts at 0: every head starts at the mean,
            self.w2.zero_()  # so no random projection of the features is shared by chance
            if self.hidden:
                for i, seed in enumerate(init_seeds):  # He-normal, own stream per run
                    g = torch.Generator().manual_seed(int(seed))
                    self.w1[i].normal_(0.0, math.sqrt(2.0 / in_dim), generator=g)

    @property
    def runs(self) -> int:
        """Number of runs R."""
        return self.b2.shape[0]

    def forward(self, x: torch.Tensor,
                masks: tuple[torch.Tensor, torch.Tensor | None] | None = None
                ) -> torch.Tensor:
        """Predicted ratings ``(R, B, C, K)`` for features ``(R, B, D)``.

        ``masks`` are scaled dropout keep-masks ``(R, B, D)`` and ``(R, B, C * hidden)``
        (None without a hidden layer); ``None`` predicts without dropout.
        """
        r, b, _ = x.shape
        c, k = len(self.n_concepts), self.b2.shape[-1]
        x = (x - self.x_mean) / self.x_scale
        if masks is not None:
            x = x * masks[0]
        if not self.hidden:
            return (torch.bmm(x, self.w2).reshape(r, b, c, k)) + self.b2
        h = torch.relu(torch.baddbmm(self.b1, x, self.w1))
        if masks is not None and masks[1] is not None:
            h = h * masks[1]
        h = h.reshape(r, b, c, self.hidden)
        return torch.einsum("rbch,rchk->rbck", h, self.w2) + self.b2


@dataclass
class RatingTrainOutcome:
    """What :func:`train_rating_heads` returns."""

    head: MultiCultureHead
    loss: np.ndarray  # (iterations, R): training loss per step and run
    seconds: float


class _Stream:
    """An endless stream of per-epoch shuffles of ``0 .. n - 1``, seeded per epoch."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed = n, int(seed)
        self.epoch, self.pos = -1, 0
        self.perm = torch.empty(0, dtype=torch.long)

    def _shuffle(self) -> None:
        self.epoch += 1
        state = np.random.SeedSequence([self.seed, self.epoch]).generate_state(1)[0]
        self.perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(int(state)))
        self.pos = 0

    def take(self, count: int) -> torch.Tensor:
        """The next ``count`` samples."""
        out = []
        while count > 0:
            if self.pos >= len(self.perm):
                self._shuffle()
            part = self.perm[self.pos:self.pos + count]
            out.append(part)
            self.pos += len(part)
            count -= len(part)
        return torch.cat(out)


def _feature_stats(feats: torch.Tensor, plans: Sequence[RatingPlan], variants: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-run mean and SD ``(R, 1, D)`` of the training images' features."""
    s1 = torch.empty(feats.shape[0], feats.shape[2])
    s2 = torch.empty_like(s1)
    step = max(1, int(2**26 // max(1, variants * feats.shape[2])))  # ~256 MB of float32
    for i in range(0, feats.shape[0], step):
        f = feats[i:i + step, :variants].float()
        s1[i:i + step], s2[i:i + step] = f.mean(1), (f ** 2).mean(1)
    means, scales = [], []
    for p in plans:
        idx = torch.as_tensor(p.train_idx, dtype=torch.long)
        m = s1[idx].mean(0)
        sd = (s2[idx].mean(0) - m ** 2).clamp_min(0).sqrt()
        means.append(m)
        scales.append(torch.where(sd > 1e-6, sd, torch.ones_like(sd)))
    return torch.stack(means)[:, None], torch.stack(scales)[:, None]


def train_rating_heads(feats: torch.Tensor, targets: torch.Tensor,
                       plans: Sequence[RatingPlan], n_concepts: Sequence[int],
                       settings: HeadSettings, *, device: str | torch.device = "cpu",
                       progress: Callable[[int, int], None] | None = None
                       ) -> RatingTrainOutcome:
    """Train every run's per-culture rating heads together.

    Parameters
    ----------
    feats : torch.Tensor
        ``(N, V, D)`` cached features of the rated images (float16 is fine).
    targets : torch.Tensor
        ``(N, C, K)`` mean ratings, NaN where a culture did not rate an image (and in the
        padding beyond a culture's K).
    plans : sequence of RatingPlan
        The runs.
    n_concepts : sequence of int
        K of every culture.
    settings : HeadSettings
        Iterations, batch size, learning rate, weight decay, hidden units, dropout,
        variants.
    device : str or torch.device
        Where to train.
    progress : callable, optional
        Called as ``progress(iteration, iterations)``.

    Returns
    -------
    RatingTrainOutcome
        The heads and the per-step training loss of every run.

    Raises
    ------
    ValueError
        When a run has no training image rated by some culture.
    """
    t0 = time.perf_counter()
    device = torch.device(device)
    v = min(settings.variants, feats.shape[1])
    mask_all = ~torch.isnan(targets)
    for p in plans:
        rated = mask_all[torch.as_tensor(p.train_idx, dtype=torch.long)].any(-1).any(0)
        if not bool(rated.all()):
            raise ValueError(f"run {p.run}: a culture rated none of its training images")
    head = MultiCultureHead([p.seeds.init for p in plans], feats.shape[2], n_concepts,
                            settings.hidden, settings.dropout)
    mean, scale = _feature_stats(feats, plans, v)
    with torch.no_grad():
        head.x_mean.copy_(mean)
        head.x_scale.copy_(scale)
        for r, p in enumerate(plans):  # start each output at its training mean
            t = targets[torch.as_tensor(p.train_idx, dtype=torch.long)]
            head.b2[r, 0] = torch.nan_to_num(torch.nanmean(t, 0), nan=0.0)
    head = head.to(device)
    opt = torch.optim.AdamW(head.parameters(), lr=settings.lr,
                            weight_decay=settings.weight_decay, foreach=True)
    y_all = torch.nan_to_num(targets, nan=0.0)
    bsz, its, drop = settings.batch_size, settings.iterations, settings.dropout
    keep = 1.0 - drop
    width = len(n_concepts) * settings.hidden
    drop_gens = [torch.Generator().manual_seed(int(p.seeds.dropout)) for p in plans]
    train_idx = [torch.as_tensor(p.train_idx, dtype=torch.long) for p in plans]
    loss_hist = np.zeros((its, len(plans)), dtype=np.float32)
    streams = [_Stream(len(train_idx[r]) * v, p.seeds.order) for r, p in enumerate(plans)]
    for t in range(its):
        sel = [s.take(bsz) for s in streams]
        img = torch.stack([train_idx[r][s // v] for r, s in enumerate(sel)])
        var = torch.stack([s % v for s in sel])
        x = feats[img, var].to(device=device, dtype=torch.float32)
        y, m = y_all[img].to(device), mask_all[img].to(device)
        masks = None
        if drop > 0:
            m1 = torch.stack([(torch.rand(bsz, x.shape[2], generator=g) >= drop).float()
                              for g in drop_gens]).to(device) / keep
            m2 = (torch.stack([(torch.rand(bsz, width, generator=g) >= drop).float()
                               for g in drop_gens]).to(device) / keep if width else None)
            masks = (m1, m2)
        pred = head(x, masks)
        sq = ((pred - y) ** 2) * m
        per = (sq.sum((1, 3)) / m.sum((1, 3)).clamp_min(1)).sum(1)  # (R,): sum over cultures
        opt.zero_grad(set_to_none=True)
        per.sum().backward()
        opt.step()
        loss_hist[t] = per.detach().cpu().numpy()
        if progress:
            progress(t + 1, its)
    return RatingTrainOutcome(head=head.eval(), loss=loss_hist,
                              seconds=time.perf_counter() - t0)


@torch.no_grad()
def predict_ratings(head: MultiCultureHead, feats: torch.Tensor, variants: int, *,
                    device: str | torch.device = "cpu", chunk: int | None = None
                    ) -> np.ndarray:
    """Every run's predictions ``(R, N, C, K)`` for all images, averaged over variants.

    Parameters
    ----------
    head : MultiCultureHead
        Trained heads.
    feats : torch.Tensor
        ``(N, V, D)`` features.
    variants : int
        The first ``variants`` of the ``V`` variants in ``feats`` are predicted and
        averaged.
    device : str or torch.device
        Where to compute.
    chunk : int, optional
        Images per forward pass (default: about 256 MB of float32 inputs for all runs).
    """
    head = head.to(device).eval()
    v = min(variants, feats.shape[1])
    if chunk is None:
        chunk = max(1, int(2**26 // max(1, head.runs * v * feats.shape[2])))
    outs = []
    for i in range(0, feats.shape[0], chunk):
        x = feats[i:i + chunk, :v].to(device=device, dtype=torch.float32)
        n, _, d = x.shape
        xb = x.reshape(1, n * v, d).expand(head.runs, -1, -1)
        out = head(xb)  # (R, n * v, C, K)
        outs.append(out.reshape(head.runs, n, v, *out.shape[2:]).mean(2).cpu())
    return torch.cat(outs, 1).numpy().astype(np.float64)


__all__ = ["HEAD_DEFAULTS", "HeadSettings", "MultiCultureHead", "RatingPlan",
           "RatingTrainOutcome", "predict_ratings", "train_rating_heads"]
