"""Export: networks as python-control systems and closed loops, gymnasium policies with seeded
evaluation, ONNX files carrying their certificate; stable-baselines3 actors (a live model or a
saved zip) as certifiable networks."""

from certnet.export.iosys import closed_loop, to_iosys
from certnet.export.onnx import PARITY_TOL, read_onnx_metadata, to_onnx
from certnet.export.policy import Evaluation, NetworkPolicy, evaluate, to_policy
from certnet.export.sb3 import from_sb3, is_sb3_zip, load_sb3

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
    "from_sb3",
    "load_sb3",
    "is_sb3_zip",
]
