import numpy as np
import onnxruntime as ort
import pytest
import torch

import certnet as cn
from certnet.errors import CertificateError
from certnet.verify import Certificate


def test_onnx_parity_metadata_and_certificate(tmp_path):
    net = cn.nn.NormalizedMLP([3, 32, 32, 1], lipschitz=20.0, seed=0, input_scale=[1, 1, 0.125],
                              output_scale=2.0)
    fp = cn.nn.extract_layers(net).fingerprint()
    cert = Certificate(kind="lipschitz", value=20.0, method="product", certified=True,
                       fingerprint=fp)
    path = cn.export.to_onnx(net, tmp_path / "pi.onnx", cert, low=-2, high=2,
                             obs_scale=[1, 1, 8])
    meta = cn.export.read_onnx_metadata(path)
    assert meta["certnet.fingerprint"] == fp
    assert Certificate.from_json(meta["certnet.certificate"]).value == 20.0
    assert float(meta["certnet.lipschitz_bound"]) <= 20.0
    # independent parity check on 1000 observations, batch dimension is dynamic
    x = np.random.default_rng(1).standard_normal((1000, 3)).astype(np.float32) * [1, 1, 8]
    x = x.astype(np.float32)
    got = ort.InferenceSession(str(path)).run(None, {"obs": x})[0]
    with torch.no_grad():
        ref = torch.clamp(net(torch.from_numpy(x)), -2, 2).numpy()
    assert np.abs(got - ref).max() <= 1e-5
    assert np.abs(got).max() <= 2.0

    other = cn.nn.NormalizedMLP([3, 32, 32, 1], lipschitz=20.0, seed=1)
    with pytest.raises(CertificateError, match="made for weights with fingerprint"):
        cn.export.to_onnx(other, tmp_path / "other.onnx", cert)
    with pytest.raises(ValueError, match="give both low and high"):
        cn.export.to_onnx(net, tmp_path / "x.onnx", low=-1)
    with pytest.raises(TypeError, match="cannot read a"):
        cn.export.to_onnx(torch.nn.GRU(3, 2), tmp_path / "x.onnx")
