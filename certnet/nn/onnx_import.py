"""Read a feed-forward ONNX graph into a :class:`~certnet.nn.LayerStack`, exactly or not at all.

:func:`from_onnx` reads a network made elsewhere (``torch.onnx.export``, certnet's own
:func:`~certnet.export.to_onnx`, another framework's exporter) with the ``onnx`` package alone,
and :func:`load_onnx` wraps the result in a torch module (:class:`OnnxNetwork`) that
:func:`~certnet.nn.extract_layers`, verification, simulation and evaluation read like any other
network. ``certnet.load("model.onnx")`` calls :func:`load_onnx`.

What is read
------------
The graph must be a single chain from its one input, shape (batch, d_0), to its one output, shape
(batch, d_L), through these operators (default ONNX domain):

* ``Gemm`` (``transA = 0``; ``alpha``, ``beta``, ``transB`` read exactly; a bias ``C`` of shape
  (), (d,) or (1, d)), ``MatMul`` by a constant (in, out) matrix, followed by ``Add`` of a bias;
* activations ``Relu``, ``LeakyRelu`` (``alpha`` ≥ 0), ``Tanh``, ``Sigmoid``, ``Softplus``,
  ``Elu`` (``alpha`` ≥ 0), ``Gelu`` (``approximate`` "none" or "tanh"), and the decompositions
  torch's exporter writes: SiLU as ``Mul(x, Sigmoid(x))`` and certnet's
  :class:`~certnet.nn.Softplus` as ``Relu(x) + Log(Exp(−β·Abs(x)) + 1) [/ β]``;
* elementwise ``Add``, ``Sub``, ``Mul``, ``Div`` by constants and ``Neg`` (input and output
  scalings; folded into the neighbouring layer, or kept as the stack's scalings when they have
  certnet's form (x − c)·s and y·s + c);
* saturations ``Clip``, and ``Min``/``Max`` with a constant (how :func:`~certnet.export.to_onnx`
  bakes in action limits), represented *exactly* with two ReLU layers of norm 1:
  clip(y, lo, hi) = hi − relu(hi − lo − relu(y − lo));
* ``Identity``, and the no-ops ``Flatten(axis=1)`` and ``Reshape`` to (batch, d) of a
  (batch, d) value;
* weights from initializers and ``Constant`` nodes (float16/32/64; converted to float64
  exactly).

Everything else is refused (:class:`~certnet.errors.ModelFormatError`) naming the node and what to
do: another operator (``Conv``, ``BatchNormalization``, …), a node that combines two computed
values (a branch or residual connection), a weight computed in the graph or fed as an input, an
initializer that is also a graph input (the runtime may override it), an input of rank other
than 2, several inputs or outputs, an operator of another domain.

Soundness: a cross-check runs onnxruntime (when installed) on fixed random inputs and refuses
when it disagrees with the stack by more than the rounding bound of
:func:`~certnet.nn.extract.forward_error_bound` in the graph's dtype.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from certnet.errors import ModelFormatError
from certnet.nn.activations import ActivationSpec, activation_spec
from certnet.nn.extract import (
    CROSS_CHECK_FACTOR,
    LayerStack,
    _unit_roundoff,
    extract_layers,
    forward_error_bound,
)
from certnet.nn.mlp import NormalizedMLP

__all__ = ["OnnxNetwork", "from_onnx", "load_onnx", "SUPPORTED_OPS"]

#: ONNX operators :func:`from_onnx` reads (others are refused by name).
SUPPORTED_OPS = (
    "Gemm",
    "MatMul",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Neg",
    "Relu",
    "LeakyRelu",
    "Tanh",
    "Sigmoid",
    "Softplus",
    "Elu",
    "Gelu",
    "Abs",
    "Exp",
    "Log",
    "Clip",
    "Min",
    "Max",
    "Identity",
    "Flatten",
    "Reshape",
    "Constant",
)

_FLOAT_TYPES = {10: torch.float16, 1: torch.float32, 11: torch.float64}


class OnnxNetwork(nn.Module):
    """The network of an ONNX file as a torch module (float64 unless built otherwise).

    It computes exactly the :class:`LayerStack` :func:`from_onnx` read (that stack was checked
    against onnxruntime on the file), as ``NormalizedMLP.forward`` does:
    ``h = (x − c_in)·s_in``, then ``linears[k]`` and ``acts[k]`` in turn, then ``h·s_out + c_out``.
    :func:`~certnet.nn.extract_layers` reads it back from these modules and buffers (and
    cross-checks its forward), so certificates, simulation and evaluation see the same map.

    Attributes
    ----------
    linears : nn.ModuleList of nn.Linear
    acts : nn.ModuleList
        One activation after each linear layer but the last.
    input_offset, input_scale, output_scale, output_offset : Tensor
        Buffers, float64.
    source : str
        Where the graph came from (a path, or ``"<ModelProto>"``).
    metadata : dict of str to str
        The file's ``metadata_props`` (a certificate embedded by certnet's export is under
        ``certnet.certificate``).
    onnx_dtype : torch.dtype
        The dtype the ONNX graph computes in.

    Parameters
    ----------
    stack : LayerStack
    source, metadata, onnx_dtype
        As the attributes.
    dtype : torch.dtype
        Of the parameters and the forward (default float64: the stack exactly). certnet's export
        builds one in the network's dtype from the weights its forward uses, so that the graph
        holds those weights bit for bit.
    """

    def __init__(
        self,
        stack: LayerStack,
        *,
        source: str = "<ModelProto>",
        metadata: dict[str, str] | None = None,
        onnx_dtype: torch.dtype = torch.float32,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        self.linears = nn.ModuleList()
        for w, b in zip(stack.weights, stack.biases, strict=True):
            lin = nn.Linear(w.shape[1], w.shape[0], dtype=dtype)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(w))
                lin.bias.copy_(torch.from_numpy(b))
            lin.requires_grad_(False)
            self.linears.append(lin)
        self.acts = nn.ModuleList(s.module().to(dtype) for s in stack.activations)
        for name in ("input_offset", "input_scale", "output_scale", "output_offset"):
            t = torch.from_numpy(getattr(stack, name).copy()).to(dtype)
            self.register_buffer(name, t)
        self.source = source
        self.metadata = dict(metadata or {})
        self.onnx_dtype = onnx_dtype

    @property
    def widths(self) -> list[int]:
        """[d_0, …, d_L]."""
        return [self.linears[0].in_features] + [lin.out_features for lin in self.linears]

    # the same layout as a NormalizedMLP (scalings, linears, acts), so the same forward
    forward = NormalizedMLP.forward

    def extra_repr(self) -> str:
        return f"source={self.source!r}, onnx_dtype={self.onnx_dtype}"


# ------------------------------------------------------------------ the chain of operations
@dataclass
class _Linear:
    w: np.ndarray  # (out, in)
    b: np.ndarray  # (out,)


@dataclass
class _Affine:
    """y = x·s + c elementwise; ``form`` records a certnet scaling written exactly."""

    s: np.ndarray
    c: np.ndarray
    form: str  # "add", "mul", "other"


@dataclass
class _Act:
    spec: ActivationSpec


@dataclass
class _Clip:
    lo: np.ndarray
    hi: np.ndarray


def _onnx():
    try:
        import onnx
    except ImportError as e:  # pragma: no cover - the onnx extra installs it
        raise ImportError(
            f'reading ONNX files needs the onnx package ({e}); pip install "certnet[onnx]"'
        ) from e
    return onnx


def _read_model(model: Any):
    onnx = _onnx()
    if isinstance(model, onnx.ModelProto):
        return model, "<ModelProto>", None
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"no such ONNX file: {path}")
        try:
            m = onnx.load(str(path))  # also reads external data from the file's folder
        except Exception as e:  # noqa: BLE001 - protobuf and file errors alike
            raise ModelFormatError(
                f"{path} is not a readable ONNX model ({type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''}); pass a .onnx file (with its "
                "external-data files next to it, if it has any)"
            ) from None
        return m, str(path), path
    raise TypeError(
        f"cannot read a {type(model).__name__} as ONNX; pass a path to a .onnx file or an "
        "onnx.ModelProto"
    )


def _node_label(node) -> str:
    return f"node {node.name or '(unnamed)'!r} ({node.op_type})"


class _Graph:
    """Constants, producers and the input/output of one ONNX graph."""

    def __init__(self, model, where: str) -> None:
        onnx = _onnx()
        self.where = where
        g = model.graph
        for op in model.opset_import:
            if op.domain not in ("", "ai.onnx") and any(n.domain == op.domain for n in g.node):
                n = next(n for n in g.node if n.domain == op.domain)
                raise ModelFormatError(
                    f"{where}: {_node_label(n)} is from the operator domain {op.domain!r}; "
                    "certnet reads the default ONNX domain only; re-export without "
                    "runtime-specific fusions"
                )
        self.consts: dict[str, np.ndarray] = {}
        self.dtypes: dict[str, int] = {}
        for init in g.initializer:
            self.consts[init.name] = self._tensor(onnx, init, f"initializer {init.name!r}")
        self.producer: dict[str, Any] = {}
        for node in g.node:
            if node.domain not in ("", "ai.onnx"):
                raise ModelFormatError(
                    f"{where}: {_node_label(node)} is from the operator domain "
                    f"{node.domain!r}; certnet reads the default ONNX domain only"
                )
            if node.op_type == "Constant":
                self.consts[node.output[0]] = self._constant(onnx, node)
                continue
            for out in node.output:
                self.producer[out] = node
        overridable = [i.name for i in g.input if i.name in self.consts]
        if overridable:
            raise ModelFormatError(
                f"{where}: initializer {overridable[0]!r} is also a graph input, so the runtime "
                "may replace it and the weights are not fixed; re-export with "
                "keep_initializers_as_inputs=False (or remove it from graph.input)"
            )
        inputs = list(g.input)
        if len(inputs) != 1:
            raise ModelFormatError(
                f"{where}: the graph has {len(inputs)} inputs "
                f"({', '.join(i.name for i in inputs) or 'none'}); certnet reads networks with "
                "one input of shape (batch, features)"
            )
        if len(g.output) != 1:
            raise ModelFormatError(
                f"{where}: the graph has {len(g.output)} outputs; certnet reads networks with "
                "one output of shape (batch, actions)"
            )
        inp = inputs[0]
        self.input = inp.name
        self.output = g.output[0].name
        tt = inp.type.tensor_type
        if tt.elem_type not in _FLOAT_TYPES:
            raise ModelFormatError(
                f"{where}: input {inp.name!r} has element type "
                f"{onnx.TensorProto.DataType.Name(tt.elem_type)}; certnet reads float16, "
                "float32 and float64 networks"
            )
        self.dtype = _FLOAT_TYPES[tt.elem_type]
        dims = list(tt.shape.dim) if tt.HasField("shape") else None
        if dims is None or len(dims) != 2 or not dims[1].HasField("dim_value"):
            shape = "unknown" if dims is None else [d.dim_value or d.dim_param for d in dims]
            raise ModelFormatError(
                f"{where}: input {inp.name!r} has shape {shape}; certnet reads inputs of rank 2, "
                "(batch, features) with a fixed feature count (images, sequences and unknown "
                "shapes are not feed-forward controllers it certifies); re-export with a "
                "(batch, features) input"
            )
        self.d0 = int(dims[1].dim_value)
        self.batch = int(dims[0].dim_value) if dims[0].HasField("dim_value") else None

    def _tensor(self, onnx, t, what: str) -> np.ndarray:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            raise ModelFormatError(
                f"{self.where}: {what} stores its data in an external file that was not loaded; "
                "pass the path of the .onnx file (onnx.load reads external data from its "
                "folder) or load the ModelProto with onnx.load(path, load_external_data=True)"
            )
        if t.data_type not in _FLOAT_TYPES and t.data_type not in (6, 7):
            raise ModelFormatError(
                f"{self.where}: {what} has type {onnx.TensorProto.DataType.Name(t.data_type)}; "
                "certnet reads float16/32/64 weights (and int64 shapes)"
            )
        a = onnx.numpy_helper.to_array(t)
        if a.dtype.kind == "f":
            a = a.astype(np.float64)  # exact for float16/32; NaN/inf are refused where used
        return a

    def _constant(self, onnx, node) -> np.ndarray:
        for at in node.attribute:
            if at.name == "value":
                return self._tensor(onnx, at.t, f"{_node_label(node)}")
            if at.name == "value_float":
                return np.asarray(at.f, dtype=np.float64)
            if at.name == "value_floats":
                return np.asarray(list(at.floats), dtype=np.float64)
            if at.name in ("value_int", "value_ints"):
                return np.asarray(at.i if at.name == "value_int" else list(at.ints))
        raise ModelFormatError(
            f"{self.where}: {_node_label(node)} holds no numeric tensor; certnet reads "
            "Constant nodes with value, value_float(s) or value_int(s)"
        )


def _attrs(node) -> dict[str, Any]:
    onnx = _onnx()
    out = {}
    for at in node.attribute:
        v = onnx.helper.get_attribute_value(at)
        out[at.name] = v.decode() if isinstance(v, bytes) else v
    return out


class _Reader:
    """Walks from the output back to the input, one node (or one known pattern) at a time."""

    def __init__(self, graph: _Graph) -> None:
        self.g = graph

    def fail(self, node, why: str) -> ModelFormatError:
        return ModelFormatError(f"{self.g.where}: {_node_label(node)} {why}")

    def const(self, name: str) -> np.ndarray | None:
        return self.g.consts.get(name)

    def node_of(self, name: str):
        return self.g.producer.get(name)

    def split(self, node) -> tuple[list[str], list[np.ndarray]]:
        """The computed inputs and the constant inputs of ``node``."""
        dyn, cst = [], []
        for name in node.input:
            if name == "":
                continue
            c = self.const(name)
            if c is None:
                dyn.append(name)
            else:
                cst.append(c)
        return dyn, cst

    def one_input(self, node) -> str:
        dyn, _ = self.split(node)
        if len(dyn) != 1:
            raise self.fail(
                node,
                "combines several computed values (a branch or residual connection)"
                if len(dyn) > 1
                else "has no input that depends on the network's input",
            )
        return dyn[0]

    def ops(self) -> list[Any]:
        """The operations from the input to the output, in order."""
        rev: list[Any] = []
        name = self.g.output
        if self.const(name) is not None:
            raise ModelFormatError(
                f"{self.g.where}: the output {name!r} is a constant; it does not depend on the "
                "input"
            )
        seen = 0
        while name != self.g.input:
            node = self.node_of(name)
            if node is None:
                raise ModelFormatError(
                    f"{self.g.where}: value {name!r} is neither computed by a node nor the input "
                    f"{self.g.input!r}; the graph is malformed"
                )
            op, name = self.step(node)
            if op is not None:
                rev.append(op)
            seen += 1
            if seen > 100_000:  # pragma: no cover - a cycle in a malformed graph
                raise ModelFormatError(f"{self.g.where}: the graph has a cycle")
        return rev[::-1]

    # ---------------------------------------------------------------- one step back
    def step(self, node) -> tuple[Any, str]:
        t = node.op_type
        a = _attrs(node)
        if t == "Gemm":
            return self.gemm(node, a)
        if t == "MatMul":
            dyn, _ = self.split(node)
            if len(dyn) != 1 or node.input[0] != dyn[0]:
                raise self.fail(
                    node,
                    "multiplies by a matrix that is not an initializer or Constant (a dynamic "
                    "weight), or has the input on the right; certnet reads x @ W with a constant "
                    "W; fold constants (e.g. onnx-simplifier) or re-export",
                )
            w = self.const(node.input[1])
            if w.ndim != 2:
                raise self.fail(node, f"multiplies by a weight of shape {w.shape}; need (in, out)")
            return _Linear(w.T.copy(), np.zeros(w.shape[1])), dyn[0]
        if t in ("Add", "Sub", "Mul", "Div"):
            return self.binary(node, t)
        if t == "Neg":
            x = self.one_input(node)
            return _Affine(np.array([-1.0]), np.array([0.0]), "other"), x
        if t in ("Identity",):
            return None, self.one_input(node)
        if t == "Flatten":
            if a.get("axis", 1) != 1:
                raise self.fail(node, f"has axis={a['axis']}; only Flatten(axis=1) is a no-op")
            return None, self.one_input(node)
        if t == "Reshape":
            x = node.input[0]
            shape = self.const(node.input[1]) if len(node.input) > 1 else None
            if self.const(x) is not None or shape is None:
                raise self.fail(node, "reshapes with a computed shape; certnet reads constants")
            s = [int(v) for v in np.ravel(shape)]
            if len(s) != 2 or s[0] not in (-1, 0) or s[1] <= 0:
                raise self.fail(
                    node,
                    f"reshapes to {s}; certnet reads only a no-op Reshape to (batch, features) "
                    "([-1, d] or [0, d]) of a (batch, d) value",
                )
            return ("reshape", s[1], node), x
        if t in ("Relu", "Tanh", "Sigmoid", "Softplus", "LeakyRelu", "Elu", "Gelu"):
            return self.activation(node, t, a)
        if t in ("Clip", "Min", "Max"):
            return self.clip(node, t)
        raise self.fail(
            node,
            "is not an operator certnet reads; it reads the chain "
            f"{', '.join(o for o in SUPPORTED_OPS if o != 'Constant')} (see "
            "certnet.nn.onnx_import); rebuild the network from Linear layers and supported "
            "activations",
        )

    def gemm(self, node, a: dict[str, Any]) -> tuple[Any, str]:
        dyn, _ = self.split(node)
        if len(dyn) != 1 or node.input[0] != dyn[0]:
            raise self.fail(
                node,
                "takes its weight B or bias C from a computed value (a dynamic weight), or "
                "the input as B; certnet reads Gemm(x, B, C) with B and C initializers or "
                "Constants; fold constants or re-export",
            )
        if a.get("transA", 0) != 0:
            raise self.fail(node, "has transA=1 (it transposes the batch); re-export without it")
        b_mat = self.const(node.input[1])
        if b_mat.ndim != 2:
            raise self.fail(node, f"has a weight of shape {b_mat.shape}; need a matrix")
        alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
        w = b_mat if a.get("transB", 0) else b_mat.T
        w = alpha * w  # exact in float64 for float32 alpha and entries
        n_out = w.shape[0]
        bias = np.zeros(n_out)
        if len(node.input) > 2 and node.input[2]:
            c = self.const(node.input[2])
            if c.size not in (1, n_out) or c.ndim > 2 or (c.ndim == 2 and c.shape[0] != 1):
                raise self.fail(
                    node,
                    f"has a bias C of shape {c.shape}; certnet reads (), ({n_out},), (1, {n_out})",
                )
            bias = beta * np.broadcast_to(np.ravel(c), (n_out,)).astype(np.float64)
        return _Linear(w.copy(), bias.copy()), dyn[0]

    def _elementwise_const(self, node, c: np.ndarray) -> np.ndarray:
        if c.dtype.kind != "f":
            raise self.fail(node, f"uses a constant of type {c.dtype}; need floats")
        if c.ndim > 2 or (c.ndim == 2 and c.shape[0] != 1):
            raise self.fail(
                node,
                f"uses a constant of shape {c.shape}, which broadcasts over the batch; certnet "
                "reads per-feature constants of shape (), (d,) or (1, d)",
            )
        return np.ravel(c).astype(np.float64)

    def binary(self, node, t: str) -> tuple[Any, str]:
        dyn, cst = self.split(node)
        if len(dyn) == 2 and dyn[0] != dyn[1]:
            pattern = self.silu(node, t) or self.softplus(node, t)
            if pattern is not None:
                return pattern
            raise self.fail(
                node,
                "combines two computed values (a branch or residual connection); certnet reads "
                "a single chain of layers, plus the SiLU and softplus patterns torch exports",
            )
        if len(dyn) != 1 or len(cst) != 1:
            raise self.fail(node, "does not apply a constant to one computed value")
        x = dyn[0]
        c = self._elementwise_const(node, cst[0])
        if not np.isfinite(c).all():
            raise self.fail(node, "uses a NaN or infinite constant")
        first = node.input[0] == x
        one, zero = np.ones_like(c), np.zeros_like(c)
        if t == "Add":
            return _Affine(one, c, "add"), x
        if t == "Mul":
            return _Affine(c, zero, "mul"), x
        if t == "Sub":
            if first:
                return _Affine(one, -c, "add"), x
            return _Affine(-one, c, "other"), x
        # Div
        if not first:
            raise self.fail(node, "divides a constant by a computed value (not a layer)")
        if (c == 0).any():
            raise self.fail(node, "divides by zero")
        # 1/c rounded away from zero: |x / c| ≤ |x · r|, so a Lipschitz bound of the stack also
        # bounds the graph's x / c (the values differ by one float64 rounding).
        r = 1.0 / c
        exact = np.frexp(np.abs(c))[0] == 0.5  # powers of two have exact reciprocals
        r = np.where(exact, r, np.nextafter(r, np.sign(r) * np.inf))
        return _Affine(r, zero, "mul"), x

    def silu(self, node, t: str) -> tuple[Any, str] | None:
        if t != "Mul":
            return None
        x0, x1 = node.input[0], node.input[1]
        for x, s in ((x0, x1), (x1, x0)):
            p = self.node_of(s)
            if p is not None and p.op_type == "Sigmoid" and p.input[0] == x:
                return _Act(activation_spec("silu")), x
        return None

    def softplus(self, node, t: str) -> tuple[Any, str] | None:
        """relu(x) + log(exp(−β|x|) + 1) [/ β]: certnet's Softplus as torch exports it."""
        if t != "Add":
            return None

        def producer(name, op):
            p = self.node_of(name)
            return p if p is not None and p.op_type == op else None

        for r_name, l_name in (node.input[:2], node.input[1::-1]):
            relu = producer(r_name, "Relu")
            if relu is None:
                continue
            x = relu.input[0]
            div = producer(l_name, "Div")
            denom = 1.0
            log = producer(l_name, "Log")
            if div is not None:
                d = self.const(div.input[1])
                log = producer(div.input[0], "Log")
                if d is None or d.size != 1:
                    continue
                denom = float(np.ravel(d)[0])
            if log is None:
                continue
            add = producer(log.input[0], "Add")
            if add is None:
                continue
            ins = list(add.input)
            ones = [n for n in ins if self.const(n) is not None]
            if len(ones) != 1 or np.ravel(self.const(ones[0])).tolist() != [1.0]:
                continue
            exp = producer(next(n for n in ins if n != ones[0]), "Exp")
            mul = producer(exp.input[0], "Mul") if exp is not None else None
            if mul is None:
                continue
            coef = [self.const(n) for n in mul.input if self.const(n) is not None]
            absn = [producer(n, "Abs") for n in mul.input if self.const(n) is None]
            if len(coef) != 1 or coef[0].size != 1 or len(absn) != 1 or absn[0] is None:
                continue
            if absn[0].input[0] != x:
                continue
            beta = -float(np.ravel(coef[0])[0])
            if not (beta > 0 and np.isfinite(beta)) or denom != beta:
                raise self.fail(
                    node,
                    f"looks like a softplus relu(x) + log(exp({-beta:g}|x|) + 1)/{denom:g} with "
                    "mismatched β; it is not a function certnet knows; re-export "
                    "certnet.nn.Softplus(beta)",
                )
            return _Act(activation_spec("softplus", beta=beta)), x
        return None

    def activation(self, node, t: str, a: dict[str, Any]) -> tuple[Any, str]:
        x = self.one_input(node)
        try:
            if t == "Relu":
                spec = activation_spec("relu")
            elif t == "Tanh":
                spec = activation_spec("tanh")
            elif t == "Sigmoid":
                spec = activation_spec("sigmoid")
            elif t == "Softplus":  # ONNX's Softplus is log(exp(x) + 1): continuous, β = 1
                spec = activation_spec("softplus", beta=1.0)
            elif t == "LeakyRelu":
                spec = activation_spec("leaky_relu", negative_slope=float(a.get("alpha", 0.01)))
            elif t == "Elu":
                spec = activation_spec("elu", alpha=float(a.get("alpha", 1.0)))
            else:  # Gelu
                approx = a.get("approximate", "none")
                if approx not in ("none", "tanh"):
                    raise self.fail(node, f"has approximate={approx!r}; need 'none' or 'tanh'")
                spec = activation_spec("gelu" if approx == "none" else "gelu_tanh")
        except ValueError as e:
            raise self.fail(node, f"has no slope class certnet uses: {e}") from None
        return _Act(spec), x

    def clip(self, node, t: str) -> tuple[Any, str]:
        if t == "Clip":
            x = node.input[0]
            if self.const(x) is not None:
                raise self.fail(node, "clips a constant")
            bounds = []
            for k in (1, 2):
                if len(node.input) > k and node.input[k]:
                    c = self.const(node.input[k])
                    if c is None:
                        raise self.fail(node, "has a computed min/max; certnet reads constants")
                    bounds.append(self._elementwise_const(node, c))
                else:
                    bounds.append(np.array([-np.inf if k == 1 else np.inf]))
            a = _attrs(node)
            if "min" in a or "max" in a:  # opset < 11
                bounds = [np.array([a.get("min", -np.inf)]), np.array([a.get("max", np.inf)])]
            lo, hi = bounds
        else:
            dyn, cst = self.split(node)
            if len(dyn) != 1 or len(cst) != 1:
                raise self.fail(node, "does not compare one computed value with one constant")
            x = dyn[0]
            c = self._elementwise_const(node, cst[0])
            lo, hi = (np.full_like(c, -np.inf), c) if t == "Min" else (c, np.full_like(c, np.inf))
        if np.isnan(lo).any() or np.isnan(hi).any():
            raise self.fail(node, "has a NaN limit")
        return ("clip", lo, hi, node), x


# ------------------------------------------------------------------ ops → LayerStack
def _resolve(ops: list[Any], g: _Graph) -> list[Any]:
    """Check widths along the chain, broadcast constants, merge clips."""
    out: list[Any] = []
    d = g.d0
    where = g.where
    for op in ops:
        if isinstance(op, _Linear):
            if op.w.shape[1] != d:
                raise ModelFormatError(
                    f"{where}: a layer expects {op.w.shape[1]} inputs but gets {d}; the graph "
                    "is malformed"
                )
            d = op.w.shape[0]
            if not (np.isfinite(op.w).all() and np.isfinite(op.b).all()):
                raise ModelFormatError(
                    f"{where}: a layer has NaN or inf weights; it cannot be analysed"
                )
            out.append(op)
        elif isinstance(op, _Affine):
            for arr in (op.s, op.c):
                if arr.size not in (1, d):
                    raise ModelFormatError(
                        f"{where}: an elementwise constant of size {arr.size} meets {d} "
                        "features (it would broadcast the width); certnet reads per-feature "
                        "constants"
                    )
            out.append(
                _Affine(
                    np.broadcast_to(op.s, (d,)).copy(), np.broadcast_to(op.c, (d,)).copy(), op.form
                )
            )
        elif isinstance(op, _Act):
            out.append(op)
        elif op[0] == "reshape":
            if op[1] != d:
                raise ModelFormatError(
                    f"{where}: {_node_label(op[2])} reshapes {d} features to {op[1]}; only a "
                    "no-op Reshape is read"
                )
        else:  # clip
            _, lo, hi, node = op
            if lo.size not in (1, d) or hi.size not in (1, d):
                raise ModelFormatError(
                    f"{where}: {_node_label(node)} has limits of size {lo.size}/{hi.size} for "
                    f"{d} features"
                )
            lo = np.broadcast_to(lo, (d,)).copy()
            hi = np.broadcast_to(hi, (d,)).copy()
            if out and isinstance(out[-1], _Clip):  # max(min(y, hi), lo): one clip
                lo, hi = np.maximum(out[-1].lo, lo), np.minimum(out[-1].hi, hi)
                out.pop()
            for side, arr in (("lower", lo), ("upper", hi)):
                fin = np.isfinite(arr)
                if fin.any() and not fin.all():
                    raise ModelFormatError(
                        f"{where}: {_node_label(node)} has a {side} limit that is finite for "
                        "some features and infinite for others; certnet reads clips that limit "
                        "all features on a side, or none"
                    )
            if (lo > hi).any():
                raise ModelFormatError(
                    f"{where}: {_node_label(node)} clips to an empty interval (lower limit above "
                    "the upper); the output would be constant: fix the limits"
                )
            out.append(_Clip(lo, hi))
    return out


def _to_stack(ops: list[Any], g: _Graph) -> LayerStack:
    """Fold the chain into weights, activations and the stack's scalings."""
    where = g.where
    d0 = g.d0
    ops = list(ops)
    # input scalings of certnet's form (x + a)·s stay as c_in, s_in exactly
    c_in, s_in = np.zeros(d0), np.ones(d0)
    k = 0
    if k < len(ops) and isinstance(ops[k], _Affine) and ops[k].form == "add":
        c_in = -ops[k].c
        k += 1
    if k < len(ops) and isinstance(ops[k], _Affine) and ops[k].form == "mul":
        s_in = ops[k].s
        k += 1
    ops = ops[k:]
    # output scalings y·s + c after the last layer
    s_out = c_out = None
    tail = len(ops)
    if tail and isinstance(ops[tail - 1], _Affine) and ops[tail - 1].form == "add":
        c_out = ops[tail - 1].c
        tail -= 1
    if tail and isinstance(ops[tail - 1], _Affine) and ops[tail - 1].form == "mul":
        s_out = ops[tail - 1].s
        tail -= 1
    if not (tail and isinstance(ops[tail - 1], _Linear)):  # not directly after a layer: fold
        tail = len(ops)
        s_out = c_out = None
    ops = ops[:tail]

    weights: list[np.ndarray] = []
    biases: list[np.ndarray] = []
    acts: list[ActivationSpec] = []
    # an elementwise affine x·s + c waiting for the next layer (after an activation, or on the
    # input itself), folded into that layer's columns
    pre: tuple[np.ndarray, np.ndarray] | None = None
    last = "none"  # what the chain ends in so far: "none", "linear" or "act"
    width = d0

    def ensure_linear() -> None:
        """End the chain in a layer: an identity layer (with the waiting affine) if needed."""
        nonlocal pre, last
        if last == "linear":
            return
        if pre is None:
            weights.append(np.eye(width))
            biases.append(np.zeros(width))
        else:
            weights.append(np.diag(pre[0]))
            biases.append(pre[1].copy())
            pre = None
        last = "linear"

    for op in ops:
        if isinstance(op, _Linear):
            w, b = op.w, op.b
            if pre is not None:
                b = b + w @ pre[1]
                w = w * pre[0][None, :]
                pre = None
            if last == "linear":
                acts.append(activation_spec("identity"))
            weights.append(w)
            biases.append(b)
            last, width = "linear", w.shape[0]
        elif isinstance(op, _Affine):
            if last == "linear":
                weights[-1] = op.s[:, None] * weights[-1]
                biases[-1] = op.s * biases[-1] + op.c
            elif pre is None:
                pre = (op.s, op.c)
            else:
                pre = (pre[0] * op.s, pre[1] * op.s + op.c)
        elif isinstance(op, _Act):
            ensure_linear()
            acts.append(op.spec)
            last = "act"
        else:  # _Clip: y ↦ hi − relu(hi − lo − relu(y − lo)) and its one-sided forms
            ensure_linear()
            lo, hi = op.lo, op.hi
            has_lo, has_hi = bool(np.isfinite(lo).all()), bool(np.isfinite(hi).all())
            eye = np.eye(width)
            relu = activation_spec("relu")
            if has_lo and has_hi:
                biases[-1] = biases[-1] - lo
                acts += [relu, relu]
                weights += [-eye, -eye.copy()]
                biases += [hi - lo, hi.copy()]
            elif has_lo:  # lo + relu(y − lo)
                biases[-1] = biases[-1] - lo
                acts.append(relu)
                weights.append(eye)
                biases.append(lo.copy())
            elif has_hi:  # hi − relu(hi − y)
                weights[-1] = -weights[-1]
                biases[-1] = hi - biases[-1]
                acts.append(relu)
                weights.append(-eye)
                biases.append(hi.copy())
    if not any(isinstance(op, _Linear) for op in ops):
        raise ModelFormatError(
            f"{where}: the graph has no Gemm or MatMul layer; certnet reads networks built "
            "from linear layers and activations"
        )
    ensure_linear()
    dl = weights[-1].shape[0]
    return LayerStack(
        tuple(weights),
        tuple(biases),
        tuple(acts),
        c_in.copy(),
        s_in.copy(),
        np.ones(dl) if s_out is None else s_out.copy(),
        np.zeros(dl) if c_out is None else c_out.copy(),
    )


# ------------------------------------------------------------------ the onnxruntime cross-check
_SEED = 0x5EED_14


def _ort_cross_check(model, path: Path | None, g: _Graph, stack: LayerStack) -> None:
    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover - the onnx extra installs it
        warnings.warn(
            f"{g.where}: onnxruntime is not installed, so the graph read was not cross-checked "
            "against a runtime; pip install onnxruntime to check it",
            UserWarning,
            stacklevel=4,
        )
        return
    rng = np.random.default_rng(_SEED)
    d0 = stack.widths[0]
    unit = 1.0 / np.where(stack.input_scale != 0, np.abs(stack.input_scale), 1.0)
    groups = []
    for centre in (np.zeros(d0), stack.input_offset):
        for std in (0.01, 1.0, 10.0):
            groups.append(centre + std * unit * rng.standard_normal((16, d0)))
    x = np.concatenate(groups)
    np_dtype = {torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64}
    xd = x.astype(np_dtype[g.dtype])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    src = str(path) if path is not None else model.SerializeToString()
    try:
        sess = ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
        if g.batch is None:
            y = sess.run([g.output], {g.input: xd})[0]
        else:
            n = g.batch
            pad = (-len(xd)) % n
            xp = np.concatenate([xd, np.repeat(xd[:1], pad, axis=0)]) if pad else xd
            y = np.concatenate(
                [sess.run([g.output], {g.input: xp[i : i + n]})[0] for i in range(0, len(xp), n)]
            )[: len(xd)]
    except Exception as e:  # noqa: BLE001 - any runtime failure is reported
        raise ModelFormatError(
            f"{g.where}: onnxruntime cannot run the graph ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}); certnet checks what it reads against "
            "the runtime, so it refuses a graph the runtime rejects"
        ) from None
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (len(xd), stack.widths[-1]):
        raise ModelFormatError(
            f"{g.where}: onnxruntime returns shape {y.shape}, but the layers read give "
            f"({len(xd)}, {stack.widths[-1]}); certnet does not read what the graph computes"
        )
    x64 = xd.astype(np.float64)
    ref, err = forward_error_bound(stack, x64, _unit_roundoff(g.dtype, torch.device("cpu")))
    diff = np.linalg.norm(y - ref, axis=-1)
    tol = CROSS_CHECK_FACTOR * err
    bad = ~(diff <= tol)
    if bad.any():
        i = int(np.argmax(np.where(np.isnan(diff), np.inf, diff / np.maximum(tol, 1e-300))))
        raise ModelFormatError(
            f"{g.where}: onnxruntime disagrees with the layers certnet read at {int(bad.sum())} "
            f"of {len(diff)} test inputs: largest difference {diff[i]:.3g} where {g.dtype} "
            f"rounding allows {tol[i]:.3g}; certnet misread the graph: please report it, and "
            "certify a network rebuilt from nn.Linear and supported activations meanwhile"
        )


# ------------------------------------------------------------------ public functions
def load_onnx(model: str | os.PathLike | Any, *, check: bool = True) -> OnnxNetwork:
    """Read an ONNX network into an :class:`OnnxNetwork` (a float64 torch module).

    Parameters
    ----------
    model : path-like or onnx.ModelProto
        A ``.onnx`` file (external data is read from its folder) or a loaded model.
    check : bool
        Cross-check the graph read against onnxruntime (default True; skipped with a warning
        when onnxruntime is not installed).

    Returns
    -------
    OnnxNetwork
        ``extract_layers`` of it is the stack :func:`from_onnx` returns.

    Raises
    ------
    FileNotFoundError
        No such file.
    ModelFormatError
        Anything the module docstring lists as refused, naming the node and what to do; or
        onnxruntime disagrees with the layers read.
    TypeError
        ``model`` is neither a path nor a ModelProto.
    """
    proto, where, path = _read_model(model)
    g = _Graph(proto, where)
    ops = _resolve(_Reader(g).ops(), g)
    stack = _to_stack(ops, g)
    net = OnnxNetwork(
        stack,
        source=where,
        metadata={p.key: p.value for p in proto.metadata_props},
        onnx_dtype=g.dtype,
    )
    read = extract_layers(net)
    if check:
        _ort_cross_check(proto, path, g, read)
    return net


def from_onnx(model: str | os.PathLike | Any, *, check: bool = True) -> LayerStack:
    """Read an ONNX network into a float64 :class:`LayerStack`, refusing what it cannot read
    exactly.

    The stack computes what the graph computes (up to the graph's float rounding, cross-checked
    against onnxruntime); float16/32 weights are read exactly. A certificate made from it
    ``check()``\\ s against ``from_onnx`` (or ``certnet.load``) of the same file.

    Parameters
    ----------
    model : path-like or onnx.ModelProto
    check : bool
        Cross-check against onnxruntime (default True).

    Returns
    -------
    LayerStack

    Raises
    ------
    ModelFormatError
        See :func:`load_onnx`.

    Examples
    --------
    >>> import onnx
    >>> from onnx import helper, numpy_helper, TensorProto
    >>> w = numpy_helper.from_array(np.array([[2.0, 0.0]], dtype=np.float32), "w")
    >>> g = helper.make_graph(
    ...     [helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)], "g",
    ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2])],
    ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 1])], [w])
    >>> m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)])
    >>> from_onnx(m).weights[0].tolist()
    [[2.0, 0.0]]
    """
    return extract_layers(load_onnx(model, check=check))
