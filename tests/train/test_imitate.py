import pytest
import torch

import certnet as cn
from certnet.train import ImitationConfig, imitate

BOX = {"x0_low": (-0.3, -0.3), "x0_high": (0.3, 0.3)}


def _cfg(**kw):
    base = dict(
        iterations=3,
        episodes=4,
        steps=5,
        epochs=5,
        hidden=(8,),
        lipschitz=30.0,
        progress=False,
        **BOX,
    )
    base.update(kw)
    return ImitationConfig(**base)


def test_dagger_relabels_learner_states(tmp_path):
    plant = cn.plants.Pendulum()
    expert = cn.experts.lqr(plant)
    ck = tmp_path / "d.pt"
    res = imitate(expert, plant, _cfg(checkpoint=str(ck)))
    data = cn.train.load_checkpoint(ck, kind="imitate")["data"]
    obs, labels = data["obs"], data["labels"]
    assert res.history.extra["dataset_size"] == [20.0, 40.0, 60.0]
    # every row carries the expert's label, also the rows the learner visited
    assert torch.allclose(labels, torch.as_tensor(expert(obs), dtype=labels.dtype), atol=1e-6)
    # round 1 rolled out the learner, not the expert: its states differ from the expert's
    x0 = cn.train.rollout.sample_box(
        BOX["x0_low"], BOX["x0_high"], 4, torch.Generator().manual_seed(1), torch.float32
    )
    by_expert = plant.observe(cn.train.rollout.visited_states(plant, expert, x0, 5))
    assert not torch.allclose(obs[20:40], by_expert.to(obs.dtype), atol=1e-4)


def test_imitation_reduces_loss_and_keeps_bound():
    plant = cn.plants.Pendulum()
    expert = cn.experts.lqr(plant)
    cfg = _cfg(iterations=1, epochs=15)
    net = cn.train.build_network(cfg, 3, 1, output_scale=2.0)
    obs = plant.observe(torch.rand(256, 2) * 0.6 - 0.3)

    def mse():
        with torch.no_grad():
            return float(((net(obs) - torch.as_tensor(expert(obs))) ** 2).mean())

    before = mse()
    res = imitate(expert, plant, cfg, net=net)
    assert mse() < 0.5 * before
    assert res.history.loss[-1] < before
    assert net.lipschitz_bound() <= 30.0 * (1 + 1e-12)


def test_minibatches_and_resume(tmp_path):
    plant = cn.plants.Pendulum()
    expert = cn.experts.lqr(plant)
    full = imitate(expert, plant, _cfg(batch_size=8))
    ck = str(tmp_path / "d.pt")
    imitate(expert, plant, _cfg(batch_size=8, iterations=2, checkpoint=ck))
    resumed = imitate(expert, plant, _cfg(batch_size=8, checkpoint=ck, resume=True))
    assert resumed.history.loss == full.history.loss


def test_expert_nan_is_refused():
    plant = cn.plants.Pendulum()
    with pytest.raises(ValueError, match="NaN"):
        imitate(lambda obs: torch.full((obs.shape[0], 1), float("nan")), plant, _cfg())


def test_full_batch_mm_resume_is_identical(tmp_path):
    """Full batch: MM keeps L-BFGS curvature pairs within a round, and they are checkpointed."""
    plant = cn.plants.Pendulum()
    expert = cn.experts.lqr(plant)
    full = imitate(expert, plant, _cfg())
    ck = tmp_path / "d.pt"
    imitate(expert, plant, _cfg(iterations=2, checkpoint=str(ck)))
    saved = cn.train.load_checkpoint(ck, kind="imitate")
    memory = saved["optimizer"]["state"][0]["memory"]  # the L-BFGS pairs of the last round
    assert len(memory["s"]) >= 1 and all(isinstance(t, torch.Tensor) for t in memory["s"][0])
    resumed = imitate(expert, plant, _cfg(checkpoint=str(ck), resume=True))
    assert resumed.history.loss == full.history.loss
    for a, b in zip(full.net.parameters(), resumed.net.parameters(), strict=True):
        assert torch.equal(a, b)


def test_minibatches_with_stochastic_mm_and_resume(tmp_path):
    plant = cn.plants.Pendulum()
    expert = cn.experts.lqr(plant)
    full = imitate(expert, plant, _cfg(batch_size=8, optimizer="smm"))
    assert full.history.loss[-1] < full.history.loss[0]
    ck = str(tmp_path / "d.pt")
    imitate(expert, plant, _cfg(batch_size=8, optimizer="smm", iterations=2, checkpoint=ck))
    resumed = imitate(
        expert, plant, _cfg(batch_size=8, optimizer="smm", checkpoint=ck, resume=True)
    )
    assert resumed.history.loss == full.history.loss
