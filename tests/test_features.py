"""The feature cache computes only the variants a study needs (training and test subsets)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from facedialect.preprocess.augment import N_VARIANTS, variant_subset, variant_table
from facedialect.preprocess.params import PreprocessParams
from facedialect.training.features import FeatureCache, extract_features
from facedialect.training.plan import needed_variants
from facedialect.training.protocol import PAPER, QUICK

P = PreprocessParams()


def test_variant_subset_spreads_over_sizes_positions_and_mirrors() -> None:
    assert variant_subset(50) == tuple(range(50))
    assert variant_subset(1) == (0,)
    ten = variant_subset(10)
    assert len(set(ten)) == 10 and ten[0] == 0
    table = variant_table(P).set_index("variant").loc[list(ten)]
    assert set(table["scale"]) == set(P.variant_scales)  # every size
    assert len(set(zip(table["dx"], table["dy"], strict=True))) == 5  # every position
    assert table["flip"].sum() == 5  # each with its mirror image
    for n in (2, 3, 7, 25, 49):
        sub = variant_subset(n)
        assert len(sub) == n == len(set(sub)) and list(sub) == sorted(sub)
        assert all(0 <= v < N_VARIANTS for v in sub)
    with pytest.raises(ValueError, match="1..50"):
        variant_subset(0)


class _MeanBackbone(torch.nn.Module):
    """Stand-in backbone: features are simple image statistics, and every call is counted."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0

    def to_input(self, gray: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(gray, np.float32))[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += len(x)
        return torch.stack([x.mean((1, 2, 3)), x[:, :, :112].mean((1, 2, 3)),
                            x[:, :, :, :112].mean((1, 2, 3))], 1)


def _faces(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {f"k{i:02d}": rng.integers(0, 256, (P.size, P.size), dtype=np.uint8)
            for i in range(n)}


def test_only_missing_variants_are_computed_and_rows_match_a_full_pass(tmp_path) -> None:
    faces = _faces(3)
    cache = FeatureCache("mean|test", tmp_path)
    net = _MeanBackbone()
    sub = variant_subset(10)
    assert extract_features(list(faces), faces.__getitem__, net, P, cache,
                            variants=sub) == 3
    assert net.seen == 30
    assert all(cache.has(k, sub) and not cache.has(k) for k in faces)
    with pytest.raises(RuntimeError, match="not computed"):
        cache.load(list(faces))
    # a later stage needs all 50 of one face: only its 40 missing variants are computed
    net.seen = 0
    assert extract_features(list(faces), faces.__getitem__, net, P, cache,
                            variants={"k00": range(50), "k01": sub, "k02": sub}) == 1
    assert net.seen == 40
    assert cache.has("k00") and cache.missing("k01") == [v for v in range(50) if v not in sub]
    net.seen = 0
    assert extract_features(list(faces), faces.__getitem__, net, P, cache, variants=sub) == 0
    assert net.seen == 0
    # the same rows as all 50 of each face computed at once, in another cache
    full = FeatureCache("mean|test", tmp_path / "full")
    extract_features(["k00", "k01"], faces.__getitem__, _MeanBackbone(), P, full)
    np.testing.assert_array_equal(cache.load(["k00"]), full.load(["k00"]))
    np.testing.assert_array_equal(cache.load(["k01"], sub), full.load(["k01"], sub))
    assert not np.array_equal(full.load(["k01"], sub)[0, 0], full.load(["k01"], sub)[0, 2])


def test_needed_variants_follow_the_splits_and_swapped_subjects() -> None:
    faces = pd.DataFrame({"db": ["A", "A", "B", "B"], "path": ["a1", "a2", "b1", "b2"],
                          "cache_key": ["ka1", "ka2", "kb1", "kb2"]})
    splits = pd.DataFrame({"db": ["A", "A", "B", "B", "A", "A", "B", "B"],
                           "path": ["a1", "a2", "b1", "b2"] * 2,
                           "run": [0] * 4 + [1] * 4,
                           "part": ["train", "test", "train", "validation",
                                    "train", "validation", "train", "train"]})
    quick50 = replace(QUICK, test_variants=50)  # the quick protocol tested as the paper's
    need = needed_variants(faces, splits, quick50, "test")
    assert need["ka2"] == tuple(range(50))  # a test image in run 0
    assert need["ka1"] == need["kb1"] == need["kb2"] == variant_subset(QUICK.variants)
    assert all(len(v) == 50 for v in needed_variants(faces, splits, quick50, "all").values())
    assert all(len(v) == 50 for v in needed_variants(faces, splits, PAPER, "test").values())
    # the quick protocol tests in its 10 training variants: no face needs more
    assert all(v == variant_subset(10)
               for v in needed_variants(faces, splits, QUICK, "all").values())
    # one database alone: "all" swapped subjects does not apply
    one = faces[faces["db"] == "A"]
    assert needed_variants(one, splits, QUICK, "all")["ka1"] == variant_subset(10)
