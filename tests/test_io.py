import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import certnet as cn
from certnet.errors import ModelFormatError


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (torch.float64, 1e-12)])
def test_roundtrip_normalized_mlp(tmp_path, dtype, tol):
    net = cn.nn.NormalizedMLP(
        [3, 16, 16, 2],
        activation="leaky_relu",
        lipschitz=7.0,
        activation_kwargs={"negative_slope": 0.2},
        dtype=dtype,
        input_scale=[1, 2, 3],
        output_offset=[0.5, -0.5],
    )
    path = cn.save(net, tmp_path / "m.safetensors", metadata={"note": "hi"})
    back = cn.load(path)
    x = torch.randn(10, 3, dtype=dtype)
    with torch.no_grad():
        assert torch.equal(back(x), net(x))
    assert back.lipschitz_bound() == net.lipschitz_bound()
    assert back.budget == 7.0
    for lin, r in zip(back.linears, net.radii):
        assert abs(float(lin.weight.norm()) / r - 1) <= tol
    meta = cn.read_metadata(path)
    assert meta["note"] == "hi" and json.loads(meta["certnet_config"])["widths"] == [3, 16, 16, 2]


def test_roundtrip_sequential(tmp_path):
    seq = nn.Sequential(nn.Linear(2, 5), nn.GELU(), nn.Linear(5, 1, bias=False)).double()
    back = cn.load(cn.save(seq, tmp_path / "s.safetensors"))
    x = torch.randn(4, 2, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(back(x), seq(x))


def test_missing_file_and_not_a_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model file"):
        cn.load(tmp_path / "nope.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(ModelFormatError, match="not a safetensors file"):
        cn.load(tmp_path / "junk.safetensors")
    save_file({"a": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ModelFormatError, match="not a certnet model"):
        cn.load(tmp_path / "plain.safetensors")


def _rewrite(path, fn):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    fn(tensors, meta)
    save_file(tensors, str(path), metadata=meta)


def test_nan_weights_and_off_sphere_are_refused(tmp_path):
    net = cn.nn.NormalizedMLP([2, 4, 1])
    p = cn.save(net, tmp_path / "m.safetensors")
    key = "linears.0.parametrizations.weight.original"
    _rewrite(p, lambda t, m: t[key].__setitem__((0, 0), float("nan")))
    with pytest.raises(ModelFormatError, match="NaN"):
        cn.load(p)
    p = cn.save(net, tmp_path / "m2.safetensors")
    _rewrite(p, lambda t, m: t[key].mul_(1.5))
    with pytest.raises(ModelFormatError, match="off its sphere"):
        cn.load(p)
    p = cn.save(net, tmp_path / "m3.safetensors")
    _rewrite(p, lambda t, m: m.__setitem__("certnet_config", json.dumps({"widths": [2, 9, 1]})))
    with pytest.raises(ModelFormatError, match="do not match"):
        cn.load(p)


def test_bad_save_arguments(tmp_path):
    with pytest.raises(TypeError, match="cannot save a Linear"):
        cn.save(nn.Linear(2, 2), tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match="certnet_"):
        cn.save(
            cn.nn.NormalizedMLP([2, 2]), tmp_path / "x.safetensors", metadata={"certnet_kind": "x"}
        )


def test_roundtrip_keeps_conditioning(tmp_path):
    net = cn.nn.NormalizedMLP([3, 8, 1], conditioning="row", dtype=torch.float64, seed=1)
    back = cn.load(cn.save(net, tmp_path / "c.safetensors"))
    assert back.conditioning == "row" and back.linears[0].conditioning == "row"
    x = torch.randn(5, 3, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(back(x), net(x))
