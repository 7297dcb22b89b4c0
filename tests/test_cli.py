"""The ``certnet`` command: every command on a tiny model or config, and its error paths."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import certnet as cn
from certnet import demos, export, plants
from certnet.cli import app
from tests.verify.conftest import dlqr_gain, feedback_net

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args], prog_name="certnet")


def run_json(*args) -> dict:
    r = run(*args, "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def user_error(r, match: str) -> str:
    """Exit code 2, one line on stderr matching ``match``, no traceback."""
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert re.search(match, lines[0]), lines[0]
    return lines[0]


@pytest.fixture
def model(tmp_path):
    """A tiny pendulum-sized controller: observation (3) → torque (1)."""
    net = cn.nn.NormalizedMLP([3, 8, 8, 1], activation="tanh", lipschitz=4.0, seed=0)
    return cn.save(net, tmp_path / "ctrl.safetensors")


# ------------------------------------------------------------------------------ general
def test_version():
    r = run("version")
    assert r.exit_code == 0 and r.stdout.strip() == cn.__version__


def test_help_lists_every_command():
    r = run("--help")
    assert r.exit_code == 0
    for cmd in ("demo", "train", "verify", "simulate", "evaluate", "export", "info"):
        assert cmd in r.stdout


def test_info_reports_architecture_and_bound(model):
    out = run_json("info", model)
    assert out["widths"] == [3, 8, 8, 1]
    assert out["kind"] == "NormalizedMLP"
    assert out["by_construction_bound"] == pytest.approx(4.0)
    r = run("info", model)
    assert r.exit_code == 0 and "by-construction bound" in r.stdout


def test_info_of_a_sequential(tmp_path):
    seq = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    out = run_json("info", cn.save(seq, tmp_path / "s.safetensors"))
    assert out["kind"] == "Sequential" and out["activations"] == ["relu"]
    assert "by_construction_bound" not in out


def test_missing_model_file(tmp_path):
    user_error(run("info", tmp_path / "nope.safetensors"), r"no such model file: .*nope")


def test_not_a_model_file(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_text("hello")
    user_error(run("info", bad), r"is not a safetensors file")


# ------------------------------------------------------------------------------ verify
def test_verify_writes_a_certificate_that_rechecks(model, tmp_path):
    cert_path = tmp_path / "cert.json"
    out = run_json("verify", model, "--method", "product", "--out", cert_path)
    assert out["certified"] is True and out["method"] == "product"
    assert out["value"] <= out["by_construction"] * (1 + 1e-12)
    back = run_json("verify", "--check", cert_path, model)
    assert back["ok"] is True and back["re_verified"] <= back["value"]


@pytest.mark.parametrize("method", ["auto", "fast", "lipsdp-neuron"])
def test_verify_methods(model, method):
    out = run_json("verify", model, "--method", method)
    assert out["certified"] is True and 0 < out["value"] <= out["by_construction"] * (1 + 1e-9)


def test_verify_lower_bound_is_below_the_certificate(model):
    out = run_json("verify", model, "--lower-bound")
    assert 0 < out["lower_bound"] <= out["value"]
    assert out["class_lower_bound"] <= out["value"]
    assert out["ratio"] >= 1.0


def test_verify_check_refuses_other_weights(model, tmp_path):
    cert_path = tmp_path / "cert.json"
    run_json("verify", model, "--out", cert_path)
    other = cn.save(
        cn.nn.NormalizedMLP([3, 8, 8, 1], lipschitz=4.0, seed=1), tmp_path / "other.safetensors"
    )
    user_error(run("verify", "--check", cert_path, other), r"made for weights with fingerprint")


def test_verify_check_refuses_a_tampered_value(model, tmp_path):
    cert_path = tmp_path / "cert.json"
    run_json("verify", model, "--out", cert_path)
    d = json.loads(cert_path.read_text())
    d["value"] = d["value"] * 0.5
    cert_path.write_text(json.dumps(d))
    user_error(run("verify", "--check", cert_path, model), r"tampered|re-verification")


def test_verify_check_missing_and_malformed_certificate(model, tmp_path):
    user_error(run("verify", "--check", tmp_path / "none.json", model), "no such certificate file")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    user_error(run("verify", "--check", bad, model), "not valid JSON")


def test_verify_unknown_method_is_a_usage_error(model):
    r = run("verify", model, "--method", "bogus")
    assert r.exit_code == 2 and "bogus" in r.output


# ------------------------------------------------------------------------- verify --closed-loop
IP = ("--closed-loop", "--plant", "inverted-pendulum")
CELLS = ("--max-cells", 20_000)


@pytest.fixture(scope="module")
def loop_model(tmp_path_factory):
    """A controller (θ, θ̇) → torque that stabilises the inverted pendulum: its linearisation at
    0 is the dLQR gain of the plant (tests/verify/conftest.py::feedback_net)."""
    K = dlqr_gain(plants.InvertedPendulum(max_torque=0.7), np.diag([1.0, 0.1]), np.eye(1))
    return cn.save(feedback_net(K, width=16), tmp_path_factory.mktemp("loop") / "ip.safetensors")


@pytest.fixture(scope="module")
def loop_cert(loop_model):
    """(JSON output, certificate file) of a region of attraction extended by cells of a box."""
    path = loop_model.parent / "loop.json"
    out = run_json("verify", loop_model, *IP, *CELLS, "--extend=-2:2,-8:8", "--out", path)
    return out, path


def test_verify_closed_loop_certifies_a_region_that_rechecks(loop_cert):
    out, path = loop_cert
    assert (out["kind"], out["method"], out["certified"]) == ("stability", "lyapunov-bnb", True)
    assert 0 < out["re_verified"] <= out["value"] < 1 and out["plant"] == "inverted-pendulum"
    cert = cn.verify.Certificate.load(path)
    half = np.sqrt(np.diag(np.linalg.inv(cert.array("P"))))
    assert list(out["half_widths"]) == ["theta", "theta_dot"]
    assert list(out["half_widths"].values()) == pytest.approx(half.tolist())
    assert out["state_units"] == {"theta": "rad", "theta_dot": "rad/s"}
    assert out["region_volume"] == cert.data["roa_volume"] > 0
    assert out["union_volume"] == cert.data["union_volume"] > out["region_volume"]
    assert out["x_eq"] == pytest.approx([0.0, 0.0]) and out["cells"] > 0 and out["time_s"] > 0
    assert out["out"] == str(path)


def test_verify_check_of_a_closed_loop_certificate(loop_model, loop_cert):
    _, path = loop_cert
    given = run_json("verify", loop_model, *IP, "--check", path)
    assert given["ok"] is True and given["plant_from"] == "--plant"
    assert given["re_verified"] <= given["value"] < 1
    named = run_json("verify", loop_model, "--check", path)  # the plant the certificate names
    assert named["plant"] == "inverted-pendulum" and named["plant_from"] == "certificate"
    r = run("verify", loop_model, "--check", path)
    assert r.exit_code == 0 and "inverted-pendulum (named by the certificate)" in r.stdout
    assert "±" in r.stdout and "rad/s" in r.stdout


def test_verify_closed_loop_l2_gain_and_its_check(loop_model, tmp_path):
    path = tmp_path / "l2.json"
    out = run_json("verify", loop_model, *IP, "--l2", 0.05, *CELLS, "--out", path)
    assert (out["kind"], out["method"], out["certified"]) == ("l2-gain", "dissipation-bnb", True)
    assert 0 < out["re_verified"] <= out["value"] and out["energy"] == 0.05
    assert "half_widths" not in out and "γ" in out["quantity"]
    back = run_json("verify", loop_model, "--check", path)
    assert back["kind"] == "l2-gain" and back["re_verified"] <= back["value"] == out["value"]


def test_verify_closed_loop_that_is_not_certified_exits_1(tmp_path):
    K = dlqr_gain(plants.InvertedPendulum())
    wrong = cn.save(feedback_net(-K, width=16), tmp_path / "wrong.safetensors")  # pushes away
    r = run("verify", wrong, *IP, "--out", tmp_path / "c.json", "--json")
    assert r.exit_code == 1 and "Traceback" not in r.output
    out = json.loads(r.stdout)
    assert (
        out["certified"] is False and out["value"] == "inf" and "spectral radius" in out["reason"]
    )
    assert r.stderr.strip().splitlines() == [f"not certified: {out['reason']}"]
    assert not (tmp_path / "c.json").exists()
    r = run("verify", wrong, *IP)
    assert r.exit_code == 1 and "reason" in r.stdout


@pytest.mark.parametrize(
    "args,match",
    [
        (("--closed-loop",), r"--closed-loop needs the plant: --plant NAME, one of pendulum"),
        (("--closed-loop", "--plant", "rocket"), r"unknown plant 'rocket'; choose one of"),
        (("--plant", "pendulum"), r"--plant needs --closed-loop"),
        (("--l2", 0.1), r"--l2 needs --closed-loop"),
        ((*IP, "--method", "product"), r"--method applies to Lipschitz certificates, not to"),
        ((*IP, "--lower-bound"), r"--lower-bound applies to Lipschitz certificates"),
        ((*IP, "--x-eq", "0,0,0"), r"--x-eq needs 2 values \(theta, theta_dot\), got 3"),
        ((*IP, "--x-eq", "a,b"), r"--x-eq must be comma-separated numbers"),
        ((*IP, "--x-eq", "1,0"), r"x_eq = \[1.0, 0.0\] is not a closed-loop equilibrium"),
        ((*IP, "--extend", "1,2"), r"--extend must be one lo:hi range per state, .*-1:1,-1:1"),
        ((*IP, "--extend", "x:1,0:1"), r"--extend must be one lo:hi range per state"),
        ((*IP, "--extend=-1:1"), r"--extend needs 2 ranges lo:hi \(theta, theta_dot\), got 1"),
        ((*IP, "--extend", "1:-1,0:1"), r"--extend needs finite ranges with lo < hi"),
        ((*IP, "--extend", "0:inf,0:1"), r"--extend needs finite ranges with lo < hi"),
        ((*IP, "--l2", 0.1, "--extend=-1:1,-1:1"), r"--extend .* does not apply to --l2"),
        ((*IP, "--l2=-1"), r"--l2 ENERGY must be a positive number .* got -1.0"),
        ((*IP, "--l2", "nan"), r"--l2 ENERGY must be a positive number"),
    ],
)
def test_verify_closed_loop_bad_options(loop_model, args, match):
    user_error(run("verify", loop_model, *args), match)


def test_verify_closed_loop_refuses_what_does_not_fit(model, tmp_path):
    user_error(run("verify", model, *IP), r"the network reads 3 inputs, but the plant has 2")
    user_error(run("verify", tmp_path / "none.safetensors", *IP), r"no such model file")
    r = run("verify", model, *IP, "--max-cells", 0)
    assert r.exit_code == 2 and "max-cells" in r.output


def _edited(path: Path, tmp_path: Path, edit) -> Path:
    d = json.loads(path.read_text())
    edit(d["data"])
    new = tmp_path / "edited.json"
    new.write_text(json.dumps(d))
    return new


def _rocket(data):
    data["loop"].update(plant="Rocket", plant_module="rockets")


def _other_probe(data):
    data["probe"]["next"][1][1] += 0.5


@pytest.mark.parametrize(
    "edit,args,match",
    [
        (
            None,
            ("--plant", "mountaincar"),
            r"made for the plant InvertedPendulum, not "
            r"MountainCar \(--plant mountaincar\); pass --plant inverted-pendulum",
        ),
        (_rocket, (), r"is about the plant Rocket, not a built-in one; pass --plant NAME"),
        (
            _rocket,
            ("--plant", "inverted-pendulum"),
            r"made for the plant Rocket, not "
            r"InvertedPendulum .*re-check it in Python",
        ),
        (lambda d: d.pop("loop"), (), r"does not name the plant it is about; re-check it in"),
        (_other_probe, (), r"this certificate was made for another closed loop"),
        (None, ("--x-eq", "0,0"), r"--check re-proves the stored certificate; --x-eq only"),
        (None, ("--max-cells", 5), r"--max-cells only applies when making one"),
        (None, ("--lower-bound",), r"--lower-bound only applies when making one"),
    ],
)
def test_verify_check_of_a_closed_loop_certificate_refuses(
    loop_model, loop_cert, tmp_path, edit, args, match
):
    path = loop_cert[1] if edit is None else _edited(loop_cert[1], tmp_path, edit)
    user_error(run("verify", loop_model, "--check", path, *args), match)


def test_verify_check_of_a_lipschitz_certificate_refuses_closed_loop_options(model, tmp_path):
    cert_path = tmp_path / "cert.json"
    run_json("verify", model, "--method", "product", "--out", cert_path)
    for args in (("--closed-loop",), ("--plant", "pendulum")):
        user_error(
            run("verify", model, "--check", cert_path, *args),
            rf"is a Lipschitz certificate; {args[0]} applies to closed-loop ones",
        )


# ------------------------------------------------------------------------------ train
TINY = """
plant = "pendulum"
method = "optimize_policy"

[train]
hidden = [8]
lipschitz = 10.0
iterations = {iterations}
batch = 4
horizon = 5
x0_low = [-0.5, -0.5]
x0_high = [0.5, 0.5]
progress = false
"""


def _config(tmp_path, text: str, name: str = "run.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_train_tiny_config_reduces_cost_and_keeps_the_bound(tmp_path):
    cfg = _config(tmp_path, TINY.format(iterations=4))
    out = run_json("train", cfg, "--out", tmp_path / "run")
    assert out["iterations"] == 4
    assert out["final_loss"] < out["first_loss"]
    assert out["by_construction_bound"] <= 10.0
    net = cn.load(out["controller"])
    assert net.lipschitz_bound() <= 10.0 and net.widths == [3, 8, 1]
    run_record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run_record["config"]["plant"] == "pendulum"
    assert len(run_record["history"]["loss"]) == 4


def test_train_resume_continues_identically(tmp_path):
    straight = run_json(
        "train", _config(tmp_path, TINY.format(iterations=4)), "--out", tmp_path / "a"
    )
    run_json(
        "train", _config(tmp_path, TINY.format(iterations=2), "half.toml"), "--out", tmp_path / "b"
    )
    resumed = run_json(
        "train",
        _config(tmp_path, TINY.format(iterations=4), "full.toml"),
        "--out",
        tmp_path / "b",
        "--resume",
    )
    assert resumed["iterations"] == 4
    assert resumed["final_loss"] == straight["final_loss"]
    x = torch.randn(16, 3)
    with torch.no_grad():
        assert torch.equal(cn.load(straight["controller"])(x), cn.load(resumed["controller"])(x))


@pytest.mark.parametrize("optimizer", ["autonewton", "rsgd"])
def test_train_reaches_every_optimiser_of_the_registry(tmp_path, optimizer):
    lr = "lr = 0.05\n" if optimizer == "rsgd" else ""
    text = TINY.format(iterations=3) + f'optimizer = "{optimizer}"\n' + lr
    out = run_json("train", _config(tmp_path, text), "--out", tmp_path / "run")
    assert out["optimizer"] == optimizer and out["iterations"] == 3
    assert out["by_construction_bound"] <= 10.0


def test_train_help_lists_the_registry():
    from certnet.optim import OPTIMIZERS

    r = run("train", "--help")
    assert r.exit_code == 0 and all(name in r.stdout for name in OPTIMIZERS)


def test_train_imitate_with_an_expert(tmp_path):
    text = """
plant = "pendulum"
method = "imitate"
expert = "lqr"
[train]
hidden = [8]
iterations = 2
episodes = 4
steps = 5
epochs = 3
x0_low = [-0.5, -0.5]
x0_high = [0.5, 0.5]
progress = false
"""
    out = run_json("train", _config(tmp_path, text), "--out", tmp_path / "run")
    assert out["method"] == "imitate" and out["iterations"] == 2


@pytest.mark.parametrize(
    "text,match",
    [
        ('plant = "pendulum"\nfoo = 1\n', r"unknown key 'foo'; valid top-level keys are plant"),
        (
            'plant = "pendulum"\n[train]\nlearning_rate = 0.1\n',
            r"\[train\]: unknown PolicyConfig key 'learning_rate'; valid keys are: hidden",
        ),
        ('plant = "pendulum"\n[train\n', r"is not valid TOML"),
        ('method = "imitate"\n', r"missing key 'plant'"),
        ('plant = "pendulm"\n', r"unknown plant 'pendulm'; choose one of pendulum"),
        ('plant = "pendulum"\nmethod = "ppo"\n', r"valid methods are optimize_policy, imitate"),
        ('plant = "pendulum"\nmethod = "imitate"\n', r"needs an expert, e.g. expert = 'lqr'"),
        ('plant = "pendulum"\nexpert = "lqr"\n', r"'expert' is only used by method = 'imitate'"),
        ('plant = "pendulum"\ntrain = 3\n', r"'train' must be a table"),
        ('plant = "pendulum"\n[train]\nlipschitz = -1.0\n', r"lipschitz must be > 0"),
        (
            'plant = "pendulum"\n[train]\noptimizer = "sgd"\n',
            r"\[train\]: optimizer must be one of 'mm', 'smm', 'autonewton', 'rsgd', 'adam', "
            r"got 'sgd'",
        ),
        (
            'plant = "pendulum"\n[train]\nlr = 0.001\n',
            r"\[train\]: optimizer 'mm' chooses its own step size .* remove lr",
        ),
        (
            'plant = "pendulum"\n[train]\noptimizer = "adam"\n',
            r"\[train\]: optimizer 'adam' needs a learning rate: pass lr, e.g. lr=0.001",
        ),
        ('plant = "pendulum"\n[plant_kwargs]\nmass = -1.0\n', r"mass must be a positive"),
    ],
)
def test_train_bad_config(tmp_path, text, match):
    user_error(run("train", _config(tmp_path, text), "--out", tmp_path / "run"), match)


def test_train_unknown_expert(tmp_path):
    text = 'plant = "pendulum"\nmethod = "imitate"\nexpert = "oracle"\n'
    user_error(run("train", _config(tmp_path, text)), r"unknown expert 'oracle'; choose one of lqr")


def test_train_missing_config_and_checkpoint(tmp_path):
    user_error(run("train", tmp_path / "none.toml"), r"no such config file")
    cfg = _config(tmp_path, TINY.format(iterations=2))
    user_error(run("train", cfg, "--out", tmp_path / "fresh", "--resume"), r"no checkpoint at")


# ------------------------------------------------------------------------------ run folders
@pytest.fixture
def fake_demo(monkeypatch):
    """``certnet demo`` with the demo body replaced by a stand-in that writes what a demo
    writes (a controller, its certificate, a report), in a second."""

    def tiny_run(name, out, quick=False, seed=0):
        out.mkdir(parents=True, exist_ok=True)
        net = cn.nn.NormalizedMLP([3, 4, 1], lipschitz=2.0, seed=seed)
        cert = cn.verify.lipschitz(net, method="product")
        files = [cn.save(net, out / "controller.safetensors"), out / "report.md"]
        cert.save(out / "certificate.json")
        (out / "report.md").write_text(f"# demo {name}, seed {seed}")
        return demos.DemoResult(
            name, out, out / "report.md", {}, cert, net, None, [*files, out / "certificate.json"]
        )

    monkeypatch.setattr(demos, "run", tiny_run)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_train_and_demo_have_their_own_default_folders(tmp_path, monkeypatch, fake_demo):
    monkeypatch.chdir(tmp_path)
    assert run_json("demo", "pendulum")["controller"] == "runs/pendulum/controller.safetensors"
    out = run_json("train", _config(tmp_path, TINY.format(iterations=2), "pendulum.toml"))
    assert out["out"] == "runs/pendulum-train"
    assert (tmp_path / "runs/pendulum/certificate.json").is_file()
    assert json.loads((tmp_path / "runs/pendulum/run.json").read_text())["run"]["command"] == "demo"


def test_train_refuses_the_folder_of_a_demo_and_force_replaces_it(tmp_path, fake_demo):
    folder = tmp_path / "shared"
    run_json("demo", "pendulum", "--out", folder)
    before = _snapshot(folder)
    cfg = _config(tmp_path, TINY.format(iterations=2))
    user_error(
        run("train", cfg, "--out", folder),
        r"shared holds the artefacts of another run \(certnet demo pendulum --seed 0\): "
        r"run.json, controller.safetensors, report.md, certificate.json; write this run to "
        r"another folder with --out DIR, or delete them and start afresh with --force",
    )
    assert _snapshot(folder) == before  # nothing written
    out = run_json("train", cfg, "--out", folder, "--force")
    assert out["iterations"] == 2
    assert sorted(p.name for p in folder.iterdir()) == [
        "checkpoint.pt",
        "controller.safetensors",
        "run.json",
    ]  # no certificate or report about the demo's controller stays behind
    assert json.loads((folder / "run.json").read_text())["run"]["command"] == "train"


def test_demo_refuses_a_train_folder_and_another_demo_run(tmp_path, fake_demo):
    folder = tmp_path / "run"
    run_json("train", _config(tmp_path, TINY.format(iterations=2)), "--out", folder)
    r = run("demo", "pendulum", "--out", folder)
    user_error(r, r"another run \(certnet train .*run.toml\)")
    assert not (folder / "report.md").exists()
    run_json("demo", "pendulum", "--out", tmp_path / "d")
    run_json("demo", "pendulum", "--out", tmp_path / "d")  # the same run: its own folder
    user_error(
        run("demo", "pendulum", "--out", tmp_path / "d", "--seed", 1),
        r"another run \(certnet demo pendulum --seed 0\).*--force",
    )
    run_json("demo", "pendulum", "--out", tmp_path / "d", "--seed", 1, "--force")
    assert (tmp_path / "d" / "report.md").read_text() == "# demo pendulum, seed 1"


def test_a_folder_of_unknown_origin_is_refused_too(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "controller.safetensors").write_bytes(b"precious")
    (folder / "notes.txt").write_text("mine")
    cfg = _config(tmp_path, TINY.format(iterations=2))
    user_error(
        run("train", cfg, "--out", folder),
        r"mine holds the artefacts of a run it does not record \(no readable run.json\)",
    )
    assert (folder / "controller.safetensors").read_bytes() == b"precious"
    run_json("train", cfg, "--out", folder, "--force")
    assert (folder / "notes.txt").read_text() == "mine"  # --force deletes certnet's files only
    user_error(run("train", cfg, "--out", folder / "notes.txt"), r"notes.txt is a file; pass a")


def test_train_never_replaces_a_checkpoint_without_resume_or_force(tmp_path):
    """A fresh run into its own folder replaced a 113-iteration checkpoint with a 2-iteration
    one; now it stops, says how many iterations the checkpoint holds and both ways on."""
    folder = tmp_path / "run"
    run_json("train", _config(tmp_path, TINY.format(iterations=3)), "--out", folder)
    before = _snapshot(folder)
    again = _config(tmp_path, TINY.format(iterations=2), "again.toml")
    user_error(
        run("train", again, "--out", folder),
        r"checkpoint .*checkpoint.pt holds 3 iterations; continue it with resume = true "
        r"\(--resume\), discard it with overwrite = true \(--force\)",
    )
    assert _snapshot(folder) == before
    user_error(run("train", again, "--out", folder, "--resume", "--force"), r"pass one of them")
    assert run_json("train", again, "--out", folder, "--force")["iterations"] == 2
    assert cn.train.checkpoint_iterations(folder / "checkpoint.pt") == 2


def test_resume_continues_only_the_run_that_wrote_the_folder(tmp_path):
    folder = tmp_path / "run"
    run_json("train", _config(tmp_path, TINY.format(iterations=2)), "--out", folder)
    other = _config(tmp_path, TINY.format(iterations=4).replace("10.0", "12.0"), "other.toml")
    user_error(
        run("train", other, "--out", folder, "--resume"),
        r"--resume continues only the run that wrote the folder",
    )


def test_resume_recognises_a_folder_written_before_run_records(tmp_path):
    folder = tmp_path / "run"
    run_json("train", _config(tmp_path, TINY.format(iterations=2)), "--out", folder)
    record = json.loads((folder / "run.json").read_text())
    del record["run"]  # run.json as certnet wrote it before
    (folder / "run.json").write_text(json.dumps(record))
    full = _config(tmp_path, TINY.format(iterations=3), "full.toml")
    assert run_json("train", full, "--out", folder, "--resume")["iterations"] == 3


def test_a_training_that_diverges_is_one_line(tmp_path, monkeypatch):
    def diverge(plant, cfg):
        raise FloatingPointError("the gradient is not finite at step 1 (loss 8.1)")

    monkeypatch.setattr(cn.train, "optimize_policy", diverge)
    user_error(
        run("train", _config(tmp_path, TINY.format(iterations=2)), "--out", tmp_path / "r"),
        r"training stopped: the gradient is not finite at step 1 .*smaller lipschitz",
    )


# ------------------------------------------------------------------------------ digests
def test_a_flipped_bit_stops_every_command_that_loads_the_model(model):
    from tests.test_io import _flip_bit

    _flip_bit(model, "linears.0.bias", 29)
    for cmd in ("info", "simulate", "verify", "evaluate"):
        user_error(
            run(cmd, model),
            r"file corrupted or modified: tensor 'linears.0.bias' digest mismatch; "
            r"re-export or re-train",
        )


def test_a_model_saved_before_digests_runs_with_a_one_line_warning(model):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(model), framework="pt") as f:
        meta = f.metadata()
    del meta["certnet_digests"]
    save_file(load_file(str(model)), str(model), metadata=meta)
    r = run("info", model, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["widths"] == [3, 8, 8, 1]
    assert r.stderr.strip().splitlines() == [
        f"warning: {model} has no tensor digests (saved by an older certnet), so corruption "
        "of its weights cannot be detected; re-save it: certnet.save(certnet.load(path), path)"
    ]


# ------------------------------------------------------------------------------ simulate
def test_simulate_pendulum_with_plot(model, tmp_path):
    png = tmp_path / "loop.png"
    out = run_json(
        "simulate", model, "--plant", "pendulum", "--steps", 20, "--x0", "0.3,0.0", "--plot", png
    )
    assert out["steps"] == 20 and out["x0"] == [0.3, 0.0] and len(out["final_state"]) == 2
    assert png.is_file() and png.stat().st_size > 1000
    r = run("simulate", model, "--steps", 5)
    assert r.exit_code == 0 and "return" in r.stdout


def test_simulate_matches_the_plant_rollout(model):
    out = run_json("simulate", model, "--steps", 10, "--x0=-0.2,0.1")
    net = cn.load(model)
    with torch.no_grad():
        roll = plants.Pendulum().rollout(
            lambda o: net(o.float()).double(), torch.tensor([[-0.2, 0.1]], dtype=torch.float64), 10
        )
    assert out["final_state"] == pytest.approx(roll.states[0, -1].tolist())
    assert out["return"] == pytest.approx(float(roll.rewards.sum()))


def test_simulate_bad_input(model):
    user_error(run("simulate", model, "--x0", "1,2,3"), r"--x0 needs 2 values \(theta, theta_dot\)")
    user_error(run("simulate", model, "--x0", "a,b"), r"--x0 must be comma-separated numbers")
    user_error(run("simulate", model, "--x0", "nan,0"), r"--x0 must be finite")
    user_error(run("simulate", model, "--plant", "rocket"), r"unknown plant 'rocket'")


# ------------------------------------------------------------------------------ evaluate
def test_evaluate_on_pendulum(model):
    out = run_json("evaluate", model, "--env", "Pendulum-v1", "--episodes", 2, "--seed", 3)
    assert out["episodes"] == 2 and out["seed"] == 3
    assert out["min_return"] <= out["mean_return"] <= out["max_return"] < 0
    assert out["mean_length"] == 200
    r = run("evaluate", model, "--episodes", 1)
    assert r.exit_code == 0 and "mean_return" in r.stdout


def test_evaluate_matches_export_evaluate(model):
    import gymnasium

    out = run_json("evaluate", model, "--episodes", 2)
    env = gymnasium.make("Pendulum-v1")
    ev = export.evaluate(export.to_policy(cn.load(model), env=env), "Pendulum-v1", 2, 0)
    assert out["mean_return"] == pytest.approx(ev.mean_return)


def test_evaluate_bad_input(model):
    user_error(
        run("evaluate", model, "--env", "Pendulum-v9"),
        r"unknown gymnasium env id 'Pendulum-v9'; did you mean Pendulum-v1",
    )
    user_error(
        run("evaluate", model, "--env", "certnet/ContinuousCartPole-v0", "--episodes", 1),
        r"maps 3 inputs to 1 outputs, but certnet/ContinuousCartPole-v0 observes \(4,\)",
    )
    r = run("evaluate", model, "--episodes", 0)
    assert r.exit_code == 2 and "episodes" in r.output


# ------------------------------------------------------------------------------ export
def test_export_onnx_with_certificate(model, tmp_path):
    cert_path = tmp_path / "cert.json"
    run_json("verify", model, "--method", "product", "--out", cert_path)
    onnx_path = tmp_path / "deep" / "ctrl.onnx"
    out = run_json(
        "export", model, "--onnx", onnx_path, "--certificate", cert_path, "--plant", "pendulum"
    )
    assert out["action_limits"] == [[-2.0], [2.0]]
    meta = export.read_onnx_metadata(onnx_path)
    stored = cn.verify.Certificate.from_json(meta["certnet.certificate"])
    assert stored.value == cn.verify.Certificate.load(cert_path).value
    assert stored.check(cn.load(model)) <= stored.value


def test_export_refuses_a_certificate_of_other_weights(model, tmp_path):
    other = cn.save(cn.nn.NormalizedMLP([3, 8, 1], seed=5), tmp_path / "o.safetensors")
    cert_path = tmp_path / "cert.json"
    run_json("verify", other, "--out", cert_path)
    r = run("export", model, "--onnx", tmp_path / "c.onnx", "--certificate", cert_path)
    user_error(r, r"made for weights with fingerprint")
    assert not (tmp_path / "c.onnx").exists()
    user_error(
        run(
            "export", model, "--onnx", tmp_path / "c.onnx", "--certificate", tmp_path / "none.json"
        ),
        r"no such certificate file",
    )


# ------------------------------------------------------------------------------ demo
def test_demo_unknown_name_lists_the_valid_ones():
    line = user_error(run("demo", "rocket"), r"unknown demo 'rocket'; choose one of")
    assert all(n in line for n in demos.NAMES)


def test_demo_reports_where_the_report_is(tmp_path, monkeypatch):
    """The command's wiring (defaults, summary, JSON) with the demo body replaced by a tiny
    stand-in; the real demo runs in the slow test below and in tests/demos."""
    calls = {}

    def tiny_run(name, out, quick=False, seed=0):
        calls.update(name=name, out=out, quick=quick, seed=seed)
        net = cn.nn.NormalizedMLP([3, 4, 1], lipschitz=2.0, seed=seed)
        cert = cn.verify.lipschitz(net, method="product")
        return demos.DemoResult(
            name, out, out / "report.md", {"mean_return": -123.0}, cert, net, None
        )

    monkeypatch.setattr(demos, "run", tiny_run)
    monkeypatch.chdir(tmp_path)
    out = run_json("demo", "pendulum", "--quick", "--seed", 7)
    folder = "runs/pendulum-quick-seed7"  # its own default folder: the full run's stays free
    assert calls == {"name": "pendulum", "out": Path(folder), "quick": True, "seed": 7}
    assert out["report"] == f"{folder}/report.md" and out["mean_return"] == -123.0
    assert out["lipschitz_certified"] is True and out["lipschitz_value"] <= 2.0
    r = run("demo", "--quick", "--seed", 7)  # the same run again: its own folder
    assert r.exit_code == 0 and f"report: {folder}/report.md" in r.stdout
    assert run_json("demo", "pendulum")["report"] == "runs/pendulum/report.md"


@pytest.mark.slow
def test_demo_pendulum_quick_end_to_end(tmp_path):
    out = run_json("demo", "pendulum", "--quick", "--out", tmp_path / "demo")
    for f in ("controller.safetensors", "certificate.json", "report.md"):
        assert (tmp_path / "demo" / f).is_file()
    assert out["lipschitz_certified"] is True


@pytest.mark.parametrize(
    "example",
    sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.toml")),
    ids=lambda p: p.name,
)
def test_example_configs_are_valid(example, tmp_path):
    from certnet.cli import _train_setup

    raw, method, cfg, plant, expert = _train_setup(example, tmp_path, False)
    assert method in ("optimize_policy", "imitate") and (expert is None) == (method != "imitate")
    assert len(cfg.x0_low) == plant.n_states and cfg.checkpoint == str(tmp_path / "checkpoint.pt")


# ------------------------------------------------------------------------------ bad input
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Files of every wrong kind, and a good controller and config, for the audit below."""
    d = tmp_path_factory.mktemp("bad")
    net = cn.nn.NormalizedMLP([3, 8, 1], activation="tanh", lipschitz=4.0, seed=0)
    paths = {
        "model": cn.save(net, d / "ctrl.safetensors"),
        "five": cn.save(cn.nn.NormalizedMLP([5, 4, 1], seed=0), d / "five.safetensors"),
        "onnx": export.to_onnx(net, d / "ctrl.onnx"),
        "pt": d / "weights.pt",
        "txt": d / "notes.txt",
        "txtonnx": d / "notes.onnx",
        "dir": d / "folder",
        "missing": d / "missing.safetensors",
    }
    torch.save(net.state_dict(), paths["pt"])
    paths["txt"].write_text("not a model\n")
    paths["txtonnx"].write_text("not a model\n")
    paths["dir"].mkdir()
    paths["run"] = d / "run"
    cn.save(net, paths["run"] / "controller.safetensors")
    for name, body in {
        "unknown": 'plant = "pendulum"\n[train]\nlearnig_rate = 0.1\n',
        "wrongtype": 'plant = "pendulum"\n[train]\nhidden = 8\n',
        "negative": 'plant = "pendulum"\n[train]\niterations = -3\n',
        "nan": 'plant = "pendulum"\n[train]\nlipschitz = nan\n',
        "seed": 'plant = "pendulum"\n[train]\nseed = -1\n',
        "kwargs": 'plant = "pendulum"\n[plant_kwargs]\nmass = "heavy"\n',
    }.items():
        paths[f"cfg_{name}"] = d / f"{name}.toml"
        paths[f"cfg_{name}"].write_text(body)
    return {k: str(v) for k, v in paths.items()}


BAD_INPUT = {
    "info missing file": (("info", "{missing}"), r"no such model file"),
    "info a folder": (("info", "{dir}"), r"is a folder, not a model file; pass the file"),
    "verify a run folder": (
        ("verify", "{run}"),
        r"run is a folder, not a model file; pass the file itself, e.g. .*run/controller",
    ),
    "info a text file": (("info", "{txt}"), r"not a safetensors file .*certnet.save"),
    "info a torch.save file": (
        ("info", "{pt}"),
        r"is a torch\.save \(pickle\) file; certnet never loads pickles .*certnet\.save\(net",
    ),
    "info a text file named .onnx": (("info", "{txtonnx}"), r"is not a readable ONNX model"),
    "verify a text file named .onnx": (("verify", "{txtonnx}"), r"is not a readable ONNX"),
    "verify --check a folder": (("verify", "{model}", "--check", "{dir}"), r"is a folder"),
    "verify --check a text file": (
        ("verify", "{model}", "--check", "{txt}"),
        r"not valid JSON.*; pass a certificate JSON written by certnet verify --out",
    ),
    "verify negative seed": (("verify", "{model}", "--seed", "-1"), r"'--seed'.*see .* --help"),
    "verify NaN energy": (
        ("verify", "{model}", "--closed-loop", "--plant", "pendulum", "--l2", "nan"),
        r"--l2 ENERGY must be a positive number",
    ),
    "verify closed loop, wrong plant size": (
        ("verify", "{model}", "--closed-loop", "--plant", "cartpole"),
        r"the network reads 3 inputs, but the plant has 4 states",
    ),
    "simulate a torch.save file": (("simulate", "{pt}"), r"torch\.save \(pickle\) file"),
    "simulate wrong observation size": (
        ("simulate", "{five}"),
        r"maps 5 inputs to 1 outputs, but the plant pendulum observes 3 .*pass the --plant",
    ),
    "simulate negative steps": (("simulate", "{model}", "--steps", "-5"), r"'--steps'"),
    "simulate NaN steps": (("simulate", "{model}", "--steps", "nan"), r"'--steps'"),
    "simulate NaN state": (("simulate", "{model}", "--x0", "nan,0"), r"--x0 must be finite"),
    "evaluate a discrete-action env": (
        ("evaluate", "{model}", "--env", "CartPole-v1"),
        r"CartPole-v1 has a Discrete action space; .*pass an env with a Box action space",
    ),
    "evaluate an env that does not exist": (
        ("evaluate", "{model}", "--env", "NoSuchEnv-v0"),
        r"unknown gymnasium env id 'NoSuchEnv-v0'",
    ),
    "evaluate wrong observation size": (
        ("evaluate", "{five}", "--env", "Pendulum-v1"),
        r"maps 5 inputs to 1 outputs, but Pendulum-v1 observes \(3,\)",
    ),
    "evaluate negative episodes": (("evaluate", "{model}", "--episodes", "-1"), r"'--episodes'"),
    "evaluate NaN episodes": (("evaluate", "{model}", "--episodes", "nan"), r"'--episodes'"),
    "evaluate negative seed": (("evaluate", "{model}", "--seed", "-2"), r"'--seed'"),
    "export to a folder": (
        ("export", "{model}", "--onnx", "{dir}"),
        r"--onnx .*folder is a folder; pass a file name",
    ),
    "export an ONNX file": (
        ("export", "{onnx}", "--onnx", "{dir}/x.onnx"),
        r"is already an ONNX file: deploy it as it is",
    ),
    "export a text certificate": (
        ("export", "{model}", "--onnx", "{dir}/x.onnx", "--certificate", "{txt}"),
        r"not valid JSON",
    ),
    "train missing config": (("train", "{missing}"), r"no such config file"),
    "train a folder": (("train", "{dir}"), r"is a folder, not a config file"),
    "train a binary file": (("train", "{model}"), r"is not a text file; pass a TOML run config"),
    "train a text file": (("train", "{txt}"), r"is not valid TOML: .*; see examples"),
    "train unknown key": (("train", "{cfg_unknown}"), r"unknown PolicyConfig key 'learnig_rate'"),
    "train wrong type": (("train", "{cfg_wrongtype}"), r"hidden must be a list of positive"),
    "train negative number": (("train", "{cfg_negative}"), r"iterations must be a positive"),
    "train NaN number": (("train", "{cfg_nan}"), r"lipschitz must be > 0 and finite, got nan"),
    "train negative seed": (("train", "{cfg_seed}"), r"seed must be an integer ≥ 0"),
    "train bad plant argument": (
        ("train", "{cfg_kwargs}"),
        r"\[plant_kwargs\]: .*; see help\(certnet.plants.Pendulum\)",
    ),
    "demo unknown name": (("demo", "rocket"), r"unknown demo 'rocket'"),
    "demo negative seed": (("demo", "pendulum", "--seed", "-1"), r"'--seed'.*certnet demo"),
    "unknown option": (("info", "{model}", "--bogus"), r"No such option: --bogus; see"),
    "unknown command": (("deploy",), r"No such command 'deploy'.*; see certnet --help"),
    "missing argument": (("info",), r"Missing argument"),
}


@pytest.mark.parametrize("args,match", list(BAD_INPUT.values()), ids=list(BAD_INPUT))
def test_every_bad_input_is_one_line_without_traceback(files, args, match, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a train that were not refused would write runs/ here
    user_error(run(*[a.format(**files) for a in args]), match)
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------------------ --json
@pytest.fixture
def terminal(monkeypatch):
    """Make rich treat every stream as a terminal (live progress bars, ANSI codes), as when a
    user runs ``certnet … --json`` in a shell."""
    monkeypatch.setenv("TTY_COMPATIBLE", "1")


def _only_json(r) -> dict:
    """stdout is exactly one JSON object on one line: no progress bar, no ANSI code."""
    assert r.exit_code == 0, r.output
    assert "\x1b" not in r.stdout and len(r.stdout.strip().splitlines()) == 1, r.stdout
    return json.loads(r.stdout)


def test_demo_json_keeps_progress_off_stdout(tmp_path, monkeypatch, terminal):
    def training_run(name, out, quick=False, seed=0):
        cfg = cn.train.ImitationConfig(
            hidden=(4,), iterations=2, episodes=2, steps=3, epochs=1, progress=True
        )
        plant = plants.Pendulum()
        res = cn.train.imitate(cn.experts.lqr(plant), plant, cfg)
        cert = cn.verify.lipschitz(res.net, method="product")
        return demos.DemoResult(
            name, out, out / "report.md", {"mean_return": -1.0}, cert, res.net, res.history
        )

    monkeypatch.setattr(demos, "run", training_run)
    r = run("demo", "pendulum", "--out", tmp_path, "--json")
    assert _only_json(r)["mean_return"] == -1.0
    assert "DAgger" in r.stderr  # the progress bar is still shown, on stderr


def test_train_json_keeps_progress_off_stdout(tmp_path, terminal):
    cfg = _config(
        tmp_path, TINY.format(iterations=2).replace("progress = false", "progress = true")
    )
    out = _only_json(run("train", cfg, "--out", tmp_path / "run", "--json"))
    assert out["iterations"] == 2


@pytest.mark.parametrize(
    "args",
    [
        ("info",),
        ("verify", "--lower-bound"),
        ("simulate", "--steps", 3),
        ("evaluate", "--episodes", 1),
        ("export", "--onnx", "{tmp}/c.onnx", "--plant", "pendulum"),
    ],
    ids=lambda a: a[0],
)
def test_every_json_command_prints_only_json_on_a_terminal(args, model, tmp_path, terminal):
    cmd, *rest = args
    _only_json(run(cmd, model, *[str(a).format(tmp=tmp_path) for a in rest], "--json"))


def test_verify_closed_loop_json_keeps_progress_off_stdout(loop_model, terminal):
    r = run("verify", loop_model, *IP, "--x-eq", "0,0", *CELLS, "--json")
    assert _only_json(r)["certified"] is True
    assert "proving a region of attraction on inverted-pendulum" in r.stderr  # the spinner
    assert "re-checking the proof in float64" in r.stderr


def test_every_command_with_json_sends_its_work_to_stderr():
    import inspect

    from certnet import cli

    with_json = [
        c.callback.__name__
        for c in app.registered_commands
        if "as_json" in inspect.signature(c.callback).parameters
    ]
    assert len(with_json) == 7
    for c in app.registered_commands:
        if c.callback.__name__ in with_json:
            assert c.callback.__wrapped__ is not None, c.callback.__name__
    assert cli._JSON_STDOUT.get() is None


def test_summary_table_does_not_round_a_decrease_rate_to_one():
    from certnet.cli import _six_digits as show

    assert show(0.9999999938) == "0.9999999938"
    assert show(1.0) == "1" and show(-144.5759347) == "-144.576"


# ------------------------------------------------------------------------------ ONNX files
@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    """A tiny pendulum controller exported by certnet, torque limits baked in."""
    net = cn.nn.NormalizedMLP([3, 8, 1], activation="tanh", lipschitz=4.0, output_scale=2.0, seed=0)
    path = tmp_path_factory.mktemp("onnx") / "ctrl.onnx"
    return export.to_onnx(net, path, low=-2.0, high=2.0, n_check=8), net


def test_info_of_an_onnx_file(onnx_model):
    path, _ = onnx_model
    out = run_json("info", path)
    assert out["kind"] == "ONNX (float32)" and out["widths"][:3] == [3, 8, 1]
    assert out["fingerprint"] == cn.nn.from_onnx(path).fingerprint()[:16]


def test_verify_an_onnx_file_and_check_the_certificate_against_it(onnx_model, tmp_path):
    path, net = onnx_model
    cert = tmp_path / "cert.json"
    out = run_json("verify", path, "--out", cert, "--lower-bound")
    assert out["certified"] and out["lower_bound"] <= out["value"]
    # the clip adds only norm-1 layers: the product bound is the network's own
    prod = run_json("verify", path, "--method", "product")["value"]
    assert prod == pytest.approx(cn.verify.lipschitz(net, method="product").value, rel=1e-6)
    back = run_json("verify", path, "--check", cert)
    assert back["ok"] and back["re_verified"] == pytest.approx(out["value"])
    other = export.to_onnx(
        cn.nn.NormalizedMLP([3, 8, 1], activation="tanh", lipschitz=4.0, seed=1),
        tmp_path / "other.onnx",
        n_check=4,
    )
    user_error(run("verify", other, "--check", cert), r"fingerprint|other weights|made for")


def test_simulate_and_evaluate_an_onnx_file(onnx_model):
    path, net = onnx_model
    out = run_json("simulate", path, "--steps", 10, "--x0=-0.2,0.1")
    with torch.no_grad():
        roll = plants.Pendulum().rollout(
            lambda o: net(o.float()).clamp(-2.0, 2.0).double(),
            torch.tensor([[-0.2, 0.1]], dtype=torch.float64),
            10,
        )
    assert out["final_state"] == pytest.approx(roll.states[0, -1].tolist(), abs=1e-5)
    ev = run_json("evaluate", path, "--env", "Pendulum-v1", "--episodes", 1)
    assert ev["episodes"] == 1 and ev["mean_length"] == 200


def test_export_of_an_onnx_file_is_refused(onnx_model, tmp_path):
    path, _ = onnx_model
    user_error(
        run("export", path, "--onnx", tmp_path / "again.onnx"),
        r"is already an ONNX file: deploy it as it is .* --check cert\.json\)",
    )


def test_unreadable_onnx_and_torch_save_files_are_one_line_errors(tmp_path):
    bad = tmp_path / "conv.onnx"
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((1, 1, 1), dtype=np.float32), "w")
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 1])],
        [w],
    )
    bad.write_bytes(helper.make_model(g).SerializeToString())
    for cmd in ("info", "verify", "evaluate", "simulate"):
        user_error(run(cmd, bad), r"\(Conv\) is not an operator certnet reads")
    pt = tmp_path / "net.pt"
    torch.save(torch.nn.Linear(3, 1).state_dict(), pt)
    user_error(run("verify", pt), r"is a torch\.save \(pickle\) file; certnet never loads pickles")


def test_verify_and_evaluate_read_a_stable_baselines3_zip(tmp_path):
    sb3 = pytest.importorskip("stable_baselines3")
    model = sb3.PPO("MlpPolicy", "Pendulum-v1", n_steps=16, batch_size=16, device="cpu", seed=0)
    model.learn(16)
    model.save(tmp_path / "ppo.zip")
    out = run_json("verify", tmp_path / "ppo.zip", "--method", "product")
    net = cn.export.from_sb3(model)
    assert out["certified"] and out["value"] >= cn.verify.lipschitz(net, "product").value * (
        1 - 1e-12
    )
    ev = run_json("evaluate", tmp_path / "ppo.zip", "--env", "Pendulum-v1", "--episodes", 2)
    assert "mean_return" in ev


def test_evaluate_perturbed_plants_and_plot(model, tmp_path):
    png = tmp_path / "returns.png"
    out = run_json("evaluate", model, "--episodes", 30, "--param", "mass=0.8:1.2",
                   "--param", "length=0.9:1.1", "--plot", png)
    assert out["backend"] == "twin" and out["policy_batched"] is True
    assert out["parameters"] == {"mass": [0.8, 1.2], "length": [0.9, 1.1]}
    assert out["worst_return"] <= out["return_q05"] <= out["return_q50"] <= out["return_q95"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loop = run_json("evaluate", model, "--episodes", 3, "--backend", "gym")
    twin = run_json("evaluate", model, "--episodes", 3)
    assert twin["mean_return"] == pytest.approx(loop["mean_return"], rel=1e-6)
    user_error(run("evaluate", model, "--param", "friction=0:0.1"),
               r"'friction' is not a perturbable parameter of Pendulum; valid names")
    user_error(run("evaluate", model, "--param", "mass=1.2:0.8"), r"low ≤ high")
    user_error(run("evaluate", model, "--param", "mass"), r"--param must be NAME=LOW:HIGH")
