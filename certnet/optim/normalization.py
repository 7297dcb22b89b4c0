"""Data normalisation by the ℓ2–ℓ2 gain of the initialised network."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from certnet.nn.mlp import NormalizedMLP

__all__ = ["Normalization", "normalize_data", "as_data"]


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
        s_out = rms‖Y − c_out‖ / (γ₀ · rms‖x̂‖) with x̂ = s_in (X − c_in).
    gain : float
        γ₀, the empirical ℓ2–ℓ2 gain of the initialised inner network g on the scaled inputs:
        rms‖g(x̂) − g(0)‖ / rms‖x̂‖.
    """

    input_offset: list[float]
    input_scale: float
    output_offset: list[float]
    output_scale: float
    gain: float


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
    """Choose and store the network's input/output scalings from the data and its initial gain.

    Inputs are centred and scaled by one scalar to unit rms per coordinate (‖x̂‖ ≈ √d₀). The
    output scale is chosen so that the targets, in the network's internal units, have the size
    the initialised network g produces on x̂: ŷ = (y − c_out)/s_out has rms‖ŷ‖ = γ₀ rms‖x̂‖, where
    γ₀ = rms‖g(x̂) − g(0)‖ / rms‖x̂‖ is g's empirical ℓ2–ℓ2 gain on the data. Then the MM
    majoriser's assumption (outputs and targets of the same scale, AGD's ‖f(x)‖ ≈ ‖y‖) holds at
    initialisation. The scalings go into the network with ``net.set_normalization(...,
    keep_budget=True)``: the certified bound stays in the user's units, and with a budget set
    the radii are re-chosen to keep it.

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
        Shapes that do not match the network, NaN/inf in the data, constant inputs or targets.
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
    net.set_normalization(
        input_offset=c_in, input_scale=s_in, output_offset=0.0, output_scale=1.0, keep_budget=False
    )
    xh = (X - c_in) * s_in
    g_x = net(X) - net(c_in[None])  # g(x̂) − g(0): the biases do not count towards the gain
    gain = _rms(g_x) / _rms(xh)
    if not gain > 0.0:
        raise ValueError("the initialised network is constant on the data; re-initialise it")
    s_out = ry / (gain * _rms(xh))
    net.set_normalization(output_offset=c_out, output_scale=s_out, keep_budget=True)
    return Normalization(c_in.tolist(), s_in, c_out.tolist(), s_out, gain)
