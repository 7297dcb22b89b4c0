"""Export: networks as python-control systems and closed loops, gymnasium policies with seeded
evaluation, and ONNX files carrying their certificate."""

from certnet.export.iosys import closed_loop, to_iosys
from certnet.export.onnx import PARITY_TOL, read_onnx_metadata, to_onnx
from certnet.export.policy import Evaluation, NetworkPolicy, evaluate, to_policy

__all__ = [
    "to_iosys",
    "closed_loop",
    "to_policy",
    "NetworkPolicy",
    "evaluate",
    "Evaluation",
    "to_onnx",
    "read_onnx_metadata",
    "PARITY_TOL",
]
