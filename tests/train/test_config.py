import pytest

from certnet.train import ImitationConfig, PolicyConfig, config_from_dict


def test_from_dict_builds_and_converts_lists():
    cfg = config_from_dict(PolicyConfig, {"hidden": [8, 8], "x0_low": [-1, 0], "x0_high": [1, 1]})
    assert cfg.hidden == (8, 8) and cfg.x0_low == (-1.0, 0.0)


def test_unknown_key_names_key_and_valid_ones():
    with pytest.raises(TypeError, match=r"unknown PolicyConfig key 'horizn'.*horizon"):
        config_from_dict(PolicyConfig, {"horizn": 10})


def test_not_a_table():
    with pytest.raises(TypeError, match="must be a table"):
        config_from_dict(ImitationConfig, [("epochs", 3)])


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"hidden": [0]}, "hidden must be positive integers"),
        ({"network": "big"}, "network must be one of"),
        (
            {"optimizer": "sgd"},
            "optimizer must be one of 'mm', 'smm', 'autonewton', 'rsgd', 'adam'",
        ),
        ({"lr": 1e-3}, "'mm' chooses its own step size and has no learning rate; remove lr"),
        ({"optimizer": "autonewton", "lr": 0.1}, "'autonewton' chooses its own step size"),
        ({"optimizer": "adam"}, r"'adam' needs a learning rate: pass lr, e.g. lr=0.001"),
        ({"optimizer": "rsgd"}, r"'rsgd' needs a learning rate: pass lr, e.g. lr=0.1"),
        ({"optimizer": "adam", "lr": -1.0}, "lr must be a positive finite number"),
        ({"lipschitz": -1.0}, "lipschitz must be > 0"),
        ({"iterations": 0}, "iterations must be a positive integer"),
        ({"resume": True}, "resume = true needs a checkpoint"),
        ({"horizon": 5, "horizon_start": 10}, "horizon_start"),
        ({"x0_low": [0.0]}, "give both x0_low and x0_high"),
        ({"x0_low": [1.0], "x0_high": [0.0]}, "low ≤ high"),
    ],
)
def test_bad_values(kw, match):
    with pytest.raises(ValueError, match=match):
        PolicyConfig(**kw)


def test_non_numeric_budget():
    with pytest.raises(TypeError, match="lipschitz must be a number"):
        ImitationConfig(lipschitz="big")


def test_imitation_batch_size():
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        ImitationConfig(batch_size=0)


def test_learning_rate_free_by_default():
    assert PolicyConfig().lr is None and PolicyConfig().optimizer == "mm"
    assert PolicyConfig(optimizer="autonewton").lr is None
    assert ImitationConfig(optimizer="adam", lr=3e-3).lr == 3e-3
    assert config_from_dict(PolicyConfig, {"optimizer": "rsgd", "lr": 0.1}).lr == 0.1
