"""Data normalisation by the ℓ2–ℓ2 gain of the initialised network."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from certnet.nn.mlp import NormalizedMLP

__all__ = ["Normalization", "normalize_data", "as_data", "MODES"]


#: How :func:`normalize_data` chose the output scale (see its docstring).
MODES = ("gain", "budget")


@dataclass(frozen=True)
class Normalization:
    """The scalings :func:`normalize_data` stored in the network (floats, user units).

    Attributes
    ----------
    input_offset, output_offset : list of float
        c_in = mean of X, c_out = mean of Y (per coordinate).
    input_scale : float
        s_in = √d₀ / rms‖X − c_in‖: unit rms per coordinate, one scalar for all inputs so the
        ℓ2 geometry of the inputs (and the meaning of the bound) is kept.
    output_scale : float
        ``mode="gain"``: s_out = rms‖Y − c_out‖ / (γ₀ · rms‖x̂‖) with x̂ = s_in (X − c_in);
        ``mode="budget"``: s_out = rms‖Y − c_out‖ / √d_L.
    gain : float
        γ₀, the empirical ℓ2–ℓ2 gain of the initialised inner network g on the scaled inputs,
        rms‖g(x̂) − g(0)‖ / rms‖x̂‖ (with the radii the network has after the call).
    mode : {"gain", "budget"}
        "gain": no budget, the radii are the user's and s_out matches the targets to the
        initial network; "budget": the budget is kept in the radii and the targets have unit
        rms per coordinate in internal units.
    radii : list of float
        The radii after the call.
    """

    input_offset: list[float]
    input_scale: float
    output_offset: list[float]
    output_scale: float
    gain: float
    mode: str
    radii: list[float]


def as_data(x, name: str, *, dtype: torch.dtype) -> torch.Tensor:
    """``x`` as a finite 2-D tensor of ``dtype`` (a 1-D array is one feature per sample).

    Raises
    ------
    ValueError
        Not 1-D or 2-D, empty, or containing NaN/inf.
    """
    t = torch.as_tensor(x).to(dtype)
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim != 2 or t.shape[0] == 0:
        raise ValueError(
            f"{name} must be an array of shape (samples, features), got shape {tuple(t.shape)}"
        )
    bad = ~torch.isfinite(t)
    if bad.any():
        row = int(bad.any(dim=1).nonzero()[0, 0])
        raise ValueError(f"{name} contains NaN/inf (first at sample {row}); clean the data first")
    return t


def _rms(t: torch.Tensor) -> float:
    return float(t.pow(2).sum(dim=1).mean().sqrt())


@torch.no_grad()
def normalize_data(net: NormalizedMLP, X, Y) -> Normalization:
    """Choose and store the network's input/output scalings from the data.

    Inputs are centred and scaled by one scalar to unit rms per coordinate (‖x̂‖ ≈ √d₀). The
    output scale depends on whether the network has a Lipschitz budget:

    * **budget set** (``NormalizedMLP(..., lipschitz=L)``): s_out = rms‖Y − c_out‖ / √d_L, so
      the targets have unit rms per coordinate in the network's internal units and the loss
      starts at a scale where float32 steps resolve; the budget is then kept *in the radii*
      (``set_normalization(keep_budget=True)`` re-chooses r_k so that the bound in user units
      is L). An output scale fitted to the initial network instead (the "gain" rule below)
      can be thousands at depth, which leaves radii of ~0.2, a nearly linear network and an
      internal loss of ~1e-7: the budget would be spent on the scalings, not on the network.
    * **no budget** (the radii are the user's): s_out is chosen so that the targets, in
      internal units, have the size the initialised inner network g produces on x̂:
      ŷ = (y − c_out)/s_out has rms‖ŷ‖ = γ₀ rms‖x̂‖, where γ₀ = rms‖g(x̂) − g(0)‖ / rms‖x̂‖ is
      g's empirical ℓ2–ℓ2 gain on the data; then the MM majoriser's assumption (outputs and
      targets of the same scale, AGD's ‖f(x)‖ ≈ ‖y‖) holds at initialisation. The bound
      moves with s_out.

    Parameters
    ----------
    net : NormalizedMLP
        The initialised network (any current scalings are replaced).
    X : array, shape (n, d₀)
        Inputs in user units.
    Y : array, shape (n, d_L)
        Targets in user units.

    Returns
    -------
    Normalization
        The values stored.

    Raises
    ------
    TypeError
        ``net`` is not a NormalizedMLP.
    ValueError
        Shapes that do not match the network, NaN/inf in the data, constant inputs or targets,
        a network that is constant on the data.

    Examples
    --------
    >>> import torch, certnet as cn
    >>> net = cn.nn.NormalizedMLP([2, 16, 1], lipschitz=3.0, seed=0)
    >>> X = torch.randn(256, 2); Y = 5.0 * torch.tanh(X[:, :1])
    >>> norm = normalize_data(net, X, Y)
    >>> norm.mode, round(net.lipschitz_bound(), 6)
    ('budget', 3.0)
    """
    if not isinstance(net, NormalizedMLP):
        raise TypeError(
            f"normalize_data needs a certnet.nn.NormalizedMLP (it stores the scalings in the "
            f"network), got {type(net).__name__}"
        )
    dt = net.input_scale.dtype
    X = as_data(X, "X", dtype=dt)
    Y = as_data(Y, "Y", dtype=dt)
    if X.shape[1] != net.widths[0] or Y.shape[1] != net.widths[-1] or len(X) != len(Y):
        raise ValueError(
            f"the network maps {net.widths[0]} inputs to {net.widths[-1]} outputs; got X of shape "
            f"{tuple(X.shape)} and Y of shape {tuple(Y.shape)}"
        )
    c_in, c_out = X.mean(dim=0), Y.mean(dim=0)
    rx, ry = _rms(X - c_in), _rms(Y - c_out)
    for name, v in (("X", rx), ("Y", ry)):
        if v == 0.0:
            raise ValueError(f"{name} is constant; there is nothing to fit")
    s_in = (X.shape[1] ** 0.5) / rx
    xh = (X - c_in) * s_in
    mode = "gain" if net.budget is None else "budget"
    if mode == "budget":
        s_out = ry / Y.shape[1] ** 0.5
        net.set_normalization(
            input_offset=c_in, input_scale=s_in, output_offset=c_out, output_scale=s_out
        )
    else:
        net.set_normalization(
            input_offset=c_in, input_scale=s_in, output_offset=0.0, output_scale=1.0
        )
    gain = _rms(net(X) - net(c_in[None])) / _rms(xh) / float(net.output_scale[0])
    if not gain > 0.0:
        raise ValueError("the initialised network is constant on the data; re-initialise it")
    if mode == "gain":
        s_out = ry / (gain * _rms(xh))
        net.set_normalization(output_offset=c_out, output_scale=s_out)
    return Normalization(c_in.tolist(), s_in, c_out.tolist(), s_out, gain, mode, net.radii)
