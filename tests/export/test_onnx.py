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


@pytest.mark.parametrize("activation", ["silu", "tanh"])
def test_the_file_holds_the_weights_the_forward_uses_and_its_certificate_checks(
    tmp_path, activation
):
    # seed 1 with silu: the exporter used to fold the Frobenius parametrisation itself and
    # wrote weights one float32 ulp away from the ones net's forward uses
    net = cn.nn.NormalizedMLP(
        [3, 6, 5, 2], activation=activation, lipschitz=5.0, input_scale=[1.0, 2.0, 0.5], seed=1
    )
    cert = cn.verify.lipschitz(net)
    path = cn.export.to_onnx(net, tmp_path / "n.onnx", cert, n_check=8)
    read, orig = cn.nn.from_onnx(path), cn.nn.extract_layers(net)
    for a, b in zip(read.weights + read.biases, orig.weights + orig.biases, strict=True):
        assert np.array_equal(a, b)
    back = Certificate.from_json(cn.export.read_onnx_metadata(path)["certnet.certificate"])
    assert back.check(cn.load(path)) == pytest.approx(cert.value, rel=1e-12)


def test_export_is_deterministic(tmp_path):
    net = cn.nn.NormalizedMLP([3, 5, 1], activation="elu", lipschitz=3.0, seed=2)
    a = cn.export.to_onnx(net, tmp_path / "a.onnx", low=-1.0, high=1.0, n_check=4)
    b = cn.export.to_onnx(net, tmp_path / "b.onnx", low=-1.0, high=1.0, n_check=4)
    assert a.read_bytes() == b.read_bytes()
