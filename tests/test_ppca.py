"""PPCA: against direct numpy references, recovery of planted dimensions, the null rate."""

import numpy as np
import pandas as pd
import pytest

from facedialect.meaning.ppca import ppca, ppca_fit, ppca_test
from facedialect.synthetic.raters import (
    MeaningSimulator,
    SimCulture,
    sample_au_vectors,
    shared_dims_simulator,
    simulate_ratings,
)


def _random(n=40, p=6, q=6, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    x = z @ rng.normal(size=(3, p)) + rng.normal(size=(n, p))
    y = z @ rng.normal(size=(3, q)) + rng.normal(size=(n, q))
    return x, y


def _same_up_to_sign(a, b, atol=1e-8):
    for j in range(a.shape[1]):
        s = np.sign(a[:, j] @ b[:, j])
        np.testing.assert_allclose(a[:, j], s * b[:, j], atol=atol)


def test_shared_concepts_match_the_eigenvectors_of_the_symmetric_cross_covariance():
    x, y = _random()
    names = [f"c{i}" for i in range(6)]
    fit = ppca_fit(x, y, x_names=names, y_names=names, shared_concepts=True)
    xc, yc = x - x.mean(0), y - y.mean(0)
    c = (xc.T @ yc + yc.T @ xc) / 2 / (len(x) - 1)
    vals, vecs = np.linalg.eigh(c)
    order = np.argsort(vals)[::-1]
    np.testing.assert_allclose(fit.eigenvalues, vals[order], atol=1e-10)
    _same_up_to_sign(fit.weights_x, vecs[:, order])
    np.testing.assert_allclose(fit.weights_x, fit.weights_y)  # one weight vector per side
    sx, sy = fit.scores(x, y)  # each eigenvalue is the covariance along its component
    np.testing.assert_allclose(np.cov(sx.T, sy.T)[np.arange(6), 6 + np.arange(6)],
                               fit.eigenvalues, atol=1e-10)


def test_distinct_concepts_pair_the_singular_vectors_of_the_cross_covariance():
    x, y = _random(p=5, q=7, seed=1)
    fit = ppca_fit(x, y)  # no shared names: every concept is its own variable
    xc, yc = x - x.mean(0), y - y.mean(0)
    u, s, vt = np.linalg.svd(xc.T @ yc / (len(x) - 1))
    assert len(fit.eigenvalues) == 5
    np.testing.assert_allclose(fit.eigenvalues, s / 2, atol=1e-10)
    wx = fit.weights_x / np.linalg.norm(fit.weights_x, axis=0)
    wy = fit.weights_y / np.linalg.norm(fit.weights_y, axis=0)
    for j in range(5):
        sign = np.sign(wx[:, j] @ u[:, j])
        np.testing.assert_allclose(wx[:, j], sign * u[:, j], atol=1e-8)
        np.testing.assert_allclose(wy[:, j], sign * vt[j], atol=1e-8)


def test_standardize_is_ppca_of_z_scores():
    x, y = _random(seed=2)
    x[:, 0] *= 50.0
    a = ppca_fit(x, y, scale="standardize")
    z = lambda m: (m - m.mean(0)) / m.std(0, ddof=1)  # noqa: E731
    b = ppca_fit(z(x), z(y))
    np.testing.assert_allclose(a.eigenvalues, b.eigenvalues, atol=1e-10)
    _same_up_to_sign(a.weights_x, b.weights_x)


@pytest.mark.parametrize("shared", [2, 4, 6])
def test_ppca_recovers_the_planted_number_of_shared_dimensions(shared):
    aus = sample_au_vectors(300, seed=shared)
    sim = shared_dims_simulator(shared, unique=2, concepts=12, seed=shared)
    res = simulate_ratings(aus, sim)
    out = ppca(res.matrix("A"), res.matrix("B"), permutations=99, seed=1)
    assert abs(out.n_shared - shared) <= 1, out.components
    comps = out.components
    assert comps["shared"].tolist()[:out.n_shared] == [True] * out.n_shared
    assert (comps["cov_heldout"].iloc[:shared] > 0).all()


def test_permutation_test_keeps_its_false_positive_rate_on_null_data():
    hits = 0
    n_sets = 200
    for s in range(n_sets):
        rng = np.random.default_rng(1000 + s)
        x = rng.normal(size=(60, 5)) @ rng.normal(size=(5, 5))
        y = rng.normal(size=(60, 5)) @ rng.normal(size=(5, 5))
        tab = ppca_test(x, y, permutations=99, seed=s)
        hits += bool(tab["shared"].any())
        assert ((tab["p_value"] > 0) & (tab["p_value"] <= 1)).all()
    # nominal 0.05: a binomial(200, 0.05) count lies in 3..18 with probability > 0.99
    assert 3 <= hits <= 18, hits


def test_ppca_is_seeded_and_uses_only_common_items():
    x, y = _random(n=30)
    xd = pd.DataFrame(x, index=[f"i{k}" for k in range(30)])
    yd = pd.DataFrame(y, index=[f"i{k}" for k in range(30)]).iloc[::-1]
    yd = pd.concat([yd, pd.DataFrame(np.zeros((2, 6)), index=["extra1", "extra2"])])
    a = ppca(xd, yd, permutations=49, seed=3)
    b = ppca(xd, yd, permutations=49, seed=3)
    pd.testing.assert_frame_equal(a.components, b.components)
    assert (a.components["n_images"] == 30).all()
    ref = ppca(xd, pd.DataFrame(y, index=xd.index), permutations=49, seed=3)
    np.testing.assert_allclose(a.components["eigenvalue"], ref.components["eigenvalue"])
    assert set(a.loadings.columns) == {"component", "side", "concept", "weight", "loading"}
    assert a.loadings["loading"].between(-1, 1).all()


def test_identical_data_shares_every_dimension_and_loadings_agree():
    aus = sample_au_vectors(200, seed=5)
    sim = MeaningSimulator(cultures=[SimCulture(name="A", dims=[0, 1, 2], concepts=6),
                                     SimCulture(name="B", dims=[0, 1, 2], concepts=6,
                                                copy_of="A")], rater_sd=0.05)
    res = simulate_ratings(aus, sim)
    out = ppca(res.matrix("A"), res.matrix("B"), shared_concepts=True, permutations=49)
    assert 2 <= out.n_shared <= 4
    top = out.loadings[out.loadings["component"] == 1].pivot(index="concept", columns="side",
                                                               values="loading")
    assert np.corrcoef(top["x"], top["y"])[0, 1] > 0.95


@pytest.mark.parametrize("bad, msg", [
    ((np.zeros((5, 2)), np.zeros((4, 2))), "same items"),
    ((np.full((5, 2), np.nan), np.zeros((5, 2))), "non-finite"),
    ((np.zeros((2, 2)), np.zeros((2, 2))), "at least 3"),
])
def test_bad_input_is_a_clear_error(bad, msg):
    with pytest.raises(ValueError, match=msg):
        ppca_fit(*bad)
