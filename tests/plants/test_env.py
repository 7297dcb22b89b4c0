import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import certnet as cn


def test_every_plant_env_passes_check_env(plant):
    env = plant.env()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=True)
    # gymnasium only recommends a normalised action space, and warns on unbounded boxes for
    # plants whose states are genuinely unbounded; nothing else is allowed
    allowed = ("normalized", "infinity")
    assert all(any(a in str(w.message) for a in allowed) for w in caught), [
        str(w.message) for w in caught]


@pytest.mark.parametrize("env_id", sorted(set(cn.plants.ENV_IDS) - {"certnet/LTI-v0"}))
def test_registered_ids_make_and_are_deterministic(env_id):
    runs = []
    for _ in range(2):
        env = gym.make(env_id)
        obs, _ = env.reset(seed=3)
        env.action_space.seed(3)
        traj = [obs]
        for _ in range(5):
            obs, r, term, trunc, _ = env.step(env.action_space.sample())
            traj.append(obs)
        runs.append(np.array(traj))
    np.testing.assert_array_equal(runs[0], runs[1])


@pytest.mark.parametrize(
    "ours, theirs",
    [("certnet/Pendulum-v1", "Pendulum-v1"),
     ("certnet/MountainCarContinuous-v0", "MountainCarContinuous-v0")],
)
def test_env_twins_gymnasium_from_the_same_seed(ours, theirs):
    a, b = gym.make(ours), gym.make(theirs)
    oa, _ = a.reset(seed=11)
    ob, _ = b.reset(seed=11)
    np.testing.assert_allclose(oa, ob, atol=1e-6)
    rng = np.random.default_rng(0)
    for _ in range(200):
        act = rng.uniform(-1.5, 1.5, size=(1,)).astype(np.float32)
        oa, ra, ta, tra, _ = a.step(act)
        ob, rb, tb, trb, _ = b.step(act)
        np.testing.assert_allclose(oa, ob, atol=1e-6)
        assert abs(ra - rb) <= 1e-6 and (ta, tra) == (tb, trb)
        if ta or tra:
            break


def test_reset_options_and_lti_env():
    import control

    env = cn.plants.Pendulum().env()
    obs, _ = env.reset(options={"state": [np.pi, 0.0]})
    np.testing.assert_allclose(obs, [-1, 0, 0], atol=1e-6)
    with pytest.raises(ValueError, match=r"options\['state'\] must be 2 finite numbers"):
        env.reset(options={"state": [0.0]})
    lti = cn.plants.LTI(control.ss([[1.0]], [[1.0]], [[1.0]], 0, 0.1))
    env = gym.make("certnet/LTI-v0", plant=lti)
    assert env.reset(seed=0)[0].shape == (1,)


def test_env_errors():
    with pytest.raises(ValueError, match="PlantEnv needs a plant"):
        gym.make("certnet/LTI-v0")
    with pytest.raises(ValueError, match="unknown plant 'Rocket'"):
        cn.plants.PlantEnv("Rocket")
    with pytest.raises(TypeError, match="plant must be a certnet Plant"):
        cn.plants.PlantEnv(3.0)
    with pytest.raises(ValueError, match="render_mode 'human' is not supported"):
        cn.plants.PlantEnv("Pendulum", render_mode="human")
    env = cn.plants.Pendulum().env()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must have 1 entries \['torque'\]"):
        env.step(np.zeros(2, dtype=np.float32))
    with pytest.raises(ValueError, match="u contains NaN"):
        env.step(np.array([np.nan], dtype=np.float32))


def test_env_refusing_plant():
    env = cn.plants.Pendulum(input_saturation="refuse").env()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="refuses inputs"):
        env.step(np.array([3.0], dtype=np.float32))
