"""NormalizedMLP: a multilayer perceptron whose Lipschitz constant is bounded by construction.

    f(x) = D_out · g(D_in (x − c_in)) + c_out,
    g    = W_L ∘ σ ∘ W_{L−1} ∘ … ∘ σ ∘ W_1   (with biases),   ‖W_k‖_F = r_k,

where D_in = diag(input_scale), D_out = diag(output_scale) are fixed (not trained) and c_in,
c_out are offsets. For every value of the weights and biases

    Lip(f) ≤ max|D_out| · ∏_k r_k · Lip(σ)^{L−1} · max|D_in|  =  ``lipschitz_bound()``,

in the user's units (output units per input unit), because ‖W‖₂ ≤ ‖W‖_F and a diagonal matrix
has spectral norm max|d_i|.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import torch
from torch import nn

from certnet.nn.activations import (
    ACTIVATIONS,
    ActivationSpec,
    activation_spec,
    same_function,
    spec_of_module,
)
from certnet.nn.frobenius import MODES, FrobeniusLinear

__all__ = ["NormalizedMLP", "radii_for_budget"]


def _positive(name: str, value: float, example: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{name} must be > 0 and finite, got {value!r}; {example}")
    return v


def radii_for_budget(budget: float, depth: int, fixed_factor: float) -> list[float]:
    """Equal radii r with fixed_factor · r^depth ≤ budget (equality up to one ulp per layer).

    Parameters
    ----------
    budget : float
        Lipschitz budget L > 0 in output units per input unit.
    depth : int
        Number of weight layers.
    fixed_factor : float
        Product of everything that is not a radius (scalings, activation constants).
    """
    r = (budget / fixed_factor) ** (1.0 / depth)
    # Round down until the product, evaluated the way lipschitz_bound() does, is within budget.
    while _prod_up([fixed_factor] + [r] * depth) > budget:
        r = math.nextafter(r, 0.0)
    return [r] * depth


def _prod_up(factors: Sequence[float]) -> float:
    """The exact product of non-negative floats, rounded up to a float (computed in rationals,
    so an exact product such as 3 · 2 stays 6.0 and any other is one rounding above)."""
    exact = math.prod((Fraction(f) for f in factors), start=Fraction(1))
    p = float(exact)
    return math.nextafter(p, math.inf) if Fraction(p) < exact else p


class NormalizedMLP(nn.Module):
    """MLP of :class:`FrobeniusLinear` layers with a by-construction Lipschitz bound.

    Parameters
    ----------
    widths : sequence of int
        Layer widths [d_0, d_1, …, d_L], length ≥ 2 (d_0 inputs, d_L outputs).
    activation : str
        Hidden activation, one of :data:`certnet.nn.ACTIVATIONS` (default "tanh").
    lipschitz : float, optional
        Budget L in output units per input unit; certnet chooses equal radii so that
        ``lipschitz_bound() ≤ L`` (equal up to round-off). Exclusive with ``radii``.
    radii : float or sequence of float, optional
        Frobenius radii r_k (one per layer, or one for all). Default: 1.0 per layer when neither
        ``radii`` nor ``lipschitz`` is given.
    bias : bool
        Biases in every layer (they do not change the bound).
    input_scale, output_scale : float or sequence of float
        Positive diagonal scalings D_in (length d_0) and D_out (length d_L); default 1.
    input_offset, output_offset : float or sequence of float
        Offsets c_in (subtracted from the input) and c_out (added to the output); default 0.
    mode : {"sphere", "ball"}
        Frobenius constraint of every layer.
    conditioning : {None, "row"}
        Optional weight conditioning of every layer (row equilibration, sphere mode only; see
        :mod:`certnet.nn.frobenius`). The bound is unchanged.
    activation_kwargs : dict, optional
        Parameters of the activation (e.g. ``{"negative_slope": 0.1}``).
    dtype : torch.dtype, optional
        Parameter dtype (default: torch's default dtype).
    seed : int, optional
        Seed for the orthogonal initialisation (uses its own generator).

    Raises
    ------
    ValueError
        widths shorter than 2 or not positive integers; non-positive radius, budget or scale;
        both ``radii`` and ``lipschitz`` given; unknown activation.

    Examples
    --------
    >>> net = NormalizedMLP([3, 64, 64, 1], activation="tanh", lipschitz=25.0)
    >>> round(net.lipschitz_bound(), 9)
    25.0
    """

    def __init__(
        self,
        widths: Sequence[int],
        activation: str = "tanh",
        lipschitz: float | None = None,
        radii: float | Sequence[float] | None = None,
        bias: bool = True,
        *,
        input_scale: float | Sequence[float] = 1.0,
        output_scale: float | Sequence[float] = 1.0,
        input_offset: float | Sequence[float] = 0.0,
        output_offset: float | Sequence[float] = 0.0,
        mode: str = "sphere",
        conditioning: str | None = None,
        activation_kwargs: dict[str, Any] | None = None,
        dtype: torch.dtype | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        widths = list(widths)
        if len(widths) < 2:
            raise ValueError(
                f"widths needs at least 2 entries [inputs, ..., outputs], got {widths!r}"
            )
        for w in widths:
            if not isinstance(w, int) or isinstance(w, bool) or w < 1:
                raise ValueError(f"every width must be a positive integer, got {widths!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if lipschitz is not None and radii is not None:
            raise ValueError(
                "give either lipschitz (certnet chooses the radii) or radii (certnet reports "
                "the bound), not both"
            )
        self.widths = widths
        self.act_spec: ActivationSpec = activation_spec(activation, **(activation_kwargs or {}))
        if self.act_spec.name == "groupsort":
            g = self.act_spec.kwargs.get("group_size", 2)
            if any(w % g for w in widths[1:-1]):
                raise ValueError(f"groupsort needs hidden widths divisible by {g}, got {widths}")
        self.bias = bool(bias)
        self.mode = mode
        self.conditioning = conditioning
        depth = len(widths) - 1
        if radii is None:
            radii = [1.0] * depth
        elif isinstance(radii, (int, float)):
            radii = [float(radii)] * depth
        radii = list(radii)
        if len(radii) != depth:
            raise ValueError(f"need one radius per layer ({depth}), got {len(radii)}")
        radii = [_positive("radius", r, "e.g. radii=1.0") for r in radii]

        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(int(seed))
            self.linears = nn.ModuleList(
                FrobeniusLinear(
                    a, b, bias, radius=r, mode=mode, conditioning=conditioning, dtype=dtype
                )
                for a, b, r in zip(widths[:-1], widths[1:], radii, strict=True)
            )
        self.acts = nn.ModuleList(self.act_spec.module() for _ in range(depth - 1))
        fdt = self.linears[0].point.dtype
        self.register_buffer("input_offset", self._vec(input_offset, widths[0], fdt, "offset"))
        self.register_buffer("input_scale", self._vec(input_scale, widths[0], fdt, "scale"))
        self.register_buffer("output_scale", self._vec(output_scale, widths[-1], fdt, "scale"))
        self.register_buffer("output_offset", self._vec(output_offset, widths[-1], fdt, "offset"))
        self.budget: float | None = None
        if lipschitz is not None:
            self.set_budget(lipschitz)

    # ------------------------------------------------------------------ construction helpers
    @staticmethod
    def _vec(value, n: int, dtype, kind: str) -> torch.Tensor:
        t = torch.as_tensor(value, dtype=torch.float64).flatten()
        if t.numel() == 1:
            t = t.expand(n).clone()
        if t.numel() != n:
            raise ValueError(
                f"expected a scalar or {n} values for the input/output {kind}, got {t.numel()}"
            )
        if not torch.isfinite(t).all():
            raise ValueError(f"input/output {kind} must be finite, got {t.tolist()}")
        if kind == "scale" and not (t > 0).all():
            raise ValueError(f"scales must be > 0, got {t.tolist()}; pass e.g. 1/std of the data")
        return t.to(dtype)

    # ------------------------------------------------------------------ the bound
    @property
    def depth(self) -> int:
        """Number of weight layers L."""
        return len(self.linears)

    @property
    def radii(self) -> list[float]:
        """Frobenius radii [r_1, …, r_L]."""
        return [lin.radius for lin in self.linears]

    def activation_specs(self) -> list[ActivationSpec]:
        """The specs of the activation modules :meth:`forward` calls (``acts[k]`` after layer k,
        for k < min(len(acts), L)), read from the modules themselves, not from ``act_spec``:
        changing ``net.acts[0].negative_slope`` changes the function, and so the bound.

        Raises
        ------
        TypeError
            An activation module certnet cannot read (the message names it and what to do).
        """
        specs = []
        for k, act in enumerate(list(self.acts)[: self.depth]):
            try:
                spec = spec_of_module(act)
            except (TypeError, ValueError) as e:
                raise type(e)(f"NormalizedMLP.acts[{k}]: {e}") from None
            if spec is None:
                raise TypeError(
                    f"NormalizedMLP.acts[{k}] is a {type(act).__name__}, not an activation "
                    f"certnet can read; use make_activation(name) with a name in {ACTIVATIONS}"
                )
            # the constructor's spec when it is the same function (keeps saved kwargs as given)
            specs.append(self.act_spec if same_function(spec, self.act_spec) else spec)
        return specs

    def fixed_factor(self) -> float:
        """Everything in the bound except the radii: max|D_in| · max|D_out| · ∏ Lip(σ_k),
        rounded up (the σ_k read from the modules :meth:`forward` calls)."""
        s_in = float(self.input_scale.abs().max())
        s_out = float(self.output_scale.abs().max())
        return _prod_up([s_in, s_out, *(a.lipschitz for a in self.activation_specs())])

    def lipschitz_bound(self) -> float:
        """By-construction bound on Lip(f), ℓ2 → ℓ2, in output units per input unit.

        max|D_out| · ∏ r_k · ∏ Lip(σ_k) · max|D_in|, with the float64 products rounded up; it
        holds for every weight and bias value the constraint allows, so at every step of
        training, and for the weights as they run in the net's dtype: the parametrisation
        keeps the *rounded* weight inside ‖W‖_F ≤ r (Note [sound radius] in
        :mod:`certnet.nn.frobenius`).
        """
        return _prod_up([self.fixed_factor(), *self.radii])

    def set_radii(self, radii: float | Sequence[float]) -> None:
        """Set r_k, rescaling each stored point (the budget, if any, is dropped)."""
        if isinstance(radii, (int, float)):
            radii = [float(radii)] * self.depth
        radii = list(radii)
        if len(radii) != self.depth:
            raise ValueError(f"need one radius per layer ({self.depth}), got {len(radii)}")
        for lin, r in zip(self.linears, radii, strict=True):
            lin.set_radius(_positive("radius", r, "e.g. 1.0"))
        self.budget = None

    def set_budget(self, lipschitz: float) -> None:
        """Choose equal radii so that ``lipschitz_bound() ≤ lipschitz`` (equal to round-off)."""
        budget = _positive(
            "lipschitz",
            lipschitz,
            "pass the bound in output units per input unit, e.g. lipschitz=25.0",
        )
        self.set_radii(radii_for_budget(budget, self.depth, self.fixed_factor()))
        self.budget = budget

    def set_normalization(
        self,
        *,
        input_offset=None,
        input_scale=None,
        output_offset=None,
        output_scale=None,
        keep_budget: bool = True,
    ) -> None:
        """Replace the fixed input/output affine maps (e.g. after fitting data statistics).

        With a budget set and ``keep_budget=True`` the radii are re-chosen so that the bound in
        the user's units stays equal to the budget; otherwise the radii stay and the bound moves.
        """
        d0, dl = self.widths[0], self.widths[-1]
        dt = self.input_scale.dtype
        with torch.no_grad():
            for name, v, n, kind in (
                ("input_offset", input_offset, d0, "offset"),
                ("input_scale", input_scale, d0, "scale"),
                ("output_offset", output_offset, dl, "offset"),
                ("output_scale", output_scale, dl, "scale"),
            ):
                if v is not None:
                    getattr(self, name).copy_(self._vec(v, n, dt, kind))
        if keep_budget and self.budget is not None:
            self.set_budget(self.budget)

    # ------------------------------------------------------------------ evaluation
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.widths[0]:
            raise ValueError(
                f"expected inputs with last dimension {self.widths[0]}, got shape {tuple(x.shape)}"
            )
        h = (x - self.input_offset) * self.input_scale
        for k, lin in enumerate(self.linears):
            h = lin(h)
            if k < len(self.acts):
                h = self.acts[k](h)
        return h * self.output_scale + self.output_offset

    def config(self) -> dict[str, Any]:
        """JSON-serialisable architecture (what :func:`certnet.save` writes in the header)."""
        specs = self.activation_specs() or [self.act_spec]
        if len(self.acts) != self.depth - 1 or any(a != specs[0] for a in specs):
            raise ValueError(
                "the activation modules in net.acts are not one activation after each hidden "
                f"layer ({[a.name for a in specs]}); the saved architecture could not rebuild "
                "this net; restore net.acts or build a new NormalizedMLP"
            )
        return {
            "widths": list(self.widths),
            "activation": specs[0].name,
            "activation_kwargs": dict(specs[0].kwargs),
            "radii": self.radii,
            "bias": self.bias,
            "mode": self.mode,
            "conditioning": self.conditioning,
            "budget": self.budget,
            "dtype": str(self.input_scale.dtype).replace("torch.", ""),
        }

    def extra_repr(self) -> str:
        return f"lipschitz_bound={self.lipschitz_bound():.6g}"
