import numpy as np
import pandas as pd
import pytest
from scipy import stats

from facedialect.stats.classification import confusion_rows, mean_confusion
from facedialect.stats.tuning import (
    peak_or_trough,
    profile_pca,
    profile_similarity,
    similarity_vs_confusion,
    tuning_profiles,
    tuning_responses,
)
from facedialect.vocab import EXPRESSIONS

AUS = [1, 2, 4, 12]
LEVELS = np.linspace(0, 1, 11)


def _stimuli():
    rows = [{"au": AUS[0], "level": 0.0}]
    rows += [{"au": au, "level": lv} for au in AUS for lv in LEVELS[1:]]
    return pd.DataFrame(rows)


def _logits(weights, runs=3, noise=0.0, seed=0):
    """Unit u's response = sum over AUs of weights[u, au] * level (+ a constant)."""
    st = _stimuli()
    rng = np.random.default_rng(seed)
    au_idx = st["au"].map({a: i for i, a in enumerate(AUS)}).to_numpy()
    base = (weights[:, au_idx] * st["level"].to_numpy()).T  # stimuli x units
    return np.stack([base + 5.0 + rng.normal(0, noise, base.shape) for _ in range(runs)])


def test_responses_subtract_null_and_profiles_average_runs():
    w = np.arange(28, dtype=float).reshape(7, 4)
    resp = tuning_responses(_logits(w, noise=0.1), _stimuli(), db="A", runs=[0, 1, 2])
    assert (resp.loc[resp["level"] == 0, "response"].abs() < 1e-12).all()
    prof = tuning_profiles(resp)
    cell = prof[(prof["unit"] == "happy") & (prof["au"] == 12) & (prof["level"] == 1.0)]
    assert cell["mean"].item() == pytest.approx(w[1, 3], abs=0.2)
    assert cell["sd"].item() > 0


def test_similarity_is_spearman_without_the_null_level_and_bonferroni():
    rng = np.random.default_rng(1)
    wa, wb = rng.normal(size=(7, 4)), rng.normal(size=(7, 4))
    wb[1] = wa[1]  # happy tuned the same in both
    pa = tuning_profiles(tuning_responses(_logits(wa), _stimuli(), db="A", runs=[0, 1, 2]))
    pb = tuning_profiles(tuning_responses(_logits(wb), _stimuli(), db="B", runs=[0, 1, 2]))
    sim = profile_similarity(pd.concat([pa, pb]), "A", "B")
    assert len(sim) == 49
    happy = sim[(sim["unit_a"] == "happy") & (sim["unit_b"] == "happy")].iloc[0]
    assert happy["spearman_r"] == pytest.approx(1.0)
    va = pa[(pa["unit"] == "sad") & (pa["level"] > 0)].sort_values(["au", "level"])["mean"]
    vb = pb[(pb["unit"] == "angry") & (pb["level"] > 0)].sort_values(["au", "level"])["mean"]
    ref = stats.spearmanr(va, vb)
    row = sim[(sim["unit_a"] == "sad") & (sim["unit_b"] == "angry")].iloc[0]
    assert row["spearman_r"] == pytest.approx(ref.statistic)
    assert row["p_bonferroni"] == pytest.approx(min(1, ref.pvalue * 49))


def test_a_flat_profile_has_no_rank_correlation():
    rng = np.random.default_rng(2)
    wa, wb = rng.normal(size=(7, 4)), rng.normal(size=(7, 4))
    wb[2] = 0.0  # B's fearful unit answers every stimulus alike
    la = _logits(wa)
    lb = _logits(wb) + rng.normal(0, 1e-9, la.shape)  # round-off only
    pa = tuning_profiles(tuning_responses(la, _stimuli(), db="A", runs=[0, 1, 2]))
    pb = tuning_profiles(tuning_responses(lb, _stimuli(), db="B", runs=[0, 1, 2]))
    sim = profile_similarity(pd.concat([pa, pb]), "A", "B")
    flat = sim["unit_b"] == "fearful"
    assert sim.loc[flat, ["spearman_r", "p", "p_bonferroni"]].isna().all().all()
    assert sim.loc[~flat, "spearman_r"].between(-1, 1).all()
    assert sim.loc[~flat, "p_bonferroni"].between(0, 1).all()


def test_similarity_vs_confusion_pairs_the_right_cells():
    rng = np.random.default_rng(2)
    wa = rng.normal(size=(7, 4))
    pa = tuning_profiles(tuning_responses(_logits(wa, runs=1), _stimuli(), db="A", runs=[0]))
    pb = tuning_profiles(tuning_responses(_logits(wa[::-1].copy(), runs=1), _stimuli(), db="B",
                                          runs=[0]))
    sim = profile_similarity(pd.concat([pa, pb]), "B", "A")
    # a confusion matrix that follows the profile similarity exactly
    r = sim.pivot(index="unit_a", columns="unit_b", values="spearman_r").loc[
        list(EXPRESSIONS), list(EXPRESSIONS)].to_numpy()
    true = np.repeat(np.arange(7), 100)
    probs = np.exp(3 * r) / np.exp(3 * r).sum(1, keepdims=True)
    pred = np.concatenate([np.repeat(np.arange(7), np.round(p * 100).astype(int))[:100]
                           for p in probs])
    conf = mean_confusion(confusion_rows(true[:len(pred)], pred, train_db="A", test_db="B",
                                         condition="swapped", variants="all", run=0))
    summary, cells = similarity_vs_confusion(sim, conf, trained="A", tested="B")
    assert len(cells) == 49
    assert summary["spearman_r"] > 0.8
    # the same answer from the table computed the other way round
    sim_rev = profile_similarity(pd.concat([pa, pb]), "A", "B")
    again, _ = similarity_vs_confusion(sim_rev, conf, trained="A", tested="B")
    assert again["spearman_r"] == pytest.approx(summary["spearman_r"])


def test_peak_or_trough_keeps_sign_and_pca_matches_numpy():
    rng = np.random.default_rng(3)
    frames = []
    for db in ("A", "B"):
        w = rng.normal(size=(7, 4))
        w[0, 0] = -9.0 if db == "A" else w[0, 0]
        frames.append(tuning_profiles(tuning_responses(_logits(w, runs=1), _stimuli(), db=db,
                                                       runs=[0])))
    prof = pd.concat(frames)
    peaks = peak_or_trough(prof)
    assert peaks.shape == (4, 14)
    assert peaks.loc[1, ("A", "neutral")] == pytest.approx(-9.0)
    scores, var = profile_pca(prof)
    x = peaks.T.to_numpy()
    x = x - x.mean(0)
    ev = np.linalg.eigvalsh(np.cov(x.T))[::-1]
    np.testing.assert_allclose(var["explained_variance"].to_numpy()[:4], ev[:4], rtol=1e-8,
                               atol=1e-10)
    pc1 = scores[scores["pc"] == 1]["score"].to_numpy()
    assert np.var(pc1, ddof=1) == pytest.approx(ev[0])


def test_profile_robustness_correlates_each_unit_with_its_main_profile():
    from facedialect.stats.tuning import profile_robustness

    rng = np.random.default_rng(0)
    rows = []
    for unit in ("happy", "sad"):
        for au in (1, 12, 26):
            for level in range(4):
                rows.append({"db": "A", "unit": unit, "au": au, "level": level,
                             "mean": 0.0 if level == 0 else float(rng.normal()), "sd": 0.0})
    main = pd.DataFrame(rows)
    same = main.copy()
    flipped = main.assign(mean=-main["mean"].where(main["unit"] == "sad", -main["mean"]))
    r_same = profile_robustness(main, same, {"A": 60}, {"A": 70})
    assert list(r_same.columns) == ["db", "unit", "subjects_main", "subjects_all",
                                    "spearman_r", "p"]
    assert np.allclose(r_same["spearman_r"], 1.0)
    r_flip = profile_robustness(main, flipped, {"A": 60}, {"A": 70}).set_index("unit")
    assert r_flip.loc["happy", "spearman_r"] == pytest.approx(1.0)
    assert r_flip.loc["sad", "spearman_r"] == pytest.approx(-1.0)
    assert (r_flip["subjects_all"] == 70).all()
