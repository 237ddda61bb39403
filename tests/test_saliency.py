"""Saliency: guided back-propagation by hand, batching, regions, statistics, modification."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from facedialect.errors import InputError
from facedialect.faces.procedural.geometry import landmarks
from facedialect.faces.procedural.identity import FaceIdentity
from facedialect.models.backbones import Backbone, BackboneSpec
from facedialect.preprocess.augment import make_variants
from facedialect.preprocess.params import PreprocessParams
from facedialect.saliency.gradients import (
    guided_backprop,
    guided_relu,
    saliency_maps,
    saliency_maps_all_runs,
)
from facedialect.saliency.modify import (
    _warp,
    modify_faces,
    modify_faces_visible,
    total_variation,
    variant_grids,
)
from facedialect.saliency.regions import REGIONS, region_labels, region_shares
from facedialect.saliency.stats import REGION_COLUMNS, hedges_g, region_stats, unit_means
from facedialect.training.splits import balance_classes, split_run
from facedialect.training.trainer import MultiRunHead


# ------------------------------------------------------------------ guided back-propagation
def _tiny_net(act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """x(2) -> Linear -> ReLU -> Linear -> ReLU -> Linear(1), weights set by hand."""
    net = nn.Sequential(nn.Linear(2, 2), act(), nn.Linear(2, 2), act(), nn.Linear(2, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 1.0]]))
        net[0].bias.copy_(torch.tensor([0.5, -1.0]))
        net[2].weight.copy_(torch.tensor([[1.0, 1.0], [-1.0, 2.0]]))
        net[2].bias.zero_()
        net[4].weight.copy_(torch.tensor([[1.0, -1.0]]))
        net[4].bias.zero_()
    return net


def _input_grad(net: nn.Module, x: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.tensor([x], requires_grad=True)
    out = net(t)
    (g,) = torch.autograd.grad(out.sum(), t)
    return out.detach(), g[0]


def test_guided_backprop_matches_hand_computation():
    # x = (1, 2): z1 = W1 x + b1 = (-0.5, 3) -> a1 = (0, 3); z2 = W2 a1 = (3, 6) = a2;
    # out = a2_1 - a2_2 = -3.
    # plain: g_a2 = (1, -1); g_z2 = (1, -1); g_a1 = W2' g_z2 = (2, -1); g_z1 = (0, -1);
    #        g_x = W1' g_z1 = (-2, -1).
    # guided: at ReLU 2 keep positive g where z2 > 0: (1, 0); g_a1 = W2' (1, 0) = (1, 1);
    #        at ReLU 1: positive and z1 > 0: (0, 1); g_x = W1' (0, 1) = (2, 1).
    net = _tiny_net()
    out, plain = _input_grad(net, [1.0, 2.0])
    assert out.item() == pytest.approx(-3.0)
    assert plain.tolist() == pytest.approx([-2.0, -1.0])
    with guided_backprop(net) as hooked:
        out_g, guided = _input_grad(net, [1.0, 2.0])
    assert hooked == 2
    assert out_g.item() == pytest.approx(-3.0)  # the forward pass is unchanged
    assert guided.tolist() == pytest.approx([2.0, 1.0])
    _, again = _input_grad(net, [1.0, 2.0])  # hooks removed on exit
    assert again.tolist() == pytest.approx([-2.0, -1.0])


def test_guided_relu6_stops_saturated_units():
    # x = (3, 2): z1 = (1.5, 7): the second unit is above 6, so ReLU6 passes nothing there;
    # a1 = (1.5, 6); z2 = (7.5, 10.5) -> both saturated: no gradient reaches the input.
    net = _tiny_net(nn.ReLU6)
    out, plain = _input_grad(net, [3.0, 2.0])
    assert out.item() == pytest.approx(0.0)  # a2 = (6, 6)
    assert plain.tolist() == [0.0, 0.0]
    x = torch.tensor([-1.0, 0.5, 5.0, 6.5], requires_grad=True)
    y = guided_relu(x, 6.0)
    assert y.tolist() == [0.0, 0.5, 5.0, 6.0]
    (g,) = torch.autograd.grad(y, x, torch.tensor([1.0, -1.0, 2.0, 1.0]))
    assert g.tolist() == [0.0, 0.0, 2.0, 0.0]


# --------------------------------------------------------------- a tiny backbone for speed
class TinyBackbone(Backbone):
    """Conv 3->4 (5x5, stride 2) + ReLU + conv 4->6 + ReLU6, global mean: 6 features."""

    def __init__(self, spec: BackboneSpec) -> None:
        super().__init__(spec)
        self.features = nn.Sequential(nn.Conv2d(3, 4, 5, 2, 2), nn.ReLU(),
                                      nn.Conv2d(4, 6, 3, 1, 1), nn.ReLU6())
        self.pool = nn.AdaptiveAvgPool2d(1)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.features(x)


def _tiny(seed: int = 0, runs: int = 3) -> tuple[Backbone, MultiRunHead]:
    spec = BackboneSpec(name="tiny", arch=TinyBackbone, feature_dim=6, frozen_part="test",
                        input_size=32)
    torch.manual_seed(seed)
    bb = TinyBackbone(spec)
    with torch.no_grad():
        bb.features[0].weight.mul_(3.0)
    bb.requires_grad_(False)
    head = MultiRunHead(list(range(10, 10 + runs)), 6, hidden=16)
    with torch.no_grad():
        for b in (head.b1, head.b2, head.b3):
            b.normal_(0, 0.3)
    return bb.eval(), head.eval()


def _faces(n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32]
    base = 128 + 60 * np.sin(xx / 4.0) * np.cos(yy / 5.0)
    return np.clip(base + rng.normal(0, 25, (n, 32, 32)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("method", ["gradient", "guided"])
def test_batching_gives_the_same_maps(method):
    bb, head = _tiny()
    faces = _faces(5)
    cls = [0, 3, 6, 1, 4]
    one = np.stack([saliency_maps_all_runs(bb, head, faces[i:i + 1], cls[i:i + 1], [0, 2],
                                           method, batch_size=1)[:, 0] for i in range(5)], 1)
    batched = saliency_maps_all_runs(bb, head, faces, cls, [0, 2], method, batch_size=7)
    assert batched.shape == (2, 5, 32, 32)
    assert np.isfinite(batched).all() and np.abs(batched).max() > 0
    np.testing.assert_allclose(batched, one, rtol=1e-4, atol=1e-6 * np.abs(one).max())
    # per-face runs: face i through run runs[i]
    mixed = saliency_maps(bb, head, faces, cls, [2, 0, 0, 2, 2], method, batch_size=3)
    np.testing.assert_allclose(mixed, batched[[1, 0, 0, 1, 1], range(5)], rtol=1e-4,
                               atol=1e-6 * np.abs(one).max())


def test_gradient_is_the_derivative_in_gray_levels():
    bb, head = _tiny()
    face = _faces(1).astype(np.float32)
    g = saliency_maps(bb, head, face, [2], [1], "gradient", score="logit")[0]
    rng = np.random.default_rng(3)
    v = rng.normal(size=face.shape[1:]).astype(np.float32)
    v /= np.abs(v).max()

    def logit(img: np.ndarray) -> float:
        from facedialect.saliency.gradients import gray_to_input, head_logits

        with torch.no_grad():
            feats = bb(gray_to_input(torch.as_tensor(img), bb))
            return float(head_logits(head, feats[None], [1])[0, 0, 2])

    eps = 0.02
    fd = (logit(face + eps * v) - logit(face - eps * v)) / (2 * eps)
    assert fd == pytest.approx(float((g * v).sum()), rel=0.02, abs=1e-6)


def test_guided_head_relus_are_guided_too():
    """saliency_maps(guided) equals guided backprop through an nn.Sequential copy of the net."""
    bb, head = _tiny()
    face = _faces(1)
    r = 1
    seq_head = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                             nn.Linear(16, 7))
    with torch.no_grad():
        for k, (w, b) in zip((0, 2, 4), ((head.w1, head.b1), (head.w2, head.b2),
                                         (head.w3, head.b3)), strict=True):
            seq_head[k].weight.copy_(w[r].T)
            seq_head[k].bias.copy_(b[r, 0])
    whole = nn.Sequential(bb, seq_head)
    from facedialect.saliency.gradients import gray_to_input

    gray = torch.as_tensor(face, dtype=torch.float32).requires_grad_(True)
    with guided_backprop(whole) as n:
        out = torch.softmax(whole(gray_to_input(gray, bb)), -1)[0, 5]
        (want,) = torch.autograd.grad(out, gray)
    assert n == 4
    got = saliency_maps(bb, head, face, [5], [r], "guided")
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-7)
    plain = saliency_maps(bb, head, face, [5], [r], "gradient")
    assert not np.allclose(plain, got)


def test_saliency_rejects_bad_input():
    bb, head = _tiny()
    with pytest.raises(InputError, match="method"):
        saliency_maps(bb, head, _faces(1), [0], [0], "occlusion")
    with pytest.raises(InputError, match="classes"):
        saliency_maps(bb, head, _faces(1), [7], [0])
    with pytest.raises(InputError, match="runs must lie"):
        saliency_maps(bb, head, _faces(1), [0], [3])
    with pytest.raises(InputError, match="32, 32"):
        saliency_maps(bb, head, np.zeros((1, 16, 16), np.uint8), [0], [0])


# ---------------------------------------------------------------------------------- regions
def _face_landmarks() -> np.ndarray:
    return landmarks(FaceIdentity.random(np.random.default_rng(5), pose=False), {}, size=224)


def test_regions_partition_the_image_in_anatomical_order():
    lm = _face_landmarks()
    lab = region_labels(lm, (224, 224))
    assert set(np.unique(lab)) == set(range(len(REGIONS)))  # every region has pixels
    centre_y = {r: np.nonzero(lab == i)[0].mean() for i, r in enumerate(REGIONS)}
    order = ["forehead", "brows", "eyes", "nose", "mouth", "chin"]
    assert [centre_y[r] for r in order] == sorted(centre_y[r] for r in order)
    cheeks_x = np.nonzero(lab == REGIONS.index("cheeks"))[1]
    nose_x = np.nonzero(lab == REGIONS.index("nose"))[1]
    assert (cheeks_x < nose_x.min()).any() and (cheeks_x > nose_x.max()).any()
    assert lab[int(lm[62, 1]), int(lm[62, 0])] == REGIONS.index("mouth")
    assert lab[int(lm[37:39, 1].mean()) + 1, int(lm[37:39, 0].mean())] == REGIONS.index("eyes")


def test_region_shares_sum_to_one_and_follow_the_map():
    lm = _face_landmarks()
    lab = region_labels(lm, (224, 224))
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(3, 224, 224))
    maps[1] = np.where(lab == REGIONS.index("mouth"), -2.0, 0.0)  # only the mouth, negative
    maps[2] = 0.0
    sh = region_shares(maps, [lm, lm, lm])
    assert sh.shape == (3, len(REGIONS))
    assert sh[0].sum() == pytest.approx(1.0)
    assert sh[1, REGIONS.index("mouth")] == pytest.approx(1.0)
    assert np.isnan(sh[2]).all()
    # uniform |map|: shares are the regions' areas
    area = np.bincount(lab.ravel(), minlength=len(REGIONS)) / lab.size
    np.testing.assert_allclose(region_shares(np.ones((1, 224, 224)), [lm])[0], area)
    runs = region_shares(np.stack([maps[:2], maps[:2]]), [lm, lm])
    assert runs.shape == (2, 2, len(REGIONS))
    with pytest.raises(InputError):
        region_shares(maps, [lm])
    with pytest.raises(InputError, match="68, 2"):
        region_labels(lm[:60], (224, 224))


def test_regions_turn_with_the_face():
    up = _face_landmarks()
    a = np.deg2rad(12.0)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    tilted = (up - 112.0) @ rot.T + 112.0
    lab_up, lab_tilt = region_labels(up, (224, 224)), region_labels(tilted, (224, 224))
    yy, xx = np.nonzero(lab_up != REGIONS.index("other"))
    moved = np.rint((np.stack([xx, yy], 1) - 112.0) @ rot.T + 112.0).astype(int)
    same = lab_tilt[moved[:, 1], moved[:, 0]] == lab_up[yy, xx]
    assert same.mean() > 0.95  # a face pixel keeps its region when the face turns


# ------------------------------------------------------------------------------- statistics
def _shares_table(means: dict[str, list[float]], region: str = "mouth", runs: int = 2,
                  subjects: bool = True) -> pd.DataFrame:
    rows = []
    for db, vals in means.items():
        for s, v in enumerate(vals):
            for r in range(runs):
                for reg in ("mouth", "eyes"):
                    share = v if reg == region else 1 - v
                    rows.append({"db": db, "run": r, "image": f"{db}/s{s}.png",
                                 "subject": f"s{s}" if subjects else "",
                                 "expression": "angry", "method": "guided",
                                 "region": reg, "share": share + 0.001 * r})
    return pd.DataFrame(rows)[REGION_COLUMNS]


def test_region_stats_exact_permutation_p_by_enumeration():
    a, b = [0.30, 0.35, 0.32, 0.40], [0.20, 0.22, 0.31, 0.18]
    stats = region_stats(_shares_table({"A": a, "B": b}), n_resamples=9999, seed=1)
    row = stats[(stats["region"] == "mouth")].iloc[0]
    # subject means: run offsets 0 and 0.001 average to +0.0005
    xa, xb = np.array(a) + 0.0005, np.array(b) + 0.0005
    obs = xa.mean() - xb.mean()
    pooled = np.concatenate([xa, xb])
    diffs = []
    for pick in combinations(range(8), 4):
        rest = [i for i in range(8) if i not in pick]
        diffs.append(pooled[list(pick)].mean() - pooled[rest].mean())
    p_exact = np.mean(np.abs(diffs) >= abs(obs) - 1e-12)
    assert row["p"] == pytest.approx(p_exact)
    assert row["diff"] == pytest.approx(obs)
    assert row["unit"] == "subject" and row["n_a"] == 4 and row["n_b"] == 4
    sd = np.sqrt((3 * xa.var(ddof=1) + 3 * xb.var(ddof=1)) / 6)
    assert row["hedges_g"] == pytest.approx(obs / sd * (1 - 3 / (4 * 8 - 9)))
    # Benjamini-Hochberg over the rows of this method and database pair, by hand
    ps = stats["p"].to_numpy()
    order = np.argsort(ps)
    scaled = ps[order] * len(ps) / np.arange(1, len(ps) + 1)
    bh = np.empty_like(ps)
    bh[order] = np.minimum.accumulate(scaled[::-1])[::-1].clip(max=1)
    assert stats["p_fdr"].to_numpy() == pytest.approx(bh)
    eyes = stats[stats["region"] == "eyes"].iloc[0]  # eyes = 1 - mouth: mirror image
    assert eyes["diff"] == pytest.approx(-obs) and eyes["p"] == pytest.approx(p_exact)


def test_region_stats_average_runs_then_images_then_subjects():
    t = _shares_table({"A": [0.3, 0.3, 0.3], "B": [0.3, 0.3, 0.3]}, runs=1)
    extra = t[(t["db"] == "A") & (t["subject"] == "s0")].copy()
    extra["image"] = "A/s0_second.png"
    extra["share"] = np.where(extra["region"] == "mouth", 0.9, 0.1)
    more_runs = pd.concat([extra.assign(run=k) for k in range(5)])  # 5 runs of image 2
    t = pd.concat([t, more_runs], ignore_index=True)
    um = unit_means(t)
    s0 = um[(um["db"] == "A") & (um["unit"] == "A/s0") & (um["region"] == "mouth")]
    assert s0["share"].item() == pytest.approx((0.3 + 0.9) / 2)  # not (0.3 + 5 * 0.9) / 6
    assert s0["images"].item() == 2


def test_region_stats_image_units_and_no_difference():
    rng = np.random.default_rng(0)
    same = {"A": list(rng.uniform(0.2, 0.3, 12)), "B": list(rng.uniform(0.2, 0.3, 12))}
    stats = region_stats(_shares_table(same, subjects=False), n_resamples=999)
    assert set(stats["unit"]) == {"image"}
    assert (stats["p"] > 0.05).all()
    assert hedges_g(np.array([1.0]), np.array([1.0, 2.0])) != hedges_g(
        np.array([1.0]), np.array([1.0, 2.0]))  # NaN with fewer than 2 values
    again = region_stats(_shares_table(same, subjects=False), n_resamples=999)
    pd.testing.assert_frame_equal(stats, again)  # same seed, same p


# ----------------------------------------------------------------------------- modification
def test_modification_raises_the_target_and_stays_in_range():
    bb, head = _tiny(runs=2)
    faces = _faces(3)
    mask = np.zeros((32, 32), np.float32)
    mask[4:28, 4:28] = 1.0
    res = modify_faces(bb, head, faces, [1, 4, 6], [1], steps=12, step_size=10.0,
                       tv_weight=0.0, mask=mask)
    assert res.images.shape == (13, 3, 32, 32) and res.probabilities.shape == (13, 3, 7)
    assert res.images.min() >= 0.0 and res.images.max() <= 255.0
    np.testing.assert_array_equal(res.images[0], faces.astype(np.float32))
    np.testing.assert_array_equal(res.images[-1][:, mask == 0],
                                  faces.astype(np.float32)[:, mask == 0])
    target = res.probabilities[:, [0, 1, 2], [1, 4, 6]]
    # one run, no penalty: the objective is log p(target), so p never falls
    assert (np.diff(res.objective, axis=0) >= 0).all()
    assert (np.diff(target, axis=0) >= 0).all()
    assert (target[-1] > target[0] + 0.01).all()
    two = modify_faces(bb, head, faces, [1, 4, 6], [0, 1], steps=4, tv_weight=1.0)
    assert (np.diff(two.objective, axis=0) >= 0).all()
    np.testing.assert_allclose(res.probabilities.sum(-1), 1.0, rtol=1e-5)
    smooth = modify_faces(bb, head, faces, [1, 4, 6], [0, 1], steps=12, step_size=2.0,
                          tv_weight=50.0)
    tv = total_variation(torch.as_tensor(smooth.images[-1]))
    rough = total_variation(torch.as_tensor(res.images[-1]))
    assert (tv < rough).all()
    with pytest.raises(InputError):
        modify_faces(bb, head, faces, [1, 4, 9], [0])
    with pytest.raises(InputError):
        modify_faces(bb, head, faces, [1, 4, 6], [0], steps=-1)


def test_variant_grids_make_the_augmentation_variants():
    params = PreprocessParams()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:params.size, 0:params.size]
    img = np.clip(128 + 80 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
                  + rng.normal(0, 3, xx.shape), 0, 255).astype(np.uint8)
    ref = make_variants(img, params).astype(np.float32)
    out = _warp(torch.as_tensor(img, dtype=torch.float32)[None], variant_grids(params),
                float(params.background_gray)).numpy()
    assert out.shape == ref.shape
    diff = np.abs(out - ref)
    # cv2 interpolates in fixed point: the same variants to rounding
    assert diff.max() <= 2.5 and diff.mean() < 0.3
    # and the variants really differ from the plain image (the check has teeth)
    assert np.abs(ref[1:] - ref[0]).mean() > 10
    np.testing.assert_allclose(out[1], out[0][:, ::-1], atol=1e-3)  # mirror image


def test_visible_modification_is_smooth_held_out_and_seeded():
    bb, head = _tiny(runs=4)
    faces = _faces(2)
    params = PreprocessParams(size=32, variant_shift_px=2)
    mask = np.zeros((32, 32), np.float32)
    mask[4:28, 4:28] = 1.0
    kw = dict(steps=15, step_size=20.0, tv_weight=0.0, cell=8, variants_per_step=4,
              mask=mask, held_out_runs=[2, 3], seed=3)
    res = modify_faces_visible(bb, head, faces, [1, 4], [0, 1], params, **kw)
    assert res.images.shape == (16, 2, 32, 32) and res.held_out.shape == (16, 2, 7)
    assert res.images.min() >= 0.0 and res.images.max() <= 255.0
    np.testing.assert_array_equal(res.images[0], faces.astype(np.float32))
    change = res.images[-1] - res.images[0]
    assert np.abs(change[:, mask == 0]).max() == 0.0  # background untouched
    target = res.probabilities[:, [0, 1], [1, 4]]
    assert (target[-1] > target[0] + 0.005).all()  # a smooth change moves this tiny net little
    assert (res.objective[-1] > res.objective[0]).all()
    # the change is a bilinear interpolation of a 4 x 4 grid: smooth where not clamped,
    # unlike pixel ascent
    after = res.images[-1]
    free = (after > 0) & (after < 255)
    pairs = free[:, 6:26, 6:25] & free[:, 6:26, 7:26]
    step = np.abs(np.diff(change[:, 6:26, 6:26], axis=2))[pairs]
    assert pairs.sum() > 100 and step.mean() < 0.2 * np.abs(change[:, 6:26, 6:26]).mean()
    rough = modify_faces(bb, head, faces, [1, 4], [0, 1], steps=15, step_size=20.0,
                         tv_weight=0.0, mask=mask)
    rough_change = rough.images[-1] - rough.images[0]
    assert (np.abs(np.diff(rough_change[:, 6:26, 6:26], axis=2))[pairs].mean()
            > 2 * step.mean())
    again = modify_faces_visible(bb, head, faces, [1, 4], [0, 1], params, **kw)
    np.testing.assert_array_equal(res.images, again.images)
    np.testing.assert_array_equal(res.held_out, again.held_out)
    plain = modify_faces(bb, head, faces, [1, 4], [0, 1], steps=3, held_out_runs=[3])
    assert plain.held_out.shape == (4, 2, 7)
    with pytest.raises(InputError, match="both optimised and held out"):
        modify_faces_visible(bb, head, faces, [1, 4], [0, 1], params, held_out_runs=[1])
    with pytest.raises(InputError):
        modify_faces_visible(bb, head, faces, [1, 4], [0], params, variants_per_step=51)
    with pytest.raises(InputError):
        modify_faces_visible(bb, head, faces, [1, 4], [0], PreprocessParams())  # size 224


def test_split_runs_holds_out_a_share():
    from facedialect.stages.saliency import split_runs

    assert split_runs([0, 1, 2, 3], 0.5) == ([0, 1], [2, 3])
    assert split_runs([0, 1, 2], 0.5) == ([0, 1], [2])
    assert split_runs([0, 1], 0.1) == ([0], [1])
    assert split_runs([5], 0.5) == ([5], [])
    assert split_runs([0, 1, 2, 3], 0.0) == ([0, 1, 2, 3], [])


# ------------------------------------------------------------------- web-collected datasets
def test_image_wise_split_and_class_balance():
    n = {"happy": 40, "sad": 10, "angry": 5}
    images = pd.DataFrame([{"db": "W", "subject": "", "expression": e, "path": f"{e}{i}"}
                           for e, k in n.items() for i in range(k)])
    part = split_run(images, seed=3, shares=(2 / 3, 2 / 15, 1 / 5))
    for e, k in n.items():
        counts = part[images["expression"] == e].value_counts()
        assert counts["train"] == round(k * 2 / 3)
        assert counts["test"] >= 1 and counts["validation"] >= 1
    with_ids = images.assign(subject=[f"s{i % 6}" for i in range(len(images))])
    by_image = split_run(with_ids, seed=3, shares=(2 / 3, 2 / 15, 1 / 5), by="image")
    by_subject = split_run(with_ids, seed=3, shares=(2 / 3, 2 / 15, 1 / 5), by="subject")
    assert by_subject.groupby(with_ids["subject"]).nunique().max() == 1
    assert by_image.groupby(with_ids["subject"]).nunique().max() > 1
    with pytest.raises(InputError, match="no subject ids"):
        split_run(images, seed=3, shares=(0.6, 0.2, 0.2), by="subject")
    labels = images["expression"].map({"happy": 1, "sad": 3, "angry": 4}).to_numpy()
    train = np.flatnonzero(part == "train")
    bal = balance_classes(train, labels, seed=1)
    counts = pd.Series(labels[bal]).value_counts()
    assert counts.nunique() == 1 and counts.iloc[0] == (labels[train] == 1).sum()
    assert set(bal) == set(train)  # every training image used, minority ones repeated
    np.testing.assert_array_equal(bal, balance_classes(train, labels, seed=1))
