"""Learning-rate-free optimisers on products of Frobenius spheres, data normalisation, and fit.

* :class:`MM` — majorisation–minimisation step size (no learning rate);
* :class:`StochasticMM` — MM on a stream of mini-batches (overlapping batches, memory kept);
* :class:`AutoNewton` — Newton step along the update curve from nested autodiff, safeguarded;
* :class:`RiemannianSGD` — fixed-step baseline on the spheres;
* :func:`normalize_data` — data scalings (targets at unit scale with a Lipschitz budget, kept
  in the radii; matched to the initialised network's ℓ2 gain without one);
* :func:`fit` — init → normalise → optimise, with a history for plotting;
* :data:`OPTIMIZERS` / :func:`build_optimizer` — the registry of optimiser names ("mm",
  "smm", "autonewton", "rsgd", "adam") shared by ``fit``, :mod:`certnet.train` and
  ``certnet train``;
* :mod:`certnet.optim.progress` — whether a fit made progress (``History.status``).

All optimisers keep ‖W_k‖_F = r_k exactly, so the network's Lipschitz bound holds at every step.
They accept both closure conventions (certnet's, which returns the loss, and PyTorch's, which
calls ``backward()``) and, under ``torch.distributed``, average over the processes.
"""

from certnet.optim.autonewton import AutoNewton, curve_derivatives
from certnet.optim.curve import find_layers
from certnet.optim.fit import History, fit
from certnet.optim.mm import MM, majoriser, mm_step_size
from certnet.optim.normalization import Normalization, normalize_data
from certnet.optim.progress import StallWarning
from certnet.optim.registry import OPTIMIZERS, OptimizerSpec, build_optimizer, check_optimizer
from certnet.optim.rsgd import RiemannianSGD
from certnet.optim.stochastic import StochasticMM

__all__ = [
    "MM",
    "StochasticMM",
    "AutoNewton",
    "RiemannianSGD",
    "majoriser",
    "mm_step_size",
    "curve_derivatives",
    "find_layers",
    "Normalization",
    "normalize_data",
    "History",
    "fit",
    "StallWarning",
    "OPTIMIZERS",
    "OptimizerSpec",
    "build_optimizer",
    "check_optimizer",
]
