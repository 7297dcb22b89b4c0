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


# ---------------------------------------------------------------- issue 15: envs for RL libraries
def _make_kwargs(env_id):
    """What ``gymnasium.make`` needs besides the id: the generic LTI id takes a plant."""
    import control

    if env_id == "certnet/LTI-v0":
        return {"plant": cn.plants.LTI(control.ss([[1.1]], [[1.0]], [[1.0]], 0, 0.5),
                                       u_min=-2.0, u_max=2.0)}
    return {}


@pytest.mark.parametrize("env_id", sorted(cn.plants.ENV_IDS))
def test_every_id_makes_with_rgb_array_as_sb3_asks(env_id):
    # stable-baselines3's make_vec_env calls gym.make(id, render_mode="rgb_array"); it raised
    env = gym.make(env_id, render_mode="rgb_array", **_make_kwargs(env_id))
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (256, 256, 3) and frame.dtype == np.uint8
    env.step(np.ones(env.action_space.shape, dtype=np.float32))
    assert env.unwrapped.metadata["render_fps"] >= 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)  # with the render check
    allowed = ("normalized", "infinity")
    assert all(any(a in str(w.message) for a in allowed) for w in caught), [
        str(w.message) for w in caught]


def test_render_draws_the_state_and_is_none_without_mode():
    env = gym.make("certnet/Pendulum-v1", render_mode="rgb_array")
    env.reset(options={"state": [0.0, 0.0]})
    up = env.render()
    env.reset(options={"state": [np.pi / 2, 0.0]})
    side = env.render()
    assert (up != side).any() and (up < 255).any()
    plain = gym.make("certnet/Pendulum-v1")
    plain.reset(seed=0)
    assert plain.render() is None


def test_make_forwards_plant_parameters():
    env = gym.make("certnet/InvertedPendulum-v0", mass=0.2, max_torque=2.0)
    plant = env.unwrapped.plant
    assert plant.mass == 0.2 and env.action_space.high[0] == 2.0
    assert gym.make("certnet/InvertedPendulum-v0").unwrapped.plant.mass == 0.15
    with pytest.raises(TypeError, match=r"does not take \['mas'\].*parameters are \['g', 'mass'"):
        gym.make("certnet/InvertedPendulum-v0", mas=0.2)
    with pytest.raises(TypeError, match="cannot be applied to a plant instance"):
        cn.plants.PlantEnv(cn.plants.Pendulum(), mass=2.0)
    # a class works as well as its name
    assert cn.plants.PlantEnv(cn.plants.Pendulum, g=9.81).plant.g == 9.81


def test_registry_is_derived_from_the_plant_classes():
    from certnet.plants.base import Plant

    own = {c.env_id for c in vars(cn.plants).values()
           if isinstance(c, type) and issubclass(c, Plant) and vars(c).get("env_id")}
    assert set(cn.plants.ENV_IDS) == own
    for env_id, name in cn.plants.ENV_IDS.items():
        cls = getattr(cn.plants, name)
        spec = gym.spec(env_id)
        assert spec.max_episode_steps == cls.max_episode_steps
        assert spec.reward_threshold == cls.reward_threshold
        assert spec.kwargs == ({} if env_id == "certnet/LTI-v0" else {"plant": name})
    assert gym.spec("certnet/MountainCarContinuous-v0").reward_threshold == 90.0


def test_import_certnet_registers_the_ids_in_a_fresh_process():
    import subprocess
    import sys

    code = ("import sys\n"
            "import gymnasium as gym\n"
            "env = gym.make('certnet:certnet/Pendulum-v1', render_mode='rgb_array')\n"
            "env.reset(seed=0)\n"
            "env.render()\n"
            "assert 'matplotlib' not in sys.modules  # frames drawn with numpy, no backend\n"
            "import certnet\n"
            "print(sorted(k for k in gym.registry if k.startswith('certnet/')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "certnet/InvertedPendulum-v0" in out.stdout


def test_vector_env_of_a_certnet_id():
    envs = gym.make_vec("certnet/Pendulum-v1", num_envs=2, vectorization_mode="sync")
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (2, 3)
    obs, rew, term, trunc, _ = envs.step(np.zeros((2, 1), dtype=np.float32))
    assert rew.shape == (2,)


@pytest.mark.parametrize("env_id", sorted(cn.plants.ENV_IDS))
def test_sb3_check_env_passes(env_id):
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    kwargs = _make_kwargs(env_id)
    if env_id == "certnet/InvertedPendulum-v0":
        kwargs = {"max_torque": 2.0}  # SB3 needs finite action bounds (see PlantEnv Notes)
    env = gym.make(env_id, render_mode="rgb_array", **kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb3_checker.check_env(env.unwrapped, skip_render_check=False)
    assert all("normalized Box action space" in str(w.message) for w in caught), [
        str(w.message) for w in caught]


@pytest.mark.parametrize("env_id", ["certnet/Pendulum-v1", "certnet/ContinuousCartPole-v0",
                                    "certnet/MountainCarContinuous-v0"])
def test_vector_entry_point_steps_as_a_sync_vector_env(env_id):
    runs = []
    for mode in ("sync", "vector_entry_point"):
        envs = gym.make_vec(env_id, num_envs=8, vectorization_mode=mode, max_episode_steps=60)
        assert envs.action_space.shape == (8, 1) and envs.metadata["autoreset_mode"].name == \
            "NEXT_STEP"
        obs, _ = envs.reset(seed=5)
        rng = np.random.default_rng(0)
        traj = [obs]
        for _ in range(150):  # several episodes per slot: autoreset included
            out = envs.step(rng.uniform(-1, 1, size=(8, 1)).astype(np.float32))
            traj.append(np.column_stack([out[0], out[1], out[2], out[3]]))
        runs.append(np.concatenate([t.reshape(8, -1) for t in traj], axis=1))
    assert type(envs).__name__ == "PlantVectorEnv" and envs.render() is None
    np.testing.assert_array_equal(runs[0], runs[1])


def test_vector_env_errors():
    with pytest.raises(ValueError, match="num_envs must be a positive integer"):
        cn.plants.PlantVectorEnv(0, plant="Pendulum")
    with pytest.raises(ValueError, match="does not render"):
        cn.plants.PlantVectorEnv(2, plant="Pendulum", render_mode="rgb_array")
    with pytest.raises(ValueError, match="PlantVectorEnv needs a plant"):
        cn.plants.PlantVectorEnv(2)
    envs = cn.plants.PlantVectorEnv(2, plant="Pendulum", mass=2.0)
    assert envs.plant.mass == 2.0 and envs.max_episode_steps == 200
    with pytest.raises(ValueError, match="a list of seeds must have num_envs=2"):
        envs.reset(seed=[1])
    envs.reset(seed=[1, None])
    with pytest.raises(ValueError, match=r"actions must have shape \(2, 1\)"):
        envs.step(np.zeros(3))
