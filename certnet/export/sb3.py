"""stable-baselines3 actors as certifiable networks: from a live model, or from a saved ``.zip``.

:func:`from_sb3` reads the deterministic action map of a PPO, A2C, SAC, TD3 or DDPG model (SB3's
``MlpPolicy``, or certnet's certified policies of :mod:`certnet.train.rl`) into a plain
``nn.Sequential`` of ``nn.Linear`` and activations,

* PPO / A2C:  obs → ``action_net(policy_net(obs))``, the mean of the Gaussian;
* SAC:        obs → rescale(tanh(``mu(latent_pi(obs))``));
* TD3 / DDPG: obs → rescale(``mu(obs)``), ``mu`` ending in tanh;

with rescale(a) = low + (a + 1)(high − low)/2 as a final diagonal ``nn.Linear``. Its forward
equals ``model.predict(obs, deterministic=True)`` *before clipping*: PPO/A2C's ``predict``
clips to [low, high] (a coordinate-wise clip is 1-Lipschitz, so it does not raise the
constant; the closed loop with the clip is a different, saturated loop), SAC/TD3 need none.
:func:`from_sb3` checks the equality on random observations against SB3's own ``_predict``.

:func:`load_sb3` reads the same network from the ``.zip`` that ``model.save`` writes, without
stable-baselines3 and without unpickling code: the weights come from ``policy.pth`` (a state
dict, read with ``torch.load(weights_only=True)``), the architecture from the tensor names and
the ``data`` JSON, the action box from its pickled ``Box`` through an unpickler that only
admits numpy arrays and gymnasium's ``Box``.

What is refused, by name: observation spaces other than a 1-D ``Box`` (images, dicts); features
extractors other than ``FlattenExtractor`` (CNNs, custom ones); a custom ``mlp_extractor`` or
overridden prediction methods; gSDE (``use_sde=True``); discrete actions (an argmax has no
Lipschitz constant); a ``VecNormalize`` wrapper (its running statistics live outside the model
and outside the zip: fold them in yourself, e.g. as the ``input_offset``/``input_scale`` of a
NormalizedMLP actor, or train without it).
"""

from __future__ import annotations

import base64
import copy
import io
import json
import math
import os
import pickle
import pickletools
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from certnet.errors import ModelFormatError
from certnet.nn import NormalizedMLP, spec_of_module

__all__ = ["from_sb3", "load_sb3", "is_sb3_zip", "PREDICT_TOL"]

PREDICT_TOL = 1e-5
"""Relative tolerance of :func:`from_sb3`'s cross-check against SB3's prediction (float32 nets;
the two differ only in the order of a few roundings, e.g. the rescaling)."""


def _sb3():
    try:
        import stable_baselines3 as sb3  # noqa: F401
        from stable_baselines3.common import policies, torch_layers
        from stable_baselines3.sac import policies as sac
        from stable_baselines3.td3 import policies as td3
    except ImportError as e:
        raise ImportError(
            f"from_sb3 needs stable-baselines3 ({e}); install it with pip install "
            '"certnet[rl]", or read a saved model with certnet.export.load_sb3(path), which '
            "does not"
        ) from None
    return policies, torch_layers, sac, td3


# ---------------------------------------------------------------- building blocks
def _diag(scale: np.ndarray, shift: np.ndarray) -> nn.Linear:
    """x ↦ scale ⊙ x + shift as a float32 nn.Linear (weight diag(scale))."""
    n = len(scale)
    lin = nn.Linear(n, n)
    with torch.no_grad():
        lin.weight.copy_(torch.diag(torch.as_tensor(scale, dtype=torch.float64)).float())
        lin.bias.copy_(torch.as_tensor(shift, dtype=torch.float64).float())
    return lin


def _plain_linear(w: torch.Tensor, b: torch.Tensor | None) -> nn.Linear:
    lin = nn.Linear(w.shape[1], w.shape[0], bias=b is not None, dtype=w.dtype)
    with torch.no_grad():
        lin.weight.copy_(w)
        if b is not None:
            lin.bias.copy_(b)
    return lin


def _unpack_normalized(net: NormalizedMLP) -> list[nn.Module]:
    """A NormalizedMLP as plain layers computing the same function: diagonal layers for its
    input/output maps (omitted when trivial), its weights as forward computes them."""
    out: list[nn.Module] = []
    s_in, c_in = net.input_scale.detach().double(), net.input_offset.detach().double()
    if not (bool((s_in == 1).all()) and bool((c_in == 0).all())):
        out.append(_diag(s_in.numpy(), (-c_in * s_in).numpy()))
    for k, lin in enumerate(net.linears):
        b = None if lin.bias is None else lin.bias.detach().clone()
        out.append(_plain_linear(lin.weight.detach().clone(), b))
        if k < len(net.acts):
            out.append(copy.deepcopy(net.acts[k]))
    s_out, c_out = net.output_scale.detach().double(), net.output_offset.detach().double()
    if not (bool((s_out == 1).all()) and bool((c_out == 0).all())):
        out.append(_diag(s_out.numpy(), c_out.numpy()))
    return out


def _layers_of(m: nn.Module, where: str) -> list[nn.Module]:
    """Modules of a chain (Sequential flattened, NormalizedMLP unpacked, Identity dropped)."""
    if isinstance(m, NormalizedMLP):
        if type(m).forward is not NormalizedMLP.forward:
            raise TypeError(
                f"{where} is a {type(m).__name__} with its own forward; use NormalizedMLP"
            )
        return _unpack_normalized(m)
    if type(m) is nn.Sequential:
        return [x for i, c in enumerate(m) for x in _layers_of(c, f"{where}.{i}")]
    if type(m) is nn.Identity:
        return []
    if type(m) is nn.Linear:
        return [
            _plain_linear(
                m.weight.detach().clone(), None if m.bias is None else m.bias.detach().clone()
            )
        ]
    try:
        spec = spec_of_module(m)
    except (TypeError, ValueError):
        spec = None
    if spec is not None:
        return [copy.deepcopy(m)]
    raise TypeError(
        f"{where} is a {type(m).__name__}, which certnet does not read from a stable-baselines3 "
        "policy (it reads nn.Linear, the activations of certnet.nn.spec_of_module, "
        "nn.Sequential and NormalizedMLP)"
    )


def _rescale(low: np.ndarray, high: np.ndarray) -> nn.Linear:
    low, high = low.astype(np.float64), high.astype(np.float64)
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        raise ValueError(f"the action box must be finite to rescale into it, got [{low}, {high}]")
    half = (high - low) / 2
    return _diag(half, low + half)


# ---------------------------------------------------------------- from a live model
def _check_spaces(policy, who: str) -> None:
    from gymnasium import spaces

    obs, act = policy.observation_space, policy.action_space
    if not isinstance(obs, spaces.Box) or len(obs.shape) != 1:
        raise TypeError(
            f"{who}: observation space {obs} is not a 1-D Box; certnet reads MLP policies of "
            "flat observations (no images, dicts or CNN features)"
        )
    if not isinstance(act, spaces.Box) or len(act.shape) != 1:
        raise TypeError(
            f"{who}: action space {act} is not a 1-D Box; a discrete policy (argmax) has no "
            "Lipschitz constant to certify"
        )


def _check_flatten(extractor, who: str) -> None:
    _, torch_layers, _, _ = _sb3()
    if type(extractor) is not torch_layers.FlattenExtractor:
        raise TypeError(
            f"{who}: features extractor {type(extractor).__name__} is not FlattenExtractor; "
            "certnet reads MLP policies only (no CNN or custom shared features)"
        )


def _not_overridden(obj, base, names, who: str) -> None:
    for name in names:
        if getattr(type(obj), name) is not getattr(base, name):
            raise TypeError(
                f"{who}: {type(obj).__name__} overrides {name}, so certnet cannot tell what "
                f"its prediction computes; use {base.__name__}'s"
            )


def _actor_critic_layers(policy, who: str) -> list[nn.Module]:
    policies, torch_layers, _, _ = _sb3()
    from stable_baselines3.common.distributions import DiagGaussianDistribution

    base = policies.ActorCriticPolicy
    _not_overridden(
        policy,
        base,
        ("_predict", "get_distribution", "extract_features", "_get_action_dist_from_latent"),
        who,
    )
    if type(policy.action_dist) is not DiagGaussianDistribution or policy.use_sde:
        raise TypeError(
            f"{who}: action distribution {type(policy.action_dist).__name__} is not a diagonal "
            "Gaussian (use_sde=True is not read); train with use_sde=False"
        )
    _check_flatten(policy.pi_features_extractor, who)
    mlp = policy.mlp_extractor
    if not isinstance(mlp, torch_layers.MlpExtractor):
        raise TypeError(f"{who}: mlp_extractor {type(mlp).__name__} is not an MlpExtractor")
    _not_overridden(mlp, torch_layers.MlpExtractor, ("forward_actor",), who)
    return _layers_of(mlp.policy_net, "mlp_extractor.policy_net") + _layers_of(
        policy.action_net, "action_net"
    )


def _sac_layers(policy, who: str) -> list[nn.Module]:
    _, _, sac, _ = _sb3()
    actor = policy.actor
    if type(actor) is not sac.Actor:
        raise TypeError(f"{who}: actor {type(actor).__name__} is not SB3's SAC Actor")
    if actor.use_sde:
        raise TypeError(f"{who}: gSDE (use_sde=True) is not read; train with use_sde=False")
    _check_flatten(actor.features_extractor, who)
    layers = _layers_of(actor.latent_pi, "actor.latent_pi") + _layers_of(actor.mu, "actor.mu")
    return layers + [nn.Tanh(), _rescale(policy.action_space.low, policy.action_space.high)]


def _td3_layers(policy, who: str) -> list[nn.Module]:
    _, _, _, td3 = _sb3()
    actor = policy.actor
    if type(actor) is not td3.Actor:
        raise TypeError(f"{who}: actor {type(actor).__name__} is not SB3's TD3 Actor")
    _check_flatten(actor.features_extractor, who)
    layers = _layers_of(actor.mu, "actor.mu")
    if not layers or type(layers[-1]) is not nn.Tanh:
        raise TypeError(
            f"{who}: actor.mu does not end in tanh, so its output is not the "
            "[-1, 1] action SB3 rescales; certnet knows no other squashing"
        )
    return layers + [_rescale(policy.action_space.low, policy.action_space.high)]


def _sb3_reference(policy, obs: np.ndarray) -> np.ndarray:
    """SB3's deterministic action before clipping (``predict`` minus its final clip)."""
    with torch.no_grad():
        t, _ = policy.obs_to_tensor(obs)
        a = policy._predict(t, deterministic=True).cpu().numpy()
    return policy.unscale_action(a) if policy.squash_output else a


def from_sb3(
    model_or_policy: Any, *, check: bool = True, samples: int = 256, seed: int = 0
) -> nn.Sequential:
    """The deterministic actor of a stable-baselines3 model as a certifiable ``nn.Sequential``.

    Parameters
    ----------
    model_or_policy : BaseAlgorithm or BasePolicy
        A PPO, A2C, SAC, TD3 or DDPG model (or its ``.policy``) with an MLP policy: SB3's
        ``MlpPolicy`` or a policy of :mod:`certnet.train.rl`.
    check : bool
        Compare the result with SB3's own prediction on ``samples`` random observations
        (uniform in the bounded coordinates of the observation space, standard normal in the
        others) and raise when they differ by more than :data:`PREDICT_TOL` (relative).
    samples, seed : int
        Size and seed of that check (a numpy generator of its own).

    Returns
    -------
    nn.Sequential
        float32, in eval mode, of ``nn.Linear`` and activations; its forward is the action
        ``model.predict(obs, deterministic=True)`` returns before PPO/A2C's clip to the action
        box. Certify it with ``cn.verify.lipschitz``; save it with ``cn.save``.

    Raises
    ------
    ImportError
        stable-baselines3 is not installed.
    TypeError
        A policy certnet cannot read (the message names the part; see the module docstring).
    ValueError
        A model wrapped in ``VecNormalize``; a cross-check that fails.
    """
    policies, _, sac, td3 = _sb3()
    model = model_or_policy
    policy = getattr(model, "policy", model)
    if not isinstance(policy, policies.BasePolicy):
        raise TypeError(
            f"expected a stable-baselines3 model or policy, got {type(model_or_policy).__name__}"
        )
    get_vn = getattr(model, "get_vec_normalize_env", None)
    if get_vn is not None and get_vn() is not None:
        raise ValueError(
            "the model's environment is wrapped in VecNormalize, whose observation statistics "
            "are not part of the policy; certnet would certify a different map. Fold the "
            "statistics into the network yourself (input_offset / input_scale of a "
            "NormalizedMLP actor) or train without VecNormalize(norm_obs=True)"
        )
    who = type(policy).__name__
    _check_spaces(policy, who)
    if isinstance(policy, policies.ActorCriticPolicy):
        layers = _actor_critic_layers(policy, who)
    elif isinstance(policy, sac.SACPolicy):
        layers = _sac_layers(policy, who)
    elif isinstance(policy, td3.TD3Policy):
        layers = _td3_layers(policy, who)
    else:
        raise TypeError(
            f"{who} is not an ActorCriticPolicy (PPO, A2C), SACPolicy or TD3Policy (TD3, DDPG)"
        )
    net = nn.Sequential(*(m.float() for m in layers)).eval().requires_grad_(False)
    if check:
        obs = _sample_obs(policy.observation_space, samples, seed)
        ref = _sb3_reference(policy, obs)
        with torch.no_grad():
            got = net(torch.as_tensor(obs, dtype=torch.float32)).numpy()
        err = np.abs(got - ref) / (1.0 + np.abs(ref))
        if not float(err.max()) <= PREDICT_TOL:
            raise ValueError(
                f"{who}: the extracted network differs from SB3's prediction by "
                f"{float(err.max()):.3g} (relative) on random observations; the policy computes "
                "something certnet does not read; please report it"
            )
    return net


def _sample_obs(space, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)
    bounded = np.isfinite(low) & np.isfinite(high)
    x = rng.standard_normal((n, len(low)))
    u = rng.uniform(size=(n, len(low)))
    x = np.where(bounded, low + u * np.where(bounded, high - low, 0.0), x)
    return x.astype(space.dtype)


# ---------------------------------------------------------------- from a saved zip
_SAFE_GLOBALS = {
    ("gymnasium.spaces.box", "Box"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy.random._pickle", "__generator_ctor"),
    ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._pcg64", "PCG64"),
    ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
    ("numpy.random.bit_generator", "SeedSequence"),
}


class _SpaceUnpickler(pickle.Unpickler):
    """Admits only numpy arrays, dtypes, numpy generators and gymnasium's Box."""

    def find_class(self, module: str, name: str):
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not admitted")


def _space(data: dict, key: str, path: Path):
    item = data.get(key)
    if not isinstance(item, dict) or ":serialized:" not in item:
        raise ModelFormatError(f"{path}: the zip's data has no {key}; is it an SB3 model?")
    try:
        raw = base64.b64decode(item[":serialized:"].encode())
        return _SpaceUnpickler(io.BytesIO(raw)).load()
    except (pickle.UnpicklingError, ValueError, TypeError, EOFError) as e:
        raise ModelFormatError(
            f"{path}: the {key} ({item.get(':type:')}) is not a Box certnet reads without "
            f"running code ({e}); certnet reads MLP policies of Box spaces"
        ) from None


def _class_ref(item: Any) -> str:
    """'module.Name' of a cloudpickled class reference, read from the pickle opcodes (no code
    runs), or '?' when the pickle holds more than a reference."""
    if not isinstance(item, dict) or ":serialized:" not in item:
        return "?"
    strings = []
    try:
        for op, arg, _ in pickletools.genops(base64.b64decode(item[":serialized:"].encode())):
            if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
                strings.append(arg)
            elif op.name == "GLOBAL":
                strings.extend(arg.split(" "))
    except Exception:  # a damaged pickle names nothing
        return "?"
    return ".".join(strings[:2]) if len(strings) >= 2 else "?"


_TORCH_ACTIVATIONS = ("ReLU", "Tanh", "ELU", "SiLU", "GELU", "Sigmoid", "LeakyReLU", "Identity")


def _activation_fn(kwargs: dict, default: str, path: Path) -> nn.Module:
    """The activation of policy_kwargs['activation_fn'] (stored as "<class '…ReLU'>")."""
    text = kwargs.get("activation_fn")
    if text is None:
        return getattr(nn, default)()
    for name in _TORCH_ACTIVATIONS:
        if text == f"<class 'torch.nn.modules.activation.{name}'>" or text == (
            f"<class 'torch.nn.modules.linear.{name}'>"
        ):
            return getattr(nn, name)()
    raise ModelFormatError(
        f"{path}: activation_fn {text} is not one certnet reads from a zip "
        f"({', '.join(_TORCH_ACTIVATIONS)} with default arguments)"
    )


def _policy_kwargs(data: dict) -> dict:
    pk = data.get("policy_kwargs") or {}
    return {k: v for k, v in pk.items() if not k.startswith(":")}


def _chain_at(
    sd: dict, prefix: str, act: nn.Module, kwargs: dict, path: Path, act_after_last: bool
) -> list[nn.Module]:
    """Layers stored under ``prefix``: a NormalizedMLP, one Linear, or create_mlp's Sequential
    (Linear, act, Linear, act, …)."""
    if f"{prefix}.linears.0.parametrizations.weight.original" in sd:
        return _unpack_normalized(_normalized_from(sd, prefix, kwargs, path, act))
    if f"{prefix}.weight" in sd:
        return [_plain_linear(sd[f"{prefix}.weight"], sd.get(f"{prefix}.bias"))]
    idx = sorted(
        {
            int(k[len(prefix) + 1 :].split(".")[0])
            for k in sd
            if k.startswith(prefix + ".") and k.endswith(".weight")
        }
    )
    out: list[nn.Module] = []
    for j, i in enumerate(idx):
        out.append(_plain_linear(sd[f"{prefix}.{i}.weight"], sd.get(f"{prefix}.{i}.bias")))
        if act_after_last or j < len(idx) - 1:
            out.append(copy.deepcopy(act))
    return out


def _normalized_from(
    sd: dict, prefix: str, kwargs: dict, path: Path, act: nn.Module
) -> NormalizedMLP:
    ks = sorted(
        {int(k[len(prefix) + 9 :].split(".")[0]) for k in sd if k.startswith(prefix + ".linears.")}
    )
    ws = [sd[f"{prefix}.linears.{k}.parametrizations.weight.original"] for k in ks]
    widths = [ws[0].shape[1]] + [w.shape[0] for w in ws]
    radii = [float(sd[f"{prefix}.linears.{k}.parametrizations.weight.0.radius"]) for k in ks]
    actor_kwargs = dict(kwargs.get("actor_kwargs") or {})
    for name in (
        "lipschitz",
        "radii",
        "input_scale",
        "output_scale",
        "input_offset",
        "output_offset",
        "seed",
        "dtype",
    ):
        actor_kwargs.pop(name, None)  # the state dict holds them
    activation = kwargs.get("actor_activation")
    if activation is None:  # the certified policies default to SB3's activation_fn
        spec = spec_of_module(act)
        if spec is None:
            raise ModelFormatError(f"{path}: activation {act} has no certnet name")
        activation = spec.name
    try:
        net = NormalizedMLP(
            widths,
            activation=activation,
            radii=radii,
            bias=f"{prefix}.linears.0.bias" in sd,
            **actor_kwargs,
        )
        net.load_state_dict(
            {k[len(prefix) + 1 :]: v for k, v in sd.items() if k.startswith(prefix + ".")}
        )
    except (TypeError, ValueError, RuntimeError) as e:
        raise ModelFormatError(
            f"{path}: the certified actor at {prefix} does not load ({e})"
        ) from None
    return net


def load_sb3(path: str | os.PathLike) -> nn.Sequential:
    """The deterministic actor of a stable-baselines3 ``.zip`` as a certifiable network.

    Reads ``policy.pth`` (``torch.load(weights_only=True)``) and the ``data`` JSON; no code of
    the file runs and stable-baselines3 need not be installed. The result is the network
    :func:`from_sb3` returns for the loaded model (same layers, same weights).

    Parameters
    ----------
    path : str or PathLike
        A file written by ``model.save`` (PPO, A2C, SAC, TD3, DDPG with an MLP policy of
        stable-baselines3 or of :mod:`certnet.train.rl`).

    Returns
    -------
    nn.Sequential
        float32, eval mode; see :func:`from_sb3` for what it computes (before PPO's clip).

    Raises
    ------
    FileNotFoundError
        No such file.
    ModelFormatError
        Not an SB3 zip; a policy certnet does not read (CNN or custom features, gSDE, discrete
        actions, unknown activation); a state dict that does not match what its data says.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such model file: {path}")
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if "data" not in names or "policy.pth" not in names:
                raise ModelFormatError(
                    f"{path} is a zip without 'data' and 'policy.pth'; pass a file written by a "
                    "stable-baselines3 model.save"
                )
            data = json.loads(z.read("data"))
            sd = torch.load(io.BytesIO(z.read("policy.pth")), map_location="cpu", weights_only=True)
    except zipfile.BadZipFile:
        raise ModelFormatError(
            f"{path} is not a zip file; pass a file written by a stable-baselines3 model.save"
        ) from None
    except (json.JSONDecodeError, pickle.UnpicklingError, RuntimeError) as e:
        raise ModelFormatError(f"{path}: damaged stable-baselines3 zip ({e})") from None
    from gymnasium import spaces

    obs_space, act_space = (
        _space(data, "observation_space", path),
        _space(data, "action_space", path),
    )
    if not (isinstance(obs_space, spaces.Box) and len(obs_space.shape) == 1):
        raise ModelFormatError(f"{path}: observation space {obs_space} is not a 1-D Box")
    if not (isinstance(act_space, spaces.Box) and len(act_space.shape) == 1):
        raise ModelFormatError(f"{path}: action space {act_space} is not a 1-D Box")
    if data.get("use_sde"):
        raise ModelFormatError(f"{path}: gSDE (use_sde=True) policies are not read")
    kwargs = _policy_kwargs(data)
    policy_class = _class_ref(data.get("policy_class"))
    extra = [
        k
        for k in kwargs
        if k.startswith("features_extractor")
        and kwargs[k]
        not in (None, {}, "<class 'stable_baselines3.common.torch_layers.FlattenExtractor'>")
    ]
    if extra or any(
        k.startswith(("features_extractor.", "pi_features_extractor.", "actor.features_extractor."))
        for k in sd
    ):
        raise ModelFormatError(
            f"{path}: the policy has its own features extractor ({extra or 'with weights'}); "
            "certnet reads MLP policies of flat observations only"
        )
    if any(k.startswith("mlp_extractor.") for k in sd) or "action_net.weight" in sd:
        act = _activation_fn(kwargs, "Tanh", path)
        layers = _chain_at(sd, "mlp_extractor.policy_net", act, kwargs, path, True) + (
            _chain_at(sd, "action_net", act, kwargs, path, False)
            if "action_net.weight" in sd
            else []
        )
    elif "actor.mu.weight" in sd or "actor.mu.linears.0.parametrizations.weight.original" in sd:
        act = _activation_fn(kwargs, "ReLU", path)
        layers = (
            _chain_at(sd, "actor.latent_pi", act, kwargs, path, True)
            + _chain_at(sd, "actor.mu", act, kwargs, path, False)
            + [nn.Tanh(), _rescale(act_space.low, act_space.high)]
        )
    elif any(k.startswith("actor.mu.") for k in sd):
        act = _activation_fn(kwargs, "ReLU", path)
        if "actor.mu.0.linears.0.parametrizations.weight.original" in sd:
            body = _chain_at(sd, "actor.mu.0", act, kwargs, path, False)
        else:
            body = _chain_at(sd, "actor.mu", act, kwargs, path, False)
        layers = body + [nn.Tanh(), _rescale(act_space.low, act_space.high)]
    else:
        raise ModelFormatError(
            f"{path}: policy {policy_class} has no actor certnet recognises (an ActorCritic "
            "mlp_extractor + action_net, a SAC actor latent_pi + mu, or a TD3 actor mu)"
        )
    if not layers or layers[0].__class__ is not nn.Linear:
        raise ModelFormatError(f"{path}: the actor of {policy_class} has no weights")
    n_obs = layers[0].in_features
    if n_obs != obs_space.shape[0] or _out_features(layers) != act_space.shape[0]:
        raise ModelFormatError(
            f"{path}: the actor maps {n_obs} inputs to {_out_features(layers)} outputs but the "
            f"spaces are {obs_space.shape} → {act_space.shape}"
        )
    if not all(
        math.isfinite(float(v.abs().max()))
        for v in sd.values()
        if isinstance(v, torch.Tensor) and v.is_floating_point() and v.numel()
    ):
        raise ModelFormatError(f"{path}: the policy contains NaN or inf weights")
    return nn.Sequential(*(m.float() for m in layers)).eval().requires_grad_(False)


def _out_features(layers: list[nn.Module]) -> int:
    return [m for m in layers if isinstance(m, nn.Linear)][-1].out_features


def is_sb3_zip(path: str | os.PathLike) -> bool:
    """Whether ``path`` looks like a stable-baselines3 ``model.save`` file (a zip holding
    ``data`` and ``policy.pth``); reads the zip's directory only."""
    path = Path(path)
    if not (path.is_file() and zipfile.is_zipfile(path)):
        return False
    try:
        with zipfile.ZipFile(path) as z:
            return {"data", "policy.pth"} <= set(z.namelist())
    except zipfile.BadZipFile:
        return False
