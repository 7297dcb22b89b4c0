import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

import certnet as cn
from certnet.errors import ModelFormatError
from certnet.io import tensor_digest


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
    """Change the tensors or header of a saved file with ``fn`` and re-save it with digests
    that match (a file written consistently, so the checks behind the digests are reached)."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    fn(tensors, meta)
    meta["certnet_digests"] = json.dumps({k: tensor_digest(v) for k, v in tensors.items()})
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


def _flip_bit(path, key, bit):
    """Flip bit ``bit`` of the first element of tensor ``key`` in the file's bytes."""
    raw = bytearray(path.read_bytes())
    n = int.from_bytes(raw[:8], "little")
    start = 8 + n + json.loads(raw[8 : 8 + n])[key]["data_offsets"][0]
    raw[start + bit // 8] ^= 1 << (bit % 8)
    path.write_bytes(bytes(raw))


def test_a_flipped_exponent_bit_in_a_bias_is_refused(tmp_path):
    """A bias is on no sphere and stays finite, so only the digest sees the flip."""
    net = cn.nn.NormalizedMLP([3, 8, 1], seed=0)
    path = cn.save(net, tmp_path / "m.safetensors")
    key = next(k for k in load_file(str(path)) if k.endswith("bias"))
    _flip_bit(path, key, 29)  # float32: bit 29 is an exponent bit (×2^±64)
    flipped = load_file(str(path))[key].flatten()[0]
    assert torch.isfinite(flipped) and flipped != net.state_dict()[key].flatten()[0]
    with pytest.raises(
        ModelFormatError, match=rf"file corrupted or modified: tensor '{key}' digest mismatch"
    ):
        cn.load(path)


def test_every_tensor_is_checked_and_a_renamed_tensor_too(tmp_path):
    seq = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)).double()
    path = cn.save(seq, tmp_path / "s.safetensors")
    digests = json.loads(cn.read_metadata(path)["certnet_digests"])
    assert sorted(digests) == sorted(seq.state_dict())
    _flip_bit(path, "2.weight", 0)  # the lowest mantissa bit of a float64
    with pytest.raises(ModelFormatError, match=r"tensor '2.weight' digest mismatch"):
        cn.load(path)
    path = cn.save(seq, tmp_path / "s2.safetensors")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    meta["certnet_digests"] = json.dumps({"0.weight": digests["0.weight"]})
    save_file(load_file(str(path)), str(path), metadata=meta)
    with pytest.raises(ModelFormatError, match="are not the ones its header lists"):
        cn.load(path)


def test_a_file_saved_before_digests_loads_with_a_warning(tmp_path):
    net = cn.nn.NormalizedMLP([3, 4, 1], seed=2)
    path = cn.save(net, tmp_path / "old.safetensors")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    del meta["certnet_digests"]
    save_file(load_file(str(path)), str(path), metadata=meta)
    with pytest.warns(UserWarning, match="has no tensor digests .* re-save it"):
        back = cn.load(path)
    x = torch.randn(4, 3)
    with torch.no_grad():
        assert torch.equal(back(x), net(x))


def test_a_truncated_file_is_refused(tmp_path):
    path = cn.save(cn.nn.NormalizedMLP([3, 4, 1]), tmp_path / "t.safetensors")
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ModelFormatError, match="corrupted or truncated"):
        cn.load(path)


def test_a_malformed_digest_header_is_refused(tmp_path):
    path = cn.save(cn.nn.NormalizedMLP([2, 3, 1]), tmp_path / "m.safetensors")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    meta["certnet_digests"] = "{not json"
    save_file(load_file(str(path)), str(path), metadata=meta)
    with pytest.raises(ModelFormatError, match="malformed certnet_digests header"):
        cn.load(path)


# ------------------------------------------------------------------ load's dispatch on the file
def test_load_reads_onnx_files(tmp_path):
    net = cn.nn.NormalizedMLP([3, 4, 1], activation="tanh", lipschitz=2.0, seed=0)
    path = cn.export.to_onnx(net, tmp_path / "n.onnx", n_check=4)
    got = cn.load(path)
    assert isinstance(got, cn.nn.OnnxNetwork)
    assert cn.nn.extract_layers(got).fingerprint() == cn.nn.extract_layers(net).fingerprint()


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy-pickle"])
def test_load_refuses_torch_save_files_without_unpickling(tmp_path, zipped, monkeypatch):
    path = tmp_path / "net.safetensors"  # the name does not matter: the bytes do
    torch.save(torch.nn.Linear(3, 1), path, _use_new_zipfile_serialization=zipped)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load was called"))
    with pytest.raises(ModelFormatError, match=r"torch\.save \(pickle\) file; certnet never"):
        cn.load(path)


def test_load_of_an_unknown_file_says_what_it_reads(tmp_path):
    p = tmp_path / "model.bin"
    p.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelFormatError, match="not a safetensors file"):
        cn.load(p)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_net_trained_by_adam_saves_and_loads_the_same_function(tmp_path, dtype):
    from certnet.geometry import is_on_sphere

    torch.manual_seed(0)
    net = cn.nn.NormalizedMLP([3, 32, 32, 2], radii=[1.2, 0.9, 1.7], seed=0, dtype=dtype)
    opt = torch.optim.Adam(net.parameters(), lr=0.3)
    for _ in range(5):
        opt.zero_grad()
        net(torch.randn(16, 3, dtype=dtype)).pow(2).sum().backward()
        opt.step()
    assert not is_on_sphere(net.linears[0].point, 1.2)  # what made load call the file corrupt
    stored = [lin.point.detach().clone() for lin in net.linears]
    path = cn.save(net, tmp_path / "adam.safetensors")
    assert all(torch.equal(a, lin.point) for a, lin in zip(stored, net.linears))  # net untouched
    back = cn.load(path)  # the digests were computed after the projection
    x = torch.randn(64, 3, dtype=dtype)
    with torch.no_grad():
        y0, y1 = net(x), back(x)
    for lin, lb in zip(net.linears, back.linears):
        assert is_on_sphere(lb.point, lb.radius)
        w, w2 = lin.weight.detach(), lb.weight.detach()
        ulp = torch.nextafter(w.abs(), torch.tensor(torch.inf, dtype=dtype)) - w.abs()
        assert float(((w2 - w).abs() / ulp).max()) <= 4
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(y1, y0, rtol=64 * eps, atol=64 * eps)
    assert back.lipschitz_bound() == net.lipschitz_bound()


def test_a_header_radius_that_disagrees_with_the_tensors_is_refused(tmp_path):
    path = cn.save(cn.nn.NormalizedMLP([2, 4, 1], radii=2.0), tmp_path / "r.safetensors")

    def edit(tensors, meta):
        config = json.loads(meta["certnet_config"])
        config["radii"] = [3.0, 3.0]
        meta["certnet_config"] = json.dumps(config)

    _rewrite(path, edit)
    with pytest.raises(ModelFormatError, match="saved with radius 2.0 but this layer has radius"):
        cn.load(path)


def test_a_file_saved_before_radii_were_tensors_still_loads(tmp_path):
    net = cn.nn.NormalizedMLP([3, 4, 1], radii=[2.0, 0.5], seed=3)
    path = cn.save(net, tmp_path / "old.safetensors")
    _rewrite(path, lambda t, m: [t.pop(k) for k in list(t) if k.endswith(".radius")])
    assert not any(k.endswith(".radius") for k in load_file(str(path)))
    with pytest.warns(UserWarning, match="saved before certnet stored radii"):
        back = cn.load(path)  # the header's radii build the net
    assert back.radii == [2.0, 0.5]
    x = torch.randn(4, 3)
    with torch.no_grad():
        assert torch.equal(back(x), net(x))
