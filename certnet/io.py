"""Save and load networks with safetensors (no pickle).

File layout: the tensors of ``net.state_dict()`` plus a JSON header in the safetensors metadata:

* ``certnet_format`` — "1";
* ``certnet_kind``   — "NormalizedMLP" or "Sequential";
* ``certnet_config`` — the architecture (widths, activation, radii, mode, budget, …) or, for a
  Sequential, the list of its layers;
* ``certnet_version``;
* any extra string metadata the caller passes (e.g. a certificate as JSON under
  ``certificate``).

Loading rebuilds the network from the header, loads the tensors strictly, and refuses NaN/inf
weights and stored points that are off their spheres (a sign of corruption or tampering).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from certnet.errors import ModelFormatError
from certnet.geometry import is_on_sphere
from certnet.nn.activations import activation_spec, spec_of_module
from certnet.nn.mlp import NormalizedMLP

__all__ = ["save", "load", "read_metadata", "FORMAT"]

FORMAT = "1"


def _sequential_config(net: nn.Sequential) -> dict[str, Any]:
    layers = []
    dtype = next((p.dtype for p in net.parameters()), torch.get_default_dtype())
    for m in net:
        if isinstance(m, nn.Linear):
            layers.append(
                {
                    "type": "linear",
                    "in": m.in_features,
                    "out": m.out_features,
                    "bias": m.bias is not None,
                }
            )
            continue
        spec = spec_of_module(m)
        if spec is None:
            raise TypeError(
                f"cannot save a Sequential containing {type(m).__name__}; certnet saves "
                "nn.Linear and its supported activations"
            )
        layers.append({"type": "activation", "name": spec.name, "kwargs": spec.kwargs})
    return {"layers": layers, "dtype": str(dtype).replace("torch.", "")}


def save(
    net: nn.Module, path: str | os.PathLike, *, metadata: dict[str, str] | None = None
) -> Path:
    """Write ``net`` to a ``.safetensors`` file.

    Parameters
    ----------
    net : NormalizedMLP or nn.Sequential
        A plain Sequential must be flat and hold unparametrised ``nn.Linear`` and supported
        activations.
    path : str or PathLike
        Destination; parent folders are created.
    metadata : dict of str to str, optional
        Extra header entries (keys must not start with ``certnet_``).

    Returns
    -------
    Path
        The written path.
    """
    if isinstance(net, NormalizedMLP):
        kind, config = "NormalizedMLP", net.config()
    elif isinstance(net, nn.Sequential):
        kind, config = "Sequential", _sequential_config(net)
    else:
        raise TypeError(
            f"cannot save a {type(net).__name__}; pass a NormalizedMLP or an nn.Sequential"
        )
    from certnet import __version__

    meta = {
        "certnet_format": FORMAT,
        "certnet_kind": kind,
        "certnet_config": json.dumps(config),
        "certnet_version": __version__,
    }
    for k, v in (metadata or {}).items():
        if k.startswith("certnet_") or not isinstance(v, str):
            raise ValueError(
                f"metadata key {k!r}: keys must not start with 'certnet_' and "
                "values must be strings (use json.dumps)"
            )
        meta[k] = v
    tensors = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The header metadata of a certnet file (without loading tensors)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such model file: {path}")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelFormatError(f"{path} is not a safetensors file ({e})") from None
    if meta.get("certnet_format") is None:
        raise ModelFormatError(
            f"{path} is a safetensors file but not a certnet model (no certnet_format in its "
            "header); save models with certnet.save"
        )
    return meta


def load(path: str | os.PathLike) -> nn.Module:
    """Read a network written by :func:`save`.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ModelFormatError
        Not a safetensors/certnet file, an unknown format version, tensors that do not match the
        header, NaN/inf weights, or stored points off their spheres.
    """
    meta = read_metadata(path)
    if meta["certnet_format"] != FORMAT:
        raise ModelFormatError(
            f"{path} has certnet format {meta['certnet_format']!r}; this certnet reads "
            f"format {FORMAT!r}; upgrade certnet"
        )
    try:
        config = json.loads(meta["certnet_config"])
        kind = meta["certnet_kind"]
    except (KeyError, json.JSONDecodeError) as e:
        raise ModelFormatError(f"{path}: malformed certnet header ({e})") from None
    tensors = load_file(str(path))
    for k, t in tensors.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise ModelFormatError(
                f"{path}: tensor {k!r} contains NaN or inf; the model is "
                "corrupted, retrain or restore it"
            )
    try:
        net = _build(kind, config)
        net.load_state_dict(tensors, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise ModelFormatError(
            f"{path}: tensors do not match the stored architecture ({e})"
        ) from None
    if isinstance(net, NormalizedMLP):
        for k, lin in enumerate(net.linears):
            if lin.mode == "sphere":
                ok, why = is_on_sphere(lin.point, lin.radius, explain=True)
                if not ok:
                    raise ModelFormatError(
                        f"{path}: layer {k} is off its sphere: {why}; the "
                        "file was modified or corrupted"
                    )
        net.budget = config.get("budget")
    return net


def _build(kind: str, config: Any) -> nn.Module:
    dtype = getattr(torch, config.get("dtype", "float32"))
    if kind == "NormalizedMLP":
        return NormalizedMLP(
            config["widths"],
            activation=config["activation"],
            radii=config["radii"],
            bias=config["bias"],
            mode=config["mode"],
            conditioning=config.get("conditioning"),
            activation_kwargs=config.get("activation_kwargs") or {},
            dtype=dtype,
        )
    if kind == "Sequential":
        mods: list[nn.Module] = []
        for item in config["layers"]:
            if item["type"] == "linear":
                mods.append(nn.Linear(item["in"], item["out"], bias=item["bias"], dtype=dtype))
            else:
                mods.append(activation_spec(item["name"], **item["kwargs"]).module())
        return nn.Sequential(*mods)
    raise ModelFormatError(f"unknown certnet model kind {kind!r}")
