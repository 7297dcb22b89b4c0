"""A plant as a python-control ``NonlinearIOSystem`` (continuous, or discrete at ``plant.dt``).

The callbacks evaluate the plant's own torch model in float64, so the python-control system is
the same model as :meth:`Plant.step`, not a re-implementation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from certnet.plants.base import Plant

__all__ = ["plant_iosys"]


def _row(v: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(v, dtype=np.float64).reshape(1, -1))


def plant_iosys(plant: Plant, dt: float | None = None, *, name: str | None = None):
    """Build ``control.nlsys`` for ``plant`` (see :meth:`Plant.to_iosys`).

    Raises
    ------
    ValueError
        ``dt`` is neither ``None``, ``0`` nor ``plant.dt``.
    TypeError
        ``dt=0`` for a plant without a continuous-time model.
    """
    import control

    if dt is None:
        dt = plant.dt
    if dt != 0 and not np.isclose(dt, plant.dt, rtol=1e-12, atol=0.0):
        raise ValueError(
            f"dt must be None or {plant.dt} (the plant's sampling period, discrete) or 0 "
            f"(continuous), got {dt!r}; build the plant with dt={dt} to sample it differently"
        )
    if dt == 0 and not plant.has_vector_field:
        raise TypeError(
            f"{type(plant).__name__} is a discrete-time map with no continuous-time model; "
            f"use to_iosys(dt=None) for the discrete system at dt={plant.dt}"
        )

    def out(t, x, u, params):
        with torch.no_grad():
            return plant.observe(_row(x))[0].numpy()

    if dt == 0:
        def upd(t, x, u, params):
            with torch.no_grad():
                return plant.vector_field(_row(x), plant.saturate(_row(u)))[0].numpy()
    else:
        def upd(t, x, u, params):
            with torch.no_grad():
                return plant.update(_row(x), plant.saturate(_row(u)))[0].numpy()

    return control.nlsys(
        upd,
        out,
        inputs=list(plant.input_names),
        outputs=list(plant.obs_names),
        states=list(plant.state_names),
        dt=0 if dt == 0 else plant.dt,
        name=name or type(plant).__name__.lower(),
    )
