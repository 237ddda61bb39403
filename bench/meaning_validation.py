"""Validation numbers of the meaning analysis (docs/validation.md, "Shared dimensions of meaning").

Measures, on simulated data with known answers:

1. PPCA against direct numpy references (eigh of the symmetric cross-covariance; SVD of
   the cross-covariance for distinct concepts): largest absolute difference.
2. The permutation test's false-positive rate on null data (independent cultures):
   the share of null data sets in which at least one shared dimension is found.
3. Recovery of the number of shared dimensions M in {2, 4, 6}.
4. Preservation: cultures sharing more vs less; identical cultures vs the reliability
   ceiling.

Usage: ``python bench/meaning_validation.py [--sets 200] [--out bench/results/meaning.json]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from facedialect.meaning.ppca import ppca, ppca_fit, ppca_test
from facedialect.meaning.preservation import (
    meaning_preservation,
    split_half_reliability,
    weighted_reliability,
)
from facedialect.synthetic.raters import (
    MeaningSimulator,
    SimCulture,
    sample_au_vectors,
    shared_dims_simulator,
    simulate_ratings,
)


def reference_check(repeats: int = 20) -> dict:
    """Largest |difference| of eigenvalues and (sign-aligned) weights vs numpy."""
    worst_shared = worst_svd = 0.0
    for s in range(repeats):
        rng = np.random.default_rng(s)
        x, y = rng.normal(size=(50, 8)), rng.normal(size=(50, 8))
        names = [f"c{i}" for i in range(8)]
        fit = ppca_fit(x, y, x_names=names, y_names=names, shared_concepts=True)
        xc, yc = x - x.mean(0), y - y.mean(0)
        vals, vecs = np.linalg.eigh((xc.T @ yc + yc.T @ xc) / 2 / 49)
        vals, vecs = vals[::-1], vecs[:, ::-1]
        signs = np.sign((fit.weights_x * vecs).sum(0))
        worst_shared = max(worst_shared, np.abs(fit.eigenvalues - vals).max(),
                           np.abs(fit.weights_x - vecs * signs).max())
        y2 = rng.normal(size=(50, 6))
        fit2 = ppca_fit(x, y2)
        u, sv, vt = np.linalg.svd(xc.T @ (y2 - y2.mean(0)) / 49, full_matrices=False)
        wx = fit2.weights_x / np.linalg.norm(fit2.weights_x, axis=0)
        wy = fit2.weights_y / np.linalg.norm(fit2.weights_y, axis=0)
        sg = np.sign((wx * u[:, :6]).sum(0))
        worst_svd = max(worst_svd, np.abs(fit2.eigenvalues - sv / 2).max(),
                        np.abs(wx - u[:, :6] * sg).max(), np.abs(wy - vt[:6].T * sg).max())
    return {"max_abs_diff_shared_concepts": float(worst_shared),
            "max_abs_diff_distinct_concepts": float(worst_svd), "repeats": repeats}


def null_rate(sets: int, n: int = 100, permutations: int = 199, alpha: float = 0.05) -> dict:
    """Share of null data sets (independent cultures) with >= 1 shared dimension."""
    found = 0
    any_sig = 0
    for s in range(sets):
        a = simulate_ratings(sample_au_vectors(n, seed=10_000 + s), MeaningSimulator(
            cultures=[SimCulture(name="A", dims=[0, 1, 2])], seed=s)).matrix("A")
        b = simulate_ratings(sample_au_vectors(n, seed=20_000 + s), MeaningSimulator(
            cultures=[SimCulture(name="B", dims=[0, 1, 2])], seed=s)).matrix("B")
        tab = ppca_test(a.to_numpy(), b.to_numpy(), permutations=permutations, alpha=alpha,
                        seed=s)
        found += bool(tab["shared"].any())
        any_sig += bool(tab["significant"].any())
    return {"sets": sets, "images": n, "concepts": "12 x 12", "permutations": permutations,
            "alpha": alpha, "rate_at_least_one_shared": found / sets,
            "rate_any_component_significant": any_sig / sets}


def recovery(seeds: int = 10, n: int = 300) -> dict:
    """Distribution of the recovered count for planted M = 2, 4, 6 (2 own dims each)."""
    out = {}
    for m in (2, 4, 6):
        counts = []
        for s in range(seeds):
            res = simulate_ratings(sample_au_vectors(n, seed=100 * m + s),
                                   shared_dims_simulator(m, 2, concepts=12, seed=s))
            counts.append(ppca(res.matrix("A"), res.matrix("B"), permutations=199,
                               seed=s).n_shared)
        out[str(m)] = {"counts": counts, "within_1": float(np.mean(np.abs(
            np.array(counts) - m) <= 1)), "exact": float(np.mean(np.array(counts) == m))}
    return out


def preservation_checks(n: int = 400) -> dict:
    """Preservation for more / less sharing, and identical cultures vs the ceiling."""
    sim = MeaningSimulator(cultures=[
        SimCulture(name="A", dims=[0, 1, 2, 3, 4], concepts=10),
        SimCulture(name="B", dims=[0, 1, 2, 3, 5], concepts=10),
        SimCulture(name="C", dims=[0, 6, 7, 8, 9], concepts=10)], seed=1)
    res = simulate_ratings(sample_au_vectors(n, seed=4), sim)
    tab = meaning_preservation({c: res.matrix(c) for c in "ABC"}).set_index(
        ["source", "target"])["preserved"]
    same = MeaningSimulator(cultures=[SimCulture(name="A", dims=[0, 1, 2], concepts=8),
                                      SimCulture(name="B", dims=[0, 1, 2], concepts=8,
                                                 copy_of="A")], raters=6, seed=2)
    r2 = simulate_ratings(sample_au_vectors(500, seed=6), same)
    rng = np.random.default_rng(0)
    preds = {c: r2.matrix(c, "truth") + rng.normal(0, 0.01, (500, 8)) for c in "AB"}
    rates = {c: r2.matrix(c) for c in "AB"}
    rel = split_half_reliability(r2.raters, splits=20)
    ceil = {c: weighted_reliability(rates[c], dict(zip(
        rel.loc[rel["culture"] == c, "concept"], rel.loc[rel["culture"] == c, "reliability"],
        strict=True))) for c in "AB"}
    t2 = meaning_preservation(preds, rates, ceil).set_index(["source", "target"])
    return {"mean_ratings_A_to_B_4_of_5_shared": float(tab[("A", "B")]),
            "mean_ratings_A_to_C_1_of_5_shared": float(tab[("A", "C")]),
            "identical_cultures_preserved": float(t2.loc[("A", "B"), "preserved"]),
            "identical_cultures_preserved_ratings": float(t2.loc[("A", "B"),
                                                                 "preserved_ratings"]),
            "identical_cultures_ceiling": float(t2.loc[("A", "B"), "ceiling"])}


def main() -> None:
    """Run every check and write the JSON."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", type=int, default=200)
    ap.add_argument("--out", type=Path, default=Path("bench/results/meaning.json"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    result = {"reference": reference_check(), "null": null_rate(args.sets),
              "recovery": recovery(), "preservation": preservation_checks()}
    result["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
