"""Frobenius-normalised networks: layers, activations with slope bounds, the MLP, the reader
that verification and export use (:func:`extract_layers`), and the ONNX reader
(:func:`from_onnx`)."""

from certnet.nn.activations import (
    ACTIVATIONS,
    ActivationSpec,
    GroupSort,
    Softplus,
    activation_spec,
    make_activation,
    spec_of_module,
)
from certnet.nn.extract import LayerStack, extract_layers
from certnet.nn.frobenius import FrobeniusLinear, frobenius_norm, is_frobenius
from certnet.nn.mlp import NormalizedMLP, radii_for_budget
from certnet.nn.onnx_import import OnnxNetwork, from_onnx, load_onnx

__all__ = [
    "ACTIVATIONS",
    "ActivationSpec",
    "GroupSort",
    "Softplus",
    "activation_spec",
    "make_activation",
    "spec_of_module",
    "LayerStack",
    "extract_layers",
    "FrobeniusLinear",
    "frobenius_norm",
    "is_frobenius",
    "NormalizedMLP",
    "radii_for_budget",
    "OnnxNetwork",
    "from_onnx",
    "load_onnx",
]
