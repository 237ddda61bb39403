"""The batched multi-run trainer: learning, run independence, exact resumption, failures."""

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from facedialect.errors import InputError
from facedialect.training.protocol import PAPER, QUICK, resolve_protocol
from facedialect.training.splits import run_seeds, split_run, split_sizes
from facedialect.training.trainer import MultiRunHead, RunPlan, train_runs

TINY = replace(QUICK, runs=3, iterations=60, hidden=64, variants=4, batch_size=16,
               lr_schedule=((0, 0.01), (40, 0.001)))


def _data(n_subjects=15, dim=32, seed=0):
    """Features where each expression has its own mean: learnable."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1.0, (7, dim))
    labels = np.tile(np.arange(7), n_subjects)
    feats = centres[labels][:, None, :] + rng.normal(0, 0.8, (len(labels), 4, dim))
    return torch.tensor(feats, dtype=torch.float16), torch.tensor(labels)


def _plans(n_img, runs=3, seed=0):
    plans = []
    for r in range(runs):
        rng = np.random.default_rng(r)
        perm = rng.permutation(n_img)
        plans.append(RunPlan(run=r, seeds=run_seeds(seed, "A", r), train_idx=perm[:70],
                             val_idx=perm[70:84]))
    return plans


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
    # run 1 trained alone equals run 1 trained beside the others
    alone = train_runs(feats, labels, plans[1:2], TINY)
    np.testing.assert_allclose(alone.train_loss[:, 0], out.train_loss[:, 1], rtol=1e-4,
                               atol=1e-5)
    torch.testing.assert_close(alone.head.w3[0], out.head.w3[1], rtol=1e-4, atol=1e-5)


def test_same_seed_same_numbers_and_seed_matters():
    feats, labels = _data()
    a = train_runs(feats, labels, _plans(len(labels)), TINY)
    b = train_runs(feats, labels, _plans(len(labels)), TINY)
    np.testing.assert_array_equal(a.train_loss, b.train_loss)
    c = train_runs(feats, labels, _plans(len(labels), seed=1), TINY)
    assert not np.array_equal(a.train_loss, c.train_loss)


def test_killed_training_resumes_to_the_same_numbers(tmp_path):
    feats, labels = _data()
    plans = _plans(len(labels))
    full = train_runs(feats, labels, plans, TINY)
    ck = tmp_path / "ck.pt"
    part = train_runs(feats, labels, plans, TINY, checkpoint=ck, stop_after=27)
    assert ck.exists() and np.isnan(part.train_loss[30:]).all()
    resumed = train_runs(feats, labels, plans, TINY, checkpoint=ck)
    assert resumed.resumed_from == 27
    np.testing.assert_array_equal(resumed.train_loss, full.train_loss)
    torch.testing.assert_close(resumed.head.w1, full.head.w1, rtol=0, atol=0)
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
    msq = float(feats[:, :capped.variants].square().sum(-1).mean())
    assert lr_scale(feats, plans, replace(TINY, lr_cap=None)) == 1.0
    small = feats * (1.0 / math.sqrt(msq))  # mean squared norm 1: 1e-2 x 1 <= 10
    assert lr_scale(small, plans, capped) == 1.0
    big = feats * (100.0 / math.sqrt(msq))  # mean squared norm 1e4: 1e-2 x 1e4 = 100 > 10
    assert lr_scale(big, plans, capped) == pytest.approx(0.1, rel=0.05)
    assert lr_scale(torch.zeros_like(feats), plans, capped) == 1.0
    # on large features the capped protocol learns; the uncapped one collapses to one class
    big = feats * (1000.0 / math.sqrt(msq))
    out = train_runs(big, labels, plans, capped)
    assert out.lr_scale == pytest.approx(1e-3, rel=0.05)
    assert np.nanmean(out.train_correct[-10:]) > 0.5
    dead = train_runs(big, labels, plans, replace(capped, lr_cap=None))
    assert dead.lr_scale == 1.0
    assert np.nanmean(dead.train_correct[-10:]) < 0.3 or dead.failed
