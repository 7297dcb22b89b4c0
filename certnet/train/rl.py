"""stable-baselines3 policies whose actor is a :class:`~certnet.nn.NormalizedMLP`.

Train with PPO, A2C, SAC or TD3 as usual; the deterministic action map obs → action keeps its
Lipschitz bound at every gradient step, because the bound holds for every value of the weights
(the Frobenius parametrisation), not because training is careful::

    from stable_baselines3 import PPO
    from certnet.train.rl import CertifiedActorCriticPolicy

    model = PPO(CertifiedActorCriticPolicy, "certnet/Pendulum-v1",
                policy_kwargs={"lipschitz": 5.0, "net_arch": [32, 32]})

=============================  ============  ===============================================
policy                         algorithms    actor (deterministic action)
=============================  ============  ===============================================
CertifiedActorCriticPolicy     PPO, A2C      NormalizedMLP(obs) = mean of the Gaussian
CertifiedSACPolicy             SAC           rescale(tanh(NormalizedMLP(obs)))
CertifiedTD3Policy             TD3, DDPG     rescale(tanh(NormalizedMLP(obs)))
=============================  ============  ===============================================

``lipschitz`` is the budget L of the whole deterministic action map in the environment's units
(action units per observation unit). For SAC/TD3 the NormalizedMLP gets L / max_i h_i, with h_i
the half-range (high − low)/2 of action i: tanh is 1-Lipschitz and the rescaling multiplies by
at most max h_i. The critics, the value net and the exploration noise (``log_std``) are plain
and play no part in the deployed action. PPO/A2C clip the mean to the action box in
``predict``, SAC/TD3 do not need to; a clip is 1-Lipschitz, so it never raises the bound.

Certify the trained actor with :func:`certnet.export.from_sb3` and
:func:`certnet.verify.lipschitz`; the saved ``.zip`` is read without unpickling code by
:func:`certnet.export.load_sb3`.

Other keyword arguments of the policies: ``actor_activation`` (a name in
:data:`certnet.nn.ACTIVATIONS`; default: the one of SB3's ``activation_fn``), ``actor_kwargs``
(more :class:`NormalizedMLP` arguments, e.g. ``{"input_scale": [1, 1, 0.125]}``). ``use_sde``
is refused (its noise is state-dependent and shares the latent features).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces
from torch import nn

from certnet.nn import NormalizedMLP, spec_of_module

try:
    from stable_baselines3.common.policies import ActorCriticPolicy
    from stable_baselines3.common.torch_layers import MlpExtractor, create_mlp
    from stable_baselines3.common.utils import get_device
    from stable_baselines3.sac.policies import SACPolicy
    from stable_baselines3.td3.policies import TD3Policy
except ImportError as e:  # pragma: no cover - exercised without the extra
    raise ImportError(
        f'certnet.train.rl needs stable-baselines3 ({e}); install it with pip install "certnet[rl]"'
    ) from None

__all__ = [
    "CertifiedActorCriticPolicy",
    "CertifiedSACPolicy",
    "CertifiedTD3Policy",
    "CertifiedMlpExtractor",
]


def _activation_name(activation_fn: type[nn.Module], given: str | None) -> str:
    if given is not None:
        return given
    spec = spec_of_module(activation_fn())
    if spec is None:
        raise ValueError(
            f"activation_fn={activation_fn.__name__} is not an activation certnet can bound; "
            "pass actor_activation='tanh' (or another name in certnet.nn.ACTIVATIONS)"
        )
    return spec.name


def _check_box(action_space: spaces.Space, use_sde: bool, who: str) -> None:
    if use_sde:
        raise ValueError(
            f"{who} does not support use_sde=True: gSDE's noise depends on the latent features, "
            "outside the certified network; use use_sde=False"
        )
    if not isinstance(action_space, spaces.Box) or len(action_space.shape) != 1:
        raise ValueError(
            f"{who} needs a 1-D Box action space (continuous control), got {action_space}"
        )


def _squashed_budget(lipschitz: float | None, action_space: spaces.Box) -> float | None:
    """The NormalizedMLP budget before tanh and the rescaling to [low, high]."""
    if lipschitz is None:
        return None
    half = (action_space.high.astype(np.float64) - action_space.low.astype(np.float64)) / 2
    if not np.isfinite(half).all():
        raise ValueError(
            "SAC/TD3 rescale actions into the action box, which must be finite, got "
            f"low={action_space.low}, high={action_space.high}; give the plant an input "
            "saturation (e.g. gymnasium.make('certnet/InvertedPendulum-v0', max_torque=2.0))"
        )
    # rounded down, so that max(h) · budget ≤ lipschitz
    return math.nextafter(float(lipschitz) / float(half.max()), 0.0)


def _actor(
    widths: list[int], activation: str, lipschitz: float | None, actor_kwargs: dict[str, Any] | None
) -> NormalizedMLP:
    kwargs = dict(actor_kwargs or {})
    if lipschitz is not None:
        kwargs["lipschitz"] = lipschitz
    return NormalizedMLP(widths, activation=activation, **kwargs)


class CertifiedMlpExtractor(MlpExtractor):
    """SB3's ``MlpExtractor`` with ``policy_net`` a :class:`NormalizedMLP` that ends in the
    action mean (``latent_dim_pi`` = number of actions; the policy's ``action_net`` is then the
    identity). ``value_net`` is SB3's plain MLP."""

    def __init__(
        self,
        feature_dim: int,
        net_arch,
        activation_fn: type[nn.Module],
        n_actions: int,
        activation: str,
        lipschitz: float | None,
        actor_kwargs: dict[str, Any] | None,
        device="auto",
    ) -> None:
        super().__init__(feature_dim, net_arch, activation_fn, device)
        pi = net_arch.get("pi", []) if isinstance(net_arch, dict) else list(net_arch)
        self.policy_net = _actor(
            [feature_dim, *pi, n_actions], activation, lipschitz, actor_kwargs
        ).to(get_device(device))
        self.latent_dim_pi = n_actions


class _CertnetOptions:
    """What every certified policy adds to its SB3 base: the ``lipschitz``, ``actor_activation``
    and ``actor_kwargs`` keywords (kept in ``self._certnet``, set before the base's
    ``__init__``, which builds the actor from them) and their return in SB3's saved
    constructor parameters."""

    def __init__(
        self,
        observation_space,
        action_space,
        lr_schedule,
        *args,
        lipschitz: float | None = None,
        actor_activation: str | None = None,
        actor_kwargs: dict[str, Any] | None = None,
        **kwargs,
    ) -> None:
        _check_box(action_space, kwargs.get("use_sde", False), type(self).__name__)
        self._certnet = {
            "lipschitz": lipschitz,
            "actor_activation": actor_activation,
            "actor_kwargs": actor_kwargs,
        }
        super().__init__(observation_space, action_space, lr_schedule, *args, **kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(self._certnet)
        return data


class CertifiedActorCriticPolicy(_CertnetOptions, ActorCriticPolicy):
    """PPO/A2C policy whose action mean is a :class:`NormalizedMLP` of the observation.

    Parameters
    ----------
    observation_space, action_space, lr_schedule, **kwargs
        As for SB3's ``ActorCriticPolicy`` (``net_arch`` as a list, or ``{"pi": …, "vf": …}``).
    lipschitz : float, optional
        Budget of obs → action mean in action units per observation unit (default: radii 1).
    actor_activation : str, optional
        certnet activation name (default: that of ``activation_fn``, SB3's default ``Tanh``).
    actor_kwargs : dict, optional
        More :class:`NormalizedMLP` arguments (``input_scale``, ``output_scale``, ``mode``, …).

    Raises
    ------
    ValueError
        ``use_sde=True``; an action space that is not a 1-D Box; an activation certnet cannot
        bound.
    """

    def _build_mlp_extractor(self) -> None:
        c = self._certnet
        self.mlp_extractor = CertifiedMlpExtractor(
            self.features_dim,
            self.net_arch,
            self.activation_fn,
            int(self.action_space.shape[0]),
            _activation_name(self.activation_fn, c["actor_activation"]),
            c["lipschitz"],
            c["actor_kwargs"],
            device=self.device,
        )

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        # the NormalizedMLP already ends in the action mean: no unconstrained layer after it
        self.action_net = nn.Identity()
        self.optimizer = self.optimizer_class(
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )

    @property
    def actor_net(self) -> NormalizedMLP:
        """The certified network obs → action mean."""
        return self.mlp_extractor.policy_net


class CertifiedSACPolicy(_CertnetOptions, SACPolicy):
    """SAC policy whose action mean (before tanh) is a :class:`NormalizedMLP` of the observation.

    The actor is SB3's own ``Actor`` with ``latent_pi`` the identity, ``mu`` the NormalizedMLP
    and ``log_std`` a plain MLP of the features (exploration only). Parameters as for
    :class:`CertifiedActorCriticPolicy` (``lipschitz`` bounds the rescaled, squashed action).
    """

    def make_actor(self, features_extractor=None):
        actor = super().make_actor(features_extractor)
        kw, c = self.actor_kwargs, self._certnet
        dim, arch, act_fn = actor.features_dim, list(kw["net_arch"]), kw["activation_fn"]
        n = int(self.action_space.shape[0])
        device = next(actor.parameters()).device
        actor.latent_pi = nn.Identity()
        actor.mu = _actor(
            [dim, *arch, n],
            _activation_name(act_fn, c["actor_activation"]),
            _squashed_budget(c["lipschitz"], self.action_space),
            c["actor_kwargs"],
        ).to(device)
        actor.log_std = nn.Sequential(*create_mlp(dim, n, arch, act_fn)).to(device)
        return actor

    @property
    def actor_net(self) -> NormalizedMLP:
        """The certified network obs → action before tanh."""
        return self.actor.mu


class CertifiedTD3Policy(_CertnetOptions, TD3Policy):
    """TD3/DDPG policy whose actor is ``tanh(NormalizedMLP(obs))`` (then SB3's rescaling).

    Parameters as for :class:`CertifiedActorCriticPolicy` (``lipschitz`` bounds the rescaled
    action). The target actor has the same structure and radii.
    """

    def make_actor(self, features_extractor=None):
        actor = super().make_actor(features_extractor)
        kw, c = self.actor_kwargs, self._certnet
        n = int(self.action_space.shape[0])
        device = next(actor.parameters()).device
        net = _actor(
            [actor.features_dim, *kw["net_arch"], n],
            _activation_name(kw["activation_fn"], c["actor_activation"]),
            _squashed_budget(c["lipschitz"], self.action_space),
            c["actor_kwargs"],
        )
        actor.mu = nn.Sequential(net, nn.Tanh()).to(device)
        return actor

    @property
    def actor_net(self) -> NormalizedMLP:
        """The certified network obs → action before tanh."""
        return self.actor.mu[0]
