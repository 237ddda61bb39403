"""The batched multi-run trainer: R heads of one database trained together as one model.

Each run has its own weight tensors (stacked along a leading run axis), its own split,
data order, dropout masks and initialisation, all drawn from its own seeds, so a run's
numbers do not depend on which other runs share the batch. Large batched matrix products
(``torch.baddbmm``) keep the hardware busy. Random streams are stateless (seeded per run
and epoch / iteration), so a killed training resumes from its last checkpoint and ends
with the same numbers as an uninterrupted one.

Runs may have training sets of different sizes (a split by subject gives each run its
own number of images). Every run walks through its own epochs: the batch size is shared,
the number of batches per epoch is the run's own, and the last batch of a run's epoch is
short. To stack the runs in one ``(R, B, D)`` tensor every step has ``B = batch_size``
slots per run; a short batch fills the rest with copies of its first sample (an index,
not a copy of the features) that are masked out: they add exactly zero to the gradient,
and the run's loss, correct rate and gradient are means over its real samples only. A
run's per-step shapes are therefore the same alone and beside other runs.
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

from facedialect.files import RUN_HINT, atomic_write_bytes, read_state
from facedialect.training.protocol import Protocol
from facedialect.training.splits import RunSeeds
from facedialect.vocab import EXPRESSIONS

N_CLASSES = len(EXPRESSIONS)
#: Entries every training checkpoint has (a file without one of them is damaged).
CHECKPOINT_KEYS = ("signature", "iteration", "head", "momentum", "loss", "correct", "alive",
                   "failed_runs", "failed_reasons", "val_keys", "val")


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
    """FC 4096-4096-n heads of R runs (docs/method.md §4), weights stacked along a run axis.

    Parameters
    ----------
    init_seeds : sequence of int
        One He-initialisation seed per run.
    in_dim : int
        Feature size of the backbone.
    hidden : int
        Units of FC1 and FC2.
    n_out : int
        Output units, one per expression (7 by default).
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

    @classmethod
    def from_state(cls, state: dict) -> MultiRunHead:
        """The heads of a saved state (``heads/{db}.pt``: ``w1 … b3``, ``dropout``), eval mode."""
        r, d, h = state["w1"].shape
        head = cls([0] * r, d, h, n_out=state["w3"].shape[2], dropout=float(state["dropout"]))
        head.load_state_dict({k: state[k] for k in ("w1", "b1", "w2", "b2", "w3", "b3")})
        return head.eval()

    @property
    def runs(self) -> int:
        """Number of runs R."""
        return self.w1.shape[0]

    def forward(self, x: torch.Tensor, masks: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> torch.Tensor:
        """Return FC3 responses (before softmax) ``(R, B, n_out)`` for inputs ``(R, B, D)``.

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


#: Part of the checkpoint signature: bump when the update rule or the checkpoint layout
#: changes, so that an old checkpoint is not resumed by different code.
TRAINER_VERSION = "trainer-3"


class _Step:
    """One SGD step of every run, forward and backward written out, without autograd.

    The layer gradients go straight into the momentum buffers (``buf = m buf + g`` is
    one ``baddbmm_``) or, without momentum, straight into the weights: no gradient
    tensor is allocated, zeroed or read back, and all large buffers live as long as the
    trainer, so no memory is mapped and page-faulted per iteration. This is
    ``torch.optim.SGD`` (dampening 0, no Nesterov, no weight decay) on the sum over
    runs of each run's mean cross-entropy over its valid samples, up to the rounding of
    float sums.
    """

    def __init__(self, head: MultiRunHead, momentum: float) -> None:
        self.head = head
        self.momentum = float(momentum)
        self.params = [head.w1, head.b1, head.w2, head.b2, head.w3, head.b3]
        self.bufs = ([torch.zeros_like(p, memory_format=torch.contiguous_format)
                      for p in self.params] if self.momentum else [])
        self._act: dict[int, dict[str, torch.Tensor]] = {}

    def buffers(self, bt: int) -> dict[str, torch.Tensor]:
        """Activation buffers for a mini-batch of ``bt`` samples per run (cached)."""
        if bt not in self._act:
            h = self.head
            r, d, hid = h.w1.shape
            kw = dict(device=h.w1.device, dtype=h.w1.dtype)
            self._act[bt] = {
                "m1": torch.empty(r, bt, d, **kw), "m2": torch.empty(r, bt, hid, **kw),
                "x": torch.empty(r, bt, d, **kw), "h1": torch.empty(r, bt, hid, **kw),
                "h2": torch.empty(r, bt, hid, **kw), "dh": torch.empty(r, bt, hid, **kw),
                "dh1": torch.empty(r, bt, hid, **kw),
            }
        return self._act[bt]

    def _update(self, i: int, a: torch.Tensor, da: torch.Tensor, lr: float) -> None:
        """Weight ``params[i]`` (and its bias ``params[i + 1]``) from inputs ``a``, grads ``da``."""
        w, b = self.params[i], self.params[i + 1]
        gb = da.sum(1, keepdim=True)
        if self.momentum:
            mw, mb = self.bufs[i], self.bufs[i + 1]
            mw.baddbmm_(a.transpose(1, 2), da, beta=self.momentum)
            w.add_(mw, alpha=-lr)
            mb.mul_(self.momentum).add_(gb)
            b.add_(mb, alpha=-lr)
        else:
            w.baddbmm_(a.transpose(1, 2), da, alpha=-lr)
            b.add_(gb, alpha=-lr)

    def freeze(self, dead: torch.Tensor) -> None:
        """Zero the momentum of failed runs, so their weights stop moving."""
        for buf in self.bufs:
            buf[dead] = 0.0

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor,
                 act: dict[str, torch.Tensor], alive: torch.Tensor, lr: float
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Train every run on its mini-batch ``x`` ``(R, bt, D)``, labels ``y`` ``(R, bt)``.

        ``weight`` ``(R, bt)`` is ``1 / n_r`` on the ``n_r`` valid samples of run ``r``
        and 0 on its padding slots: the loss is the weighted sum, and the padding rows of
        the output gradient are zeroed, so they contribute exactly nothing (their inputs
        are real samples of the run, hence finite when the run's data is).
        ``act`` holds the scaled dropout keep-masks ``m1`` and ``m2`` (0 or 1 / (1 - p)).
        Runs that are not ``alive``, or whose loss is not finite now, get no update.
        Returns the per-run loss ``(R,)``, the logits ``(R, bt, n_out)`` and whether each
        run's loss is finite ``(R,)``.
        """
        h = self.head
        xm = torch.mul(x, act["m1"], out=act["x"])
        h1 = torch.baddbmm(h.b1, xm, h.w1, out=act["h1"]).clamp_min_(0.0).mul_(act["m2"])
        h2 = torch.baddbmm(h.b2, h1, h.w2, out=act["h2"]).clamp_min_(0.0)
        logits = torch.baddbmm(h.b3, h2, h.w3)
        logp = torch.log_softmax(logits, -1)
        per = -logp.gather(-1, y.unsqueeze(-1)).squeeze(-1).mul_(weight).sum(1)
        finite = torch.isfinite(per)
        use = alive & finite
        dz = logp.exp_()
        dz.scatter_add_(-1, y.unsqueeze(-1), torch.full_like(dz[..., :1], -1.0))
        dz.mul_(weight.unsqueeze(-1))
        if not bool(use.all()):  # failed runs: no gradient at all, even from NaN inputs
            off = ~use
            for t in (dz, xm, h1, h2):
                t[off] = 0.0
            self.freeze(alive & ~finite)  # and no momentum from before they failed
        dh = torch.bmm(dz, h.w3.transpose(1, 2), out=act["dh"])
        self._update(4, h2, dz, lr)
        dh.mul_(h2 > 0)
        dh1 = torch.bmm(dh, h.w2.transpose(1, 2), out=act["dh1"])
        self._update(2, h1, dh, lr)
        dh1.mul_(act["m2"]).mul_(h1 > 0)
        self._update(0, xm, dh1, lr)
        return per, logits, finite


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
    lr_scale: float = 1.0  # the protocol's learning rates were multiplied by this


def lr_scale(feats: torch.Tensor, proto: Protocol) -> float:
    """Factor (<= 1) on the protocol's learning rates from its ``lr_cap``.

    The mean squared norm of the features times the largest learning rate may be at
    most ``proto.lr_cap``; 1.0 without a cap or when the features are all zero. The mean
    is over every row of ``feats`` (every image of the database, the protocol's first
    ``variants`` variants), not over the runs' training images, so a run's learning
    rate does not depend on which other runs train beside it, nor on its own split.
    Rows with non-finite features are left out (the runs that train on them fail).
    """
    if proto.lr_cap is None:
        return 1.0
    v = min(proto.variants, feats.shape[1])
    total, count = 0.0, 0
    for i in range(0, feats.shape[0], 256):
        sq = feats[i:i + 256, :v].float().square().sum(-1)
        ok = torch.isfinite(sq)
        total += float(sq[ok].sum())
        count += int(ok.sum())
    msq = total / max(count, 1)
    top = max(lr for _, lr in proto.lr_schedule)
    return 1.0 if msq <= 0 else min(1.0, proto.lr_cap / (top * msq))


def _signature(plans: Sequence[RunPlan], proto: Protocol, in_dim: int, n_classes: int) -> str:
    import hashlib

    h = hashlib.sha256(repr(proto.as_dict()).encode())
    h.update(f"{in_dim}|{n_classes}|{TRAINER_VERSION}".encode())
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
    """FC3 responses of run ``r`` for images ``idx``, all ``variants``: ``(n, variants, n_out)``."""
    x = feats[torch.as_tensor(idx, dtype=torch.long), :variants]
    n, v, d = x.shape
    x = x.reshape(n * v, d)
    out = [head.forward_run(r, x[i:i + chunk].to(device=device, dtype=torch.float32))
           for i in range(0, n * v, chunk)]
    return torch.cat(out).reshape(n, v, -1).cpu()


class _RunOrder:
    """The mini-batches of one run, epoch after epoch, each of exactly ``batch`` slots.

    Run ``r``'s samples are its training images times the ``variants`` variants; an
    epoch is ``ceil(n / batch)`` batches of one permutation drawn from the run's order
    seed and the epoch number (stateless, so resumable). The last batch of an epoch
    has ``n - (batches - 1) * batch`` valid samples; its other slots repeat the batch's
    first sample (as indices) and are masked out by the caller.
    """

    def __init__(self, train_idx: np.ndarray, variants: int, batch: int, seed: int) -> None:
        self.train_idx = torch.as_tensor(np.asarray(train_idx), dtype=torch.long)
        self.variants, self.batch, self.seed = variants, batch, int(seed)
        self.n = len(self.train_idx) * variants
        self.per_epoch = math.ceil(self.n / batch)
        self.last = self.n - (self.per_epoch - 1) * batch
        self.epoch = -1
        self.img = self.var = torch.empty(0, dtype=torch.long)

    def at(self, t: int) -> tuple[int, int, torch.Tensor, torch.Tensor, int]:
        """``(epoch, batch in epoch, images (batch,), variants (batch,), valid count)``."""
        epoch, b = divmod(t, self.per_epoch)
        if epoch != self.epoch:
            perm = torch.randperm(self.n, generator=_gen(self.seed, epoch,
                                                         device=torch.device("cpu")))
            pad = self.per_epoch * self.batch - self.n
            if pad:
                perm = torch.cat([perm, perm[self.n - self.last].expand(pad)])
            self.img, self.var = self.train_idx[perm // self.variants], perm % self.variants
            self.epoch = epoch
        sl = slice(b * self.batch, (b + 1) * self.batch)
        count = self.last if b == self.per_epoch - 1 else self.batch
        return epoch, b, self.img[sl], self.var[sl], count


def _valid_weights(counts: Sequence[int], batch: int, device: torch.device
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validity ``(R, batch)``, weights ``1 / count`` or 0 ``(R, batch)``, counts ``(R,)``."""
    c = torch.tensor(list(counts), dtype=torch.float32)
    valid = torch.arange(batch).unsqueeze(0) < c.unsqueeze(1)
    weight = valid.float() / c.unsqueeze(1)
    return valid.to(device), weight.to(device), c.to(device)


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
    n_classes: int | None = None,
) -> TrainOutcome:
    """Train the heads of several runs of one database together.

    Every run has its own epochs: ``ceil(n_r * v / batch_size)`` mini-batches of its
    ``n_r`` training images times ``v`` variants, in an order drawn from its own seed;
    the short last batch of an epoch is padded to ``batch_size`` slots that are masked
    out (see the module docstring). Each run is validated at the end of each of its
    epochs and after the last iteration. A run's numbers are the same whether it is
    trained alone or beside other runs, of any training-set sizes.

    Parameters
    ----------
    feats : torch.Tensor
        ``(N, V, D)`` cached features (float16 is fine) of every image of the database.
    labels : torch.Tensor
        ``(N,)`` expression indices, below ``n_classes`` for every training and
        validation image.
    plans : sequence of RunPlan
        The runs; their training sets may differ in size but none may be empty.
    proto : Protocol
        Iterations, batch size, learning-rate schedule, momentum, variants, dropout. The
        learning rates are scaled by :func:`lr_scale` of all of ``feats``.
    device : str or torch.device
        Where to train.
    checkpoint : path, optional
        Checkpoint file; when it exists and matches these runs, training resumes from it
        (a damaged one is reported with a
        :class:`~facedialect.errors.DamagedFileWarning` and training starts afresh).
    checkpoint_every : int
        Iterations between checkpoints.
    progress : callable, optional
        Called as ``progress(iteration, iterations)``.
    stop_after : int, optional
        Stop (after writing a checkpoint) once this iteration is reached; for tests of
        resumption.
    n_classes : int, optional
        Output units of the heads, one per expression of the database; 7
        (:data:`N_CLASSES`) when not given.

    Returns
    -------
    TrainOutcome
        The trained heads, per-iteration training loss and correct rate ``(iterations,
        R)`` (means over each run's valid samples), per-run per-epoch validation, and
        failed runs with their reasons.

    Raises
    ------
    ValueError
        For a run without training images or a label outside ``[0, n_classes)``.
    """
    import time

    t0 = time.perf_counter()
    device = torch.device(device)
    n_classes = N_CLASSES if n_classes is None else int(n_classes)
    r_count = len(plans)
    n_img, n_var_all, in_dim = feats.shape
    v = min(proto.variants, n_var_all)
    bsz = proto.batch_size
    for p in plans:
        if len(p.train_idx) == 0:
            raise ValueError(f"run {p.run} has no training images")
    labels = labels.long()
    used = np.concatenate([np.asarray(p.train_idx, np.int64) for p in plans]
                          + [np.asarray(p.val_idx, np.int64) for p in plans])
    lab = labels[torch.from_numpy(used)]
    if lab.numel() and (int(lab.min()) < 0 or int(lab.max()) >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}); found "
                         f"{int(lab.min())}..{int(lab.max())}")
    orders = [_RunOrder(p.train_idx, v, bsz, p.seeds.order) for p in plans]
    head = MultiRunHead([p.seeds.init for p in plans], in_dim, proto.hidden,
                        n_out=n_classes, dropout=proto.dropout).to(device)
    step = _Step(head, proto.momentum)
    its = proto.iterations
    loss_hist = np.full((its, r_count), np.nan, dtype=np.float32)
    corr_hist = np.full((its, r_count), np.nan, dtype=np.float32)
    validation: list[dict[str, float]] = []
    alive = torch.ones(r_count, dtype=torch.bool, device=device)
    failed: dict[int, str] = {}
    sig = _signature(plans, proto, in_dim, n_classes)
    start = 0
    ckpt = Path(checkpoint) if checkpoint else None
    state = (read_state(ckpt, CHECKPOINT_KEYS, "training these runs from the start")
             if ckpt is not None and ckpt.exists() else None)  # damaged: as if absent
    if state is not None:
        if state["signature"] == sig:
            head.load_state_dict(state["head"])
            for buf, saved in zip(step.bufs, state["momentum"], strict=True):
                buf.copy_(saved)
            start = int(state["iteration"])
            loss_hist[:start] = state["loss"].numpy()[:start]
            corr_hist[:start] = state["correct"].numpy()[:start]
            alive = state["alive"].to(device)
            failed = {int(k): v for k, v in zip(state["failed_runs"].tolist(),
                                                 state["failed_reasons"], strict=True)}
            validation = [dict(zip(state["val_keys"], row, strict=True))
                          for row in state["val"].tolist()]
    scale = lr_scale(feats, proto)

    def save(iteration: int) -> None:
        if ckpt is None:
            return
        keys = ["run", "iteration", "epoch", "loss", "correct_rate"]
        buf = io.BytesIO()
        torch.save({
            "signature": sig, "iteration": iteration, "head": head.state_dict(),
            "momentum": [b.cpu() for b in step.bufs], "loss": torch.from_numpy(loss_hist),
            "correct": torch.from_numpy(corr_hist), "alive": alive.cpu(),
            "failed_runs": torch.tensor(sorted(failed), dtype=torch.long),
            "failed_reasons": [failed[k] for k in sorted(failed)],
            "val_keys": keys,
            "val": torch.tensor([[row[k] for k in keys] for row in validation],
                                dtype=torch.float64).reshape(-1, len(keys)),
        }, buf)
        atomic_write_bytes(ckpt, buf.getvalue(), hint=RUN_HINT)

    hidden = proto.hidden
    act = step.buffers(bsz)
    full = _valid_weights([bsz] * r_count, bsz, device)
    for t in range(start, its):
        batches = [o.at(t) for o in orders]
        counts = [c for *_, c in batches]
        valid, weight, count = (full if all(c == bsz for c in counts)
                                else _valid_weights(counts, bsz, device))
        img = torch.stack([bt[2] for bt in batches])
        var = torch.stack([bt[3] for bt in batches])
        x = _to_device_batch(feats, img, var, device)
        y = labels[img].to(device)
        for m, k, width in ((act["m1"], 1, in_dim), (act["m2"], 2, hidden)):
            for r, p in enumerate(plans):  # per-run, per-iteration dropout stream
                torch.rand(bsz, width, generator=_gen(p.seeds.dropout, t, k, device=device),
                           device=device, out=m[r])
            m.ge_(proto.dropout).mul_(1.0 / (1.0 - proto.dropout))
        per, logits, finite = step(x, y, weight, act, alive, proto.lr_at(t) * scale)
        newly = (~finite) & alive
        if bool(newly.any()):
            for r in torch.nonzero(newly).flatten().tolist():
                failed[plans[r].run] = f"non-finite training loss at iteration {t + 1}"
            alive = alive & finite
        loss_hist[t] = per.cpu().numpy()
        hits = ((logits.argmax(-1) == y) & valid).sum(1).float()
        corr_hist[t] = (hits / count).cpu().numpy()
        for r, (p, o, (epoch, b, *_)) in enumerate(zip(plans, orders, batches, strict=True)):
            if (b != o.per_epoch - 1 and t != its - 1) or len(p.val_idx) == 0:
                continue  # validated after each of its own epochs and at the end
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
                        seconds=time.perf_counter() - t0, lr_scale=scale)
