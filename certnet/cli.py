"""The ``certnet`` command line (typer). Nothing imports this module."""

from __future__ import annotations

import typer

import certnet

app = typer.Typer(help="certnet: certified neural-network controllers.", no_args_is_help=True)


@app.command()
def version() -> None:
    """Print the certnet version."""
    typer.echo(certnet.__version__)


@app.command()
def bound(model: str) -> None:
    """Print the by-construction Lipschitz bound of a saved NormalizedMLP."""
    net = certnet.load(model)
    if not hasattr(net, "lipschitz_bound"):
        raise typer.BadParameter(f"{model} is not a NormalizedMLP; it has no by-construction bound")
    typer.echo(f"{net.lipschitz_bound():.10g}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
