"""certnet.nn.onnx_import: ONNX graphs read exactly (certnet's export, torch's exporters, hand-
built graphs) or refused by name."""

import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

import certnet as cn
from certnet.errors import CertificateError, ModelFormatError
from certnet.nn import OnnxNetwork, extract_layers, from_onnx, load_onnx, onnx_import

F32 = TensorProto.FLOAT


def _init(name, a):
    return numpy_helper.from_array(np.asarray(a, dtype=np.float32), name)


def _model(nodes, inits, d_in=2, d_out=1, in_shape=None, extra_inputs=()):
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", F32, in_shape or ["n", d_in]), *extra_inputs],
        [helper.make_tensor_value_info("y", F32, ["n", d_out])],
        inits,
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)])


W1 = np.array([[1.0, -2.0], [0.5, 3.0], [-1.0, 0.25]])
W2 = np.array([[1.0, 2.0, -1.0]])


def _two_layer(act_nodes, act_out="h"):
    """x → Gemm(W1) → (act_nodes: "z" → act_out) → Gemm(W2) → y."""
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["z"], transB=1),
        *act_nodes,
        helper.make_node("Gemm", [act_out, "w2"], ["y"], transB=1),
    ]
    inits = [_init("w1", W1), _init("b1", [0.1, -0.2, 0.3]), _init("w2", W2)]
    return _model(nodes, inits, d_in=2, d_out=1)


def _ort(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": np.asarray(x, dtype=np.float32)})[0]


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(0)


# ------------------------------------------------------------------ certnet's own export
ACTS = ["tanh", "relu", "softplus", "leaky_relu", "elu", "silu", "gelu", "sigmoid"]


@pytest.mark.parametrize("act", ACTS)
def test_certnet_export_round_trip_certifies_the_same_value(tmp_path, act):
    net = cn.nn.NormalizedMLP(
        [3, 6, 5, 2],
        activation=act,
        lipschitz=5.0,
        input_offset=[0.1, -0.2, 0.3],
        input_scale=[1.0, 2.0, 0.5],
        output_scale=[2.0, 0.5],
        output_offset=[0.25, -1.0],
        seed=1,
    )
    path = cn.export.to_onnx(net, tmp_path / "n.onnx", n_check=16)
    stack, orig = from_onnx(path), extract_layers(net)
    # float32 weights are read bit for bit, scalings included
    for a, b in zip(stack.weights + stack.biases, orig.weights + orig.biases, strict=True):
        assert np.array_equal(a, b)
    for name in ("input_offset", "input_scale", "output_scale", "output_offset"):
        assert np.array_equal(getattr(stack, name), getattr(orig, name))
    assert [s.name for s in stack.activations] == [s.name for s in orig.activations]
    a, b = cn.verify.lipschitz(stack).value, cn.verify.lipschitz(net).value
    assert a == pytest.approx(b, rel=1e-9)


def test_certnet_export_with_action_limits_is_read_exactly(tmp_path, rng):
    net = cn.nn.NormalizedMLP([3, 8, 2], activation="tanh", lipschitz=6.0, output_scale=3.0, seed=2)
    path = cn.export.to_onnx(net, tmp_path / "c.onnx", low=[-1.0, -0.5], high=[1.0, 2.0], n_check=8)
    stack = from_onnx(path)
    assert [s.name for s in stack.activations] == ["tanh", "relu", "relu"]
    x = rng.normal(size=(200, 3)) * 3
    with torch.no_grad():
        want = net(torch.from_numpy(x).float()).double().numpy()
    want = np.clip(want, [-1.0, -0.5], [1.0, 2.0])
    assert np.abs(stack.forward(x) - want).max() < 1e-5
    assert (stack.forward(x) >= [-1.0, -0.5]).all() and (stack.forward(x) <= [1.0, 2.0]).all()
    # the clip is 1-Lipschitz, and its exact form adds only norm-1 layers
    assert cn.verify.lipschitz(stack, method="product").value == pytest.approx(
        cn.verify.lipschitz(net, method="product").value, rel=1e-6
    )


def test_import_is_deterministic(tmp_path):
    net = cn.nn.NormalizedMLP([3, 5, 1], activation="silu", lipschitz=3.0, seed=3)
    path = cn.export.to_onnx(net, tmp_path / "a.onnx", low=-1.0, high=1.0, n_check=4)
    one, two = from_onnx(path), from_onnx(onnx.load(str(path)))
    assert one.fingerprint() == two.fingerprint()
    for a, b in zip(one.weights + one.biases, two.weights + two.biases, strict=True):
        assert np.array_equal(a, b)


# ------------------------------------------------------------------ torch's exporters
@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "legacy"])
def test_a_torch_sequential_is_read_and_its_certificate_bounds_sampled_slopes(tmp_path, dynamo):
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 8), nn.SiLU(), nn.Linear(8, 2), nn.Tanh()
    )
    path = tmp_path / "seq.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(
                net, (torch.zeros(2, 3),), str(path), input_names=["x"], dynamo=True,
                dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False,
            )  # fmt: skip
        else:
            torch.onnx.export(
                net, (torch.zeros(2, 3),), str(path), input_names=["x"], dynamo=False,
                dynamic_axes={"x": {0: "n"}},
            )  # fmt: skip
    stack = from_onnx(path)
    assert [s.name for s in stack.activations] == ["tanh", "silu", "identity"][:2] + ["tanh"]
    cert = cn.verify.lipschitz(stack)
    assert cert.certified
    # sampled difference quotients of what onnxruntime computes
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    g = np.random.default_rng(1)
    x = g.normal(size=(4000, 3)).astype(np.float32)
    y = x + (0.5 * g.normal(size=x.shape)).astype(np.float32)
    fx, fy = (sess.run(None, {sess.get_inputs()[0].name: v})[0] for v in (x, y))
    dx = np.linalg.norm(x.astype(float) - y, axis=1)
    lb = float((np.linalg.norm(fx.astype(float) - fy, axis=1) / dx).max())
    assert 0 < lb <= cert.value * (1 + 1e-5)
    assert cn.verify.lipschitz(stack).value == pytest.approx(cn.verify.lipschitz(net).value)


# ------------------------------------------------------------------ hand-built graphs
@pytest.mark.parametrize(
    "nodes,out,name,kw",
    [
        ([helper.make_node("Relu", ["z"], ["h"])], "h", "relu", {}),
        ([helper.make_node("LeakyRelu", ["z"], ["h"], alpha=0.2)], "h", "leaky_relu", {}),
        ([helper.make_node("Elu", ["z"], ["h"], alpha=0.5)], "h", "elu", {}),
        ([helper.make_node("Softplus", ["z"], ["h"])], "h", "softplus", {"beta": 1.0}),
        ([helper.make_node("Gelu", ["z"], ["h"], approximate="tanh")], "h", "gelu_tanh", {}),
        (
            [helper.make_node("Sigmoid", ["z"], ["s"]), helper.make_node("Mul", ["s", "z"], ["h"])],
            "h",
            "silu",
            {},
        ),
        ([helper.make_node("Identity", ["z"], ["h"])], "h", "identity", {}),
    ],
)
def test_hand_built_activations(nodes, out, name, kw, rng):
    m = _two_layer(nodes, out)
    stack = from_onnx(m)
    assert stack.activations[0].name == name
    for k, v in kw.items():
        assert stack.activations[0].kwargs[k] == v
    x = rng.normal(size=(50, 2)) * 3
    assert np.abs(stack.forward(x) - _ort(m, x)).max() < 1e-5


def test_leaky_relu_alpha_is_read():
    m = _two_layer([helper.make_node("LeakyRelu", ["z"], ["h"], alpha=0.2)])
    assert from_onnx(m).activations[0].kwargs["negative_slope"] == pytest.approx(0.2)


def test_gemm_attributes_matmul_add_constants_and_noop_reshapes(rng):
    nodes = [
        helper.make_node("Constant", [], ["c"], value=_init("cv", [2.0, 4.0])),
        helper.make_node("Div", ["x", "c"], ["xs"]),
        helper.make_node("Flatten", ["xs"], ["xf"], axis=1),
        helper.make_node("Gemm", ["xf", "w1t", "b1"], ["z"], alpha=0.5, beta=2.0, transB=0),
        helper.make_node("Tanh", ["z"], ["h"]),
        helper.make_node("Constant", [], ["shape"], value=numpy_helper.from_array(
            np.array([-1, 3], dtype=np.int64), "s")),
        helper.make_node("Reshape", ["h", "shape"], ["hr"]),
        helper.make_node("Neg", ["hr"], ["hn"]),
        helper.make_node("MatMul", ["hn", "w2t"], ["m"]),
        helper.make_node("Add", ["m", "b2"], ["y"]),
    ]  # fmt: skip
    inits = [_init("w1t", W1.T), _init("b1", [0.1, -0.2, 0.3]), _init("w2t", W2.T)]
    inits.append(_init("b2", [0.7]))
    m = _model(nodes, inits)
    stack = from_onnx(m)
    x = rng.normal(size=(100, 2)) * 4
    assert np.abs(stack.forward(x) - _ort(m, x)).max() < 1e-5
    # alpha scales W exactly; Div by powers of two is the input scale exactly
    assert np.array_equal(stack.weights[0], 0.5 * W1.astype(np.float32).astype(float))
    assert stack.input_scale.tolist() == [0.5, 0.25]
    assert stack.biases[0].tolist() == (2 * np.float32([0.1, -0.2, 0.3]).astype(float)).tolist()


def test_division_by_a_constant_rounds_its_reciprocal_away_from_zero():
    nodes = [
        helper.make_node("Div", ["x", "c"], ["xs"]),
        helper.make_node("Gemm", ["xs", "w"], ["y"], transB=1),
    ]
    m = _model(nodes, [_init("c", [3.0, -0.1]), _init("w", W2[:, :2])])
    s = from_onnx(m).input_scale
    c = np.float32([3.0, -0.1]).astype(float)
    assert (np.abs(s) > np.abs(1 / c)).all() and (np.abs(s * c) - 1 < 1e-15).all()


def test_a_fixed_batch_size_is_run_in_chunks():
    m = _two_layer([helper.make_node("Relu", ["z"], ["h"])])
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 2
    assert from_onnx(m).widths == [2, 3, 1]


def test_min_and_max_are_an_exact_clip(rng):
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["z"], transB=1),
        helper.make_node("Max", ["z", "lo"], ["y"]),
    ]
    inits = [_init("w1", W1), _init("b1", [0.1, -0.2, 0.3]), _init("lo", [0.0, -1.0, 0.5])]
    m = _model(nodes, inits, d_out=3)
    stack = from_onnx(m)
    x = rng.normal(size=(100, 2)) * 3
    assert np.abs(stack.forward(x) - _ort(m, x)).max() < 1e-5


def test_an_external_data_file_is_read_from_its_folder(tmp_path):
    m = _two_layer([helper.make_node("Tanh", ["z"], ["h"])])
    onnx.save_model(m, str(tmp_path / "e.onnx"), save_as_external_data=True, size_threshold=0,
                    location="e.data")  # fmt: skip
    assert (tmp_path / "e.data").is_file()
    assert np.array_equal(from_onnx(tmp_path / "e.onnx").weights[0], W1.astype(np.float32))
    bare = onnx.load(str(tmp_path / "e.onnx"), load_external_data=False)
    with pytest.raises(ModelFormatError, match="external file that was not loaded"):
        from_onnx(bare)


# ------------------------------------------------------------------ refusals
def _residual():
    nodes = [
        helper.make_node("Gemm", ["x", "w", "b"], ["z"], transB=1),
        helper.make_node("Relu", ["z"], ["h"]),
        helper.make_node("Add", ["h", "x"], ["y"]),
    ]
    return _model(nodes, [_init("w", np.eye(2)), _init("b", [0.0, 0.0])], d_out=2)


def _dynamic_weight():
    nodes = [
        helper.make_node("Transpose", ["w"], ["wt"]),
        helper.make_node("MatMul", ["x", "wt"], ["y"]),
    ]
    return _model(nodes, [_init("w", W2)])


def _conv():
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"])]
    return _model(nodes, [_init("w", np.ones((1, 1, 1)))], in_shape=["n", 1, 2], d_out=1)


def _rank3():
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    return _model(nodes, [], in_shape=["n", 4, 2])


def _unknown():
    return _two_layer([helper.make_node("Softmax", ["z"], ["h"])])


def _overridable():
    m = _two_layer([helper.make_node("Relu", ["z"], ["h"])])
    m.graph.input.append(helper.make_tensor_value_info("w2", F32, [1, 3]))
    return m


def _two_inputs():
    extra = [helper.make_tensor_value_info("x2", F32, ["n", 2])]
    nodes = [helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)]
    return _model(nodes, [_init("w", W2[:, :2])], extra_inputs=extra)


def _trans_a():
    nodes = [helper.make_node("Gemm", ["x", "w"], ["y"], transA=1)]
    return _model(nodes, [_init("w", W2[:, :2])])


def _negative_leaky():
    return _two_layer([helper.make_node("LeakyRelu", ["z"], ["h"], alpha=-0.5)])


def _branch():
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["z"], transB=1),
        helper.make_node("Tanh", ["z"], ["t"]),
        helper.make_node("Relu", ["z"], ["r"]),
        helper.make_node("Mul", ["t", "r"], ["h"]),
        helper.make_node("Gemm", ["h", "w2"], ["y"], transB=1),
    ]
    return _model(nodes, [_init("w1", W1), _init("b1", [0, 0, 0]), _init("w2", W2)])


def _bad_reshape():
    nodes = [
        helper.make_node("Gemm", ["x", "w1"], ["z"], transB=1),
        helper.make_node("Reshape", ["z", "s"], ["y"]),
    ]
    shape = numpy_helper.from_array(np.array([-1, 1], dtype=np.int64), "s")
    return _model(nodes, [_init("w1", W1), shape])


def _half_open_clip():
    nodes = [
        helper.make_node("Gemm", ["x", "w1"], ["z"], transB=1),
        helper.make_node("Min", ["z", "hi"], ["y"]),
    ]
    return _model(nodes, [_init("w1", W1), _init("hi", [1.0, np.inf, 2.0])], d_out=3)


def _other_domain():
    m = _two_layer([helper.make_node("FusedGelu", ["z"], ["h"], domain="com.microsoft")])
    m.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return m


@pytest.mark.parametrize(
    "make,match",
    [
        (_residual, r"'.*' \(Add\) combines two computed values \(a branch or residual"),
        (_branch, r"\(Mul\) combines two computed values"),
        (_dynamic_weight, r"\(MatMul\) multiplies by a matrix that is not an initializer"),
        (_conv, r"input 'x' has shape \['n', 1, 2\]; certnet reads inputs of rank 2"),
        (_rank3, r"certnet reads inputs of rank 2"),
        (_unknown, r"\(Softmax\) is not an operator certnet reads"),
        (_overridable, r"initializer 'w2' is also a graph input"),
        (_two_inputs, r"the graph has 2 inputs \(x, x2\)"),
        (_trans_a, r"\(Gemm\) has transA=1"),
        (_negative_leaky, r"\(LeakyRelu\) has no slope class .*negative_slope >= 0"),
        (_bad_reshape, r"\(Reshape\) reshapes 3 features to 1"),
        (_half_open_clip, r"\(Min\) has a upper limit that is finite for some features"),
        (_other_domain, r"\(FusedGelu\) is from the operator domain 'com.microsoft'"),
    ],
)
def test_refusals_name_the_node_and_what_to_do(make, match):
    with pytest.raises(ModelFormatError, match=match):
        from_onnx(make())


def test_a_conv_inside_a_rank_2_graph_is_refused_by_name():
    m = _two_layer([helper.make_node("Conv", ["z", "w1"], ["h"])])
    with pytest.raises(ModelFormatError, match=r"\(Conv\) is not an operator certnet reads"):
        from_onnx(m)


def test_not_an_onnx_file_and_wrong_argument(tmp_path):
    p = tmp_path / "junk.onnx"
    p.write_bytes(b"\xff\xfe not a protobuf")
    with pytest.raises(ModelFormatError, match="is not a readable ONNX model"):
        from_onnx(p)
    with pytest.raises(FileNotFoundError, match="no such ONNX file"):
        from_onnx(tmp_path / "missing.onnx")
    with pytest.raises(TypeError, match="pass a path to a .onnx file or an onnx.ModelProto"):
        from_onnx(3)


def test_a_misread_graph_is_caught_by_the_onnxruntime_cross_check(monkeypatch):
    m = _two_layer([helper.make_node("Relu", ["z"], ["h"])])
    real = onnx_import._Reader.activation

    def misread(self, node, t, a):
        return real(self, node, "Tanh", a)  # a bug that reads Relu as Tanh

    monkeypatch.setattr(onnx_import._Reader, "activation", misread)
    with pytest.raises(ModelFormatError, match="onnxruntime disagrees with the layers"):
        from_onnx(m)
    assert from_onnx(m, check=False).activations[0].name == "tanh"


# ------------------------------------------------------------------ the module and fingerprints
def test_load_onnx_module_and_certificates_check_against_the_same_file(tmp_path, rng):
    net = cn.nn.NormalizedMLP([3, 6, 1], activation="tanh", lipschitz=4.0, seed=4)
    path = cn.export.to_onnx(net, tmp_path / "m.onnx", n_check=4)
    module = load_onnx(path)
    assert isinstance(module, OnnxNetwork) and module.widths == [3, 6, 1]
    assert module.onnx_dtype == torch.float32 and "certnet.fingerprint" in module.metadata
    x = rng.normal(size=(20, 3))
    with torch.no_grad():
        y = module(torch.from_numpy(x)).numpy()
    assert np.abs(y - from_onnx(path).forward(x)).max() < 1e-12
    cert = cn.verify.lipschitz(from_onnx(path))
    assert cert.check(cn.load(path)) and cert.check(from_onnx(path))
    other = cn.export.to_onnx(
        cn.nn.NormalizedMLP([3, 6, 1], activation="tanh", lipschitz=4.0, seed=5),
        tmp_path / "o.onnx",
        n_check=4,
    )
    with pytest.raises(CertificateError):
        cert.check(cn.load(other))
    # an edit after loading is what extract_layers reads (not the file's stack)
    with torch.no_grad():
        module.linears[0].weight[0, 0] += 1.0
    assert extract_layers(module).fingerprint() != from_onnx(path).fingerprint()
    module.acts[0] = nn.Dropout()
    with pytest.raises(TypeError, match="unsupported layer"):
        extract_layers(module)
