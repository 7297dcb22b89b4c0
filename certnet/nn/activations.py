"""Activation functions with their exact slope bounds.

Every certificate in certnet reads an activation's *slope class* [α, β] from this table:

    α ≤ (σ(a) − σ(b)) / (a − b) ≤ β    for all a ≠ b.

The bounds are the infimum and supremum of σ' (σ is C¹ or piecewise linear), rounded *outward*
in the last printed digit, so they are never tighter than the truth. A test checks them against
sampled difference quotients.

===========  ==========================  ===================================================
name         [α, β]                      note
===========  ==========================  ===================================================
identity     [1, 1]
relu         [0, 1]
leaky_relu   [min(a,1), max(a,1)]        ``negative_slope`` a ≥ 0 (default 0.01)
tanh         [0, 1]
sigmoid      [0, 1/4]
softplus     [0, 1]                      any ``beta`` > 0; certnet's continuous :class:`Softplus`
elu          [0, max(1, a)]              ``alpha`` a ≥ 0 (default 1)
silu         [−0.0998393201288670, 1.0998393201288670]   extrema of σ' at x = ±2.39936
gelu         [−0.1289041451851548, 1.1289041451851548]   exact (erf) GELU, extrema at ±√2
gelu_tanh    [−0.1289930686587718, 1.1289930686587718]   tanh approximation
groupsort    1-Lipschitz, **not elementwise**             sorts groups of ``group_size``
===========  ==========================  ===================================================

GroupSort has no per-neuron slope class; certificates that need one (LipSDP) refuse it by name
and the product bound treats it as a 1-Lipschitz map.

Reading torch modules (:func:`spec_of_module`) is by *exact* type: a subclass may override
``forward``. Every constructor argument that changes the function is read into the spec, and a
module whose function has no slope class is refused with the reason:

* ``nn.Softplus`` returns x itself where βx > ``threshold``, a jump of log(1 + e^{−t})/β there
  (2e-9 at the defaults, but any ``threshold`` is allowed), so its Lipschitz constant is
  infinite and no sector contains it: use :class:`Softplus` (continuous, same values elsewhere);
* ``nn.LeakyReLU`` with ``negative_slope < 0`` and ``nn.ELU`` with ``alpha < 0`` are refused
  (certnet's enclosures assume the monotone cases);
* ``nn.GELU`` reads ``approximate`` ("none" → gelu, "tanh" → gelu_tanh);
* ``inplace`` flags do not change the function and are ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = [
    "ActivationSpec",
    "GroupSort",
    "Softplus",
    "ACTIVATIONS",
    "activation_spec",
    "make_activation",
    "same_function",
    "spec_of_module",
]

_SILU = 0.0998393201288670
_GELU = 0.1289041451851548
_GELU_TANH = 0.1289930686587718


class GroupSort(nn.Module):
    """Sort the features in consecutive groups of ``group_size`` (1-Lipschitz, gradient-norm
    preserving). With ``group_size=2`` this is MaxMin.

    Parameters
    ----------
    group_size : int
        Size of each group, ≥ 2; the feature count must be a multiple of it.
    """

    def __init__(self, group_size: int = 2) -> None:
        super().__init__()
        if int(group_size) != group_size or group_size < 2:
            raise ValueError(f"group_size must be an integer >= 2, got {group_size!r}")
        self.group_size = int(group_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-1]
        if n % self.group_size:
            raise ValueError(
                f"GroupSort(group_size={self.group_size}) needs a feature count that is a "
                f"multiple of {self.group_size}, got {n}"
            )
        g = x.reshape(*x.shape[:-1], n // self.group_size, self.group_size)
        return torch.sort(g, dim=-1).values.reshape(x.shape)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}"


class Softplus(nn.Module):
    """Continuous softplus σ(x) = log(1 + e^{βx})/β, computed as

        σ(x) = max(x, 0) + log1p(e^{−β|x|})/β,

    which is exact in real arithmetic, never overflows and has no threshold. (``nn.Softplus``
    instead returns x where βx > ``threshold``: a jump of log(1 + e^{−t})/β, so an infinite
    Lipschitz constant; certnet refuses it for certificates.) Slope class [0, 1] for any β > 0.

    Parameters
    ----------
    beta : float
        β > 0 (default 1).

    Examples
    --------
    >>> import torch
    >>> f = Softplus(beta=2.0).double()
    >>> float(f(torch.tensor([0.0], dtype=torch.float64)))  # log(2)/2
    0.34657359027997264
    """

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        b = float(beta)
        if not (b > 0 and math.isfinite(b)):
            raise ValueError(f"Softplus needs a finite beta > 0, got {beta!r}")
        self.beta = b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) + torch.log1p(torch.exp(-self.beta * x.abs())) / self.beta

    def extra_repr(self) -> str:
        return f"beta={self.beta:g}"


@dataclass(frozen=True)
class ActivationSpec:
    """An activation with the facts certificates need.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"tanh"``.
    alpha, beta : float
        Slope bounds [α, β] (elementwise activations); for GroupSort both are ``nan``.
    elementwise : bool
        False for GroupSort: it has a Lipschitz constant but no per-neuron slope class.
    lipschitz : float
        max(|α|, |β|), the activation's Lipschitz constant.
    kwargs : dict
        Constructor arguments (e.g. ``negative_slope``), stored in saved models.
    """

    name: str
    alpha: float
    beta: float
    elementwise: bool = True
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def lipschitz(self) -> float:
        if not self.elementwise:
            return 1.0
        return max(abs(self.alpha), abs(self.beta))

    def module(self) -> nn.Module:
        """A fresh torch module computing this activation."""
        return make_activation(self.name, **self.kwargs)


def _slopes(name: str, kw: dict[str, Any]) -> tuple[float, float, bool]:
    if name == "identity":
        return 1.0, 1.0, True
    if name in ("relu",):
        return 0.0, 1.0, True
    if name == "leaky_relu":
        a = float(kw.get("negative_slope", 0.01))
        if not (a >= 0 and math.isfinite(a)):
            raise ValueError(f"leaky_relu needs negative_slope >= 0, got {a!r}")
        return min(a, 1.0), max(a, 1.0), True
    if name == "tanh":
        return 0.0, 1.0, True
    if name == "sigmoid":
        return 0.0, 0.25, True
    if name == "softplus":
        b = float(kw.get("beta", 1.0))
        if not b > 0:
            raise ValueError(f"softplus needs beta > 0, got {b!r}")
        return 0.0, 1.0, True
    if name == "elu":
        a = float(kw.get("alpha", 1.0))
        if not a >= 0:
            raise ValueError(f"elu needs alpha >= 0 for a known slope class, got {a!r}")
        return 0.0, max(1.0, a), True
    if name == "silu":
        return -_SILU, 1.0 + _SILU, True
    if name == "gelu":
        return -_GELU, 1.0 + _GELU, True
    if name == "gelu_tanh":
        return -_GELU_TANH, 1.0 + _GELU_TANH, True
    if name == "groupsort":
        return math.nan, math.nan, False
    raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")


_ALLOWED_KW = {
    "identity": (),
    "relu": (),
    "leaky_relu": ("negative_slope",),
    "tanh": (),
    "sigmoid": (),
    "softplus": ("beta",),
    "elu": ("alpha",),
    "silu": (),
    "gelu": (),
    "gelu_tanh": (),
    "groupsort": ("group_size",),
}
#: Names of the supported activations.
ACTIVATIONS = tuple(sorted(_ALLOWED_KW))


def activation_spec(name: str, **kwargs: Any) -> ActivationSpec:
    """Look up an activation and its slope bounds.

    Parameters
    ----------
    name : str
        One of :data:`ACTIVATIONS`.
    **kwargs
        Activation parameters (``negative_slope`` for leaky_relu, ``alpha`` for elu, ``beta``
        for softplus, ``group_size`` for groupsort).

    Raises
    ------
    ValueError
        Unknown activation (the message lists the valid names) or invalid parameter value.
    TypeError
        A keyword the activation does not take.

    Examples
    --------
    >>> s = activation_spec("sigmoid")
    >>> (s.alpha, s.beta, s.lipschitz)
    (0.0, 0.25, 0.25)
    """
    if not isinstance(name, str) or name.lower() not in _ALLOWED_KW:
        raise ValueError(f"unknown activation {name!r}; choose one of {list(ACTIVATIONS)}")
    name = name.lower()
    bad = set(kwargs) - set(_ALLOWED_KW[name])
    if bad:
        raise TypeError(
            f"activation {name!r} takes no keyword(s) {sorted(bad)}; "
            f"allowed: {list(_ALLOWED_KW[name])}"
        )
    alpha, beta, elementwise = _slopes(name, kwargs)
    return ActivationSpec(name, alpha, beta, elementwise, dict(kwargs))


_DEFAULTS = {"negative_slope": 0.01, "beta": 1.0, "alpha": 1.0, "group_size": 2}


def same_function(a: ActivationSpec, b: ActivationSpec) -> bool:
    """Whether two specs describe the same function (defaults filled in, so
    ``leaky_relu`` and ``leaky_relu(negative_slope=0.01)`` agree)."""

    def full(s: ActivationSpec) -> tuple:
        kw = {k: float(v) for k, v in {**_DEFAULTS, **s.kwargs}.items() if k in _ALLOWED_KW[s.name]}
        return s.name, tuple(sorted(kw.items()))

    return full(a) == full(b)


def make_activation(name: str, **kwargs: Any) -> nn.Module:
    """Build the torch module for a registered activation (see :func:`activation_spec`)."""
    spec = activation_spec(name, **kwargs)
    kw = spec.kwargs
    builders = {
        "identity": lambda: nn.Identity(),
        "relu": lambda: nn.ReLU(),
        "leaky_relu": lambda: nn.LeakyReLU(float(kw.get("negative_slope", 0.01))),
        "tanh": lambda: nn.Tanh(),
        "sigmoid": lambda: nn.Sigmoid(),
        "softplus": lambda: Softplus(beta=float(kw.get("beta", 1.0))),
        "elu": lambda: nn.ELU(alpha=float(kw.get("alpha", 1.0))),
        "silu": lambda: nn.SiLU(),
        "gelu": lambda: nn.GELU(),
        "gelu_tanh": lambda: nn.GELU(approximate="tanh"),
        "groupsort": lambda: GroupSort(int(kw.get("group_size", 2))),
    }
    return builders[spec.name]()


def spec_of_module(module: nn.Module) -> ActivationSpec | None:
    """The :class:`ActivationSpec` of a torch activation module, or None if it is not one.

    Only the exact types ``nn.Identity, nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.ELU,
    nn.SiLU, nn.GELU`` and certnet's :class:`Softplus` and :class:`GroupSort` are read (a
    subclass can override ``forward``); every argument that changes the function is read.

    Raises
    ------
    TypeError
        A known activation whose function has no slope class certnet can use: ``nn.Softplus``
        (discontinuous at its threshold; use :class:`Softplus`), ``nn.GELU`` with an unknown
        ``approximate``, a subclass of a supported activation.
    ValueError
        ``nn.LeakyReLU`` with ``negative_slope < 0``, ``nn.ELU`` with ``alpha < 0``.
    """
    t = type(module)
    if t is nn.Identity:
        return activation_spec("identity")
    if t is nn.ReLU:
        return activation_spec("relu")
    if t is nn.LeakyReLU:
        return activation_spec("leaky_relu", negative_slope=float(module.negative_slope))
    if t is nn.Tanh:
        return activation_spec("tanh")
    if t is nn.Sigmoid:
        return activation_spec("sigmoid")
    if t is Softplus:
        return activation_spec("softplus", beta=float(module.beta))
    if t is nn.ELU:
        return activation_spec("elu", alpha=float(module.alpha))
    if t is nn.SiLU:
        return activation_spec("silu")
    if t is nn.GELU:
        if module.approximate == "tanh":
            return activation_spec("gelu_tanh")
        if module.approximate == "none":
            return activation_spec("gelu")
        raise TypeError(
            f"nn.GELU(approximate={module.approximate!r}) is not a GELU certnet knows; use "
            "approximate='none' or 'tanh'"
        )
    if t is GroupSort:
        return activation_spec("groupsort", group_size=module.group_size)
    if t is nn.Softplus:
        b, th = float(module.beta), float(module.threshold)
        jump = math.log1p(math.exp(-th)) / b
        raise TypeError(
            f"nn.Softplus(beta={b:g}, threshold={th:g}) returns x itself where beta*x > "
            f"threshold, a jump of log(1 + e^-threshold)/beta = {jump:.3g} "
            "there, so its Lipschitz constant is infinite and no slope class holds; use "
            "certnet.nn.activations.Softplus(beta) (continuous, the same function elsewhere)"
        )
    for base in (
        nn.Identity,
        nn.ReLU,
        nn.LeakyReLU,
        nn.Tanh,
        nn.Sigmoid,
        nn.Softplus,
        nn.ELU,
        nn.SiLU,
        nn.GELU,
        Softplus,
        GroupSort,
    ):
        if isinstance(module, base):
            raise TypeError(
                f"{t.__name__} is a subclass of {base.__name__}, and a subclass can compute "
                f"something else (its own forward); use {base.__name__} itself"
            )
    return None
