"""Read any supported network into float64 arrays: the one door verification and export use.

:func:`extract_layers` turns a :class:`~certnet.nn.NormalizedMLP` or a plain ``nn.Sequential``
of ``nn.Linear`` and supported activations into a :class:`LayerStack`:

    f(x) = s_out ⊙ (W_L σ_{L−1}( … σ_1(W_1 (s_in ⊙ (x − c_in)) + b_1) … ) + b_L) + c_out

Rules for a ``Sequential`` (users arrive with their own nets):

* nested ``Sequential`` containers are flattened;
* two Linear layers in a row get an ``identity`` activation between them;
* an activation after the last Linear (e.g. a tanh squashing the action) is kept by appending an
  identity Linear layer, so the stack always ends in a weight matrix;
* a network must start with a Linear layer;
* anything else (Dropout, BatchNorm, custom modules) is refused by name: silently skipping a
  layer could make a certificate unsound.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from certnet.nn.activations import ActivationSpec, activation_spec, spec_of_module
from certnet.nn.mlp import NormalizedMLP

__all__ = ["LayerStack", "extract_layers"]


@dataclass(frozen=True)
class LayerStack:
    """A feed-forward network as float64 arrays.

    Attributes
    ----------
    weights : tuple of ndarray
        W_1 … W_L, each (out, in), float64, *without* the input/output scalings.
    biases : tuple of ndarray
        b_1 … b_L (zeros where a layer has no bias).
    activations : tuple of ActivationSpec
        σ_1 … σ_{L−1}, with slope bounds [α, β].
    input_offset, input_scale : ndarray
        c_in and s_in, shape (d_0,).
    output_scale, output_offset : ndarray
        s_out and c_out, shape (d_L,).
    """

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    activations: tuple[ActivationSpec, ...]
    input_offset: np.ndarray
    input_scale: np.ndarray
    output_scale: np.ndarray
    output_offset: np.ndarray

    @property
    def widths(self) -> list[int]:
        """[d_0, …, d_L]."""
        return [self.weights[0].shape[1]] + [w.shape[0] for w in self.weights]

    def folded_weights(self) -> list[np.ndarray]:
        """Weights of the same map with the scalings multiplied in.

        W_1 diag(s_in) first and diag(s_out) W_L last; the network then has no scalings, and
        its Lipschitz constant equals that of f in the user's units.
        """
        ws = [w.copy() for w in self.weights]
        ws[0] = ws[0] * self.input_scale[None, :]
        ws[-1] = self.output_scale[:, None] * ws[-1]
        return ws

    def folded_biases(self) -> list[np.ndarray]:
        """Biases matching :meth:`folded_weights` (offsets moved into b_1 and b_L)."""
        bs = [b.copy() for b in self.biases]
        bs[0] = bs[0] - self.weights[0] @ (self.input_scale * self.input_offset)
        bs[-1] = self.output_scale * bs[-1] + self.output_offset
        return bs

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Evaluate f in float64 numpy; ``x`` has shape (..., d_0)."""
        h = (np.asarray(x, dtype=np.float64) - self.input_offset) * self.input_scale
        for k, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w.T + b
            if k < len(self.activations):
                mod = self.activations[k].module().double()
                h = mod(torch.from_numpy(np.ascontiguousarray(h))).numpy()
        return h * self.output_scale + self.output_offset

    def fingerprint(self) -> str:
        """SHA-256 of everything that determines the map (weights, biases, scalings, σ).

        A certificate stores it so ``check()`` against other weights fails clearly.
        """
        h = hashlib.sha256()
        arrays = [
            *self.weights,
            *self.biases,
            self.input_offset,
            self.input_scale,
            self.output_scale,
            self.output_offset,
        ]
        for a in arrays:
            a = np.ascontiguousarray(a, dtype=np.float64)
            h.update(str(a.shape).encode())
            h.update(a.tobytes())
        h.update(
            json.dumps([(s.name, s.kwargs) for s in self.activations], sort_keys=True).encode()
        )
        return h.hexdigest()


def _array(t: torch.Tensor) -> np.ndarray:
    a = t.detach().to("cpu", torch.float64).numpy().copy()
    if not np.isfinite(a).all():
        raise ValueError("the network has NaN or inf weights; it cannot be analysed or exported")
    return a


def _flatten(module: nn.Module) -> list[nn.Module]:
    if isinstance(module, nn.Sequential):
        out: list[nn.Module] = []
        for child in module:
            out.extend(_flatten(child))
        return out
    return [module]


def extract_layers(net: nn.Module | LayerStack) -> LayerStack:
    """Read a network into a float64 :class:`LayerStack`.

    Parameters
    ----------
    net : NormalizedMLP, nn.Sequential or LayerStack
        ``Sequential`` may hold ``nn.Linear`` (parametrised or not), nested ``Sequential`` and
        activations ``Identity, ReLU, LeakyReLU, Tanh, Sigmoid, Softplus, ELU, SiLU, GELU,
        GroupSort``. A ``LayerStack`` is returned unchanged.

    Raises
    ------
    TypeError
        An unsupported module; the message names it and its position.
    ValueError
        An empty network, mismatched layer sizes, or NaN/inf weights.
    """
    if isinstance(net, LayerStack):
        return net
    if isinstance(net, NormalizedMLP):
        ws = tuple(_array(lin.weight) for lin in net.linears)
        bs = tuple(
            _array(lin.bias) if lin.bias is not None else np.zeros(lin.out_features)
            for lin in net.linears
        )
        acts = tuple(net.act_spec for _ in range(net.depth - 1))
        return LayerStack(
            ws,
            bs,
            acts,
            _array(net.input_offset),
            _array(net.input_scale),
            _array(net.output_scale),
            _array(net.output_offset),
        )
    if not isinstance(net, nn.Sequential):
        raise TypeError(
            f"cannot read a {type(net).__name__}; pass a certnet NormalizedMLP or an "
            "nn.Sequential of nn.Linear and supported activations"
        )
    weights: list[np.ndarray] = []
    biases: list[np.ndarray] = []
    acts: list[ActivationSpec] = []
    pending_act = False  # the last item appended was an activation
    for pos, m in enumerate(_flatten(net)):
        if isinstance(m, nn.Linear):
            w = _array(m.weight)
            if weights and not pending_act:
                acts.append(activation_spec("identity"))
            if weights and weights[-1].shape[0] != w.shape[1]:
                raise ValueError(
                    f"layer {pos} ({m}) expects {w.shape[1]} inputs but the previous layer "
                    f"gives {weights[-1].shape[0]}"
                )
            weights.append(w)
            biases.append(_array(m.bias) if m.bias is not None else np.zeros(w.shape[0]))
            pending_act = False
            continue
        spec = spec_of_module(m)
        if spec is None:
            raise TypeError(
                f"unsupported layer {type(m).__name__} at position {pos}: certnet reads "
                "nn.Linear and the activations Identity, ReLU, LeakyReLU, Tanh, Sigmoid, "
                "Softplus, ELU, SiLU, GELU, GroupSort; remove it or rebuild the net "
                "(skipping it silently could make a certificate unsound)"
            )
        if spec.name == "identity":
            continue
        if pending_act:
            raise TypeError(
                f"two activations in a row at position {pos} ({type(m).__name__}); their "
                "composition has no single slope class; insert nn.Linear or merge them"
            )
        if not weights:
            raise TypeError(
                f"the network starts with an activation ({type(m).__name__}); certnet needs "
                "a Linear layer first"
            )
        acts.append(spec)
        pending_act = True
    if not weights:
        raise ValueError("the network has no nn.Linear layer")
    if pending_act:
        n = weights[-1].shape[0]
        weights.append(np.eye(n))
        biases.append(np.zeros(n))
    d0, dl = weights[0].shape[1], weights[-1].shape[0]
    return LayerStack(
        tuple(weights),
        tuple(biases),
        tuple(acts),
        np.zeros(d0),
        np.ones(d0),
        np.ones(dl),
        np.zeros(dl),
    )
