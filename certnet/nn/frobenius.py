"""Frobenius-normalised linear layers, built on ``torch.nn.utils.parametrize``.

A :class:`FrobeniusLinear` layer computes y = W x + b with

* mode ``"sphere"`` (default): ‖W‖_F = r exactly, so ‖W‖₂ ≤ ‖W‖_F = r;
* mode ``"ball"``:             ‖W‖_F ≤ r.

How the parametrisation and the optimisers share the weight
----------------------------------------------------------
The stored tensor ``layer.parametrizations.weight.original`` *is* the point on the sphere. The
parametrisation's forward is W = r X / ‖X‖_F ("sphere") or X · min(1, r/‖X‖_F) ("ball"), with
r shrunk by a factor 1 − δ (δ = 2.4e-7 in float32, ~1e-13 in float64) so that the weight that
runs, *after* rounding, has ‖W‖_F ≤ r exactly (see Note [sound radius] in the code):

* on the sphere it is the identity (to round-off and δ), so the weight the network uses is the
  stored point, and certnet's optimisers move that point along geodesics (exponential map) in place;
* its Jacobian at a point of S_r is the tangent projection P_X, so ``original.grad`` after
  ``backward()`` is already the Riemannian gradient;
* any other optimiser (Adam, SGD) can step ``original`` freely and the weight still satisfies
  the constraint exactly, because it is re-normalised in every forward pass.

``right_inverse`` projects an assigned weight onto the constraint set, so ``layer.weight = W``
stores r W/‖W‖_F. :func:`frobenius_norm` registers the parametrisation on any module with a
2-D weight, mirroring ``torch.nn.utils.parametrizations.weight_norm``.

State dict, pickling, points that drifted
-----------------------------------------
The radius is a Python float (``.float()`` must not round it), and it travels in the state dict
as the float64 scalar ``parametrizations.weight.0.radius``: loading a state dict saved with
another radius is an error (it would change the function and its bound), and a state dict
written before the entry existed loads with a warning, keeping the layer's radius (see Note
[radius in the state dict]). A layer pickles by rebuilding itself from its constructor
arguments and tensors (torch refuses to pickle parametrised modules as they are).
:meth:`FrobeniusLinear.sphere_point` moves a point that Adam or SGD let drift back onto S_r,
keeping the forward weight; :func:`certnet.save` writes it.

Weight conditioning (optional, ``conditioning="row"``)
-----------------------------------------------------
Following the idea of weight conditioning (Saratchandran, Wang & Lucey, ECCV 2024: shrink the
gap between the largest and smallest singular values of a weight to smooth the loss landscape),
the layer can use W = r · D(X) X / ‖D(X) X‖_F with D(X) = diag(1/‖x_i‖₂), i.e. every row
equilibrated to norm r/√m. The paper's exact conditioner could not be confirmed from the sources;
row equilibration is the classical diagonal conditioner (van der Sluis: within a factor √m of the
best diagonal scaling), and it removes exactly the ill-conditioning that unequal row norms cause.
The constraint ‖W‖_F = r still holds, so the Lipschitz bound is unchanged, and the map is
scale-invariant in X, so the optimisers' geodesic steps on the stored point remain valid.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn
from torch.nn.utils import parametrize

__all__ = ["FrobeniusLinear", "frobenius_norm", "is_frobenius", "MODES", "CONDITIONINGS"]

MODES = ("sphere", "ball")
#: Weight conditioners: None (plain) or "row" (row equilibration).
CONDITIONINGS = (None, "row")


def _check_radius(radius: float) -> float:
    try:
        r = float(radius)
    except (TypeError, ValueError):
        raise TypeError(f"radius must be a positive number, got {radius!r}") from None
    if not (r > 0 and math.isfinite(r)):
        raise ValueError(
            f"radius must be > 0 and finite, got {radius!r}; it is the Frobenius norm ‖W‖_F of "
            "the layer (and bounds its Lipschitz constant), e.g. radius=1.0"
        )
    return r


class _FrobeniusConstraint(nn.Module):
    """W = r X/‖X‖_F (sphere) or X·min(1, r/‖X‖_F) (ball). Users call :func:`frobenius_norm`."""

    def __init__(self, radius: float, mode: str, conditioning: str | None = None) -> None:
        super().__init__()
        self.mode = mode
        self.conditioning = conditioning
        # A Python float, not a buffer: .float()/.half() must not round the radius (the bound
        # ∏ r_k is computed from it); saved models carry it in their header.
        self.radius = float(radius)

    def _scale(self, x: torch.Tensor) -> torch.Tensor:
        """r/‖X‖_F ("sphere") or min(1, r/‖X‖_F) ("ball"), as projections compute it: what
        ``right_inverse`` stores, so the stored point lies on S_r the way the optimisers'
        ``projx`` puts it there."""
        n = torch.linalg.vector_norm(x)
        if self.mode == "sphere":
            return self.radius / n
        return torch.clamp(self.radius / n, max=1.0)

    def _safe_scale(self, x: torch.Tensor) -> torch.Tensor:
        # Note [sound radius]: the weight that runs is W̃ = fl(X · fl(s)), and ‖W̃‖_F (exact) must
        # not exceed r, or ∏ r_k is not a bound on the network that runs (a float32 rank-1 layer
        # exceeded it by a few ulps when s = r/‖X‖ was computed in float32). So the norm is
        # computed in float64 (squares of float32 values are exact there; the sum of n terms has
        # relative error ≤ n·u64 in any order) and s is shrunk by δ = 4u + (n + 8)·u64, u the
        # unit round-off of X's dtype: fl(s) and the product each add at most one u, the norm
        # and the quotient (n + 2)·u64, so ‖W̃‖_F ≤ r (1 − δ)(1 + u)²(1 + (n + 4)·u64) ≤ r.
        # The shrink is 2.4e-7 relative in float32, 1e-13 in float64 for n ≤ 10⁵.
        n = torch.linalg.vector_norm(x.to(torch.float64))
        u = torch.finfo(x.dtype).eps / 2
        delta = 4.0 * u + (x.numel() + 8) * (torch.finfo(torch.float64).eps / 2)
        s = (self.radius / n) * (1.0 - delta)
        if self.mode == "sphere":
            return s
        # If s ≥ 1 the weight is X itself, and ‖X‖_F ≤ n (1 + (n+4)·u64) ≤ r (same bound).
        return torch.clamp(s, max=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conditioning == "row":
            rows = torch.linalg.vector_norm(x, dim=1, keepdim=True)
            x = x / rows.clamp_min(torch.finfo(x.dtype).tiny)
        return x * self._safe_scale(x)

    def right_inverse(self, w: torch.Tensor) -> torch.Tensor:
        n = torch.linalg.vector_norm(w)
        if not torch.isfinite(n) or n == 0:
            raise ValueError(
                f"cannot place a weight with Frobenius norm {float(n)} on the constraint set; "
                "pass a finite, non-zero matrix"
            )
        return w * self._scale(w)

    # Note [radius in the state dict]: the radius is a Python float (see __init__), yet it
    # decides the function, so it travels in the state dict as a float64 scalar under
    # ``<prefix>radius``, written from the float (``.float()`` cannot round it) and compared
    # exactly on load: loading weights trained with other radii into this layer would silently
    # change the function and the bound. A state dict without the entry (written before certnet
    # stored it) loads with a warning and keeps this layer's radius.
    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        destination[prefix + "radius"] = torch.tensor(self.radius, dtype=torch.float64)

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        key = prefix + "radius"
        if key not in state_dict:
            warnings.warn(
                f"state dict has no {key!r} (saved before certnet stored radii); the layer keeps "
                f"its radius {self.radius!r}. Check that it is the radius the weights were "
                "trained with, then re-save the state dict",
                UserWarning,
                stacklevel=4,
            )
        else:
            t = state_dict[key]
            stored = float(t) if isinstance(t, torch.Tensor) and t.numel() == 1 else None
            if stored != self.radius:
                error_msgs.append(
                    f"{key}: the state dict was saved with radius {stored!r} but this layer has "
                    f"radius {self.radius!r}; loading it would change the function and its "
                    "Lipschitz bound. Build the net with the saved radii (e.g. "
                    "NormalizedMLP(..., radii=...)) or call set_radii before loading"
                )
        rest = {k: v for k, v in state_dict.items() if k != key}
        super()._load_from_state_dict(
            rest, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def extra_repr(self) -> str:
        cond = f", conditioning={self.conditioning!r}" if self.conditioning else ""
        return f"radius={self.radius:g}, mode={self.mode!r}{cond}"


def frobenius_norm(
    module: nn.Module,
    name: str = "weight",
    radius: float = 1.0,
    *,
    mode: str = "sphere",
    conditioning: str | None = None,
) -> nn.Module:
    """Constrain ``module.<name>`` to the Frobenius sphere (or ball) of the given radius.

    Parameters
    ----------
    module : nn.Module
        Module with a 2-D tensor ``name`` (e.g. ``nn.Linear``).
    name : str
        Name of the weight tensor.
    radius : float
        r > 0: ‖W‖_F = r ("sphere") or ‖W‖_F ≤ r ("ball").
    mode : {"sphere", "ball"}
        Constraint set.
    conditioning : {None, "row"}
        Weight conditioner (sphere mode only); see the module docstring.

    Returns
    -------
    nn.Module
        The same module, parametrised (calls chain, as in ``torch.nn.utils.parametrize``).

    Raises
    ------
    ValueError
        Non-positive radius, unknown mode, a weight that is not a non-zero matrix, or a module
        that is already Frobenius-normalised.
    """
    r = _check_radius(radius)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if conditioning not in CONDITIONINGS:
        raise ValueError(f"conditioning must be one of {CONDITIONINGS}, got {conditioning!r}")
    if conditioning is not None and mode != "sphere":
        raise ValueError("weight conditioning needs mode='sphere' (it fixes ‖W‖_F = r)")
    w = getattr(module, name, None)
    if not isinstance(w, torch.Tensor) or w.ndim != 2:
        raise ValueError(
            f"expected {type(module).__name__}.{name} to be a matrix; got "
            f"{type(w).__name__ if not isinstance(w, torch.Tensor) else f'{w.ndim}-D tensor'}"
        )
    if is_frobenius(module, name):
        raise ValueError(f"{type(module).__name__}.{name} is already Frobenius-normalised")
    parametrize.register_parametrization(module, name, _FrobeniusConstraint(r, mode, conditioning))
    return module


def is_frobenius(module: nn.Module, name: str = "weight") -> bool:
    """Whether ``module.<name>`` carries a Frobenius constraint."""
    if not parametrize.is_parametrized(module, name):
        return False
    return any(isinstance(p, _FrobeniusConstraint) for p in module.parametrizations[name])


class FrobeniusLinear(nn.Linear):
    """Linear layer y = W x + b with ‖W‖_F = r (mode "sphere") or ≤ r (mode "ball").

    Its Lipschitz constant (ℓ2 → ℓ2) is ‖W‖₂ ≤ ‖W‖_F ≤ r for every value of the weights.

    Parameters
    ----------
    in_features, out_features : int
        Sizes, ≥ 1.
    bias : bool
        Whether to learn an additive bias (it does not change the Lipschitz constant).
    radius : float
        r > 0.
    mode : {"sphere", "ball"}
        Constraint set.
    conditioning : {None, "row"}
        Optional weight conditioning (row equilibration; sphere mode only).
    device, dtype
        As for ``nn.Linear``.

    Notes
    -----
    Initialisation: an orthogonal matrix scaled to ‖W‖_F = r, so all min(m, n) singular values
    equal r/√min(m, n) (the best-conditioned point of the sphere). See the module docstring for
    how the optimisers share the stored point.

    Examples
    --------
    >>> layer = FrobeniusLinear(3, 4, radius=2.0)
    >>> round(float(layer.weight.detach().norm()), 5)  # r(1 − δ), δ = 2.4e-7 (Note [sound radius])
    2.0
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        radius: float = 1.0,
        mode: str = "sphere",
        conditioning: str | None = None,
        device=None,
        dtype=None,
    ) -> None:
        for n, v in (("in_features", in_features), ("out_features", out_features)):
            if int(v) != v or v < 1:
                raise ValueError(f"{n} must be a positive integer, got {v!r}")
        r = _check_radius(radius)
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        with torch.no_grad():
            nn.init.orthogonal_(self.weight)
            if self.bias is not None:
                self.bias.zero_()
        frobenius_norm(self, "weight", r, mode=mode, conditioning=conditioning)

    @property
    def radius(self) -> float:
        """r, the Frobenius radius of the weight."""
        return self.parametrizations.weight[0].radius

    @property
    def mode(self) -> str:
        """ "sphere" or "ball"."""
        return self.parametrizations.weight[0].mode

    @property
    def conditioning(self) -> str | None:
        """None or "row" (see the module docstring)."""
        return self.parametrizations.weight[0].conditioning

    @property
    def point(self) -> nn.Parameter:
        """The stored point on the sphere (the parameter optimisers move)."""
        return self.parametrizations.weight.original

    def __reduce__(self):
        # torch.nn.utils.parametrize forbids pickling parametrised modules (its injected class
        # raises in __getstate__, and that class is not importable by name). The layer is
        # rebuilt instead from its constructor arguments and tensors, so a NormalizedMLP pickles
        # (multiprocessing, stable-baselines3, torch.save of a whole module); copy.deepcopy
        # keeps torch's own path. Hooks registered on the layer are not carried over.
        tensors = {"point": self.point.detach(), "bias": None}
        if self.bias is not None:
            tensors["bias"] = self.bias.detach()
        grads = {n: p.requires_grad for n, p in (("point", self.point), ("bias", self.bias))
                 if p is not None}
        args = (self.in_features, self.out_features, self.radius, self.mode, self.conditioning)
        return _rebuild_frobenius_linear, (args, tensors, grads, self.training)

    def sphere_point(self) -> torch.Tensor:
        """The stored point moved back onto S_r, keeping the weight forward computes.

        Plain optimisers (Adam, SGD, stable-baselines3) step the stored point freely: the
        function stays constrained (forward re-normalises) but the point drifts off S_r, and a
        file holding it cannot be told from a corrupted one (:func:`certnet.load` checks the
        sphere). This returns a point y on S_r with ``forward(y) == forward(point)``, searched
        entry by entry (y_i with fl(y_i · s) = W_i for the scale s that y itself gets); where
        no such y exists (the scale is itself rounded) the closest found is returned and the
        weight moves by a rounding, a few ulps per entry (≤ 4 in certnet's tests, also with
        ``conditioning="row"``, which gets the plain projection r X/‖X‖_F since its forward
        rounds twice). The bound ∏ r_k holds
        either way: it holds for every point. Mode "ball" has no sphere: a copy of the stored
        point is returned.

        Returns
        -------
        torch.Tensor
            A new tensor (the layer is not modified).
        """
        x = self.point.detach()
        if self.mode != "sphere":
            return x.clone()
        constraint = self.parametrizations.weight[0]
        with torch.no_grad():
            target = constraint(x)
            y = constraint.right_inverse(x)
            if self.conditioning is not None:
                return y
            # rounding error in ulps of the target weight (the spacing above |W_i|)
            ulp = torch.nextafter(target.abs(), torch.full_like(target, torch.inf)) - target.abs()

            def ulps(z: torch.Tensor) -> torch.Tensor:
                return ((constraint(z) - target).abs() / ulp).max()

            best, best_err = y, ulps(y)
            for _ in range(8):
                s = constraint._safe_scale(y).to(y.dtype)  # the scale forward multiplies by
                z = target / s
                for _ in range(4):  # W = z · s with s > 0: one ulp of z moves W towards W_i
                    w = z * s
                    bad = w != target
                    if not bad.any():
                        break
                    toward = torch.where(target > w, torch.inf, -torch.inf).to(z.dtype)
                    z = torch.where(bad, torch.nextafter(z, toward), z)
                err = ulps(z)
                if err == 0:
                    return z
                if err < best_err:
                    best, best_err = z, err
                y = z  # z's own scale differs by an ulp: solve again from it
        return best

    def set_radius(self, radius: float) -> None:
        """Change r, rescaling the stored point so the function scales by r_new/r_old."""
        r = _check_radius(radius)
        constraint = self.parametrizations.weight[0]
        with torch.no_grad():
            self.point.mul_(r / constraint.radius)
        constraint.radius = r

    def extra_repr(self) -> str:
        return super().extra_repr() + f", radius={self.radius:g}, mode={self.mode!r}"


def _rebuild_frobenius_linear(args, tensors, grads, training) -> FrobeniusLinear:
    """Unpickle a :class:`FrobeniusLinear` (see ``__reduce__``); draws nothing from torch's RNG."""
    in_f, out_f, radius, mode, conditioning = args
    point = tensors["point"]
    with torch.random.fork_rng(devices=[]):
        layer = FrobeniusLinear(
            in_f, out_f, tensors["bias"] is not None, radius=radius, mode=mode,
            conditioning=conditioning, device=point.device, dtype=point.dtype,
        )
    with torch.no_grad():
        layer.point.copy_(point)
        if layer.bias is not None:
            layer.bias.copy_(tensors["bias"])
    layer.point.requires_grad_(grads["point"])
    if layer.bias is not None:
        layer.bias.requires_grad_(grads["bias"])
    return layer.train(training)
