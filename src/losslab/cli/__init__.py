"""The ``losslab`` command line. Each sub-module registers its own commands on ``app``."""

from __future__ import annotations

import typer

from losslab.cli import data, engine, losses, models, study

app = typer.Typer(
    name="losslab",
    help=(
        "Find the best loss function for a segmentation model by measurement.\n\n"
        "Quick start: `losslab study run quick --out studies/quick` trains YOLACT once per loss on a "
        "synthetic Cigarette-Butts-like dataset and `losslab study report studies/quick` writes the "
        "paper-style tables with confidence intervals and plots."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def version() -> None:
    """Print the losslab version."""
    from losslab import __version__

    typer.echo(__version__)


for _module in (losses, data, models, engine, study):
    _module.register(app)


def main() -> None:
    """Entry point of the ``losslab`` console script."""
    app()
