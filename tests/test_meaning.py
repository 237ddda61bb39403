"""Meaning analysis: simulator, reliability, preservation, ratings validation, rating heads."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from facedialect.config import parse_study
from facedialect.errors import InputError, StudyFileError
from facedialect.meaning.heads import (
    HeadSettings,
    RatingPlan,
    predict_ratings,
    train_rating_heads,
)
from facedialect.meaning.preservation import (
    mean_preservation,
    meaning_preservation,
    ridge_cv_r2,
    split_half_reliability,
    weighted_reliability,
)
from facedialect.meaning.ratings import match_images, read_raters, read_ratings
from facedialect.synthetic.raters import (
    MeaningSimulator,
    SimCulture,
    latent_dimensions,
    sample_au_vectors,
    shared_dims_simulator,
    simulate_ratings,
)
from facedialect.training.splits import run_seeds


# ----------------------------------------------------------------------------- simulator
def test_simulated_cultures_share_exactly_the_planted_dimensions():
    aus = sample_au_vectors(250, seed=0)
    sim = shared_dims_simulator(3, unique=2, cultures=("A", "B"), concepts=10)
    res = simulate_ratings(aus, sim)
    z = res.latent.to_numpy()
    np.testing.assert_allclose(np.corrcoef(z.T), np.eye(z.shape[1]), atol=1e-10)
    a, b = res.matrix("A", "truth").to_numpy(), res.matrix("B", "truth").to_numpy()
    s = np.linalg.svd((a - a.mean(0)).T @ (b - b.mean(0)), compute_uv=False)
    assert (s[:3] > 1e-3 * s[0]).all() and (s[3:] < 1e-10 * s[0]).all()
    assert sim.shared_dims("A", "B") == 3
    assert res.ratings["mean_rating"].between(0, 1).all()
    assert (res.ratings["n_raters"] == 10).all()
    assert len(res.raters) == 250 * 10 * 10 * 2


def test_simulator_is_seeded_and_rejects_too_many_dimensions():
    aus = sample_au_vectors(50, seed=1)
    sim = shared_dims_simulator(2, seed=4)
    pd.testing.assert_frame_equal(simulate_ratings(aus, sim).ratings,
                                  simulate_ratings(aus, sim).ratings)
    flat = pd.DataFrame(np.outer(np.arange(10.0), np.ones(20)))
    with pytest.raises(ValueError, match="span 1 dimension"):
        latent_dimensions(flat, 2)


# ------------------------------------------------------------------------- reliability
def test_split_half_reliability_matches_the_true_share_of_variance():
    aus = sample_au_vectors(400, seed=2)
    sim = MeaningSimulator(cultures=[SimCulture(name="A", dims=[0, 1], concepts=4)],
                           raters=8, rater_sd=0.15, signal_sd=0.1)
    res = simulate_ratings(aus, sim)
    rel = split_half_reliability(res.raters, splits=10)
    true_var = res.truth.groupby("concept")["true_rating"].var()
    expected = true_var / (true_var + 0.15 ** 2 / 8)  # classical test theory, 8 raters
    got = rel.set_index("concept")["reliability"]
    np.testing.assert_allclose(got[expected.index], expected, atol=0.04)
    assert (rel["n_images"] == 400).all()


def test_weighted_reliability_weights_by_variance():
    ratings = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [0.0, 0.1, 0.0, 0.1]})
    got = weighted_reliability(ratings, {"a": 0.9, "b": 0.1})
    va, vb = ratings["a"].var(), ratings["b"].var()
    assert got == pytest.approx((0.9 * va + 0.1 * vb) / (va + vb))
    assert np.isnan(weighted_reliability(ratings, {"a": 0.9}))


# ------------------------------------------------------------------------ preservation
def test_ridge_cv_r2_recovers_the_explained_share():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, 4))
    y = x @ rng.normal(size=(4, 3))
    signal = y.var(0, ddof=1).sum()
    y = y + rng.normal(scale=1.0, size=y.shape)
    expected = signal / (signal + 3 * 1.0)
    assert ridge_cv_r2(x, y, folds=5) == pytest.approx(expected, abs=0.04)
    assert ridge_cv_r2(rng.normal(size=(600, 4)), y, folds=5) < 0.02


def test_preservation_is_higher_between_cultures_that_share_more():
    aus = sample_au_vectors(400, seed=4)
    sim = MeaningSimulator(cultures=[
        SimCulture(name="A", dims=[0, 1, 2, 3, 4], concepts=10),
        SimCulture(name="B", dims=[0, 1, 2, 3, 5], concepts=10),
        SimCulture(name="C", dims=[0, 6, 7, 8, 9], concepts=10)], seed=1)
    res = simulate_ratings(aus, sim)
    preds = {c: res.matrix(c) for c in ("A", "B", "C")}
    tab = meaning_preservation(preds).set_index(["source", "target"])["preserved"]
    assert tab[("A", "B")] > tab[("A", "C")] + 0.3
    assert tab[("B", "A")] > tab[("B", "C")] + 0.3
    assert tab[("A", "A")] > 0.99
    assert 0 < mean_preservation(tab.reset_index()) < 1


def test_identical_cultures_preserve_up_to_the_reliability_ceiling():
    aus = sample_au_vectors(500, seed=6)
    sim = MeaningSimulator(cultures=[SimCulture(name="A", dims=[0, 1, 2], concepts=8),
                                     SimCulture(name="B", dims=[0, 1, 2], concepts=8,
                                                copy_of="A")], raters=6, seed=2)
    res = simulate_ratings(aus, sim)
    rng = np.random.default_rng(0)
    # predictions: the true meaning plus a little estimation error, as from a good model
    preds = {c: res.matrix(c, "truth") + rng.normal(0, 0.01, (500, 8)) for c in ("A", "B")}
    ratings = {c: res.matrix(c) for c in ("A", "B")}
    rel = split_half_reliability(res.raters, splits=10)
    ceil = {c: weighted_reliability(ratings[c], dict(zip(
        rel.loc[rel["culture"] == c, "concept"], rel.loc[rel["culture"] == c, "reliability"],
        strict=True))) for c in ("A", "B")}
    tab = meaning_preservation(preds, ratings, ceil).set_index(["source", "target"])
    row = tab.loc[("A", "B")]
    assert 0.5 < row["ceiling"] < 0.95
    assert row["preserved_ratings"] == pytest.approx(row["ceiling"], abs=0.05)
    assert row["preserved"] > 0.95


# --------------------------------------------------------------------- ratings files
def _write(path: Path, df: pd.DataFrame) -> Path:
    df.to_csv(path, index=False)
    return path


def _ratings(n_img=3):
    rows = [{"image": f"img{i}.png", "culture": c, "concept": k, "mean_rating": 0.5,
             "n_raters": 4} for i in range(n_img) for c, ks in (("A", "xy"), ("B", "z"))
            for k in ks]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("change, fragment", [
    (lambda d: d.drop(columns="n_raters"), "line 1: missing column(s) ['n_raters']"),
    (lambda d: d.assign(mean_rating=["high"] + [0.5] * (len(d) - 1)), ":2: mean_rating "
     "'high' is not a number"),
    (lambda d: d.assign(mean_rating=[1.5] + [0.5] * (len(d) - 1)), ":2: mean_rating 1.5 is "
     "outside the rating range 0.0..1.0"),
    (lambda d: pd.concat([d, d.iloc[[4]]]), ":6, "),
    (lambda d: d.drop(index=[1]), "without concept(s) ['y']"),
    (lambda d: d.assign(n_raters=[0] + [4] * (len(d) - 1)), "n_raters '0' must be"),
    (lambda d: d.assign(image=[""] + list(d["image"][1:])), ":2: empty image"),
])
def test_bad_ratings_name_file_line_and_fix(tmp_path, change, fragment):
    path = _write(tmp_path / "r.csv", change(_ratings()))
    with pytest.raises(InputError) as err:
        read_ratings([path])
    assert fragment in str(err.value)
    assert str(path) in str(err.value)


def test_duplicate_rows_and_absent_cultures_are_errors(tmp_path):
    df = _ratings()
    path = _write(tmp_path / "dup.csv", pd.concat([df, df.iloc[[0]]]))
    with pytest.raises(InputError, match=r"dup.csv:2, .*dup.csv:11.*more than once"):
        read_ratings([path])
    ok = _write(tmp_path / "ok.csv", df)
    with pytest.raises(InputError, match=r"culture\(s\) \['C'\] have no ratings"):
        read_ratings([ok], cultures=["A", "C"])
    split = [_write(tmp_path / f"{c}.csv", df[df["culture"] == c]) for c in ("A", "B")]
    assert len(read_ratings(split)) == len(df)


def test_groups_must_be_consistent_and_raters_must_match(tmp_path):
    df = _ratings().assign(group="train")
    df.loc[0, "group"] = "test"
    with pytest.raises(InputError, match="several groups"):
        read_ratings([_write(tmp_path / "g.csv", df)])
    ratings = read_ratings([_write(tmp_path / "r.csv", _ratings())])
    raters = pd.DataFrame({"image": ["img0.png", "img9.png"], "culture": "A",
                           "concept": "x", "rater": ["p1", "p1"], "rating": [0.2, 0.3]})
    with pytest.raises(InputError, match=r"raters.csv:3: image 'img9.png'.*no row in the "
                       r"ratings table"):
        read_raters([_write(tmp_path / "raters.csv", raters)], ratings)


def test_rated_images_are_matched_to_the_study_images(tmp_path):
    ratings = read_ratings([_write(tmp_path / "r.csv", _ratings())])
    root = tmp_path / "db"
    faces = pd.DataFrame({"db": "D", "path": [(root / f"img{i}.png").as_posix()
                                              for i in range(3)],
                          "subject": ["s0", "s1", "s2"], "detected": [True, True, False],
                          "cache_key": ["k0", "k1", ""], "reason": ["", "", "no face"]})
    m = match_images(ratings, faces, {"D": root})
    assert m["used"].tolist() == [True, True, False]
    assert m.loc[2, "reason"] == "no face"
    with pytest.raises(InputError, match=r"r.csv:2: image 'img0.png' is not an image of the "
                       r"study"):
        match_images(ratings, faces.iloc[1:], {"D": root})
    with pytest.raises(InputError, match="more than one database"):
        match_images(ratings, pd.concat([faces, faces.assign(db="E")]),
                     {"D": root, "E": root})


def test_meaning_section_of_the_study_file(tmp_path):
    (tmp_path / "db").mkdir()
    (tmp_path / "r.csv").write_text("image,culture,concept,mean_rating,n_raters\n")
    base = {"study": {"name": "s", "output": "o"},
            "databases": [{"name": "D", "preset": "folder", "root": "db"}]}
    study = parse_study({**base, "meaning": {"ratings": "r.csv", "rating_range": [1, 7]}},
                        tmp_path)
    assert study.meaning.enabled and study.meaning.ratings == [tmp_path / "r.csv"]
    assert not parse_study(base, tmp_path).meaning.enabled
    with pytest.raises(StudyFileError, match=r"meaning.ratings: file does not exist"):
        parse_study({**base, "meaning": {"ratings": ["nope.csv"]}}, tmp_path)
    with pytest.raises(StudyFileError, match="smallest < largest"):
        parse_study({**base, "meaning": {"ratings": "r.csv", "rating_range": [7, 1]}},
                    tmp_path)


# ------------------------------------------------------------------------- rating heads
def _head_data(n=120, d=16, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, d))
    feats = base[:, None, :] + rng.normal(scale=0.1, size=(n, 3, d))
    ya = base[:, :3] @ rng.normal(size=(3, 4)) * 0.1 + 0.5
    yb = base[:, 3:5] @ rng.normal(size=(2, 2)) * 0.1 + 0.5
    targets = np.full((n, 2, 4), np.nan, dtype=np.float32)
    targets[:, 0, :] = ya
    targets[: n // 2, 1, :2] = yb[: n // 2]  # culture B rated only the first half
    return torch.tensor(feats, dtype=torch.float16), torch.tensor(targets), ya, yb


def _plans(n, runs=3):
    plans = []
    for r in range(runs):
        perm = np.random.default_rng(r).permutation(n)
        plans.append(RatingPlan(r, run_seeds(0, "meaning", r), np.sort(perm[: n * 3 // 4]),
                                np.sort(perm[n * 3 // 4:])))
    return plans


def test_groups_of_runs_give_the_numbers_of_all_runs_together():
    """The meaning stage's work units (one Ray task per group of runs) equal one unit of
    every run (a local study) byte for byte: the tables do not depend on the grouping."""
    from facedialect.stages.meaning import prediction_chunk, rating_group

    feats, targets, _, _ = _head_data(d=32)
    plans = _plans(len(feats), runs=3)
    s = HeadSettings(runs=3, iterations=40, batch_size=16, lr=2e-2, hidden=8, variants=3,
                     dropout=0.1)
    chunk = prediction_chunk(3, 3, feats.shape[2])
    whole = rating_group(feats, targets, plans, [4, 2], s, chunk=chunk)
    groups = [rating_group(feats, targets, part, [4, 2], s, chunk=chunk)
              for part in (plans[:2], plans[2:])]
    np.testing.assert_array_equal(np.concatenate([g[0] for g in groups]), whole[0])
    np.testing.assert_array_equal(np.concatenate([g[1] for g in groups], axis=1), whole[1])
    assert whole[0].shape == (3, len(feats), 2, 4) and whole[1].shape == (40, 3)
    bad = targets.clone()
    bad[:, 1] = float("nan")  # culture B rated nothing: a clear error, not a ValueError
    with pytest.raises(InputError, match=r"\[meaning\] run 0: a culture rated none"):
        rating_group(feats, bad, plans[:1], [4, 2], s)


@pytest.mark.parametrize("hidden", [0, 16])
def test_rating_heads_learn_and_runs_are_independent(hidden):
    feats, targets, ya, _ = _head_data()
    plans = _plans(len(feats))
    s = HeadSettings(runs=3, iterations=80, batch_size=16, lr=2e-2, hidden=hidden,
                     variants=3, dropout=0.0 if hidden == 0 else 0.1)
    out = train_rating_heads(feats, targets, plans, [4, 2], s)
    assert np.isfinite(out.loss).all()
    assert out.loss[-20:].mean() < out.loss[:5].mean()
    pred = predict_ratings(out.head, feats, 3)
    assert pred.shape == (3, len(feats), 2, 4)
    te = plans[0].test_idx
    r = [np.corrcoef(pred[0, te, 0, k], ya[te, k])[0, 1] for k in range(4)]
    assert np.mean(r) > 0.7
    if hidden == 0:
        return
    alone = train_rating_heads(feats, targets, plans[1:2], [4, 2], s)
    np.testing.assert_allclose(alone.loss[:, 0], out.loss[:, 1], rtol=1e-4, atol=1e-6)
    again = train_rating_heads(feats, targets, plans, [4, 2], s)
    np.testing.assert_array_equal(again.loss, out.loss)
