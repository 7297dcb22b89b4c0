"""Networks as python-control systems, and closed loops with a plant via ``interconnect``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from torch import nn

from certnet.nn.extract import LayerStack, extract_layers
from certnet.plants.base import Plant

__all__ = ["to_iosys", "closed_loop"]


def _labels(given: Sequence[str] | None, default: Sequence[str], n: int, what: str) -> list[str]:
    labels = list(default if given is None else given)
    if len(labels) != n:
        raise ValueError(f"{what} needs {n} names to match the network, got {labels}")
    return labels


def to_iosys(
    net: nn.Module | LayerStack | Callable[[Any], Any],
    *,
    inputs: Sequence[str] | None = None,
    outputs: Sequence[str] | None = None,
    plant: Plant | None = None,
    name: str = "controller",
    dt: float | None = None,
):
    """A static python-control system y = π(u) evaluating a network (or a policy) in float64.

    Parameters
    ----------
    net : NormalizedMLP, nn.Sequential, LayerStack or callable
        A network (read through :func:`certnet.nn.extract_layers`, evaluated in float64 numpy),
        or any policy callable on numpy observations (e.g. an expert).
    inputs, outputs : sequence of str, optional
        Signal names. Default: ``plant.obs_names`` / ``plant.input_names`` when ``plant`` is
        given, else ``obs[i]`` / ``u[i]``.
    plant : Plant, optional
        Supplies the default names and sizes.
    name : str
        System name.
    dt : float, optional
        Timebase (``None``: usable in continuous and discrete loops).

    Returns
    -------
    control.NonlinearIOSystem
        Zero states; ``output(t, x, u)`` is the network applied to u.

    Raises
    ------
    ValueError
        Signal names whose number does not match the network's input or output width.
    TypeError
        A callable policy without a ``plant`` to size it.
    """
    import control

    if isinstance(net, (nn.Module, LayerStack)):
        stack = extract_layers(net)
        n_in, n_out = stack.widths[0], stack.widths[-1]

        def fn(u: np.ndarray) -> np.ndarray:
            return stack.forward(u[None])[0]
    else:
        if plant is None:
            raise TypeError(
                "a callable policy needs plant= to know its sizes; pass to_iosys(policy, "
                "plant=plant)"
            )
        n_in, n_out = plant.n_obs, plant.n_inputs
        policy = net

        def fn(u: np.ndarray) -> np.ndarray:
            return np.asarray(policy(np.asarray(u, dtype=np.float64)), dtype=np.float64)

    d_in = plant.obs_names if plant is not None else [f"obs[{i}]" for i in range(n_in)]
    d_out = plant.input_names if plant is not None else [f"u[{i}]" for i in range(n_out)]
    ins = _labels(inputs, d_in, n_in, "inputs")
    outs = _labels(outputs, d_out, n_out, "outputs")
    return control.nlsys(
        None,
        lambda t, x, u, params: fn(np.asarray(u, dtype=np.float64)),
        inputs=ins,
        outputs=outs,
        name=name,
        dt=dt,
    )


def closed_loop(
    plant: Plant,
    controller: Any,
    *,
    dt: float | None = None,
    name: str = "closed_loop",
):
    """The feedback loop u = π(h(x)) around ``plant`` as one python-control system.

    Parameters
    ----------
    plant : Plant
    controller : network, policy callable, or control.NonlinearIOSystem
        A network or policy is wrapped with :func:`to_iosys` (inputs ``plant.obs_names``,
        outputs ``plant.input_names``); a system must use those signal names.
    dt : float, optional
        ``None`` (default) or ``plant.dt``: sampled-data loop — the plant is discretised
        explicitly (its exact step at ``plant.dt``, zero-order hold on u), since python-control
        cannot mix timebases. ``0``: continuous-time loop (u = π(h(x)) at every instant).

    Returns
    -------
    control.InterconnectedSystem
        No inputs; outputs the observations (``plant.obs_names``) and the commanded inputs
        (``plant.input_names``); states named ``plant_<state>``.

    Raises
    ------
    ValueError
        A controller system whose signal names do not match the plant's.
    """
    import control

    P = plant.to_iosys(dt=dt, name="plant")
    if isinstance(controller, control.InputOutputSystem):
        C = controller
        missing = sorted((set(plant.obs_names) - set(C.input_labels))
                         | (set(plant.input_names) - set(C.output_labels)))
        if missing:
            raise ValueError(
                f"the controller system must have inputs {list(plant.obs_names)} and outputs "
                f"{list(plant.input_names)}; missing {missing}. Build it with "
                "cn.export.to_iosys(net, plant=plant)"
            )
    else:
        C = to_iosys(controller, plant=plant, name="controller")
    connections = [[f"{P.name}.{u}", f"{C.name}.{u}"] for u in plant.input_names]
    connections += [[f"{C.name}.{y}", f"{P.name}.{y}"] for y in plant.obs_names]
    outlist = [f"{P.name}.{y}" for y in plant.obs_names]
    outlist += [f"{C.name}.{u}" for u in plant.input_names]
    return control.interconnect(
        [P, C],
        connections=connections,
        inplist=[],
        outlist=outlist,
        outputs=[*plant.obs_names, *plant.input_names],
        name=name,
        dt=P.dt,
    )

