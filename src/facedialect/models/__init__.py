"""Frozen ImageNet backbones (torchvision-compatible parameter names) and their weights."""

from facedialect.models.backbones import (
    BACKBONES,
    Backbone,
    BackboneSpec,
    UnknownBackboneError,
    WeightFile,
    build_backbone,
    get_spec,
    to_input,
)
from facedialect.models.weights import (
    WeightsError,
    load_backbone,
    load_state_dict,
    resolve_weights,
)

__all__ = [
    "BACKBONES",
    "Backbone",
    "BackboneSpec",
    "UnknownBackboneError",
    "WeightFile",
    "WeightsError",
    "build_backbone",
    "get_spec",
    "load_backbone",
    "load_state_dict",
    "resolve_weights",
    "to_input",
]
