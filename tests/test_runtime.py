"""Inference runtimes of the frozen backbone: PyTorch, or ONNX Runtime with the fast extra."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from facedialect.models import WeightsError, build_backbone, load_backbone
from facedialect.models import runtime as rt
from facedialect.preprocess.augment import variant_subset
from facedialect.preprocess.params import PreprocessParams
from facedialect.training.features import (
    FEATURES_VERSION,
    FeatureCache,
    extract_features,
    feature_cache_and_runner,
)
from facedialect.training.plan import needed_variants
from facedialect.training.protocol import PAPER, QUICK, resolve_protocol

needs_onnx = pytest.mark.skipif(not rt.onnx_installed(),
                                reason='needs the fast extra: pip install "facedialect[fast]"')


def test_resolve_runtime_without_and_with_the_fast_extra(monkeypatch) -> None:
    monkeypatch.setattr(rt, "onnx_installed", lambda: False)
    assert rt.resolve_runtime("auto") == "torch"
    assert rt.resolve_runtime("torch") == "torch"
    with pytest.raises(rt.RuntimeUnavailableError, match=r"facedialect\[fast\]"):
        rt.resolve_runtime("onnx")
    with pytest.raises(ValueError, match="unknown runtime"):
        rt.resolve_runtime("tensorrt")
    monkeypatch.setattr(rt, "onnx_installed", lambda: True)
    assert rt.resolve_runtime("auto") == "onnx"
    assert rt.resolve_runtime("onnx") == "onnx"
    assert rt.resolve_runtime("torch") == "torch"
    assert rt.resolve_runtime("auto", "cuda") == "torch"  # ONNX Runtime: CPU only


def test_auto_falls_back_to_torch_when_the_export_fails(tmp_path, monkeypatch) -> None:
    net = build_backbone("mobilenet_v2")
    monkeypatch.setattr(rt, "onnx_installed", lambda: True)

    def broken(*args, **kwargs):
        raise RuntimeError("no exporter here")

    monkeypatch.setattr(rt, "export_onnx", broken)
    with pytest.warns(RuntimeWarning, match="PyTorch instead"):
        cache, runner = feature_cache_and_runner(net, "auto", cache_dir=tmp_path)
    assert runner.name == cache.runtime == "torch"
    with pytest.raises(rt.RuntimeUnavailableError, match='runtime = "torch"'):
        rt.feature_runner(net, "onnx", cache_dir=tmp_path)


def test_the_feature_cache_key_holds_the_runtime_and_torch_keeps_the_old_key(tmp_path) -> None:
    old = hashlib.sha256(f"net|w|{FEATURES_VERSION}".encode()).hexdigest()[:16]
    torch_cache = FeatureCache("net|w", tmp_path)
    assert torch_cache.runtime == "torch" and torch_cache.root.name == old
    onnx_cache = FeatureCache("net|w", tmp_path, runtime="onnx")
    assert onnx_cache.root != torch_cache.root


def test_extract_features_refuses_a_runner_of_another_runtime(tmp_path) -> None:
    net = build_backbone("mobilenet_v2")
    runner = rt.FeatureRunner("onnx", net)  # a stand-in: never called
    face = np.zeros((224, 224), np.uint8)
    with pytest.raises(ValueError, match="runtime 'onnx' for a cache of 'torch'"):
        extract_features(["k"], lambda k: face, net, PreprocessParams(),
                         FeatureCache("net|w", tmp_path), variants=[0], runner=runner)


def test_quick_protocol_tests_in_its_training_variants_and_paper_in_all_50() -> None:
    assert PAPER.test_variants == 50 and QUICK.test_variants == QUICK.variants == 10
    assert any("10 of 50 variants the networks were trained on" in n for n in QUICK.notes)
    over = resolve_protocol("quick", test_variants=50)
    assert over.test_variants == 50 and "test_variants=50" in over.notes[-1]
    faces = pd.DataFrame({"db": ["A", "A"], "path": ["a1", "a2"], "cache_key": ["k1", "k2"]})
    splits = pd.DataFrame({"db": ["A", "A"], "path": ["a1", "a2"], "run": [0, 0],
                           "part": ["train", "test"]})
    need = needed_variants(faces, splits, replace(QUICK, test_variants=20))
    assert need["k1"] == variant_subset(10)
    assert need["k2"] == tuple(sorted(set(variant_subset(10)) | set(variant_subset(20))))


def _backbone(name: str):
    try:
        return load_backbone(name)
    except WeightsError:
        return build_backbone(name)  # AlexNet: no ImageNet file offline


@needs_onnx
@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_lite0", "alexnet"])
def test_onnx_runtime_features_equal_pytorch_within_1e_3(tmp_path, name) -> None:
    torch.set_num_threads(2)
    net = _backbone(name)
    gray = np.random.default_rng(0).integers(0, 256, (5, 224, 224), dtype=np.uint8)
    x = net.to_input(gray)
    cache, onnx = feature_cache_and_runner(net, "auto", cache_dir=tmp_path)
    assert onnx.name == cache.runtime == "onnx"
    model = rt.onnx_model_path(net, tmp_path)
    assert model.is_file() and model.parent == tmp_path / "onnx"
    stamp = model.stat().st_mtime_ns
    assert rt.feature_runner(net, "onnx", cache_dir=tmp_path).name == "onnx"
    assert model.stat().st_mtime_ns == stamp  # exported once
    ref = rt.feature_runner(net, "torch")(x)
    out = onnx(x)
    assert out.shape == ref.shape == (5, net.spec.feature_dim)
    assert np.abs(out - ref).max() < 1e-3
