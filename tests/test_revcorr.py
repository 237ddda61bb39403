import numpy as np
import pandas as pd
import pytest
from scipy import stats

from facedialect.stats.revcorr import (
    au_label,
    au_models,
    au_order,
    model_distinctness,
    model_similarity,
    model_test,
    models_over_runs,
    sample_trials,
)
from facedialect.vocab import STUDY_AUS

PLANTED = {"happy": (6, 12), "angry": (4, 23), "sad": (1, 15)}
UNITS = list(PLANTED)


def _long(trials, r, units=UNITS):
    """Long responses from a trials x units matrix."""
    return pd.DataFrame({"trial": np.repeat(trials["trial"].to_numpy(), len(units)),
                         "unit": np.tile(units, len(trials)), "response": r.ravel()})


def _planted(n=3000, seed=1):
    """Each unit answers a logistic function of its two planted AUs, plus noise."""
    trials = sample_trials(n, STUDY_AUS, seed=seed)
    rng = np.random.default_rng(seed + 100)
    drive = np.stack([trials[f"AU{a}"] + trials[f"AU{b}"] for a, b in PLANTED.values()], 1)
    r = 1 / (1 + np.exp(-(4.0 * drive - 2.0 + rng.normal(0, 0.5, drive.shape))))
    return trials, _long(trials, r)


def _null(n=3000, seed=2):
    trials = sample_trials(n, STUDY_AUS, seed=seed)
    rng = np.random.default_rng(seed + 100)
    return trials, _long(trials, rng.uniform(0, 1, (n, len(UNITS))))


@pytest.fixture(scope="module")
def planted():
    return _planted()


@pytest.fixture(scope="module")
def null():
    return _null()


# --------------------------------------------------------------------------- sample_trials


def test_sample_trials_shape_counts_range_and_seed():
    t = sample_trials(500, STUDY_AUS, seed=3)
    assert list(t.columns) == ["trial"] + [f"AU{a}" for a in STUDY_AUS]
    assert t.shape == (500, 1 + len(STUDY_AUS))
    assert (t["trial"].to_numpy() == np.arange(500)).all()
    x = t.drop(columns="trial").to_numpy()
    k = (x > 0).sum(axis=1)
    assert k.min() == 1 and k.max() == 6
    assert set(np.unique(k)) == set(range(1, 7))  # every count occurs
    on = x[x > 0]
    assert on.min() >= 0.1 and on.max() <= 1.0
    # every AU is used, about equally often (uniform choice)
    assert (x > 0).mean(axis=0).min() > 0.1
    pd.testing.assert_frame_equal(t, sample_trials(500, STUDY_AUS, seed=3))
    assert not t.equals(sample_trials(500, STUDY_AUS, seed=4))


def test_sample_trials_caps_at_the_number_of_aus():
    t = sample_trials(50, [1, 2, 4], min_aus=2, max_aus=6)
    k = (t.drop(columns="trial").to_numpy() > 0).sum(axis=1)
    assert k.min() >= 2 and k.max() <= 3


# --------------------------------------------------------------------------- au_models


def test_weighted_model_is_the_formula():
    t = sample_trials(40, [1, 2, 4], seed=0)
    r = np.random.default_rng(0).uniform(0, 1, (40, 2))
    m = au_models(t, _long(t, r, ["a", "b"]), units=["a", "b"])
    x = t[["AU1", "AU2", "AU4"]].to_numpy()
    want = (r.T @ x) / r.sum(0)[:, None] - x.mean(0)
    assert list(m.columns) == ["unit", "au", "weight"]
    assert list(m["au"][:3]) == [1, 2, 4]
    np.testing.assert_allclose(m["weight"].to_numpy().reshape(2, 3), want)


def test_ridge_model_is_ridge_on_standardized_aus():
    t = sample_trials(60, [1, 2, 4, 5], seed=0)
    r = np.random.default_rng(1).normal(size=(60, 2))
    m = au_models(t, _long(t, r, ["a", "b"]), method="ridge", alpha=3.0)
    x = t[["AU1", "AU2", "AU4", "AU5"]].to_numpy()
    z = (x - x.mean(0)) / x.std(0)
    zc = np.column_stack([np.ones(60), z])
    pen = np.diag([0.0, 3.0, 3.0, 3.0, 3.0])  # intercept not penalised
    want = np.linalg.solve(zc.T @ zc + pen, zc.T @ r)[1:].T
    np.testing.assert_allclose(m["weight"].to_numpy().reshape(2, 4), want, atol=1e-12)
    try:  # the same as scikit-learn's, where it is installed
        from sklearn.linear_model import Ridge
    except ImportError:
        return
    sk = Ridge(alpha=3.0).fit(z, r).coef_
    np.testing.assert_allclose(m["weight"].to_numpy().reshape(2, 4), sk, atol=1e-10)


@pytest.mark.parametrize("method", ["weighted", "ridge"])
def test_planted_aus_top_each_model(planted, method):
    m = au_models(*planted, units=UNITS, method=method)
    for unit, aus in PLANTED.items():
        w = m[m["unit"] == unit].set_index("au")["weight"]
        assert set(w.nlargest(2).index) == set(aus)
        assert (w.loc[list(aus)] > 0).all()


def test_inputs_are_checked():
    t = sample_trials(10, [1, 2])
    r = _long(t, np.ones((10, 3)))
    with pytest.raises(ValueError, match="method"):
        au_models(t, r, method="mean")
    with pytest.raises(ValueError, match="no rows for units"):
        au_models(t, r, units=["fearful"])
    with pytest.raises(ValueError, match="lack a response"):
        au_models(t, r.iloc[1:])
    with pytest.raises(ValueError, match="several rows"):
        au_models(t, pd.concat([r, r]))
    with pytest.raises(ValueError, match=">= 0"):
        au_models(t, r.assign(response=-1.0))
    with pytest.raises(ValueError, match="AU columns"):
        au_models(t[["trial"]], r)


# --------------------------------------------------------------------------- model_test


@pytest.mark.parametrize("method", ["weighted", "ridge"])
def test_model_test_finds_planted_aus(planted, method):
    res = model_test(*planted, units=UNITS, method=method, seed=5)
    assert list(res.columns) == ["unit", "au", "weight", "p", "ci_low", "ci_high"]
    assert len(res) == len(UNITS) * len(STUDY_AUS)
    pd.testing.assert_series_equal(res["weight"],
                                   au_models(*planted, units=UNITS, method=method)["weight"])
    is_planted = np.array([a in PLANTED[u] for u, a in zip(res["unit"], res["au"],
                                                                 strict=True)])
    assert (res.loc[is_planted, "p"] < 0.01).all()
    assert (res.loc[~is_planted, "p"] > 0.05).mean() > 0.5
    assert ((res["ci_low"] <= res["weight"]) & (res["weight"] <= res["ci_high"])).all()
    assert (res["p"] >= 1 / 200).all() and (res["p"] <= 1).all()
    # same seed, same table
    again = model_test(*planted, units=UNITS, method=method, seed=5)
    pd.testing.assert_frame_equal(res, again)


def test_permutation_p_is_the_definition():
    """p counts |w_perm| >= |w| over the same permutations, drawn as documented."""
    t = sample_trials(30, [1, 2, 4], seed=0)
    r = np.random.default_rng(3).uniform(0, 1, (30, 2))
    res = model_test(t, _long(t, r, ["a", "b"]), n_permutations=50, n_boot=0, seed=9)
    x = t[["AU1", "AU2", "AU4"]].to_numpy()

    def fit(rr):
        return (rr.T @ x) / rr.sum(0)[:, None] - x.mean(0)

    perm_rng = np.random.default_rng(np.random.SeedSequence(9).spawn(2)[0])
    idx = np.argsort(perm_rng.random((50, 30)), axis=1)
    obs = fit(r)
    count = sum((np.abs(fit(r[i])) >= np.abs(obs) * (1 - 1e-12)) for i in idx)
    np.testing.assert_allclose(res["p"].to_numpy().reshape(2, 3), (1 + count) / 51)
    assert res["ci_low"].isna().all()


@pytest.mark.parametrize("method", ["weighted", "ridge"])
def test_model_test_p_values_are_uniform_under_the_null(null, method):
    res = model_test(*null, units=UNITS, method=method, seed=1)
    assert (res["p"] < 0.05).mean() < 0.15
    # roughly uniform: not piled up at either end
    assert 0.3 < res["p"].mean() < 0.7


# --------------------------------------------------------------------------- over runs


def test_models_over_runs_is_mean_and_sd():
    w = np.array([[0.1, 0.5, -0.2], [0.3, 0.4, 0.0], [0.2, 0.9, 0.1]])  # runs x AUs
    rows = [{"db": "A", "run": run, "unit": "happy", "au": au, "weight": w[run, j]}
            for run in range(3) for j, au in enumerate([1, 6, 12])]
    rows += [{"db": "B", "run": 0, "unit": "happy", "au": au, "weight": 1.0}
             for au in [1, 6, 12]]
    out = models_over_runs(pd.DataFrame(rows))
    assert list(out.columns) == ["db", "unit", "au", "mean", "sd", "runs"]
    a = out[out["db"] == "A"]
    np.testing.assert_allclose(a["mean"], w.mean(0))
    np.testing.assert_allclose(a["sd"], w.std(0, ddof=1))
    assert (a["runs"] == 3).all() and list(a["au"]) == [1, 6, 12]
    b = out[out["db"] == "B"]
    assert (b["sd"] == 0).all() and (b["runs"] == 1).all()


# --------------------------------------------------------------------------- similarity


def _models(a, b):
    aus = np.arange(1, len(a) + 1)
    return pd.DataFrame({"db": ["A"] * len(a) + ["B"] * len(b), "unit": "happy",
                         "au": np.concatenate([aus, aus]), "mean": np.concatenate([a, b])})


def test_model_similarity():
    a = np.array([0.3, -0.1, 0.05, 0.2, 0.0])
    same = model_similarity(_models(a, a), "A", "B")
    assert list(same.columns) == ["db_a", "db_b", "unit", "spearman_r", "p"]
    assert same.loc[0, "spearman_r"] == pytest.approx(1.0)
    neg = model_similarity(_models(a, -a), "A", "B")
    assert neg.loc[0, "spearman_r"] == pytest.approx(-1.0)
    b = np.array([0.1, 0.2, -0.3, 0.4, 0.0])
    res = model_similarity(_models(a, b), "A", "B")
    want = stats.spearmanr(a, b)
    assert res.loc[0, "spearman_r"] == pytest.approx(want.statistic)
    assert res.loc[0, "p"] == pytest.approx(want.pvalue)
    flat = model_similarity(_models(a, np.zeros(5)), "A", "B")
    assert np.isnan(flat.loc[0, "spearman_r"]) and np.isnan(flat.loc[0, "p"])


def test_model_similarity_uses_common_units_and_aus():
    m = pd.concat([_models(np.array([1.0, 2, 3, 4]), np.array([1.0, 2, 3, 4])),
                   pd.DataFrame({"db": ["A", "B"], "unit": "sad", "au": [9, 9],
                                 "mean": [1.0, 2.0]}),
                   pd.DataFrame({"db": "A", "unit": "angry", "au": [1, 2], "mean": [1.0, 2]})])
    res = model_similarity(m, "A", "B")
    assert list(res["unit"]) == ["happy", "sad"]
    assert res.loc[0, "spearman_r"] == pytest.approx(1.0)


# --------------------------------------------------------------------------- distinctness


def test_distinctness_planted_is_well_above_chance(planted):
    res = model_distinctness(*planted)
    assert list(res.columns) == ["unit", "trials", "correct_rate"]
    assert list(res["unit"]) == UNITS + ["all"]
    assert res["trials"].iloc[:-1].sum() == res["trials"].iloc[-1] == 3000
    assert (res["correct_rate"] > 0.6).all()
    # passing the same trials' own weighted models still leaves each trial out
    own = au_models(*planted)
    pd.testing.assert_frame_equal(model_distinctness(*planted, own), res)


def test_distinctness_leave_one_out_is_exact():
    t = sample_trials(25, [1, 2, 4, 5], seed=0)
    r = np.random.default_rng(2).uniform(0, 1, (25, 3))
    resp = _long(t, r)
    res = model_distinctness(t, resp)
    x = t[["AU1", "AU2", "AU4", "AU5"]].to_numpy()
    hits = []
    for i in range(25):
        keep = np.arange(25) != i
        mod = au_models(t[keep], resp[resp["trial"] != i])["weight"].to_numpy().reshape(3, 4)
        v = x[i] - x[keep].mean(0)
        pred = np.argmax([np.corrcoef(v, m)[0, 1] for m in mod])
        hits.append(pred == r[i].argmax())
    assert res["correct_rate"].iloc[-1] == pytest.approx(np.mean(hits))


def test_distinctness_null_is_near_chance(null):
    res = model_distinctness(*null)
    assert abs(res["correct_rate"].iloc[-1] - 1 / 3) < 0.05
    assert (res["correct_rate"].iloc[:-1] < 0.45).all()


def test_distinctness_with_other_models(planted):
    """Fixed models from other trials: the planted structure still classifies."""
    other = _planted(n=1000, seed=7)
    res = model_distinctness(*planted, au_models(*other))
    assert (res["correct_rate"] > 0.6).all()


def test_maximize_aus_finds_a_planted_optimum_within_bounds():
    from facedialect.stats.revcorr import maximize_aus

    target = np.array([0.0, 1.0, 0.0, 0.8, 0.0])

    def objective(xs):
        return -((xs - target) ** 2).sum(axis=1)

    x, value = maximize_aus(objective, np.full(5, 0.5), evaluations=300, sparsity=0.0, seed=1)
    assert np.all((x >= 0) & (x <= 1))
    np.testing.assert_allclose(x, target, atol=0.05)
    assert value > -0.01
    again, _ = maximize_aus(objective, np.full(5, 0.5), evaluations=300, sparsity=0.0, seed=1)
    np.testing.assert_array_equal(x, again)  # same seed, same search
    sparse, _ = maximize_aus(objective, np.full(5, 0.5), evaluations=300, sparsity=0.5, seed=1)
    assert sparse.sum() < x.sum()  # the penalty shrinks the intensities


def test_sided_trials_keep_the_two_sided_draws_and_split_the_sides():
    plain = sample_trials(3000, [4, 12, 26], seed=5)
    sided = sample_trials(3000, [4, 12, 26], seed=5, sided=[12])
    assert list(sided.columns) == ["trial", "AU4", "AU12L", "AU12R", "AU26"]
    np.testing.assert_array_equal(sided["AU4"], plain["AU4"])  # same AUs, same intensities
    np.testing.assert_array_equal(np.maximum(sided["AU12L"], sided["AU12R"]), plain["AU12"])
    active = plain["AU12"] > 0
    both = (sided["AU12L"] > 0) & (sided["AU12R"] > 0)
    left = (sided["AU12L"] > 0) & (sided["AU12R"] == 0)
    right = (sided["AU12R"] > 0) & (sided["AU12L"] == 0)
    assert (both | left | right)[active].all() and not (both | left | right)[~active].any()
    for part in (both, left, right):  # equal chances
        assert abs(part[active].mean() - 1 / 3) < 0.05
    assert au_label("AU12L") == "12L" and au_label("AU12") == 12
    assert sorted(["12R", 4, "12L", 12], key=au_order) == [4, 12, "12L", "12R"]
    with pytest.raises(ValueError, match="not among"):
        sample_trials(10, [4, 12], sided=[26])


def test_a_one_sided_model_is_found_on_its_side():
    trials = sample_trials(3000, [1, 6, 12, 26], seed=2, sided=[6, 12])
    # a unit that answers to the smile on the subject's left only
    resp = pd.DataFrame({"trial": trials["trial"], "unit": "left smile",
                         "response": 0.05 + 0.9 * (trials["AU12L"] > 0.3)})
    m = au_models(trials, resp).set_index("au")["weight"]
    assert m.idxmax() == "12L"
    # the right half only shares the two-sided trials
    assert m["12L"] > 3 * abs(m["12R"])


def test_render_aus_joins_equal_halves_and_merges_sides_for_the_builtin_face():
    from facedialect.stages.mental_models import render_aus

    assert render_aus({"12L": 0.5, "12R": 0.5, 4: 0.2}) == {12: 0.5, 4: 0.2}
    assert render_aus({"12L": 0.5, "12R": 0.0, "6": 0.3}) == {"12L": 0.5, 6: 0.3}
    assert render_aus({"12L": 0.5, "12R": 0.2}) == {"12L": 0.5, "12R": 0.2}
    assert render_aus({"12L": 0.5, "12R": 0.2}, sides=False) == {12: 0.5}
    assert render_aus({"1": -0.2, 2: 0.0}) == {}
