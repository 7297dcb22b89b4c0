"""The ``certnet`` command line (typer + rich). Nothing imports this module.

Commands: ``demo``, ``train``, ``verify``, ``simulate``, ``evaluate``, ``export``, ``info``,
``version``. Every command that reports numbers takes ``--json`` and then prints one JSON object
on stdout (nothing else), for scripts: while the command works, whatever it would print on
stdout (rich progress bars, library messages) goes to stderr instead.

Errors a user can fix (missing file, unknown name, bad config, a certificate that does not
re-verify) print one line ``error: …`` on stderr and exit with code 2, never a traceback; so do
the parser's usage errors (an unknown option, a number out of range).

Run folders: ``demo`` and ``train`` record in ``OUT/run.json`` which run wrote the folder (the
command and a digest of its settings) and refuse to write into a folder that holds the artefacts
of another run (``--out DIR`` elsewhere, or ``--force`` to replace them); ``train`` never
replaces an existing checkpoint without ``--resume`` (continue it) or ``--force``.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import json
import math
import re
import sys
import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TextIO

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

import certnet
from certnet.errors import CertnetError

__all__ = ["app", "main"]

#: The parser's usage-error class: click's, or the copy of click that typer ≥ 0.29 ships
#: (typer.BadParameter derives from it in both).
_UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


class _OneLineUsageErrors(TyperGroup):
    """The command group, with the parser's usage errors (an unknown option, a missing argument,
    a number out of range) printed as one line ``error: …`` and exit code 2, like ``_fail``."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        with _usage_errors(ctx):
            return super().parse_args(ctx, args)

    def invoke(self, ctx: typer.Context) -> Any:
        with _usage_errors(ctx):
            return super().invoke(ctx)


@contextlib.contextmanager
def _usage_errors(ctx: typer.Context):
    try:
        yield
    except _UsageError as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # `certnet` alone: the help, as asked
            raise
        where = (e.ctx or ctx).command_path
        text = " ".join(e.format_message().split()).rstrip(".")
        _fail(f"{text}; see {where} --help")


app = typer.Typer(
    help="certnet: certified neural-network controllers (train, verify, simulate, deploy).",
    cls=_OneLineUsageErrors,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_out = Console(highlight=False)

#: plant names accepted by ``simulate --plant`` → class name in certnet.plants
PLANTS = {
    "pendulum": "Pendulum",
    "inverted-pendulum": "InvertedPendulum",
    "cartpole": "CartPole",
    "mountaincar": "MountainCar",
    "vehicle": "VehicleLateral",
}


class Method(str, Enum):
    """Lipschitz certificate methods of ``certnet verify``."""

    auto = "auto"
    fast = "fast"
    lipsdp_neuron = "lipsdp-neuron"
    lipsdp_layer = "lipsdp-layer"
    product = "product"


# ---------------------------------------------------------------------------------- helpers
_MODEL_HELP = "A model file: .safetensors (written by certnet.save) or .onnx (read exactly)."


def _fail(message: str) -> NoReturn:
    """One line on stderr, exit code 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@contextlib.contextmanager
def _user_errors():
    """Turn the errors a user can fix into one line on stderr and exit code 2."""
    try:
        yield
    except FileNotFoundError as e:
        _fail(str(e) if e.filename is None else f"no such file: {e.filename}")
    except (CertnetError, ValueError, TypeError, KeyError, OSError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        _fail(str(msg).splitlines()[0] if str(msg) else type(e).__name__)


def _require(module: str):
    """Import ``certnet.<module>``; a clear error if this installation lacks it."""
    import importlib

    try:
        return importlib.import_module(f"certnet.{module}")
    except ModuleNotFoundError as e:
        if e.name is not None and e.name.startswith("certnet"):
            _fail(f"certnet.{module} is not available in this installation ({e})")
        raise


def _existing(path: Path, what: str) -> Path:
    """``path`` if it is a file, else exit 2 saying what it is instead."""
    if path.is_dir():
        inside = path / "controller.safetensors"
        hint = f", e.g. {inside}" if what == "model file" and inside.is_file() else ""
        _fail(f"{path} is a folder, not a {what}; pass the file itself{hint}")
    if not path.is_file():
        _fail(f"no such {what}: {path}")
    return path


def _load_model(path: Path):
    """The network of a certnet file; a file without digests loads with one line
    ``warning: …`` on stderr."""
    import warnings

    _existing(path, "model file")
    with _user_errors(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        from certnet.export.sb3 import is_sb3_zip, load_sb3

        net = load_sb3(path) if is_sb3_zip(path) else certnet.load(path)
    for w in caught:
        typer.echo(f"warning: {w.message}", err=True)
    return net


def _number(x: Any) -> Any:
    """JSON-friendly number (inf/nan as strings, numpy scalars as Python)."""
    if hasattr(x, "item"):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return repr(x)
    return x


#: The real stdout while a ``--json`` command runs (its own stdout is sent to stderr).
_JSON_STDOUT: contextvars.ContextVar[TextIO | None] = contextvars.ContextVar(
    "certnet_json_stdout", default=None
)


def _json_command(command: Callable[..., None]) -> Callable[..., None]:
    """Decorate every command that takes ``--json``: stdout then carries the JSON object only.

    While the command works, ``sys.stdout`` is redirected to stderr, so rich's progress bars
    (the trainers draw on ``sys.stdout`` as it is when they draw), ANSI codes and any stray
    print stay visible in a terminal but never mix into the JSON; :func:`_emit` writes the
    object on the real stdout.
    """

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        if not kwargs.get("as_json"):
            return command(*args, **kwargs)
        token = _JSON_STDOUT.set(sys.stdout)
        try:
            with contextlib.redirect_stdout(sys.stderr):
                return command(*args, **kwargs)
        finally:
            _JSON_STDOUT.reset(token)

    return run


def _emit(as_json: bool, payload: dict[str, Any], table: Table | None = None) -> None:
    if as_json:
        text = json.dumps({k: _number(v) for k, v in payload.items()}, default=str)
        typer.echo(text, file=_JSON_STDOUT.get())
    elif table is not None:
        _out.print(table)


def _key(label: str) -> str:
    """JSON key of a table label: "by-construction bound" → "by_construction_bound"."""
    return re.sub(r"[^0-9a-z]+", "_", label.lower()).strip("_")


def _kv_table(title: str, rows: dict[str, Any]) -> Table:
    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    for k, v in rows.items():
        t.add_row(k, _six_digits(v) if isinstance(v, float) else str(v))
    return t


def _six_digits(v: float) -> str:
    """Six significant digits, more when six would round a value that is not 1 to "1" (a
    certified decrease rate ρ = 0.9999999938 must not read as ρ = 1, which proves nothing)."""
    text = f"{v:.6g}"
    if text in ("1", "-1") and abs(v) != 1.0:
        return f"{v:.12g}"
    return text


def _parse_floats(text: str, what: str) -> list[float]:
    try:
        vals = [float(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        _fail(f"{what} must be comma-separated numbers, e.g. 3.0,0.0; got {text!r}")
    if not vals or not all(math.isfinite(v) for v in vals):
        _fail(f"{what} must be finite numbers, e.g. 3.0,0.0; got {text!r}")
    return vals


# ---------------------------------------------------------------------------------- commands
@app.command()
def version() -> None:
    """Print the certnet version."""
    typer.echo(certnet.__version__)


@app.command()
@_json_command
def info(
    model: Annotated[Path, typer.Argument(help=_MODEL_HELP)],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Architecture and by-construction Lipschitz bound of a saved network."""
    net = _load_model(model)
    from certnet.nn import OnnxNetwork, extract_layers

    if isinstance(net, OnnxNetwork):
        meta = {"certnet_kind": f"ONNX ({str(net.onnx_dtype).replace('torch.', '')})"}
        meta.update({"certificate": ""} if "certnet.certificate" in net.metadata else {})
    else:
        meta = certnet.read_metadata(model)

    with _user_errors():
        stack = extract_layers(net)
    rows: dict[str, Any] = {
        "kind": meta["certnet_kind"],
        "widths": stack.widths,
        "activations": sorted({a.name for a in stack.activations}) or ["(none)"],
        "fingerprint": stack.fingerprint()[:16],
        "certificate in header": "certificate" in meta,
    }
    if hasattr(net, "lipschitz_bound"):
        rows["radii"] = [round(r, 6) for r in net.radii]
        rows["by-construction bound"] = net.lipschitz_bound()
    _emit(as_json, {_key(k): v for k, v in rows.items()}, _kv_table(str(model), rows))


@app.command()
@_json_command
def demo(
    name: Annotated[str, typer.Argument(help="Demo name, e.g. pendulum.")] = "pendulum",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Output folder (default: runs/NAME; runs/NAME-quick with --quick, …-seedN "
            "with --seed N).",
        ),
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Reduced budget (a smoke run).")] = False,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed.")] = 0,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace the artefacts of another run in OUT."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Run an end-to-end demo: train, certify, simulate, write a report with plots."""
    demos = _require("demos")
    if name not in demos.NAMES:
        _fail(f"unknown demo {name!r}; choose one of {', '.join(demos.NAMES)}")
    if out is None:  # one default folder per setting, so a smoke run never blocks the full run
        out = Path("runs") / (name + ("-quick" if quick else "") + (f"-seed{seed}" if seed else ""))
    run = _run_record(
        "demo",
        {"demo": name, "quick": quick, "seed": seed},
        f"certnet demo {name}{' --quick' if quick else ''} --seed {seed}",
    )
    _claim_folder(out, run, force=force)
    _write_record(out, run)
    with _user_errors():
        result = demos.run(name, out, quick=quick, seed=seed)
    written = sorted({Path(f).name for f in result.files if Path(f).parent == out})
    _write_record(out, {**run, "files": ["run.json", *written]})
    cert = result.certificate
    payload: dict[str, Any] = {
        "demo": name,
        "report": str(result.report_path),
        "controller": str(out / "controller.safetensors"),
        "certificate": str(out / "certificate.json"),
        "lipschitz_certified": cert.certified,
        "lipschitz_value": cert.value,
        "lipschitz_method": cert.method,
    }
    payload.update(
        {k: v for k, v in result.metrics.items() if isinstance(v, (int, float, str, bool))}
    )
    _emit(as_json, payload, _kv_table(f"demo {name}", payload))
    if not as_json:
        _out.print(f"report: {result.report_path}")


TRAIN_KEYS = ("plant", "method", "expert", "plant_kwargs", "train")
TRAIN_METHODS = ("optimize_policy", "imitate")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    _existing(path, "config file")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        _fail(f"{path} is not a text file; pass a TOML run config, e.g. examples/pendulum.toml")
    except tomllib.TOMLDecodeError as e:
        _fail(f"{path} is not valid TOML: {e}; see examples/pendulum.toml")


def _train_setup(path: Path, out: Path, resume: bool, force: bool = False):
    """Validate a run config: (plant, method, expert, trainer config); exit 2 naming bad keys."""
    raw = _read_toml(path)
    unknown = [k for k in raw if k not in TRAIN_KEYS]
    if unknown:
        _fail(
            f"{path}: unknown key {unknown[0]!r}; valid top-level keys are {', '.join(TRAIN_KEYS)}"
        )
    if "plant" not in raw:
        _fail(f"{path}: missing key 'plant'; one of {', '.join(PLANTS)}")
    method = raw.get("method", "optimize_policy")
    if method not in TRAIN_METHODS:
        _fail(f"{path}: method = {method!r}; valid methods are {', '.join(TRAIN_METHODS)}")
    if method == "imitate" and "expert" not in raw:
        _fail(f"{path}: method = 'imitate' needs an expert, e.g. expert = 'lqr'")
    if method == "optimize_policy" and "expert" in raw:
        _fail(f"{path}: key 'expert' is only used by method = 'imitate'; remove it")
    for table in ("plant_kwargs", "train"):
        if not isinstance(raw.get(table, {}), dict):
            _fail(f"{path}: {table!r} must be a table ([{table}])")
    train = _require("train")
    cls = train.ImitationConfig if method == "imitate" else train.PolicyConfig
    data = dict(raw.get("train", {}))
    data.setdefault("checkpoint", str(out / "checkpoint.pt"))
    if resume:
        data["resume"] = True
    if force:
        data["overwrite"] = True
    with _user_errors():
        try:
            cfg = train.config_from_dict(cls, data)
        except (TypeError, ValueError) as e:
            raise type(e)(f"{path} [train]: {e}") from None
    kwargs = raw.get("plant_kwargs", {})
    plant = _make_plant(raw["plant"], kwargs, where=f"{path} [plant_kwargs]" if kwargs else "")
    expert = _make_expert(raw["expert"], plant) if method == "imitate" else None
    return raw, method, cfg, plant, expert


def _make_plant(name: str, kwargs: dict[str, Any], where: str = ""):
    """The plant ``name`` built with ``kwargs``; a bad keyword exits 2 naming ``where`` (the
    config table they come from) and the plant's class, whose docstring lists them."""
    plants = _require("plants")
    if name not in PLANTS:
        _fail(f"unknown plant {name!r}; choose one of {', '.join(PLANTS)}")
    try:
        return getattr(plants, PLANTS[name])(**kwargs)
    except (CertnetError, ValueError, TypeError) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        _fail(f"{where or name}: {why}; see help(certnet.plants.{PLANTS[name]}) for its arguments")


EXPERTS = ("lqr", "swing_up", "mpc")


def _make_expert(name: str, plant):
    experts = _require("experts")
    if name not in EXPERTS or not hasattr(experts, name):
        valid = [e for e in EXPERTS if hasattr(experts, e)]
        _fail(f"unknown expert {name!r}; choose one of {', '.join(valid)}")
    with _user_errors():
        return getattr(experts, name)(plant)


@app.command()
@_json_command
def train(
    config: Annotated[Path, typer.Argument(help="A TOML run config (see examples/pendulum.toml).")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Output folder (default: runs/CONFIG-train)."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from OUT/checkpoint.pt.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Start afresh: replace the checkpoint and the artefacts in OUT."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Train a controller from a TOML config; writes OUT/controller.safetensors.

    The train table's optimizer is mm (default), smm (MM on a stream of mini-batches) or autonewton, which choose their own step size, or rsgd or adam, which need lr.
    """  # noqa: E501  (one line: rich keeps a docstring's line breaks)
    if resume and force:
        _fail("--resume continues the checkpoint and --force discards it; pass one of them")
    out = out if out is not None else Path("runs") / f"{config.stem}-train"
    raw, method, cfg, plant, expert = _train_setup(config, out, resume, force)
    run = _train_record(raw, f"certnet train {config}")
    same = _claim_folder(out, run, force=force, resume=resume)
    train_mod = _require("train")
    if not resume and not force:
        with _user_errors():
            train_mod.refuse_existing_checkpoint(cfg.checkpoint)
    if not same:
        _write_record(out, run, config=raw)  # the folder is this run's from now on
    with _user_errors():
        try:
            if method == "imitate":
                result = train_mod.imitate(expert, plant, cfg)
            else:
                result = train_mod.optimize_policy(plant, cfg)
        except FloatingPointError as e:
            _fail(
                f"training stopped: {str(e).splitlines()[0]}; {cfg.checkpoint} (if written) "
                "holds the last saved iteration; try a smaller lipschitz budget or horizon"
            )
    net, history = result.net, result.history
    files = ["run.json", "controller.safetensors"]
    if Path(cfg.checkpoint).parent == out:
        files.append(Path(cfg.checkpoint).name)
    _write_record(
        out,
        {**run, "files": files},
        config=raw,
        resolved=_jsonable_config(cfg),
        history=history.to_dict(),
    )
    model = certnet.save(net, out / "controller.safetensors", metadata={"run": json.dumps(raw)})
    payload: dict[str, Any] = {
        "plant": raw["plant"],
        "method": method,
        "optimizer": cfg.optimizer,
        "iterations": len(history.loss),
        "first_loss": history.loss[0] if history.loss else float("nan"),
        "final_loss": history.loss[-1] if history.loss else float("nan"),
        "time_s": history.time_s[-1] if history.time_s else 0.0,
        "out": str(out),
        "controller": str(model),
        "checkpoint": str(cfg.checkpoint),
    }
    if hasattr(net, "lipschitz_bound"):
        payload["by_construction_bound"] = net.lipschitz_bound()
    _emit(as_json, payload, _kv_table(f"trained {config}", payload))


# ------------------------------------------------------------------------------ run folders
#: Files certnet writes into a run folder (and ``*certificate*.json``): a folder holding any of
#: them holds a run, which only the same run (or ``--force``) may write over.
ARTEFACTS = ("run.json", "controller.safetensors", "checkpoint.pt", "report.md", "metrics.json")

#: ``[train]`` keys a continued run may change (the budget and the display), so ``--resume``
#: after raising ``iterations`` still continues the same run.
_BUDGET_KEYS = ("iterations", "checkpoint_every", "progress", "resume", "overwrite")


def _run_record(command: str, settings: dict[str, Any], description: str) -> dict[str, Any]:
    """What ``OUT/run.json`` says about the run that wrote the folder: the command, a digest
    (SHA-256) of the settings that make it this run, and the command line for messages."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return {
        "command": command,
        "digest": hashlib.sha256(text.encode()).hexdigest(),
        "description": description,
    }


def _train_record(raw: dict[str, Any], description: str) -> dict[str, Any]:
    train = {k: v for k, v in raw.get("train", {}).items() if k not in _BUDGET_KEYS}
    return _run_record("train", {**raw, "train": train}, description)


def _write_record(out: Path, run: dict[str, Any], **more: Any) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "run.json").write_text(json.dumps({"run": run, **more}, indent=1, default=str))


def _folder_record(out: Path) -> dict[str, Any] | None:
    """The record of the run that wrote ``out`` (``run.json``'s ``run``; for a ``run.json``
    of a train run written before records existed, rebuilt from its config), else None."""
    try:
        data = json.loads((out / "run.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("run"), dict) and {"command", "digest"} <= set(data["run"]):
        return data["run"]
    if isinstance(data.get("config"), dict):
        return _train_record(data["config"], "certnet train")
    return None


def _claim_folder(out: Path, run: dict[str, Any], *, force: bool, resume: bool = False) -> bool:
    """Check that ``run`` may write into ``out``; True when ``out`` already holds this run.

    A folder without artefacts, or holding this run's (same command, same settings digest), is
    free. Another run's artefacts stop the command (exit 2), unless ``force``: then they are
    deleted, so that no report or certificate about another controller stays behind.
    """
    if out.exists() and not out.is_dir():
        _fail(f"--out {out} is a file; pass a folder for the run's artefacts")
    found = [out / n for n in ARTEFACTS if (out / n).exists()] if out.is_dir() else []
    found += sorted(out.glob("*certificate*.json")) if out.is_dir() else []
    if not found:
        return False
    old = _folder_record(out)
    if old is not None and (old["command"], old["digest"]) == (run["command"], run["digest"]):
        return True
    who = (
        f"another run ({old.get('description', old['command'])})"
        if old is not None
        else "a run it does not record (no readable run.json)"
    )
    names = ", ".join(p.name for p in found)
    if resume:
        _fail(
            f"{out} holds the artefacts of {who}: {names}; --resume continues only the run that "
            "wrote the folder: pass the config that wrote it (only [train] iterations may change)"
        )
    if not force:
        _fail(
            f"{out} holds the artefacts of {who}: {names}; write this run to another folder "
            "with --out DIR, or delete them and start afresh with --force"
        )
    listed = [n for n in (old or {}).get("files", []) if isinstance(n, str) and Path(n).name == n]
    for p in {*found, *(out / n for n in listed)}:
        p.unlink(missing_ok=True)
    return False


def _jsonable_config(cfg: Any) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}


@app.command()
@_json_command
def simulate(
    model: Annotated[
        Path, typer.Argument(help=_MODEL_HELP + " Observation → action.")
    ],
    plant_name: Annotated[
        str, typer.Option("--plant", help=f"One of {', '.join(PLANTS)}.")
    ] = "pendulum",
    steps: Annotated[int, typer.Option("--steps", min=1, help="Closed-loop steps.")] = 200,
    x0: Annotated[
        str | None,
        typer.Option(
            "--x0", help="Initial state, comma-separated SI values (default: reset_high)."
        ),
    ] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write a trajectory PNG here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Run the controller in closed loop with a plant from one initial state."""
    import torch

    net = _load_model(model)
    plant = _make_plant(plant_name, {})
    _fits_plant(net, model, plant, plant_name)
    start = plant.reset_high if x0 is None else _state_values(x0, "--x0", plant)
    dtype = next(net.parameters()).dtype

    def policy(obs: torch.Tensor) -> torch.Tensor:
        return net(obs.to(dtype)).to(obs.dtype)

    with _user_errors(), torch.no_grad():
        roll = plant.rollout(policy, torch.tensor([list(start)], dtype=torch.float64), steps)
    states, actions = roll.states[0], roll.actions[0]
    final = states[-1]
    payload: dict[str, Any] = {
        "plant": plant_name,
        "steps": steps,
        "x0": [float(v) for v in start],
        "final_state": [float(v) for v in final],
        "return": float(roll.rewards[0].sum()),
        "max_abs_action": float(actions.abs().max()),
        "settled": bool(plant.is_settled(final[None])[0]),
    }
    if plot is not None:
        _plot_rollout(plant, states, actions, plot)
        payload["plot"] = str(plot)
    _emit(as_json, payload, _kv_table(f"{model} on {plant_name}", payload))


def _fits_plant(net, model: Path, plant, plant_name: str) -> None:
    """Exit 2 when the network's input or output size is not the plant's."""
    widths = _output_and_input(net)
    if widths != (plant.n_inputs, plant.n_obs):
        _fail(
            f"{model} maps {widths[1]} inputs to {widths[0]} outputs, but the plant {plant_name} "
            f"observes {plant.n_obs} ({', '.join(plant.obs_names)}) and takes {plant.n_inputs} "
            f"input(s); pass the --plant the controller was trained for"
        )


def _output_and_input(net) -> tuple[int, int]:
    from certnet.nn import extract_layers

    with _user_errors():
        widths = extract_layers(net).widths
    return widths[-1], widths[0]


def _plot_rollout(plant, states, actions, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [k * plant.dt for k in range(states.shape[0])]
    fig, (ax_x, ax_u) = plt.subplots(2, 1, sharex=True, figsize=(7, 5))
    for i, (name, unit) in enumerate(zip(plant.state_names, plant.state_units, strict=True)):
        ax_x.plot(t, states[:, i].numpy(), label=f"{name} [{unit}]")
    ax_x.legend(loc="best")
    ax_x.set_ylabel("state")
    for j, (name, unit) in enumerate(zip(plant.input_names, plant.input_units, strict=True)):
        ax_u.step(t[:-1], actions[:, j].numpy(), where="post", label=f"{name} [{unit}]")
    ax_u.legend(loc="best")
    ax_u.set_ylabel("action")
    ax_u.set_xlabel("time [s]")
    fig.suptitle(f"closed loop: {type(plant).__name__}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


@app.command()
@_json_command
def verify(
    model: Annotated[Path, typer.Argument(help=_MODEL_HELP)],
    method: Annotated[
        Method | None,
        typer.Option("--method", help="Lipschitz certificate method (default: auto)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the certificate as JSON here.")
    ] = None,
    lower_bound: Annotated[
        bool,
        typer.Option("--lower-bound", help="Also compute a sampled lower bound (how tight it is)."),
    ] = False,
    check: Annotated[
        Path | None,
        typer.Option("--check", help="Re-verify this certificate JSON against MODEL instead."),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", min=0, help="Seed of the lower-bound or region-shape search.")
    ] = 0,
    closed_loop: Annotated[
        bool,
        typer.Option(
            "--closed-loop",
            help="Certify MODEL in feedback with --plant instead (a region of "
            "attraction, or the ℓ2 gain with --l2).",
        ),
    ] = False,
    plant_name: Annotated[
        str | None,
        typer.Option("--plant", help=f"Closed loop: the plant, one of {', '.join(PLANTS)}."),
    ] = None,
    x_eq: Annotated[
        str | None,
        typer.Option(
            "--x-eq",
            help="Closed loop: where to look for the equilibrium, "
            "comma-separated SI values (default: the plant's x_eq).",
        ),
    ] = None,
    extend: Annotated[
        str | None,
        typer.Option(
            "--extend",
            help="Closed loop: also certify the cells of this box that "
            "provably reach the region, one lo:hi per state, e.g. -3:3,-8:8.",
        ),
    ] = None,
    l2: Annotated[
        float | None,
        typer.Option(
            "--l2",
            metavar="ENERGY",
            help="Closed loop: certify the ℓ2 gain from an "
            "input disturbance of energy Σ|d|² ≤ ENERGY to the state instead.",
        ),
    ] = None,
    max_cells: Annotated[
        int | None,
        typer.Option(
            "--max-cells",
            min=1,
            help="Closed loop: budget of cell evaluations of "
            "the branch and bound (default: 200000).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Certify the Lipschitz constant of a network, or its closed loop with a plant
    (--closed-loop), or re-check a certificate (--check).

    A closed loop that is not certified is reported, with the reason, and exits with code 1.
    """
    net = _load_model(model)
    verify_mod = _require("verify")
    loop_options = {
        "--plant": plant_name,
        "--x-eq": x_eq,
        "--extend": extend,
        "--l2": l2,
        "--max-cells": max_cells,
    }
    if check is not None:
        cert = _load_certificate(check)
        if cert.kind == "lipschitz":
            _refuse(
                {"--closed-loop": closed_loop, **loop_options},
                f"{check} is a Lipschitz certificate; {{}} applies to closed-loop ones",
            )
            _check_lipschitz(net, cert, check, as_json)
        else:
            _refuse(
                {
                    "--x-eq": x_eq,
                    "--extend": extend,
                    "--l2": l2,
                    "--max-cells": max_cells,
                    "--method": method,
                    "--lower-bound": lower_bound,
                },
                "--check re-proves the stored certificate; {} only applies when making one",
            )
            _check_loop(net, cert, check, plant_name, as_json)
        return
    if not closed_loop:
        _refuse(loop_options, "{} needs --closed-loop")
        _certify_lipschitz(net, model, method or Method.auto, lower_bound, seed, out, as_json)
        return
    _refuse(
        {"--method": method, "--lower-bound": lower_bound},
        "{} applies to Lipschitz certificates, not to --closed-loop",
    )
    if plant_name is None:
        _fail(f"--closed-loop needs the plant: --plant NAME, one of {', '.join(PLANTS)}")
    if l2 is not None and extend is not None:
        _fail("--extend enlarges a region of attraction; it does not apply to --l2")
    if l2 is not None and not (math.isfinite(l2) and l2 > 0):
        _fail(
            f"--l2 ENERGY must be a positive number (the bound on Σ|d|², input units "
            f"squared), e.g. --l2 0.05; got {l2!r}"
        )
    plant = _make_plant(plant_name, {})
    kwargs: dict[str, Any] = {} if max_cells is None else {"max_cells": max_cells}
    if x_eq is not None:
        kwargs["x_eq"] = _state_values(x_eq, "--x-eq", plant)
    if l2 is None:
        kwargs.update(extend=None if extend is None else _state_box(extend, plant), seed=seed)
        task = f"proving a region of attraction on {plant_name}" + (
            " and the --extend cells" if extend else ""
        )
    else:
        kwargs["energy"] = l2
        task = f"proving the ℓ2 gain on {plant_name} (energy ≤ {l2:g})"
    certify = verify_mod.closed_loop if l2 is None else verify_mod.l2_gain
    with _user_errors(), _progress(task) as say:
        cert = certify(plant, net, **kwargs)
        if cert.certified:
            say("re-checking the proof in float64")
            proved = cert.check(net, plant=plant)
    seconds = float(cert.solver["time"])
    payload: dict[str, Any] = {"plant": plant_name, **_loop_summary(cert, plant, seconds)}
    if cert.certified:
        payload["re_verified"] = proved
        if out is not None:
            with _user_errors():
                cert.save(out)
            payload["out"] = str(out)
    _emit(as_json, payload, _loop_table(f"closed-loop certificate of {model}", payload, plant))
    if not cert.certified:
        typer.echo(f"not certified: {cert.reason}", err=True)
        raise typer.Exit(1)


def _load_certificate(path: Path):
    """A certificate JSON, or exit 2 naming the file and what to pass instead."""
    _existing(path, "certificate file")
    verify_mod = _require("verify")
    try:
        return verify_mod.Certificate.load(path)
    except (CertnetError, ValueError, TypeError, KeyError, OSError) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        _fail(f"{path}: {why}; pass a certificate JSON written by certnet verify --out")


def _refuse(options: dict[str, Any], why: str) -> None:
    """Exit 2 naming the first option of ``options`` that was given (``why`` has a ``{}``)."""
    for name, value in options.items():
        if value is not None and value is not False:
            _fail(why.format(name))


def _certify_lipschitz(
    net, model: Path, method: Method, lower_bound: bool, seed: int, out: Path | None, as_json: bool
) -> None:
    verify_mod = _require("verify")
    with _user_errors():
        cert = verify_mod.lipschitz(net, method=method.value)
    payload = {
        "kind": cert.kind,
        "method": cert.method,
        "certified": cert.certified,
        "value": cert.value,
    }
    if not cert.certified:
        payload["reason"] = cert.reason
    if hasattr(net, "lipschitz_bound"):
        payload["by_construction"] = net.lipschitz_bound()
    if cert.solver.get("time") is not None:
        payload["time_s"] = float(cert.solver["time"])
    if lower_bound:
        lower = _require("verify.lower")
        with _user_errors():
            lb = lower.lipschitz_lower_bound(net, seed=seed)
        payload["lower_bound"] = float(lb["realized"])
        if lb.get("class") is not None:
            payload["class_lower_bound"] = float(lb["class"])
        if cert.certified and payload["lower_bound"] > 0:
            payload["ratio"] = cert.value / payload["lower_bound"]
    if out is not None:
        with _user_errors():
            cert.save(out)
        payload["out"] = str(out)
    _emit(as_json, payload, _kv_table(f"Lipschitz certificate of {model}", payload))


def _check_lipschitz(net, cert, path: Path, as_json: bool) -> None:
    with _user_errors():
        proved = cert.check(net)
    payload = {
        "certificate": str(path),
        "kind": cert.kind,
        "method": cert.method,
        "value": cert.value,
        "re_verified": proved,
        "ok": True,
    }
    _emit(as_json, payload, _kv_table("certificate re-verified", payload))


#: certnet.plants class name → its name on the command line
_PLANT_NAMES = {cls: name for name, cls in PLANTS.items()}


def _check_loop(net, cert, path: Path, plant_name: str | None, as_json: bool) -> None:
    """Re-prove a closed-loop certificate on the plant of --plant, or the built-in plant the
    certificate names."""
    loop = cert.data.get("loop")
    if not isinstance(loop, dict) or not loop.get("plant"):
        _fail(
            f"{path} does not name the plant it is about; re-check it in Python: "
            "Certificate.load(path).check(net, plant=...)"
        )
    named = loop["plant"]
    builtin = (
        _PLANT_NAMES.get(named)
        if str(loop.get("plant_module", "")).startswith("certnet.plants")
        else None
    )
    source = "--plant"
    if plant_name is None:
        if builtin is None:
            _fail(
                f"{path} is about the plant {named}, not a built-in one; pass --plant NAME "
                f"({', '.join(PLANTS)}) or re-check it in Python: "
                "Certificate.load(path).check(net, plant=...)"
            )
        plant_name, source = builtin, "certificate"
    plant = _make_plant(plant_name, {})
    if type(plant).__name__ != named:
        _fail(
            f"{path} was made for the plant {named}, not {type(plant).__name__} (--plant "
            f"{plant_name}); "
            + (
                f"pass --plant {builtin}"
                if builtin
                else "re-check it in Python: Certificate.load(path).check(net, plant=...)"
            )
        )
    t0 = time.perf_counter()
    with _user_errors(), _progress(f"re-proving {path.name} on {plant_name}"):
        proved = cert.check(net, plant=plant)
    seconds = time.perf_counter() - t0
    payload: dict[str, Any] = {
        "certificate": str(path),
        "plant": plant_name,
        "plant_from": source,
        **_loop_summary(cert, plant, seconds),
        "re_verified": proved,
        "ok": True,
    }
    _emit(as_json, payload, _loop_table("closed-loop certificate re-verified", payload, plant))


def _loop_summary(cert, plant, seconds: float) -> dict[str, Any]:
    """What a closed-loop certificate says, for the table and the JSON object; ``time_s`` is
    ``seconds`` (the time to make it, or to re-check it)."""
    d = cert.data
    rows: dict[str, Any] = {
        "kind": cert.kind,
        "method": cert.method,
        "certified": cert.certified,
        "value": cert.value,
        "quantity": "ρ, decrease factor of V per step"
        if cert.kind == "stability"
        else "γ, ℓ2 gain from the input disturbance to the state",
        "x_eq": [float(v) for v in d["x_eq"]],
    }
    if not cert.certified:
        rows["reason"] = cert.reason
    elif cert.kind == "stability":
        rows["region_volume"] = float(d["roa_volume"])
        if "union_volume" in d:
            rows["union_volume"] = float(d["union_volume"])
        half = _sqrt_diag_inv(cert.array("P"))
        rows["half_widths"] = dict(zip(plant.state_names, half, strict=True))
        rows["state_units"] = dict(zip(plant.state_names, plant.state_units, strict=True))
    else:
        rows["energy"] = float(d["energy"])
    rows["time_s"] = seconds
    if "cells" in d:
        rows["cells"] = int(d["cells"])
    return rows


def _sqrt_diag_inv(P) -> list[float]:
    """Half-widths of {δxᵀPδx ≤ 1} along each state: √diag(P⁻¹)."""
    import numpy as np

    return np.sqrt(np.diag(np.linalg.inv(P))).tolist()


def _loop_table(title: str, payload: dict[str, Any], plant) -> Table:
    """The summary table: half-widths with their units, the equilibrium in six digits."""
    rows: dict[str, Any] = {}
    for key, value in payload.items():
        if key == "half_widths":
            units = dict(zip(plant.state_names, plant.state_units, strict=True))
            for name, h in value.items():
                rows[f"half-width {name}"] = f"±{_six_digits(h)} {units[name]}"
        elif key == "x_eq":
            rows[key] = ", ".join(_six_digits(v) for v in value)
        elif key == "plant_from":
            if value == "certificate":
                rows["plant"] += " (named by the certificate)"
        elif key != "state_units":
            rows[key] = value
    return _kv_table(title, rows)


def _state_values(text: str, option: str, plant) -> list[float]:
    """One number per state of ``plant`` (comma-separated), or exit 2 naming the states."""
    vals = _parse_floats(text, option)
    if len(vals) != plant.n_states:
        _fail(
            f"{option} needs {plant.n_states} values ({', '.join(plant.state_names)}), "
            f"got {len(vals)}"
        )
    return vals


def _state_box(text: str, plant) -> tuple[list[float], list[float]]:
    """``lo:hi`` per state, comma-separated → (lo, hi); exit 2 saying what is wrong."""
    example = ",".join(["-1:1"] * plant.n_states)
    try:
        pairs = [tuple(map(float, part.split(":"))) for part in text.replace(" ", "").split(",")]
        if any(len(p) != 2 for p in pairs):
            raise ValueError(text)
    except ValueError:
        _fail(
            f"--extend must be one lo:hi range per state, comma-separated, e.g. "
            f"--extend={example}; got {text!r}"
        )
    if len(pairs) != plant.n_states:
        _fail(
            f"--extend needs {plant.n_states} ranges lo:hi "
            f"({', '.join(plant.state_names)}), got {len(pairs)}"
        )
    if not all(math.isfinite(lo) and math.isfinite(hi) and lo < hi for lo, hi in pairs):
        _fail(f"--extend needs finite ranges with lo < hi, got {text!r}")
    return [p[0] for p in pairs], [p[1] for p in pairs]


@contextlib.contextmanager
def _progress(task: str):
    """A spinner with the elapsed time on stderr while a long step runs, cleared when it
    ends; yields ``say(text)`` to change its text. stderr only, so --json stdout stays clean."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    err = Console(stderr=True, highlight=False)  # made now: the terminal as it is now
    with Progress(*columns, console=err, transient=True) as bar:
        job = bar.add_task(task, total=None)
        bar.refresh()
        yield lambda text: bar.update(job, description=text, refresh=True)


@app.command()
@_json_command
def evaluate(
    model: Annotated[Path, typer.Argument(help=_MODEL_HELP)],
    env: Annotated[
        str, typer.Option("--env", help="A registered gymnasium env id.")
    ] = "Pendulum-v1",
    episodes: Annotated[int, typer.Option("--episodes", min=1, help="Number of episodes.")] = 100,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the first episode.")] = 0,
    backend: Annotated[
        str, typer.Option("--backend", help="auto, twin (batched torch plant), vector or gym.")
    ] = "auto",
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="Perturb a plant parameter per episode: NAME=LOW:HIGH."),
    ] = None,
    obs_noise: Annotated[
        float, typer.Option("--obs-noise", min=0.0, help="Sensor noise std (obs units).")
    ] = 0.0,
    delay: Annotated[int, typer.Option("--delay", min=0, help="Action delay in steps.")] = 0,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write a PNG of the returns here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Mean/std, worst case and quantiles of the return of a controller on a gymnasium env.

    Runs on certnet's batched torch twin when the env has one (same returns as the one-env
    loop), else on gymnasium's vector env; --param draws perturbed plants per episode.
    """
    ranges = {k: v for k, v in (_param_range(p) for p in param or [])}
    net = _load_model(model)
    export = _require("export")
    _require("plants")  # registers certnet's own environments
    import difflib

    import gymnasium

    if env not in gymnasium.registry:
        near = difflib.get_close_matches(env, list(gymnasium.registry), n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        _fail(f"unknown gymnasium env id {env!r}{hint}")
    try:
        probe = gymnasium.make(env)
    except gymnasium.error.Error as e:
        _fail(f"cannot make {env}: {str(e).splitlines()[0]}; install what it needs or pick another")
    _fits_env(net, model, probe, env)
    with _user_errors():
        policy = export.to_policy(net, env=probe)  # clip to the env's action space
        probe.close()
        ev = export.evaluate(policy, env, episodes=episodes, seed=seed, backend=backend,
                             parameters=ranges or None, obs_noise=obs_noise,
                             action_delay=delay)
    payload = {
        "env": env,
        "episodes": episodes,
        "seed": seed,
        "mean_return": ev.mean_return,
        "std_return": ev.std_return,
        "min_return": float(ev.returns.min()),
        "max_return": float(ev.returns.max()),
        "success_rate": ev.success_rate,
        "mean_settling_time_s": _nanmean(ev.settling_time),
        "mean_effort": float(ev.effort.mean()),
        "mean_length": float(ev.lengths.mean()),
        "worst_return": ev.worst_return,
        "return_q05": ev.quantiles[0.05],
        "return_q50": ev.quantiles[0.5],
        "return_q95": ev.quantiles[0.95],
        "backend": ev.backend,
        "policy_batched": ev.policy_batched,
        "parameters": {k: list(v) for k, v in ranges.items()},
    }
    if plot is not None:
        with _user_errors():
            _plot_returns(ev, plot, f"{model.name} on {env}")
        payload["plot"] = str(plot)
    _emit(as_json, payload, _kv_table(f"{model} on {env}", payload))


def _param_range(text: str) -> tuple[str, tuple[float, float]]:
    """``NAME=LOW:HIGH`` → (name, (low, high)); exit 2 on anything else."""
    name, eq, rng = text.partition("=")
    lo, colon, hi = rng.partition(":")
    try:
        if not (eq and colon and name.strip()):
            raise ValueError
        return name.strip(), (float(lo), float(hi))
    except ValueError:
        _fail(f"--param must be NAME=LOW:HIGH, e.g. --param mass=0.8:1.2, got {text!r}")


def _plot_returns(ev, path: Path, title: str) -> None:
    """PNG: histogram of the returns, and the return against each perturbed parameter."""
    from matplotlib.figure import Figure

    panels = 1 + len(ev.parameters)
    fig = Figure(figsize=(4.0 * panels, 3.2), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    axes[0].hist(ev.returns, bins=min(50, max(5, len(ev.returns) // 10)), color="tab:blue")
    for q, v in ev.quantiles.items():
        axes[0].axvline(v, color="k", lw=0.8, ls="--")
        axes[0].text(v, axes[0].get_ylim()[1] * 0.95, f"{q:.0%}", fontsize=7, ha="center")
    axes[0].set(xlabel="episode return", ylabel="episodes", title=title)
    for ax, (name, values) in zip(axes[1:], ev.parameters.items(), strict=True):
        ax.scatter(values, ev.returns, s=4, alpha=0.5)
        ax.set(xlabel=name, ylabel="episode return")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def _fits_env(net, model: Path, probe, env: str) -> None:
    """Exit 2 unless ``probe`` has flat Box observation and action spaces of the network's
    input and output sizes."""
    from gymnasium import spaces

    act, obs = probe.action_space, probe.observation_space
    if not isinstance(act, spaces.Box):
        _fail(
            f"{env} has a {type(act).__name__} action space; a certnet controller outputs "
            "continuous actions, so pass an env with a Box action space, e.g. Pendulum-v1 or "
            "certnet/ContinuousCartPole-v0"
        )
    n_out, n_in = _output_and_input(net)
    if not isinstance(obs, spaces.Box) or obs.shape != (n_in,) or act.shape != (n_out,):
        _fail(
            f"{model} maps {n_in} inputs to {n_out} outputs, but {env} observes "
            f"{getattr(obs, 'shape', obs)} and acts {act.shape}; pass the --env the controller "
            "was trained for"
        )


def _nanmean(values) -> float:
    """Mean of the finite entries (NaN when there are none)."""
    import numpy as np

    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


@app.command()
@_json_command
def export(
    model: Annotated[Path, typer.Argument(help="A .safetensors controller.")],
    onnx: Annotated[Path, typer.Option("--onnx", help="Destination .onnx file.")],
    certificate: Annotated[
        Path | None,
        typer.Option("--certificate", help="Certificate JSON to embed in the ONNX metadata."),
    ] = None,
    plant_name: Annotated[
        str | None,
        typer.Option("--plant", help="Bake this plant's actuator limits into the graph (clip)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Export a controller to ONNX (scalings baked in, certificate in the metadata)."""
    if onnx.is_dir():
        _fail(f"--onnx {onnx} is a folder; pass a file name, e.g. --onnx {onnx / 'ctrl.onnx'}")
    net = _load_model(model)
    from certnet.nn import OnnxNetwork

    if isinstance(net, OnnxNetwork):
        _fail(
            f"{model} is already an ONNX file: deploy it as it is (export writes ONNX from a "
            f"certnet .safetensors model); keep its certificate next to it (certnet verify "
            f"{model} --out cert.json) and re-check it against the file (certnet verify {model} "
            "--check cert.json)"
        )
    export_mod = _require("export")
    cert = None
    if certificate is not None:
        cert = _load_certificate(certificate)
        with _user_errors():
            cert.check(net)
    limits: dict[str, Any] = {}
    if plant_name is not None:
        plant = _make_plant(plant_name, {})
        limits = {"low": plant.u_min, "high": plant.u_max}
    onnx.parent.mkdir(parents=True, exist_ok=True)
    with _user_errors():
        path = export_mod.to_onnx(net, onnx, certificate=cert, **limits)
    payload = {
        "onnx": str(path),
        "certificate": str(certificate) if cert is not None else None,
        "action_limits": [limits["low"].tolist(), limits["high"].tolist()] if limits else None,
    }
    _emit(as_json, payload, _kv_table("exported", payload))


def main() -> None:
    """Console entry point ``certnet``."""
    app()


if __name__ == "__main__":
    sys.exit(main())
