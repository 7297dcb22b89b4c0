"""Save and load networks with safetensors (no pickle).

File layout: the tensors of ``net.state_dict()`` plus a JSON header in the safetensors metadata:

* ``certnet_format`` — "1";
* ``certnet_kind``   — "NormalizedMLP" or "Sequential";
* ``certnet_config`` — the architecture (widths, activation, radii, mode, budget, …) or, for a
  Sequential, the list of its layers;
* ``certnet_version``;
* ``certnet_digests`` — JSON object: tensor name → SHA-256 of its dtype, shape and bytes
  (:func:`tensor_digest`), checked at load;
* any extra string metadata the caller passes (e.g. a certificate as JSON under
  ``certificate``).

Saving a :class:`NormalizedMLP` first moves each stored point back onto its sphere without
changing the function (:meth:`~certnet.nn.FrobeniusLinear.sphere_point`): plain optimisers such
as Adam or stable-baselines3 let the points drift (the forward pass re-normalises), and the
digests are computed on what is written. The layers' radii are tensors of the state dict too
(``….parametrizations.weight.0.radius``), so a header whose radii disagree with them is refused.

Loading checks every tensor against its digest, rebuilds the network from the header, loads the
tensors strictly, and refuses NaN/inf weights and stored points that are off their spheres (a sign
of corruption or tampering). A flipped bit anywhere in a tensor changes its digest, even where the
other checks cannot see it (a bias, a scaling).

Files written before the digests existed (no ``certnet_digests``) still load, with a
:class:`UserWarning` that asks to re-save them: refusing them would strand every controller
trained so far, and a certificate stored with such a file still pins the weights by fingerprint.
The digests detect corruption (a disk, a copy, an edit of the file); they are not a signature:
whoever can rewrite the file can rewrite its header too.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
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

__all__ = ["save", "load", "read_metadata", "tensor_digest", "FORMAT"]

FORMAT = "1"


def tensor_digest(t: torch.Tensor) -> str:
    """SHA-256 (hex) of a tensor's dtype, shape and bytes, as stored in ``certnet_digests``.

    Examples
    --------
    >>> a = torch.tensor([1.0, 2.0])
    >>> tensor_digest(a) == tensor_digest(a.clone()) != tensor_digest(a.double())
    True
    """
    t = t.detach().cpu().contiguous()
    h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


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

    Notes
    -----
    The stored points of a NormalizedMLP are written projected onto their spheres (the net
    itself is not modified), with the forward weights bit-identical in most layers and within
    a few ulps otherwise; see :meth:`~certnet.nn.FrobeniusLinear.sphere_point`.

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
    tensors.update(_sphere_points(net))
    meta["certnet_digests"] = json.dumps({k: tensor_digest(v) for k, v in tensors.items()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)
    return path


def _sphere_points(net: nn.Module) -> dict[str, torch.Tensor]:
    """State-dict entries of a NormalizedMLP's stored points, moved back onto their spheres.

    Plain optimisers (Adam, SGD, stable-baselines3) move a stored point off its sphere without
    changing the function (forward re-normalises), and :func:`load` would take such a file for
    a corrupted one. :meth:`FrobeniusLinear.sphere_point` projects each point so that the weight
    forward computes stays the same (bit for bit where its search succeeds, else within a few
    ulps); the digests are computed afterwards, on what is written. The net is not modified.
    """
    if not isinstance(net, NormalizedMLP):
        return {}
    return {
        f"linears.{k}.parametrizations.weight.original": lin.sphere_point().contiguous().cpu()
        for k, lin in enumerate(net.linears)
        if lin.mode == "sphere"
    }


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
        if _has_safetensors_header(path):
            raise ModelFormatError(
                f"{path}: file corrupted or truncated ({e}); re-export or re-train it"
            ) from None
        raise ModelFormatError(
            f"{path} is not a safetensors file ({e}); pass a network saved with certnet.save "
            "(a .safetensors file; an ONNX or torch.save file is not one)"
        ) from None
    if meta.get("certnet_format") is None:
        raise ModelFormatError(
            f"{path} is a safetensors file but not a certnet model (no certnet_format in its "
            "header); save models with certnet.save"
        )
    return meta


def _has_safetensors_header(path: Path) -> bool:
    """Whether ``path`` starts like a safetensors file (an 8-byte length, then a JSON object
    that fits in the file), so that a failure to read it means damage, not another format."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return head[8:9] == b"{" and 8 + n <= path.stat().st_size


def _file_kind(path: Path) -> str:
    """What ``path`` holds, from its first bytes and name: "safetensors", "onnx", "pickle"
    (``torch.save``: a zip archive or a raw pickle) or "unknown"."""
    if not path.is_file():
        raise FileNotFoundError(f"no such model file: {path}")
    with open(path, "rb") as f:
        head = f.read(4)
    if _has_safetensors_header(path):
        return "safetensors"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return "pickle"
    if path.suffix.lower() == ".onnx":
        return "onnx"
    return "unknown"


def load(path: str | os.PathLike) -> nn.Module:
    """Read a network: a ``.safetensors`` file written by :func:`save`, or an ONNX file.

    A file that starts like a safetensors file is read as one; a ``torch.save`` file (a zip
    archive or a pickle) is refused, never unpickled; a ``.onnx`` file is read by
    :func:`certnet.nn.load_onnx` (an :class:`~certnet.nn.OnnxNetwork`; its refusals are listed
    there).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ModelFormatError
        A ``torch.save``/pickle file, an ONNX graph certnet cannot read exactly, not a
        safetensors/certnet file, an unknown format version, a tensor whose digest does
        not match the header, tensors that do not match the architecture, NaN/inf weights, or
        stored points off their spheres.

    Warns
    -----
    UserWarning
        The file has no digests (saved before certnet wrote them); re-save it with :func:`save`.
    """
    kind = _file_kind(Path(path))
    if kind == "pickle":
        raise ModelFormatError(
            f"{path} is a torch.save (pickle) file; certnet never loads pickles (unpickling "
            "can run code from the file); convert it in your own code: build the network, "
            "net.load_state_dict(torch.load(path, weights_only=True)), then "
            "certnet.save(net, 'model.safetensors') or torch.onnx.export(net, (x,), 'model.onnx')"
        )
    if kind == "onnx":
        from certnet.nn.onnx_import import load_onnx

        return load_onnx(path)
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
    _check_digests(path, meta, tensors)
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


def _check_digests(path: Path, meta: dict[str, str], tensors: dict[str, torch.Tensor]) -> None:
    """Every tensor against ``certnet_digests``; warn when the file predates digests."""
    if "certnet_digests" not in meta:
        warnings.warn(
            f"{path} has no tensor digests (saved by an older certnet), so corruption of its "
            "weights cannot be detected; re-save it: certnet.save(certnet.load(path), path)",
            UserWarning,
            stacklevel=3,
        )
        return
    try:
        digests = json.loads(meta["certnet_digests"])
    except json.JSONDecodeError as e:
        raise ModelFormatError(f"{path}: malformed certnet_digests header ({e})") from None
    if not isinstance(digests, dict) or set(digests) != set(tensors):
        raise ModelFormatError(
            f"{path}: file corrupted or modified: its tensors {sorted(tensors)} are not the "
            f"ones its header lists; re-export or re-train"
        )
    for k in sorted(tensors):
        if tensor_digest(tensors[k]) != digests[k]:
            raise ModelFormatError(
                f"{path}: file corrupted or modified: tensor {k!r} digest mismatch; "
                "re-export or re-train"
            )


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
