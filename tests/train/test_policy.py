import pytest
import torch

import certnet as cn
from certnet.train import PolicyConfig, optimize_policy
from certnet.train.rollout import rollout_cost, sample_box

BOX = {"x0_low": (-0.3, -0.3), "x0_high": (0.3, 0.3)}


def _cfg(**kw):
    base = dict(
        iterations=6, batch=16, horizon=10, hidden=(8,), lipschitz=20.0, progress=False, **BOX
    )
    base.update(kw)
    return PolicyConfig(**base)


def _eval_cost(plant, net):
    x0 = sample_box(
        BOX["x0_low"], BOX["x0_high"], 64, torch.Generator().manual_seed(7), torch.float32
    )
    with torch.no_grad():
        return float(rollout_cost(plant, net, x0, 10))


@pytest.mark.parametrize(
    ("optimizer", "lr"), [("mm", None), ("autonewton", None), ("rsgd", 0.05), ("adam", 3e-2)]
)
def test_short_run_reduces_cost_and_keeps_bound(optimizer, lr):
    plant = cn.plants.Pendulum()
    cfg = _cfg(optimizer=optimizer, lr=lr)
    net = cn.train.build_network(cfg, 3, 1, output_scale=2.0)
    before = _eval_cost(plant, net)
    res = optimize_policy(plant, cfg, net=net)
    assert _eval_cost(plant, res.net) < before
    assert len(res.history.loss) == 6
    assert max(res.history.lipschitz) <= 20.0 * (1 + 1e-12)
    assert res.net.lipschitz_bound() <= 20.0 * (1 + 1e-12)


def test_curriculum_grows_horizon():
    res = optimize_policy(cn.plants.Pendulum(), _cfg(horizon_start=2, iterations=4))
    assert res.history.extra["horizon"] == [2.0, 6.0, 10.0, 10.0]


def test_resume_continues_identically(tmp_path):
    plant = cn.plants.Pendulum()
    full = optimize_policy(plant, _cfg(iterations=4))
    ck = str(tmp_path / "run.pt")
    optimize_policy(plant, _cfg(iterations=2, checkpoint=ck))
    resumed = optimize_policy(plant, _cfg(iterations=4, checkpoint=ck, resume=True))
    assert resumed.history.loss == full.history.loss
    for a, b in zip(full.net.state_dict().values(), resumed.net.state_dict().values(), strict=True):
        assert torch.equal(a, b)


class _Interrupting(cn.plants.Pendulum):
    def __init__(self, after):
        super().__init__()
        self.calls, self.after = 0, after

    def step(self, x, u):
        self.calls += 1
        if self.calls > self.after:
            raise KeyboardInterrupt
        return super().step(x, u)


def test_ctrl_c_saves_then_resume_matches(tmp_path):
    ck = str(tmp_path / "run.pt")
    plant = _Interrupting(after=25)  # MM evaluates the 10-step rollout ≥ 2× per iteration
    with pytest.raises(KeyboardInterrupt):
        optimize_policy(plant, _cfg(iterations=4, checkpoint=ck))
    state = cn.train.load_checkpoint(ck, kind="optimize_policy")
    assert 0 < state["iteration"] < 4
    resumed = optimize_policy(cn.plants.Pendulum(), _cfg(iterations=4, checkpoint=ck, resume=True))
    full = optimize_policy(cn.plants.Pendulum(), _cfg(iterations=4))
    assert resumed.history.loss == full.history.loss


def test_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        optimize_policy(
            cn.plants.Pendulum(), _cfg(checkpoint=str(tmp_path / "none.pt"), resume=True)
        )


def test_checkpoint_of_other_trainer_or_arch(tmp_path):
    ck = str(tmp_path / "run.pt")
    optimize_policy(cn.plants.Pendulum(), _cfg(iterations=1, checkpoint=ck))
    with pytest.raises(ValueError, match="is not a imitate checkpoint"):
        cn.train.load_checkpoint(ck, kind="imitate")
    with pytest.raises(ValueError, match="resume with the config that wrote it"):
        optimize_policy(
            cn.plants.Pendulum(), _cfg(iterations=2, checkpoint=ck, resume=True, hidden=(4,))
        )
    with pytest.raises(ValueError, match="written by optimizer 'mm' but this run uses 'adam'"):
        optimize_policy(
            cn.plants.Pendulum(),
            _cfg(iterations=2, checkpoint=ck, resume=True, optimizer="adam", lr=1e-3),
        )
    bad = tmp_path / "junk.pt"
    bad.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a readable certnet checkpoint"):
        cn.train.load_checkpoint(bad, kind="imitate")


def test_box_must_match_plant():
    with pytest.raises(ValueError, match="the plant has 2 states"):
        optimize_policy(cn.plants.Pendulum(), _cfg(x0_low=(0.0,), x0_high=(1.0,)))


def test_plain_network_with_adam_and_mm_refusal():
    res = optimize_policy(
        cn.plants.Pendulum(), _cfg(network="plain", optimizer="adam", lr=1e-3, iterations=2)
    )
    assert isinstance(res.net, torch.nn.Sequential)
    assert all(v != v for v in res.history.lipschitz)  # NaN: no bound by construction
    with pytest.raises(TypeError, match="'mm' needs a network of FrobeniusLinear layers"):
        optimize_policy(cn.plants.Pendulum(), _cfg(network="plain"))


def test_stochastic_mm_keeps_its_memory_and_resumes_identically(tmp_path):
    """Every iteration is a new batch of initial states: smm steps on the last two and is
    primed with the batch before the checkpoint on resume."""
    plant = cn.plants.Pendulum()
    full = optimize_policy(plant, _cfg(iterations=4, optimizer="smm"))
    assert full.history.loss[-1] < full.history.loss[0]
    ck = str(tmp_path / "run.pt")
    optimize_policy(plant, _cfg(iterations=2, optimizer="smm", checkpoint=ck))
    resumed = optimize_policy(
        plant, _cfg(iterations=4, optimizer="smm", checkpoint=ck, resume=True)
    )
    assert resumed.history.loss == full.history.loss
    for a, b in zip(full.net.state_dict().values(), resumed.net.state_dict().values(), strict=True):
        assert torch.equal(a, b)
