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

What runs, not what the attributes say
--------------------------------------
A certificate is about the function the network computes, so :func:`extract_layers` refuses,
naming the module (type and position) and what to do, everything whose forward it cannot read
exactly from its attributes:

* modules by *exact* type only: ``nn.Sequential`` (a subclass may have its own forward, e.g. a
  residual block), ``nn.Linear`` or certnet's ``FrobeniusLinear`` (a subclass such as the QAT
  ``torch.ao.nn.qat.Linear`` runs fake-quantised weights), the activations of
  :func:`~certnet.nn.activations.spec_of_module`; a module with its own ``forward`` attribute;
* forward hooks and forward-pre-hooks on any module read (and the global ones of
  ``torch.nn.modules.module``), including the hook-based ``torch.nn.utils.weight_norm`` and
  ``spectral_norm``, which recompute the weight in a pre-hook;
* parametrisations other than certnet's Frobenius constraint and torch's ``orthogonal`` and
  ``weight_norm`` (deterministic functions of the stored tensors, so ``module.weight`` is the
  weight forward uses); torch's ``spectral_norm`` parametrisation only in eval mode (in
  training mode each forward runs a power iteration and changes the weight);
* a :class:`NormalizedMLP` is read from the modules its forward calls (``net.linears[k]``,
  ``net.acts[k]``), not from ``net.act_spec``; a subclass that overrides forward is refused.

Then a **cross-check** (:func:`_cross_check`) evaluates the stack in float64 and the network's
own forward (its dtype and device, under ``torch.no_grad()``, in the training mode it is in —
extraction changes no flag and draws nothing from torch's RNG) on a fixed set of inputs, and
refuses when they differ by more than a forward rounding-error bound of the network's dtype.
It is the backstop: whatever a future path forgets to check structurally still changes the
function and is caught there.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.modules import module as _torch_module
from torch.nn.utils import parametrizations as _torch_parametrizations
from torch.nn.utils import parametrize

from certnet.nn.activations import ActivationSpec, activation_spec, same_function, spec_of_module
from certnet.nn.frobenius import FrobeniusLinear, _FrobeniusConstraint
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


# ------------------------------------------------------------------ structural checks
_LINEARS = (nn.Linear, FrobeniusLinear)
#: Parametrisations whose output is a deterministic function of the stored tensors, so that
#: ``module.weight`` read now is the weight the next forward uses.
_EXACT_PARAMETRIZATIONS = (
    _FrobeniusConstraint,
    _torch_parametrizations._Orthogonal,
    _torch_parametrizations._WeightNorm,
)


def _hook_name(hook) -> str:
    owner = type(getattr(hook, "__self__", hook))
    mod = getattr(owner, "__module__", "")
    if mod == "torch.nn.utils.weight_norm":
        return (
            "the hook-based torch.nn.utils.weight_norm (it recomputes the weight in a forward "
            "pre-hook, so the stored .weight can be stale); call "
            "torch.nn.utils.remove_weight_norm(module), or use "
            "torch.nn.utils.parametrizations.weight_norm"
        )
    if mod == "torch.nn.utils.spectral_norm":
        return (
            "the hook-based torch.nn.utils.spectral_norm (it recomputes the weight by a power "
            "iteration in a forward pre-hook); call torch.nn.utils.remove_spectral_norm(module)"
        )
    return f"a hook ({getattr(hook, '__qualname__', type(hook).__name__)}); remove the hook"


def _check_global_hooks() -> None:
    for kind, hooks in (
        ("forward", _torch_module._global_forward_hooks),
        ("forward-pre", _torch_module._global_forward_pre_hooks),
    ):
        if hooks:
            h = next(iter(hooks.values()))
            raise TypeError(
                f"a global {kind} hook is registered on every torch module "
                f"({getattr(h, '__qualname__', type(h).__name__)}), so the network's forward "
                "is not the layers certnet reads; remove it (the handle returned by "
                f"torch.nn.modules.module.register_module_{kind.replace('-', '_')}_hook)"
            )


def _check_module(m: nn.Module, where: str) -> None:
    """Refuse hooks and instance-level ``forward`` on ``m`` and everything it holds."""
    for name, sub in m.named_modules():
        at = where if not name else f"{where}, submodule {name!r} ({type(sub).__name__})"
        for kind, hooks in (
            ("forward-pre", sub._forward_pre_hooks),
            ("forward", sub._forward_hooks),
        ):
            if hooks:
                raise TypeError(
                    f"{at} has a {kind} hook, which can change what it computes: "
                    f"{_hook_name(next(iter(hooks.values())))}"
                )
        if "forward" in vars(sub):
            raise TypeError(
                f"{at} has its own forward attribute (set on the instance), so it does not run "
                f"{type(sub).__name__}.forward; delete the attribute or rebuild the module"
            )


def _linear_base(m: nn.Module) -> type:
    """The class of ``m`` before ``parametrize`` wrapped it (``ParametrizedLinear`` → Linear)."""
    t = type(m)
    if parametrize.is_parametrized(m) and t.__name__ == "Parametrized" + t.__bases__[0].__name__:
        return t.__bases__[0]
    return t


def _is_linear_like(m: nn.Module) -> bool:
    return isinstance(m, nn.Linear)


def _read_linear(m: nn.Module, where: str) -> tuple[np.ndarray, np.ndarray]:
    base = _linear_base(m)
    if base not in _LINEARS:
        if hasattr(m, "weight_fake_quant") or "qat" in type(m).__module__:
            raise TypeError(
                f"{where} is a quantisation-aware {type(m).__module__}.{type(m).__name__}: its "
                "forward multiplies fake-quantised weights, not .weight; certify the weights "
                "that run (copy weight_fake_quant(weight) into a plain nn.Linear) or use the "
                "float model"
            )
        raise TypeError(
            f"{where} is a {type(m).__name__}, a subclass of nn.Linear, which can compute "
            "something else (its own forward); use nn.Linear (or certnet's FrobeniusLinear)"
        )
    if parametrize.is_parametrized(m):
        for tensor, plist in m.parametrizations.items():
            for p in plist:
                if type(p) is _torch_parametrizations._SpectralNorm:
                    if p.training:
                        raise TypeError(
                            f"{where}: torch's spectral_norm parametrisation of {tensor!r} is "
                            "in training mode, where every forward runs a power iteration and "
                            "changes the weight; call net.eval() before reading it"
                        )
                    continue
                if type(p) not in _EXACT_PARAMETRIZATIONS:
                    raise TypeError(
                        f"{where}: {tensor!r} has the parametrisation "
                        f"{type(p).__module__}.{type(p).__name__}, which certnet cannot read "
                        "exactly (it reads its own Frobenius constraint and torch's "
                        "orthogonal, weight_norm and eval-mode spectral_norm); remove it with "
                        "torch.nn.utils.parametrize.remove_parametrizations(module, "
                        f"{tensor!r}, leave_parametrized=True)"
                    )
    with torch.no_grad():
        w = m.weight
        b = m.bias
    if not isinstance(w, torch.Tensor) or w.ndim != 2:
        raise TypeError(f"{where} has no weight matrix; rebuild it as nn.Linear")
    wa = _array(w)
    ba = _array(b) if b is not None else np.zeros(wa.shape[0])
    return wa, ba


def _flatten(module: nn.Module, where: str) -> list[tuple[str, nn.Module]]:
    if isinstance(module, nn.Sequential):
        if type(module) is not nn.Sequential:
            raise TypeError(
                f"{where} is a {type(module).__name__}, a subclass of nn.Sequential, whose "
                "forward need not be the plain chain of its layers (e.g. a residual block); "
                "use nn.Sequential, or a NormalizedMLP"
            )
        _check_module_self(module, where)
        out: list[tuple[str, nn.Module]] = []
        for name, child in module.named_children():
            out.extend(_flatten(child, f"{where}.{name}"))
        return out
    return [(where, module)]


def _check_module_self(m: nn.Module, where: str) -> None:
    """Hooks and instance forward of a container itself (its children are checked as read)."""
    for kind, hooks in (("forward-pre", m._forward_pre_hooks), ("forward", m._forward_hooks)):
        if hooks:
            raise TypeError(
                f"{where} has a {kind} hook, which can change what it computes: "
                f"{_hook_name(next(iter(hooks.values())))}"
            )
    if "forward" in vars(m):
        raise TypeError(
            f"{where} has its own forward attribute (set on the instance), so it does not run "
            f"{type(m).__name__}.forward; delete the attribute or rebuild the module"
        )


def _chain(
    items: list[tuple[str, nn.Module]], prefer: ActivationSpec | None = None
) -> tuple[list[np.ndarray], list[np.ndarray], list[ActivationSpec]]:
    """Weights, biases and activations of a chain of Linear layers and activations."""
    weights: list[np.ndarray] = []
    biases: list[np.ndarray] = []
    acts: list[ActivationSpec] = []
    pending_act = False  # the last item appended was an activation
    for where, m in items:
        _check_module(m, where)
        if _is_linear_like(m):
            w, b = _read_linear(m, where)
            if weights and not pending_act:
                acts.append(activation_spec("identity"))
            if weights and weights[-1].shape[0] != w.shape[1]:
                raise ValueError(
                    f"{where} ({m}) expects {w.shape[1]} inputs but the previous layer "
                    f"gives {weights[-1].shape[0]}"
                )
            weights.append(w)
            biases.append(b)
            pending_act = False
            continue
        try:
            spec = spec_of_module(m)
        except (TypeError, ValueError) as e:
            raise type(e)(f"{where}: {e}") from None
        if spec is None:
            raise TypeError(
                f"unsupported layer {where}: certnet reads "
                "nn.Linear and the activations Identity, ReLU, LeakyReLU, Tanh, Sigmoid, ELU, "
                "SiLU, GELU and its own Softplus, GroupSort; remove it or rebuild the net "
                "(skipping it silently could make a certificate unsound)"
            )
        if prefer is not None and same_function(spec, prefer):
            spec = prefer
        if spec.name == "identity":
            continue
        if pending_act:
            raise TypeError(
                f"two activations in a row at {where}; their "
                "composition has no single slope class; insert nn.Linear or merge them"
            )
        if not weights:
            raise TypeError(
                f"the network starts with an activation ({where}); certnet needs "
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
    return weights, biases, acts


def _check_module_lists(net: nn.Module, name: str, forward: str, fix: str) -> None:
    """``net`` itself and its ``linears``/``acts`` must be hook-free exact nn.ModuleLists,
    which is what ``forward`` (named in the message) iterates."""
    _check_module_self(net, name)
    for attr in ("linears", "acts"):
        sub = getattr(net, attr)
        if type(sub) is not nn.ModuleList:
            raise TypeError(
                f"{name}.{attr} is a {type(sub).__name__}, not the nn.ModuleList {forward} "
                f"iterates; {fix}"
            )
        _check_module_self(sub, f"{name}.{attr}")


def _read_normalized_mlp(net: NormalizedMLP) -> tuple[LayerStack, torch.Tensor]:
    name = type(net).__name__
    if type(net).forward is not NormalizedMLP.forward:
        raise TypeError(
            f"{name} overrides NormalizedMLP.forward, so its layers need not be what it "
            "computes; certify a NormalizedMLP (or an nn.Sequential) that computes the same map"
        )
    _check_module_lists(net, name, "NormalizedMLP.forward", "restore it")
    items: list[tuple[str, nn.Module]] = []
    for k, lin in enumerate(net.linears):
        if not isinstance(lin, nn.Linear):
            raise TypeError(
                f"{name}.linears[{k}] is a {type(lin).__name__}; NormalizedMLP reads "
                "FrobeniusLinear layers; restore it"
            )
        items.append((f"{type(lin).__name__} at {name}.linears[{k}]", lin))
        if k < len(net.acts):  # exactly what forward does
            act = net.acts[k]
            items.append((f"{type(act).__name__} at {name}.acts[{k}]", act))
    ws, bs, acts = _chain(items, prefer=net.act_spec)
    stack = LayerStack(
        tuple(ws),
        tuple(bs),
        tuple(acts),
        _array(net.input_offset),
        _array(net.input_scale),
        _array(net.output_scale),
        _array(net.output_offset),
    )
    if stack.widths[0] != net.widths[0]:
        raise ValueError(
            f"{name}.linears[0] takes {stack.widths[0]} inputs but the net checks for "
            f"{net.widths[0]}; restore it"
        )
    return stack, net.input_scale


def _read_onnx_network(net: nn.Module) -> tuple[LayerStack, torch.Tensor]:
    """An :class:`~certnet.nn.onnx_import.OnnxNetwork` from the modules and buffers its forward
    uses (like a NormalizedMLP), so an edit after loading is read, not the file's stack."""
    from certnet.nn.onnx_import import OnnxNetwork

    name = type(net).__name__
    if type(net) is not OnnxNetwork:
        raise TypeError(
            f"{name} is a subclass of OnnxNetwork, which can compute something else (its own "
            "forward); use the OnnxNetwork certnet.load returns"
        )
    _check_module_lists(net, name, "OnnxNetwork.forward", "reload the network")
    if len(net.acts) != len(net.linears) - 1:
        raise TypeError(
            f"{name} has {len(net.linears)} linear layers and {len(net.acts)} activations; "
            "it needs one activation between each pair of layers; reload the network"
        )
    items: list[tuple[str, nn.Module]] = []
    for k, lin in enumerate(net.linears):
        items.append((f"{type(lin).__name__} at {name}.linears[{k}]", lin))
        if k < len(net.acts):
            items.append((f"{type(net.acts[k]).__name__} at {name}.acts[{k}]", net.acts[k]))
    ws, bs, acts = _chain(items)
    stack = LayerStack(
        tuple(ws),
        tuple(bs),
        tuple(acts),
        _array(net.input_offset),
        _array(net.input_scale),
        _array(net.output_scale),
        _array(net.output_offset),
    )
    return stack, net.linears[0].weight


def extract_layers(net: nn.Module | LayerStack) -> LayerStack:
    """Read a network into a float64 :class:`LayerStack`, refusing what it cannot read exactly.

    Parameters
    ----------
    net : NormalizedMLP, nn.Sequential, OnnxNetwork or LayerStack
        An ``OnnxNetwork`` (what ``certnet.load`` returns for an ONNX file) is read like a
        ``NormalizedMLP``, from the layers its forward uses. ``Sequential`` may hold
        ``nn.Linear`` (with certnet's Frobenius parametrisation, torch's
        ``orthogonal``, ``weight_norm`` or, in eval mode, ``spectral_norm``), nested
        ``Sequential`` and the activations ``Identity, ReLU, LeakyReLU, Tanh, Sigmoid, ELU,
        SiLU, GELU`` and certnet's ``Softplus`` and ``GroupSort`` — exact types, no hooks.
        A ``LayerStack`` is returned unchanged.

    Raises
    ------
    TypeError
        An unsupported module, a subclass of a supported one, a hook, an unknown or
        training-mode parametrisation, ``nn.Softplus`` (discontinuous), or a network whose own
        forward disagrees with the layers read (the cross-check); the message names the module
        (type and position) and what to do.
    ValueError
        An empty network, mismatched layer sizes, NaN/inf weights, or an activation parameter
        with no slope class (e.g. ``LeakyReLU(negative_slope < 0)``).
    """
    if isinstance(net, LayerStack):
        return net
    if not isinstance(net, nn.Module):
        raise TypeError(
            f"cannot read a {type(net).__name__}; pass a certnet NormalizedMLP or an "
            "nn.Sequential of nn.Linear and supported activations"
        )
    _check_global_hooks()
    from certnet.nn.onnx_import import OnnxNetwork  # here: onnx_import imports this module

    if isinstance(net, NormalizedMLP):
        stack, like = _read_normalized_mlp(net)
    elif isinstance(net, OnnxNetwork):
        stack, like = _read_onnx_network(net)
    elif isinstance(net, nn.Sequential):
        items = _flatten(net, "net")
        ws, bs, acts = _chain(
            [
                (f"{type(m).__name__} at position {i} ({path})", m)
                for i, (path, m) in enumerate(items)
            ]
        )
        d0, dl = ws[0].shape[1], ws[-1].shape[0]
        stack = LayerStack(
            tuple(ws),
            tuple(bs),
            tuple(acts),
            np.zeros(d0),
            np.ones(d0),
            np.ones(dl),
            np.zeros(dl),
        )
        first = next(m for _, m in items if _is_linear_like(m))
        with torch.no_grad():
            like = first.weight
    else:
        raise TypeError(
            f"cannot read a {type(net).__name__}; pass a certnet NormalizedMLP or an "
            "nn.Sequential of nn.Linear and supported activations"
        )
    _cross_check(net, stack, like.dtype, like.device)
    return stack


# ------------------------------------------------------------------ the cross-check
#: Safety factor on the forward rounding-error bound of the cross-check.
CROSS_CHECK_FACTOR = 2.0
#: Ulps of |σ(z)| + |z| allowed for one evaluation of an activation.
_ACT_ULPS = 16.0
_SEED = 0x5EED_13


def _spectral_estimate(w: np.ndarray, iters: int) -> float:
    """1.05 × a power-iteration estimate of ‖W‖₂ (from a fixed start), capped by ‖W‖_F."""
    fro = float(np.linalg.norm(w))
    v = np.ones(w.shape[1]) + np.linspace(0.0, 0.5, w.shape[1])
    v /= np.linalg.norm(v)
    est = 0.0
    for _ in range(iters):
        u = w @ v
        est = max(est, float(np.linalg.norm(u)))
        v = w.T @ u
        nv = float(np.linalg.norm(v))
        if nv == 0.0:
            break
        v /= nv
    return min(fro, 1.05 * est) if est > 0 else fro


def forward_error_bound(
    stack: LayerStack, x: np.ndarray, unit_roundoff: float, *, proven: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """f(x) in float64 and a bound on ‖f̂(x) − f(x)‖₂ per point for a forward in another
    precision (the rounding model of :func:`_cross_check`).

    With u the unit round-off, h₀ = D_in (x − c_in) and, layer by layer,

        E₀ = 2u‖h₀‖,   E_k ← S_k E_{k−1} + (n_k + 1) u (A_k (‖h_{k−1}‖ + E_{k−1}) + ‖b_k‖),
        E_k ← Lip(σ_k) E_k + 16 u (‖σ_k(z_k)‖ + ‖z_k‖)     (after an activation),
        E   = max|D_out| E_L + 2u (‖D_out h_L‖ + ‖c_out‖),

    where n_k is the fan-in, S_k ≈ ‖W_k‖₂ and A_k ≈ ‖|W_k|‖₂ (power iterations ×1.05, capped
    by ‖W_k‖_F): the worst-case bound γ_n (|W||h| + |b|) of a dot product in any summation
    order, carried through the rest of the network by its Lipschitz constants. With
    ``proven=True``, S_k = A_k = ‖W_k‖_F (upper bounds, not estimates): then E bounds the
    rounding of any evaluation order whose activations are within 16 ulps, which tests use to
    turn measured difference quotients into sound lower bounds.
    """
    u = float(unit_roundoff)
    h = (np.asarray(x, dtype=np.float64) - stack.input_offset) * stack.input_scale
    hn = np.linalg.norm(h, axis=-1)
    err = 2 * u * hn
    for k, (w, b) in enumerate(zip(stack.weights, stack.biases, strict=True)):
        if proven:
            s_k = a_k = float(np.linalg.norm(w))
        else:
            s_k = _spectral_estimate(w, 12)
            a_k = _spectral_estimate(np.abs(w), 6)
        z = h @ w.T + b
        err = s_k * err + (w.shape[1] + 1) * u * (a_k * (hn + err) + float(np.linalg.norm(b)))
        if k < len(stack.activations):
            spec = stack.activations[k]
            mod = spec.module().double()
            with torch.no_grad():
                h = mod(torch.from_numpy(np.ascontiguousarray(z))).numpy()
            err = spec.lipschitz * err + _ACT_ULPS * u * (
                np.linalg.norm(h, axis=-1) + np.linalg.norm(z, axis=-1)
            )
        else:
            h = z
        hn = np.linalg.norm(h, axis=-1)
    y = h * stack.output_scale + stack.output_offset
    err = float(np.abs(stack.output_scale).max()) * err + 2 * u * (
        np.linalg.norm(y - stack.output_offset, axis=-1)
        + float(np.linalg.norm(stack.output_offset))
    )
    return y, err


def _unit_roundoff(dtype: torch.dtype, device: torch.device) -> float:
    u = torch.finfo(dtype).eps / 2
    if dtype == torch.float32:
        tf32 = device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32
        if tf32 or torch.get_float32_matmul_precision() != "highest":
            u = max(u, 2.0**-9)  # TF32 / bfloat16 matmuls
    return u + 2.0**-53  # the float64 reference rounds too


def _cross_check(
    net: nn.Module, stack: LayerStack, dtype: torch.dtype, device: torch.device
) -> None:
    """Refuse when ``net``'s own forward and the float64 ``stack`` disagree beyond rounding.

    Inputs (fixed seed, numpy's generator, so torch's RNG is not touched): Gaussian with
    standard deviations 0.01, 1 and 10 (in units of 1/s_in) around 0 and around c_in, 8 to 64
    points each (fewer for large nets, so the check costs about as much as 16 forward passes of
    a 3×512 net). The inputs are rounded to the net's dtype first; ``net`` runs under
    ``torch.no_grad()`` in the mode it is in. A point fails when

        ‖net(x) − f(x)‖₂ > 2 · E(x)        (E from :func:`forward_error_bound`).
    """
    rng = np.random.default_rng(_SEED)
    d0 = stack.widths[0]
    size = sum(w.size for w in stack.weights)
    per = int(np.clip(2**21 // max(size, 1), 8, 64))
    unit = 1.0 / stack.input_scale
    groups = []
    for centre in (np.zeros(d0), stack.input_offset):
        for std in (0.01, 1.0, 10.0):
            groups.append(centre + std * unit * rng.standard_normal((per, d0)))
    xt = torch.as_tensor(np.concatenate(groups), dtype=dtype).to(device)
    x64 = xt.to("cpu", torch.float64).numpy()
    try:
        with torch.no_grad():
            out = net(xt)
    except Exception as e:  # noqa: BLE001 - any failure of the user's forward is reported
        raise TypeError(
            f"the network's own forward failed on {dtype} inputs of shape {tuple(xt.shape)} "
            f"({type(e).__name__}: {e}); certnet cannot compare it with the layers it read"
        ) from e
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (x64.shape[0], stack.widths[-1]):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise TypeError(
            f"the network's forward returns {got}, but the layers read give "
            f"({x64.shape[0]}, {stack.widths[-1]}); certnet does not read what it computes"
        )
    y = out.detach().to("cpu", torch.float64).numpy()
    ref, err = forward_error_bound(stack, x64, _unit_roundoff(dtype, xt.device))
    diff = np.linalg.norm(y - ref, axis=-1)
    tol = CROSS_CHECK_FACTOR * err
    bad = ~(diff <= tol)
    if bad.any():
        i = int(np.argmax(np.where(np.isnan(diff), np.inf, diff / np.maximum(tol, 1e-300))))
        raise TypeError(
            f"the {type(net).__name__}'s own forward disagrees with the layers certnet read "
            f"from it at {int(bad.sum())} of {len(diff)} test inputs: largest difference "
            f"‖net(x) − layers(x)‖ = {diff[i]:.3g} where {dtype} rounding allows {tol[i]:.3g} "
            f"(|f(x)| = {np.linalg.norm(ref[i]):.3g}); something in it changes what it computes "
            "(a hook, a custom forward, a modified weight or activation?). Rebuild it from "
            "nn.Linear and supported activations so that its forward is the chain certnet reads"
        )
