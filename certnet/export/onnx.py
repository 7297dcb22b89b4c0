"""ONNX export with the scalings and action clipping baked in and the certificate in metadata."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from certnet.errors import CertificateError
from certnet.nn.extract import extract_layers
from certnet.verify.certificate import Certificate

__all__ = ["to_onnx", "read_onnx_metadata", "PARITY_TOL"]

PARITY_TOL = 1e-5
"""Largest |onnxruntime − torch| accepted on the parity check (absolute, action units)."""


class _Exported(nn.Module):
    def __init__(self, net: nn.Module, low: torch.Tensor | None, high: torch.Tensor | None):
        super().__init__()
        self.net = net
        self.clip = low is not None
        if self.clip:
            self.register_buffer("low", low)
            self.register_buffer("high", high)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        a = self.net(obs)
        if self.clip:
            a = torch.maximum(torch.minimum(a, self.high), self.low)
        return a


def _onnx_modules():
    try:
        import onnx
        import onnxruntime
    except ImportError as e:  # pragma: no cover - the dev extra installs both
        raise ImportError(
            f"ONNX export needs onnx and onnxruntime ({e}); pip install \"certnet[onnx]\""
        ) from e
    return onnx, onnxruntime


def to_onnx(
    net: nn.Module,
    path: str | os.PathLike,
    certificate: Certificate | None = None,
    *,
    low: Any = None,
    high: Any = None,
    obs_scale: Any = 1.0,
    n_check: int = 1000,
    seed: int = 0,
) -> Path:
    """Export a network to ONNX, check it against onnxruntime, and store provenance metadata.

    The graph computes the network exactly as ``net(obs)`` does, input/output scalings of a
    ``NormalizedMLP`` included, followed by ``clip(·, low, high)`` when limits are given. One
    input ``obs`` (batch, d_0) and one output ``action`` (batch, d_L), in the network's dtype.

    ``metadata_props``: ``certnet.fingerprint`` (SHA-256 of the weights), ``certnet.widths``,
    ``certnet.lipschitz_bound`` (NormalizedMLP), ``certnet.action_low/high``, and
    ``certnet.certificate`` (the certificate's JSON) when given.

    Parameters
    ----------
    net : NormalizedMLP or nn.Sequential
    path : path-like
        Output file (``.onnx``).
    certificate : Certificate, optional
        Must have been made for these weights (same fingerprint).
    low, high : array_like, optional
        Action limits baked into the graph.
    obs_scale : float or array_like
        Spread of the random observations of the parity check (standard deviation per input).
    n_check : int
        Number of random observations in the parity check (default 1000).
    seed : int
        Seed of those observations.

    Returns
    -------
    Path

    Raises
    ------
    CertificateError
        The certificate was made for other weights.
    RuntimeError
        onnxruntime disagrees with torch by more than :data:`PARITY_TOL`.
    ValueError
        Only one of low/high given.
    """
    onnx, ort = _onnx_modules()
    stack = extract_layers(net)
    fp = stack.fingerprint()
    if certificate is not None and certificate.fingerprint and certificate.fingerprint != fp:
        raise CertificateError(
            f"the certificate was made for weights with fingerprint "
            f"{certificate.fingerprint[:16]}…, but this network has {fp[:16]}…; "
            "re-certify the exported network"
        )
    if (low is None) != (high is None):
        raise ValueError("give both low and high action limits, or neither")
    dtype = next(net.parameters()).dtype
    d_in, d_out = stack.widths[0], stack.widths[-1]
    lo = hi = None
    if low is not None:
        lo = torch.as_tensor(np.broadcast_to(np.asarray(low, float), (d_out,)).copy(), dtype=dtype)
        hi = torch.as_tensor(np.broadcast_to(np.asarray(high, float), (d_out,)).copy(),
                             dtype=dtype)
    # The graph is traced from a plain module holding the weights net's forward uses (read by
    # extract_layers, exact in net's dtype), not from net: tracing a parametrised net lets the
    # exporter fold the parametrisation into constants in its own order of operations, which
    # can differ from torch's by an ulp, and the file would not hold the certified weights.
    from certnet.nn.onnx_import import OnnxNetwork

    plain = OnnxNetwork(stack, source="certnet export", onnx_dtype=dtype, dtype=dtype)
    module = _Exported(plain, lo, hi).eval()
    path = Path(path)
    example = torch.zeros(2, d_in, dtype=dtype)
    torch.onnx.export(
        module,
        (example,),
        str(path),
        input_names=["obs"],
        output_names=["action"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        dynamo=True,
        external_data=False,
        verbose=False,
    )
    model = onnx.load(str(path))
    meta = {
        "certnet.fingerprint": fp,
        "certnet.widths": json.dumps(stack.widths),
        "certnet.action_low": json.dumps(None if lo is None else lo.tolist()),
        "certnet.action_high": json.dumps(None if hi is None else hi.tolist()),
    }
    if hasattr(net, "lipschitz_bound"):
        meta["certnet.lipschitz_bound"] = repr(float(net.lipschitz_bound()))
    if certificate is not None:
        meta["certnet.certificate"] = certificate.to_json()
    for k, v in meta.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = k, v
    onnx.save(model, str(path))

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_check, d_in)) * np.asarray(obs_scale, dtype=np.float64)
    xt = torch.as_tensor(x, dtype=dtype)
    with torch.no_grad():
        ref = _Exported(net, lo, hi).eval()(xt).numpy()  # the network itself, not the copy
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(["action"], {"obs": xt.numpy()})[0]
    err = float(np.max(np.abs(got - ref)))
    if not err <= PARITY_TOL:
        raise RuntimeError(
            f"onnxruntime and torch disagree by {err:.3g} > {PARITY_TOL} on {n_check} random "
            f"observations; the file {path} is not a faithful export"
        )
    return path


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict (certificate JSON under
    ``certnet.certificate``; rebuild it with ``Certificate.from_json``)."""
    onnx, _ = _onnx_modules()
    model = onnx.load(str(path))
    return {p.key: p.value for p in model.metadata_props}
