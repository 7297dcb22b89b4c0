"""stable-baselines3: certified policies train, keep their bound, extract and certify; any MLP
actor extracts to a network equal to ``predict``; saved zips read without unpickling code."""

import base64
import json
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import certnet as cn
from certnet.errors import ModelFormatError

sb3 = pytest.importorskip("stable_baselines3")
rl = pytest.importorskip("certnet.train.rl")

ENV = "certnet/Pendulum-v1"
OBS = np.random.default_rng(7).uniform([-1, -1, -8], [1, 1, 8], (200, 3)).astype(np.float32)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny nets: threads only cost time on a shared machine
    yield
    torch.set_num_threads(n)


def _train(algo, policy, steps=128, **policy_kwargs):
    cls = getattr(sb3, algo)
    kw = {"PPO": dict(n_steps=64, batch_size=32, n_epochs=2), "A2C": dict(n_steps=8)}.get(
        algo, dict(learning_starts=32, batch_size=32)
    )
    model = cls(
        policy,
        ENV,
        seed=0,
        verbose=0,
        device="cpu",
        policy_kwargs={"net_arch": [16, 16], **policy_kwargs},
        **kw,
    )
    return model.learn(steps)


def _actions(net):
    with torch.no_grad():
        return net(torch.from_numpy(OBS)).numpy()


def _assert_matches_predict(model, net):
    low, high = model.action_space.low, model.action_space.high
    ref, _ = model.predict(OBS, deterministic=True)
    np.testing.assert_allclose(np.clip(_actions(net), low, high), ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "algo, policy",
    [
        ("PPO", rl.CertifiedActorCriticPolicy),
        ("SAC", rl.CertifiedSACPolicy),
        ("TD3", rl.CertifiedTD3Policy),
    ],
)
def test_certified_policy_trains_keeps_its_bound_and_certifies(algo, policy, tmp_path):
    budget = 3.0
    model = _train(algo, policy, lipschitz=budget)
    actor = model.policy.actor_net
    assert isinstance(actor, cn.nn.NormalizedMLP)
    fresh = getattr(sb3, algo)(
        policy, ENV, seed=0, device="cpu", policy_kwargs={"net_arch": [16, 16], "lipschitz": budget}
    )
    assert not torch.equal(actor.linears[0].point, fresh.policy.actor_net.linears[0].point)
    # the bound of the whole deterministic map obs → action, by construction
    half = float(np.max((model.action_space.high - model.action_space.low) / 2))
    scale = 1.0 if algo == "PPO" else half
    assert actor.lipschitz_bound() * scale <= budget
    net = cn.export.from_sb3(model)
    _assert_matches_predict(model, net)
    cert = cn.verify.lipschitz(net)
    assert cert.value <= budget and cert.check(net) <= cert.value
    # attained slopes stay below the certificate
    x, y = torch.from_numpy(OBS[:100]), torch.from_numpy(OBS[100:])
    with torch.no_grad():
        ratio = (net(x) - net(y)).norm(dim=1) / (x - y).norm(dim=1)
    assert float(ratio.max()) <= cert.value
    # SB3's own save/load rebuilds the certified policy (radii travel in the state dict)
    model.save(tmp_path / "m.zip")
    back = getattr(sb3, algo).load(tmp_path / "m.zip", device="cpu")
    np.testing.assert_array_equal(
        back.predict(OBS, deterministic=True)[0], model.predict(OBS, deterministic=True)[0]
    )
    # and certnet reads the zip without SB3's unpickling: the same network
    np.testing.assert_array_equal(_actions(cn.export.load_sb3(tmp_path / "m.zip")), _actions(net))


@pytest.mark.parametrize("algo", ["PPO", "A2C", "SAC", "TD3", "DDPG"])
def test_any_mlp_actor_extracts_to_predict_and_its_zip_to_the_same_net(algo, tmp_path):
    model = _train(algo, "MlpPolicy", steps=64)
    net = cn.export.from_sb3(model)
    assert all(type(m).__module__.startswith("torch.nn") for m in net)
    _assert_matches_predict(model, net)
    assert cn.export.from_sb3(model.policy) is not None  # a policy works as well as a model
    model.save(tmp_path / "m.zip")
    assert cn.export.is_sb3_zip(tmp_path / "m.zip")
    np.testing.assert_array_equal(_actions(cn.export.load_sb3(tmp_path / "m.zip")), _actions(net))
    cert = cn.verify.lipschitz(net, method="product")
    assert cert.check(net) <= cert.value


def test_extraction_before_the_clip_of_ppo():
    model = _train("PPO", "MlpPolicy", steps=64, log_std_init=0.0)
    with torch.no_grad():
        model.policy.action_net.bias.fill_(5.0)  # the mean leaves the box [-2, 2]
    net = cn.export.from_sb3(model)
    raw = _actions(net)
    assert raw.max() > 2.0  # the network is the map before the clip
    np.testing.assert_allclose(
        np.clip(raw, -2, 2), model.predict(OBS, deterministic=True)[0], atol=1e-6
    )


def test_activation_fn_and_actor_kwargs_are_read_from_the_zip(tmp_path):
    model = _train(
        "PPO",
        rl.CertifiedActorCriticPolicy,
        steps=64,
        lipschitz=2.0,
        activation_fn=torch.nn.ReLU,
        actor_kwargs={"input_scale": [1, 1, 0.125]},
    )
    net = cn.export.from_sb3(model)
    assert any(isinstance(m, torch.nn.ReLU) for m in net)
    model.save(tmp_path / "m.zip")
    np.testing.assert_array_equal(_actions(cn.export.load_sb3(tmp_path / "m.zip")), _actions(net))
    assert cn.verify.lipschitz(net).value <= 2.0


# ---------------------------------------------------------------- refusals
def test_refuses_what_it_cannot_read():
    from gymnasium import spaces
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    class Features(BaseFeaturesExtractor):
        def __init__(self, space):
            super().__init__(space, features_dim=4)
            self.lin = torch.nn.Linear(3, 4)

        def forward(self, x):
            return torch.sin(self.lin(x))

    custom = sb3.PPO(
        "MlpPolicy",
        ENV,
        n_steps=16,
        batch_size=16,
        device="cpu",
        policy_kwargs={"features_extractor_class": Features},
    )
    with pytest.raises(TypeError, match="Features is not FlattenExtractor"):
        cn.export.from_sb3(custom)
    discrete = sb3.PPO("MlpPolicy", "CartPole-v1", n_steps=16, batch_size=16, device="cpu")
    with pytest.raises(TypeError, match="Discrete.*not a 1-D Box.*argmax"):
        cn.export.from_sb3(discrete)
    sde = sb3.PPO("MlpPolicy", ENV, n_steps=16, batch_size=16, device="cpu", use_sde=True)
    with pytest.raises(TypeError, match="use_sde=True is not read"):
        cn.export.from_sb3(sde)
    vn = sb3.PPO(
        "MlpPolicy",
        VecNormalize(DummyVecEnv([lambda: cn.plants.Pendulum().env()])),
        n_steps=16,
        batch_size=16,
        device="cpu",
    )
    with pytest.raises(ValueError, match="VecNormalize"):
        cn.export.from_sb3(vn)
    with pytest.raises(TypeError, match="expected a stable-baselines3 model or policy"):
        cn.export.from_sb3(torch.nn.Linear(3, 1))
    with pytest.raises(ValueError, match="use_sde=True"):
        sb3.PPO(rl.CertifiedActorCriticPolicy, ENV, use_sde=True, device="cpu")
    unbounded = cn.plants.InvertedPendulum().env()  # SB3's algorithms refuse it themselves
    with pytest.raises(ValueError, match="must be finite.*max_torque"):
        rl.CertifiedSACPolicy(
            unbounded.observation_space, unbounded.action_space, lambda _: 1e-3, lipschitz=1.0
        )
    with pytest.raises(ValueError, match="1-D Box action space"):
        rl.CertifiedTD3Policy(unbounded.observation_space, spaces.Discrete(3), lambda _: 1e-3)


def test_a_custom_mlp_extractor_is_refused():
    model = _train("PPO", "MlpPolicy", steps=16)
    model.policy.mlp_extractor.policy_net.append(torch.nn.Dropout(0.1))
    with pytest.raises(TypeError, match="Dropout, which certnet does not read"):
        cn.export.from_sb3(model)


def test_load_sb3_refuses_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        cn.export.load_sb3(tmp_path / "none.zip")
    (tmp_path / "a.zip").write_bytes(b"not a zip")
    with pytest.raises(ModelFormatError, match="not a zip file"):
        cn.export.load_sb3(tmp_path / "a.zip")
    assert not cn.export.is_sb3_zip(tmp_path / "a.zip")
    with zipfile.ZipFile(tmp_path / "b.zip", "w") as z:
        z.writestr("other", "x")
    with pytest.raises(ModelFormatError, match="without 'data' and 'policy.pth'"):
        cn.export.load_sb3(tmp_path / "b.zip")


class _Boom:
    def __reduce__(self):
        return (Path.write_text, (Path(_Boom.target), "ran"))


def test_load_sb3_runs_no_code_from_the_zip(tmp_path):
    model = _train("SAC", "MlpPolicy", steps=16)
    model.save(tmp_path / "m.zip")
    _Boom.target = str(tmp_path / "pwned")
    with zipfile.ZipFile(tmp_path / "m.zip") as z:
        files = {n: z.read(n) for n in z.namelist()}
    data = json.loads(files["data"])
    data["action_space"][":serialized:"] = base64.b64encode(pickle.dumps(_Boom())).decode()
    files["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as z:
        for n, b in files.items():
            z.writestr(n, b)
    with pytest.raises(ModelFormatError, match="action_space .* not a Box certnet reads"):
        cn.export.load_sb3(tmp_path / "evil.zip")
    assert not (tmp_path / "pwned").exists()


def test_howto_rl_examples_run(tmp_path, monkeypatch):
    """The ```python blocks of docs/howto-rl.md run in order, as a reader would paste them."""
    monkeypatch.chdir(tmp_path)
    page = (Path(__file__).resolve().parents[2] / "docs" / "howto-rl.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", page, re.S | re.M)
    assert len(blocks) >= 2
    namespace: dict = {"__name__": "__main__"}
    for k, code in enumerate(blocks):
        exec(compile(code, f"howto-rl.md#block{k}", "exec"), namespace)


def test_make_vec_env_makes_certnet_ids():
    # make_vec_env calls gym.make(id, render_mode="rgb_array"), which certnet envs refused
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env(ENV, n_envs=2, seed=0, env_kwargs={"g": 9.81})
    assert venv.reset().shape == (2, 3)
    assert venv.get_images()[0].shape == (256, 256, 3)
    assert venv.get_attr("plant")[0].g == 9.81
