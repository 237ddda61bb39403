"""The batched multi-run trainer: learning, run independence, exact resumption, failures.

The runs have training sets of different sizes (as a split by subject gives them), so
each has its own epoch length and short last batches.
"""

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from facedialect.errors import InputError
from facedialect.training.protocol import PAPER, QUICK, resolve_protocol
from facedialect.training.splits import run_seeds, split_run, split_sizes
from facedialect.training.trainer import MultiRunHead, RunPlan, _Step, train_runs

TINY = replace(QUICK, runs=3, iterations=60, hidden=64, variants=4, batch_size=16,
               lr_schedule=((0, 0.01), (40, 0.001)))


def _data(n_subjects=15, dim=32, seed=0):
    """Features where each expression has its own mean: learnable."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1.0, (7, dim))
    labels = np.tile(np.arange(7), n_subjects)
    feats = centres[labels][:, None, :] + rng.normal(0, 0.8, (len(labels), 4, dim))
    return torch.tensor(feats, dtype=torch.float16), torch.tensor(labels)


#: Training images per run: unequal, so the epochs (x 4 variants / 16) are 18, 14 and
#: 16 batches long, with 8, 16 and 12 valid samples in their last batches.
SIZES = (70, 56, 63)


def _plans(n_img, runs=3, seed=0, sizes=SIZES):
    plans = []
    for r in range(runs):
        rng = np.random.default_rng(r)
        perm = rng.permutation(n_img)
        n = sizes[r % len(sizes)]
        plans.append(RunPlan(run=r, seeds=run_seeds(seed, "A", r), train_idx=perm[:n],
                             val_idx=perm[n:n + 14]))
    return plans


def _same_run(a, ra, b, rb, run):
    """Run ``run``, at index ``ra`` of outcome ``a`` and ``rb`` of ``b``, is bit-identical."""
    for name in ("w1", "b1", "w2", "b2", "w3", "b3"):
        assert torch.equal(getattr(a.head, name)[ra], getattr(b.head, name)[rb]), name
    np.testing.assert_array_equal(a.train_loss[:, ra], b.train_loss[:, rb])
    np.testing.assert_array_equal(a.train_correct[:, ra], b.train_correct[:, rb])
    rows_a = [v for v in a.validation if v["run"] == run]
    assert rows_a and rows_a == [v for v in b.validation if v["run"] == run]


def test_split_sizes_follow_the_paper():
    assert split_sizes(60, PAPER.split) == (40, 8, 12)
    assert sum(split_sizes(31, PAPER.split)) == 31


def test_subject_split_keeps_subjects_whole_and_is_seeded():
    df = pd.DataFrame({"db": "A", "subject": np.repeat([f"S{i}" for i in range(15)], 7),
                       "expression": ["neutral"] * 105})
    a = split_run(df, 5, PAPER.split)
    assert a.equals(split_run(df, 5, PAPER.split))
    assert not a.equals(split_run(df, 6, PAPER.split))
    assert (df.assign(p=a).groupby("subject")["p"].nunique() == 1).all()
    assert a.value_counts().to_dict() == {"train": 70, "test": 21, "validation": 14}


def test_too_few_subjects_is_a_clear_error():
    df = pd.DataFrame({"db": "A", "subject": ["a", "b"], "expression": ["happy", "sad"]})
    with pytest.raises(InputError, match="at least 3 subjects.*found 2"):
        split_run(df, 0, PAPER.split)


def test_image_split_without_subjects_is_stratified():
    df = pd.DataFrame({"db": "W", "subject": "", "expression": ["happy"] * 30 + ["sad"] * 9})
    part = split_run(df, 1, PAPER.split)
    assert (part != "").all()
    counts = pd.crosstab(df["expression"], part)
    assert counts.loc["happy", "train"] == 20 and counts.loc["sad", "train"] == 6


def test_training_learns_and_runs_are_independent():
    feats, labels = _data()
    plans = _plans(len(labels))
    out = train_runs(feats, labels, plans, TINY)
    first, last = np.nanmean(out.train_correct[:5]), np.nanmean(out.train_correct[-10:])
    assert last > 0.8 and last > first
    assert out.validation and out.validation[-1]["correct_rate"] > 0.7
    # each run trained alone is bit-identical to it trained beside others of other sizes
    for r in (0, 1):
        alone = train_runs(feats, labels, plans[r:r + 1], TINY)
        _same_run(alone, 0, out, r, plans[r].run)
        assert alone.lr_scale == out.lr_scale
    pair = train_runs(feats, labels, plans[2:0:-1], TINY)  # other neighbour, other order
    _same_run(pair, 1, out, 1, plans[1].run)
    _same_run(pair, 0, out, 2, plans[2].run)


def test_each_run_is_validated_after_its_own_epochs():
    feats, labels = _data()
    plans = _plans(len(labels))
    out = train_runs(feats, labels, plans, TINY)
    for p in plans:
        per_epoch = math.ceil(len(p.train_idx) * TINY.variants / TINY.batch_size)
        ends = [t for t in range(1, TINY.iterations + 1)
                if t % per_epoch == 0 or t == TINY.iterations]
        rows = [v for v in out.validation if v["run"] == p.run]
        assert [v["iteration"] for v in rows] == ends
        assert [v["epoch"] for v in rows] == [math.ceil(t / per_epoch) for t in ends]
    assert {18, 14, 16} == {math.ceil(len(p.train_idx) * 4 / 16) for p in plans}


def test_same_seed_same_numbers_and_seed_matters():
    feats, labels = _data()
    a = train_runs(feats, labels, _plans(len(labels)), TINY)
    b = train_runs(feats, labels, _plans(len(labels)), TINY)
    np.testing.assert_array_equal(a.train_loss, b.train_loss)
    c = train_runs(feats, labels, _plans(len(labels), seed=1), TINY)
    assert not np.array_equal(a.train_loss, c.train_loss)


@pytest.mark.parametrize("stop", [14, 27])  # the end of run 1's epoch; mid-epoch for all
def test_killed_training_resumes_to_the_same_numbers(tmp_path, stop):
    feats, labels = _data()
    plans = _plans(len(labels))
    full = train_runs(feats, labels, plans, TINY)
    ck = tmp_path / "ck.pt"
    part = train_runs(feats, labels, plans, TINY, checkpoint=ck, stop_after=stop)
    assert ck.exists() and np.isnan(part.train_loss[stop:]).all()
    resumed = train_runs(feats, labels, plans, TINY, checkpoint=ck)
    assert resumed.resumed_from == stop
    np.testing.assert_array_equal(resumed.train_loss, full.train_loss)
    np.testing.assert_array_equal(resumed.train_correct, full.train_correct)
    for name in ("w1", "b1", "w2", "b2", "w3", "b3"):
        assert torch.equal(getattr(resumed.head, name), getattr(full.head, name)), name
    assert resumed.validation == full.validation


def test_nan_in_one_run_marks_it_failed_and_others_go_on():
    feats, labels = _data()
    plans = _plans(len(labels))
    feats = feats.clone()
    poison = next(int(i) for i in plans[2].train_idx if i not in set(plans[0].train_idx))
    feats[poison] = float("nan")
    out = train_runs(feats, labels, plans, TINY)
    for r, p in enumerate(plans):
        if poison in set(p.train_idx.tolist()):
            assert "non-finite training loss" in out.failed[p.run]
        else:
            assert p.run not in out.failed
            assert np.isfinite(out.train_loss[:, r]).all()
    assert plans[0].run not in out.failed and plans[2].run in out.failed
    # the healthy run is bit-identical to it trained alone
    _same_run(train_runs(feats, labels, plans[:1], TINY), 0, out, 0, plans[0].run)


def test_a_run_smaller_than_one_batch_trains():
    feats, labels = _data()
    plans = _plans(len(labels))
    tiny = RunPlan(run=7, seeds=run_seeds(0, "A", 7), train_idx=np.array([3, 11]),
                   val_idx=np.array([4, 5, 6]))  # 2 images x 4 variants < 16 per batch
    out = train_runs(feats, labels, [*plans, tiny], TINY)
    assert not out.failed and np.isfinite(out.train_loss).all()
    assert np.nanmean(out.train_correct[-10:, 3]) == 1.0  # two samples are learnt
    rows = [v for v in out.validation if v["run"] == 7]
    assert [v["epoch"] for v in rows] == list(range(1, TINY.iterations + 1))
    _same_run(train_runs(feats, labels, [tiny], TINY), 0, out, 3, 7)
    _same_run(train_runs(feats, labels, plans, TINY), 2, out, 2, plans[2].run)


def test_padding_slots_add_nothing_to_the_step():
    """Slots masked out by a zero weight leave the update bit-for-bit unchanged."""
    torch.manual_seed(0)
    r, bt, d = 2, 8, 12
    x = torch.randn(r, bt, d)
    y = torch.randint(0, 7, (r, bt))
    counts = torch.tensor([5.0, 8.0])
    weight = (torch.arange(bt) < counts[:, None]).float() / counts[:, None]
    results = []
    for fill in (0.0, 50.0):
        head = MultiRunHead([1, 2], in_dim=d, hidden=16, dropout=0.1)
        step = _Step(head, momentum=0.9)
        act = step.buffers(bt)
        act["m1"].fill_(1.0 / 0.9)
        act["m2"].fill_(1.0 / 0.9)
        xs, ys = x.clone(), y.clone()
        xs[0, 5:], ys[0, 5:] = fill, int(fill) % 7  # run 0's padding slots
        alive = torch.ones(r, dtype=torch.bool)
        for _ in range(2):
            per, _, finite = step(xs, ys, weight, act, alive, 0.05)
        results.append((per.clone(), [p.detach().clone() for p in step.params]))
    assert torch.equal(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1], strict=True):
        assert torch.equal(a, b)


def test_heads_have_one_unit_per_class_of_the_database():
    feats, labels = _data()
    two = labels % 2  # a database of two expressions
    out = train_runs(feats, two, _plans(len(labels), runs=2), TINY, n_classes=2)
    assert out.head.w3.shape[-1] == 2 and out.head.b3.shape[-1] == 2
    assert np.isfinite(out.train_loss).all()
    with pytest.raises(ValueError, match="labels must lie in"):
        train_runs(feats, labels, _plans(len(labels), runs=1), TINY, n_classes=5)
    assert train_runs(feats, labels, _plans(len(labels), runs=1),
                      replace(TINY, iterations=2)).head.w3.shape[-1] == 7


def test_a_run_without_training_images_is_an_error():
    feats, labels = _data()
    empty = RunPlan(run=4, seeds=run_seeds(0, "A", 4), train_idx=np.array([], np.int64),
                    val_idx=np.array([1, 2]))
    with pytest.raises(ValueError, match="run 4 has no training images"):
        train_runs(feats, labels, [*_plans(len(labels)), empty], TINY)


def test_he_init_scale():
    head = MultiRunHead([1, 2], in_dim=512, hidden=256)
    assert head.w1[0].std().item() == pytest.approx((2 / 512) ** 0.5, rel=0.05)
    assert not torch.equal(head.w1[0], head.w1[1])
    assert head(torch.zeros(2, 3, 512)).shape == (2, 3, 7)


def test_protocol_overrides_are_noted():
    p = resolve_protocol("paper", runs=5)
    assert p.runs == 5 and p.iterations == 12_000
    assert any("runs=5" in n for n in p.notes)
    assert PAPER.lr_at(0) == 1e-4 and PAPER.lr_at(4000) == 1e-5 and PAPER.lr_at(11999) == 1e-6


def test_lr_cap_scales_the_rates_down_for_large_features_only() -> None:
    from facedialect.training.trainer import lr_scale

    feats, labels = _data(seed=3)
    plans = _plans(len(labels), TINY.runs)
    capped = replace(TINY, lr_cap=10.0, lr_schedule=((0, 1e-2), (40, 1e-3)))
    feats = feats.float()
    msq = float(feats[:, :capped.variants].square().sum(-1).mean())  # over every image
    assert lr_scale(feats, replace(TINY, lr_cap=None)) == 1.0
    small = feats * (1.0 / math.sqrt(msq))  # mean squared norm 1: 1e-2 x 1 <= 10
    assert lr_scale(small, capped) == 1.0
    big = feats * (100.0 / math.sqrt(msq))  # mean squared norm 1e4: 1e-2 x 1e4 = 100 > 10
    assert lr_scale(big, capped) == pytest.approx(0.1, rel=0.05)
    assert lr_scale(torch.zeros_like(feats), capped) == 1.0
    nan = big.clone()
    nan[5] = float("nan")  # a broken image does not lift the cap for every run
    assert lr_scale(nan, capped) == pytest.approx(0.1, rel=0.05)
    # on large features the capped protocol learns; the uncapped one collapses to one class
    big = feats * (1000.0 / math.sqrt(msq))
    out = train_runs(big, labels, plans, capped)
    assert out.lr_scale == pytest.approx(1e-3, rel=0.05)
    # the same for every run, whatever its neighbours: it is the mean over all images
    assert train_runs(big, labels, plans[1:2], replace(capped, iterations=1)).lr_scale \
        == out.lr_scale
    assert np.nanmean(out.train_correct[-10:]) > 0.5
    dead = train_runs(big, labels, plans, replace(capped, lr_cap=None))
    assert dead.lr_scale == 1.0
    assert np.nanmean(dead.train_correct[-10:]) < 0.3 or dead.failed
