"""The batched multi-run trainer: R heads of one database trained together as one model.

Each run has its own weight tensors (stacked along a leading run axis), its own split,
data order, dropout masks and initialisation, all drawn from its own seeds, so a run's
numbers do not depend on which other runs share the batch. Large batched matrix products
(``torch.baddbmm``) keep the hardware busy. Random streams are stateless (seeded per run
and epoch / iteration), so a killed training resumes from its last checkpoint and ends
with the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facedialect.labels import EXPRESSIONS
from facedialect.store import atomic_write_bytes
from facedialect.training.protocol import Protocol
from facedialect.training.splits import RunSeeds

N_CLASSES = len(EXPRESSIONS)


@dataclass
class RunPlan:
    """One run: its seeds and which images it trains and validates on.

    ``train_idx`` / ``val_idx`` index the rows of the feature array given to
    :func:`train_runs`.
    """

    run: int
    seeds: RunSeeds
    train_idx: np.ndarray
    val_idx: np.ndarray


class MultiRunHead(nn.Module):
    """FC 4096-4096-7 heads of R runs (SCIENCE §4), weights stacked along a run axis.

    Parameters
    ----------
    init_seeds : sequence of int
        One He-initialisation seed per run.
    in_dim : int
        Feature size of the backbone.
    hidden : int
        Units of FC1 and FC2.
    n_out : int
        Output units (7 expressions).
    dropout : float
        Dropout probability before FC1 and before FC2.
    """

    def __init__(self, init_seeds: Sequence[int], in_dim: int, hidden: int = 4096,
                 n_out: int = N_CLASSES, dropout: float = 0.1) -> None:
        super().__init__()
        r = len(init_seeds)
        self.dropout = dropout
        self.w1 = nn.Parameter(torch.empty(r, in_dim, hidden))
        self.b1 = nn.Parameter(torch.zeros(r, 1, hidden))
        self.w2 = nn.Parameter(torch.empty(r, hidden, hidden))
        self.b2 = nn.Parameter(torch.zeros(r, 1, hidden))
        self.w3 = nn.Parameter(torch.empty(r, hidden, n_out))
        self.b3 = nn.Parameter(torch.zeros(r, 1, n_out))
        with torch.no_grad():
            for i, seed in enumerate(init_seeds):  # He-normal: std sqrt(2 / fan_in)
                g = torch.Generator().manual_seed(int(seed))
                for w in (self.w1, self.w2, self.w3):
                    w[i].copy_(torch.randn(w.shape[1:], generator=g) * math.sqrt(2.0 / w.shape[1]))

    @property
    def runs(self) -> int:
        """Number of runs R."""
        return self.w1.shape[0]

    def forward(self, x: torch.Tensor, masks: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> torch.Tensor:
        """Return FC3 responses (before softmax) ``(R, B, 7)`` for inputs ``(R, B, D)``.

        ``masks`` are the dropout keep-masks before FC1 ``(R, B, D)`` and FC2
        ``(R, B, H)``; ``None`` evaluates without dropout.
        """
        keep = 1.0 - self.dropout
        if masks is not None:
            x = x * masks[0] / keep
        h = torch.relu(torch.baddbmm(self.b1, x, self.w1))
        if masks is not None:
            h = h * masks[1] / keep
        h = torch.relu(torch.baddbmm(self.b2, h, self.w2))
        return torch.baddbmm(self.b3, h, self.w3)

    def forward_run(self, r: int, x: torch.Tensor) -> torch.Tensor:
        """FC3 responses of run ``r`` alone for ``(B, D)`` inputs (no dropout)."""
        h = torch.relu(x @ self.w1[r] + self.b1[r])
        h = torch.relu(h @ self.w2[r] + self.b2[r])
        return h @ self.w3[r] + self.b3[r]

    def flops_per_sample(self) -> int:
        """Multiply-adds x 2 of one forward pass of one run."""
        d, h = self.w1.shape[1], self.w1.shape[2]
        return 2 * (d * h + h * h + h * self.w3.shape[2])


def _gen(seed: int, *counter: int, device: torch.device) -> torch.Generator:
    state = np.random.SeedSequence([seed, *counter]).generate_state(2, dtype=np.uint64)
    return torch.Generator(device=device).manual_seed(int(state[0] >> np.uint64(1)))


@dataclass
class TrainOutcome:
    """What :func:`train_runs` returns."""

    head: MultiRunHead
    train_loss: np.ndarray  # (iterations, R)
    train_correct: np.ndarray  # (iterations, R)
    validation: list[dict[str, float]] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)  # run -> reason
    resumed_from: int = 0
    seconds: float = 0.0


def _signature(plans: Sequence[RunPlan], proto: Protocol, in_dim: int) -> str:
    import hashlib

    h = hashlib.sha256(repr(proto.as_dict()).encode())
    h.update(str(in_dim).encode())
    for p in plans:
        h.update(repr((p.run, p.seeds)).encode())
        h.update(np.asarray(p.train_idx, np.int64).tobytes())
        h.update(np.asarray(p.val_idx, np.int64).tobytes())
    return h.hexdigest()


def _to_device_batch(feats: torch.Tensor, img: torch.Tensor, var: torch.Tensor,
                     device: torch.device) -> torch.Tensor:
    return feats[img, var].to(device=device, dtype=torch.float32, non_blocking=True)


@torch.no_grad()
def evaluate_head(head: MultiRunHead, r: int, feats: torch.Tensor, idx: np.ndarray,
                  variants: int, device: torch.device, chunk: int = 4096) -> torch.Tensor:
    """FC3 responses of run ``r`` for images ``idx``, all ``variants``: ``(n, variants, 7)``."""
    x = feats[torch.as_tensor(idx, dtype=torch.long), :variants]
    n, v, d = x.shape
    x = x.reshape(n * v, d)
    out = [head.forward_run(r, x[i:i + chunk].to(device=device, dtype=torch.float32))
           for i in range(0, n * v, chunk)]
    return torch.cat(out).reshape(n, v, -1).cpu()


def train_runs(
    feats: torch.Tensor,
    labels: torch.Tensor,
    plans: Sequence[RunPlan],
    proto: Protocol,
    *,
    device: str | torch.device = "cpu",
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 500,
    progress: Callable[[int, int], None] | None = None,
    stop_after: int | None = None,
) -> TrainOutcome:
    """Train the heads of several runs of one database together.

    Parameters
    ----------
    feats : torch.Tensor
        ``(N, V, D)`` cached features (float16 is fine) of every image of the database.
    labels : torch.Tensor
        ``(N,)`` expression indices.
    plans : sequence of RunPlan
        The runs; all must have the same number of training images.
    proto : Protocol
        Iterations, batch size, learning-rate schedule, momentum, variants, dropout.
    device : str or torch.device
        Where to train.
    checkpoint : path, optional
        Checkpoint file; when it exists and matches these runs, training resumes from it.
    checkpoint_every : int
        Iterations between checkpoints.
    progress : callable, optional
        Called as ``progress(iteration, iterations)``.
    stop_after : int, optional
        Stop (after writing a checkpoint) once this iteration is reached; for tests of
        resumption.

    Returns
    -------
    TrainOutcome
        The trained heads, per-iteration training loss and correct rate, per-epoch
        validation, and failed runs with their reasons.
    """
    import time

    t0 = time.perf_counter()
    device = torch.device(device)
    r_count = len(plans)
    n_img, n_var_all, in_dim = feats.shape
    v = min(proto.variants, n_var_all)
    sizes = {len(p.train_idx) for p in plans}
    if len(sizes) != 1:
        raise ValueError(f"runs trained together need equal training sets; sizes {sizes}")
    n_samples = sizes.pop() * v
    bpe = math.ceil(n_samples / proto.batch_size)
    head = MultiRunHead([p.seeds.init for p in plans], in_dim, proto.hidden,
                        dropout=proto.dropout).to(device)
    opt = torch.optim.SGD(head.parameters(), lr=proto.lr_at(0), momentum=proto.momentum)
    its = proto.iterations
    loss_hist = np.full((its, r_count), np.nan, dtype=np.float32)
    corr_hist = np.full((its, r_count), np.nan, dtype=np.float32)
    validation: list[dict[str, float]] = []
    alive = torch.ones(r_count, dtype=torch.bool, device=device)
    failed: dict[int, str] = {}
    sig = _signature(plans, proto, in_dim)
    start = 0
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt is not None and ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=True)
        if state.get("signature") == sig:
            head.load_state_dict(state["head"])
            opt.load_state_dict(state["opt"])
            start = int(state["iteration"])
            loss_hist[:start] = state["loss"].numpy()[:start]
            corr_hist[:start] = state["correct"].numpy()[:start]
            alive = state["alive"].to(device)
            failed = {int(k): v for k, v in zip(state["failed_runs"].tolist(),
                                                 state["failed_reasons"], strict=True)}
            validation = [dict(zip(state["val_keys"], row, strict=True))
                          for row in state["val"].tolist()]
    train_idx = [torch.as_tensor(p.train_idx, dtype=torch.long) for p in plans]
    labels = labels.long()

    def save(iteration: int) -> None:
        if ckpt is None:
            return
        keys = ["run", "iteration", "epoch", "loss", "correct_rate"]
        buf = io.BytesIO()
        torch.save({
            "signature": sig, "iteration": iteration, "head": head.state_dict(),
            "opt": opt.state_dict(), "loss": torch.from_numpy(loss_hist),
            "correct": torch.from_numpy(corr_hist), "alive": alive.cpu(),
            "failed_runs": torch.tensor(sorted(failed), dtype=torch.long),
            "failed_reasons": [failed[k] for k in sorted(failed)],
            "val_keys": keys,
            "val": torch.tensor([[row[k] for k in keys] for row in validation],
                                dtype=torch.float64).reshape(-1, len(keys)),
        }, buf)
        atomic_write_bytes(ckpt, buf.getvalue())

    perms: list[torch.Tensor] = []
    perm_epoch = -1
    hidden = proto.hidden
    for t in range(start, its):
        epoch, b = divmod(t, bpe)
        if epoch != perm_epoch:
            perms = [torch.randperm(n_samples, generator=_gen(p.seeds.order, epoch,
                                                              device=torch.device("cpu")))
                     for p in plans]
            perm_epoch = epoch
        sel = [perm[b * proto.batch_size:(b + 1) * proto.batch_size] for perm in perms]
        img = torch.stack([train_idx[r][s // v] for r, s in enumerate(sel)])
        var = torch.stack([s % v for s in sel])
        x = _to_device_batch(feats, img, var, device)
        y = labels[img].to(device)
        bt = x.shape[1]
        m1 = torch.stack([torch.rand(bt, in_dim, generator=_gen(p.seeds.dropout, t, 1,
                                                                 device=device), device=device)
                          for p in plans]) >= proto.dropout
        m2 = torch.stack([torch.rand(bt, hidden, generator=_gen(p.seeds.dropout, t, 2,
                                                                device=device), device=device)
                          for p in plans]) >= proto.dropout
        for group in opt.param_groups:
            group["lr"] = proto.lr_at(t)
        logits = head(x, (m1, m2))
        per = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                              reduction="none").reshape(r_count, bt).mean(1)
        finite = torch.isfinite(per)
        newly = (~finite) & alive
        if bool(newly.any()):
            for r in torch.nonzero(newly).flatten().tolist():
                failed[plans[r].run] = f"non-finite training loss at iteration {t + 1}"
            alive = alive & finite
        opt.zero_grad(set_to_none=False)
        torch.where(alive, per, torch.zeros_like(per)).sum().backward()
        if not bool(alive.all()):
            dead = ~alive
            with torch.no_grad():
                for prm in head.parameters():
                    prm.grad[dead] = 0.0
                    st = opt.state.get(prm)
                    if st and st.get("momentum_buffer") is not None:
                        st["momentum_buffer"][dead] = 0.0
        opt.step()
        with torch.no_grad():
            loss_hist[t] = per.detach().cpu().numpy()
            corr_hist[t] = (logits.argmax(-1) == y).float().mean(1).cpu().numpy()
        if b == bpe - 1 or t == its - 1:
            for r, p in enumerate(plans):
                if len(p.val_idx) == 0:
                    continue
                out = evaluate_head(head, r, feats, p.val_idx, v, device)
                yv = labels[torch.as_tensor(p.val_idx)].repeat_interleave(out.shape[1])
                flat = out.reshape(-1, out.shape[-1])
                validation.append({
                    "run": float(p.run), "iteration": float(t + 1), "epoch": float(epoch + 1),
                    "loss": float(F.cross_entropy(flat, yv)),
                    "correct_rate": float((flat.argmax(-1) == yv).float().mean())})
        if progress:
            progress(t + 1, its)
        done = t + 1
        if stop_after is not None and done >= stop_after:
            save(done)
            break
        if done % checkpoint_every == 0 and done < its:
            save(done)
    return TrainOutcome(head=head, train_loss=loss_hist, train_correct=corr_hist,
                        validation=validation, failed=failed, resumed_from=start,
                        seconds=time.perf_counter() - t0)
