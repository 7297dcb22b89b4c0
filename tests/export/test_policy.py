import gymnasium as gym
import numpy as np
import pytest
import torch

import certnet as cn


@pytest.fixture
def net():
    return cn.nn.NormalizedMLP([3, 16, 1], lipschitz=50.0, seed=0)


def test_policy_scales_clips_and_keeps_types(net):
    pol = cn.export.to_policy(net, plant=cn.plants.Pendulum(), obs_scale=2.0, action_scale=10.0)
    obs = np.array([1.0, 0.0, 3.0], dtype=np.float32)
    a = pol(obs)
    assert a.shape == (1,) and a.dtype == np.float32 and abs(a[0]) <= 2.0
    with torch.no_grad():
        raw = 10.0 * net(torch.tensor(obs)[None] * 2.0)[0]
    np.testing.assert_allclose(a, np.clip(raw.numpy(), -2, 2), atol=1e-6)
    batch = pol(np.stack([obs] * 5))
    assert batch.shape == (5, 1)
    x = torch.tensor(obs)[None].requires_grad_(True)
    pol(x).sum().backward()
    assert x.grad is not None
    assert pol.predict(obs)[1] is None


def test_limits_from_env_and_errors(net):
    env = gym.make("Pendulum-v1")
    pol = cn.export.to_policy(net, env=env)
    np.testing.assert_allclose(pol.high, [2.0])
    with pytest.raises(ValueError, match="give both low and high"):
        cn.export.to_policy(net, low=-1)
    with pytest.raises(ValueError, match="action low .* exceeds high"):
        cn.export.to_policy(net, low=1, high=-1)
    with pytest.raises(TypeError, match="cannot read a"):
        cn.export.to_policy(torch.nn.GRU(3, 2))


def test_evaluate_lqr_on_twin_and_original():
    plant = cn.plants.Pendulum()
    pi = cn.experts.lqr(plant)
    ours = cn.export.evaluate(pi, "certnet/Pendulum-v1", episodes=4, seed=0)
    theirs = cn.export.evaluate(pi, "Pendulum-v1", episodes=4, seed=0)
    np.testing.assert_allclose(ours.returns, theirs.returns, atol=1e-4)
    np.testing.assert_array_equal(ours.success, theirs.success)
    assert ours.lengths.tolist() == [200] * 4
    ok = ours.success == 1
    assert np.all(np.isfinite(ours.settling_time[ok])) and np.all(ours.settling_time[ok] >= 0)
    assert "episodes" in ours.summary()


def test_evaluate_goal_plant_and_unknown_plant():
    push = lambda obs: np.array([1.0 if obs[1] >= 0 else -1.0], dtype=np.float32)  # noqa: E731
    res = cn.export.evaluate(push, "MountainCarContinuous-v0", episodes=2, seed=0)
    assert res.success.tolist() == [1.0, 1.0] and res.mean_return > 80
    assert np.all(res.settling_time == res.lengths * 1.0)
    res = cn.export.evaluate(lambda o: 0, gym.make("CartPole-v1"), episodes=2)
    assert np.isnan(res.success).all() and np.isnan(res.success_rate)
    assert res.lengths.min() >= 1


def test_evaluate_errors():
    pi = cn.experts.lqr(cn.plants.Pendulum())
    with pytest.raises(ValueError, match="unknown environment id 'Pendulum-v9'"):
        cn.export.evaluate(pi, "Pendulum-v9")
    with pytest.raises(ValueError, match="episodes must be a positive integer"):
        cn.export.evaluate(pi, "Pendulum-v1", episodes=0)
    with pytest.raises(ValueError, match="seed must be an integer"):
        cn.export.evaluate(pi, "Pendulum-v1", seed=-1)
    with pytest.raises(TypeError, match="env must be a gymnasium Env"):
        cn.export.evaluate(pi, 3)


# ---------------------------------------------------------------- batched evaluation backends
def _compare(a, b, rtol=1e-6):
    np.testing.assert_allclose(a.returns, b.returns, rtol=rtol, atol=1e-6)
    np.testing.assert_array_equal(a.lengths, b.lengths)
    np.testing.assert_array_equal(a.success, b.success)
    np.testing.assert_allclose(a.effort, b.effort, rtol=1e-5)


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "certnet/ContinuousCartPole-v0"])
def test_twin_and_vector_give_the_one_env_loop_returns(env_id):
    probe = gym.make(env_id)
    n_obs = probe.observation_space.shape[0]
    net = cn.nn.NormalizedMLP([n_obs, 16, 1], lipschitz=30.0, seed=1)
    pol = cn.export.to_policy(net, env=probe)
    res = {b: cn.export.evaluate(pol, env_id, episodes=24, seed=5, backend=b, num_envs=7)
           for b in ("gym", "vector", "twin")}
    assert [r.backend for r in res.values()] == ["gym", "vector", "twin"]
    assert res["twin"].policy_batched and res["vector"].policy_batched
    _compare(res["twin"], res["gym"])
    _compare(res["vector"], res["gym"])
    if env_id == "Pendulum-v1":  # truncated at 200, never terminates
        assert res["twin"].lengths.tolist() == [200] * 24
    else:  # a random net drops the pole: terminations of different lengths
        assert res["twin"].lengths.max() < 500 and len(set(res["twin"].lengths)) > 3
    assert cn.export.evaluate(pol, env_id, episodes=3).backend == "twin"  # auto


def test_goal_plant_terminates_on_the_twin_as_in_gymnasium():
    push = lambda obs: np.where(np.asarray(obs)[..., 1:2] >= 0, 1.0, -1.0)  # noqa: E731
    twin = cn.export.evaluate(push, "MountainCarContinuous-v0", episodes=20, backend="twin")
    loop = cn.export.evaluate(push, "MountainCarContinuous-v0", episodes=20, backend="gym")
    _compare(twin, loop, rtol=1e-4)  # gymnasium steps in float32 (see MountainCar Notes)
    assert twin.success.all() and twin.lengths.max() < 999


def test_a_policy_that_takes_one_observation_runs_row_by_row():
    def one(obs):  # breaks on a batch: obs[2] is then a row, not θ̇
        return np.array([-2.0 * float(obs[2])], dtype=np.float32)

    def wrong_on_batches(obs):  # accepts a batch but gives one action for all of it
        obs = np.atleast_2d(obs)
        return np.full((obs.shape[0], 1), -2.0 * obs[0, 2], dtype=np.float32)

    loop = cn.export.evaluate(one, "Pendulum-v1", episodes=4, backend="gym")
    for pol in (one, wrong_on_batches):
        for backend in ("twin", "vector"):
            ev = cn.export.evaluate(pol, "Pendulum-v1", episodes=4, backend=backend)
            assert ev.backend == backend and ev.policy_batched is False
            _compare(ev, loop)


def test_auto_falls_back_to_vector_for_unknown_envs_and_gym_for_wrapped_ones():
    def act(obs):
        return np.array(0 if np.ndim(obs) == 1 else [0] * len(obs))

    vec = cn.export.evaluate(act, "CartPole-v1", episodes=5)
    loop = cn.export.evaluate(act, "CartPole-v1", episodes=5, backend="gym")
    assert vec.backend == "vector" and np.isnan(vec.success).all()
    _compare(vec, loop)
    wrapped = gym.wrappers.TransformReward(gym.make("Pendulum-v1"), lambda r: 2 * r)
    ev = cn.export.evaluate(lambda o: np.zeros(1, np.float32), wrapped, episodes=2)
    assert ev.backend == "gym"
    with pytest.raises(ValueError, match=r"wrappers \['TransformReward'\] the twin"):
        cn.export.evaluate(lambda o: np.zeros(1), wrapped, episodes=2, backend="twin")


def test_perturbed_plants_draw_seeded_parameters_and_report_quantiles():
    pi = cn.experts.lqr(cn.plants.Pendulum())
    kw = dict(parameters={"mass": (0.8, 1.2), "length": (0.9, 1.1)}, samples=40, seed=3)
    ev = cn.export.evaluate(pi, "Pendulum-v1", **kw)
    again = cn.export.evaluate(pi, "Pendulum-v1", **kw)
    np.testing.assert_array_equal(ev.returns, again.returns)
    assert len(ev.returns) == 40 and set(ev.parameters) == {"mass", "length"}
    m = ev.parameters["mass"]
    assert 0.8 <= m.min() < 0.85 and 1.15 < m.max() <= 1.2
    q = ev.quantiles
    assert ev.worst_return <= q[0.05] <= q[0.5] <= q[0.95] <= ev.returns.max()
    assert "worst" in ev.summary() and "backend twin" in ev.summary()
    # episode k runs the plant of its own draw: compare one episode with a fixed plant
    k = 7
    plant = cn.plants.Pendulum(mass=m[k], length=ev.parameters["length"][k])
    env = plant.env()
    one = cn.export.evaluate(pi, env, episodes=1, seed=3 + k, backend="gym")
    np.testing.assert_allclose(ev.returns[k], one.returns[0], rtol=1e-6)
    # a point range is the nominal plant
    nominal = cn.export.evaluate(pi, "Pendulum-v1", episodes=5, parameters={"mass": (1, 1)})
    plain = cn.export.evaluate(pi, "Pendulum-v1", episodes=5)
    np.testing.assert_allclose(nominal.returns, plain.returns, rtol=1e-6)


def test_sensor_noise_and_action_delay_on_the_twin():
    pi = cn.experts.lqr(cn.plants.CartPole())
    env = "certnet/ContinuousCartPole-v0"
    clean = cn.export.evaluate(pi, env, episodes=10)
    noisy = cn.export.evaluate(pi, env, episodes=10, obs_noise=0.05)
    again = cn.export.evaluate(pi, env, episodes=10, obs_noise=0.05)
    np.testing.assert_array_equal(noisy.effort, again.effort)
    assert not np.allclose(noisy.effort, clean.effort)
    late = cn.export.evaluate(pi, env, episodes=10, action_delay=30)
    assert late.mean_return < clean.mean_return  # 0.6 s late, the pole falls


def test_batched_evaluation_errors():
    pi = cn.experts.lqr(cn.plants.Pendulum())
    with pytest.raises(ValueError, match=r"'friction' is not a perturbable parameter of "
                                         r"Pendulum; valid names: \['g', 'mass', 'length'\]"):
        cn.export.evaluate(pi, "Pendulum-v1", parameters={"friction": (0, 0.1)})
    with pytest.raises(ValueError, match="must be finite with low ≤ high, got \\(1.2, 0.8\\)"):
        cn.export.evaluate(pi, "Pendulum-v1", parameters={"mass": (1.2, 0.8)})
    with pytest.raises(ValueError, match="must be finite with low ≤ high, got \\(nan"):
        cn.export.evaluate(pi, "Pendulum-v1", parameters={"mass": (float("nan"), 1)})
    with pytest.raises(ValueError, match=r"must be two numbers \(low, high\), got \(\)"):
        cn.export.evaluate(pi, "Pendulum-v1", parameters={"mass": ()})
    with pytest.raises(ValueError, match="mass must be a positive finite number, got 0.0"):
        cn.export.evaluate(pi, "Pendulum-v1", parameters={"mass": (0, 1)})
    with pytest.raises(TypeError, match="parameters must map names"):
        cn.export.evaluate(pi, "Pendulum-v1", parameters=[("mass", (1, 2))])
    with pytest.raises(ValueError, match="unknown backend 'fast'"):
        cn.export.evaluate(pi, "Pendulum-v1", backend="fast")
    with pytest.raises(ValueError, match="give episodes or samples, not both"):
        cn.export.evaluate(pi, "Pendulum-v1", episodes=3, samples=4)
    with pytest.raises(ValueError, match="need the batched twin, but CartPole-v1 cannot"):
        cn.export.evaluate(lambda o: 0, "CartPole-v1", obs_noise=0.1)
    with pytest.raises(ValueError, match="run on backend 'twin', not 'gym'"):
        cn.export.evaluate(pi, "Pendulum-v1", backend="gym", action_delay=1)
    with pytest.raises(ValueError, match="action_delay must be an integer"):
        cn.export.evaluate(pi, "Pendulum-v1", action_delay=-1)
    with pytest.raises(ValueError, match="obs_noise must be finite"):
        cn.export.evaluate(pi, "Pendulum-v1", obs_noise=-1.0)
    with pytest.raises(ValueError, match="num_envs must be a positive integer"):
        cn.export.evaluate(pi, "Pendulum-v1", num_envs=0)
    lti = cn.plants.VehicleLateral()
    with pytest.raises(ValueError, match="valid names: none"):
        cn.export.evaluate(lambda o: np.zeros(1), lti.env(), parameters={"mass": (1, 2)})
    bare = gym.make("Pendulum-v1", max_episode_steps=None).unwrapped
    with pytest.raises(ValueError, match="backend 'vector' needs an env made from a"):
        cn.export.evaluate(pi, bare, backend="vector")
