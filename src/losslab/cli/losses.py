"""`losslab losses` commands: list the catalogue, show one loss, plot losses."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

losses_app = typer.Typer(
    help=(
        "The loss catalogue: every loss has a name, parameters and a source, and any weighted sum "
        "of them is a spec, e.g. '0.5*mse + bce' or 'bce + 2*dice(squared=true)'."
    ),
    no_args_is_help=True,
)


def _params(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "-"


@losses_app.command("list")
def list_cmd(
    pattern: str = typer.Argument("*", help="Glob on the loss name, e.g. '*dice*'."),
    kind: str | None = typer.Option(
        None, "--kind", "-k", help="Only this kind: pixel, region, structural, boundary, box or class."
    ),
    contract: str | None = typer.Option(
        None, "--contract", "-c", help="Only losses taking this contract: mask, regression, box or class."
    ),
) -> None:
    """Print the catalogue as a table: name, kind, what it acts on, contracts, parameters with
    their defaults, description and source."""
    from losslab.losses.registry import KINDS, get_loss_info, list_losses

    if kind is not None and kind not in KINDS:
        raise typer.BadParameter(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}", param_hint="--kind")
    names = list_losses(pattern, kind=kind, contract=contract)
    table = Table(title=f"losslab loss catalogue ({len(names)} losses)", show_lines=False)
    table.add_column("name", style="bold cyan", no_wrap=True)
    table.add_column("kind")
    table.add_column("acts on")
    table.add_column("contracts")
    table.add_column("parameters")
    table.add_column("description")
    table.add_column("source", style="dim")
    for name in names:
        info = get_loss_info(name)
        table.add_row(
            name,
            info.kind,
            info.acts_on,
            ", ".join(info.contracts),
            _params(info.params),
            info.description,
            info.source,
        )
    console = Console()
    if not names:
        console.print(f"no loss matches {pattern!r}" + (f" of kind {kind!r}" if kind else ""))
        raise typer.Exit(1)
    console.print(table)
    if pattern != "*" or kind is not None or contract in ("box", "class"):
        return
    from losslab.losses.operators import OPERATORS

    console.print("operators (wrap a term, e.g. 'bce + 0.5*uncropped(mse)'):", highlight=False)
    for op, (_, what) in OPERATORS.items():
        console.print(f"  {op}(TERM)  {what}", markup=False, highlight=False)


@losses_app.command("show")
def show_cmd(name: str = typer.Argument(..., help="A loss or operator name, e.g. 'dice' or 'uncropped'.")) -> None:
    """Print everything the catalogue knows about one loss (or operator), with its docstring."""
    from losslab.losses.operators import OPERATORS
    from losslab.losses.registry import get_loss_info

    if name in OPERATORS:
        cls, what = OPERATORS[name]
        console = Console()
        console.print(f"[bold cyan]{name}[/](TERM)  operator: {what}", highlight=False)
        console.print()
        console.print(inspect.getdoc(sys.modules[cls.__module__]) or "", markup=False, highlight=False)
        return
    try:
        info = get_loss_info(name)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="NAME") from None
    console = Console()
    console.print(f"[bold cyan]{info.name}[/]  ({info.kind}, acts on {info.acts_on})")
    console.print(f"contracts:   {', '.join(info.contracts)}")
    console.print(f"parameters:  {_params(info.params)}")
    console.print(f"description: {info.description}")
    console.print(f"source:      {info.source or '-'}")
    console.print(f"class:       {info.cls.__module__}.{info.cls.__qualname__}")
    doc = inspect.getdoc(info.cls)
    if doc:
        console.print()
        console.print(doc, markup=False, highlight=False)


@losses_app.command("plot")
def plot_cmd(
    specs: list[str] = typer.Argument(..., help="One or more loss specs, e.g. bce dice '0.5*mse + bce'."),
    out: Path = typer.Option(Path("loss_plot.png"), "--out", "-o", help="PNG file to write."),
    title: str | None = typer.Option(None, "--title", help="Figure title (default: the specs)."),
) -> None:
    """Draw, per spec, the loss of one pixel and its gradient w.r.t. the logit against the predicted
    probability (target 1 solid, target 0 dashed), and the per-instance value as a predicted disk
    slides off its target. Writes a PNG and prints its path."""
    from losslab.losses.plot import plot_losses

    try:
        path = plot_losses(list(specs), out, title=title)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="SPEC") from None
    typer.echo(str(path))


def register(app: typer.Typer) -> None:
    """Add ``losslab losses ...`` to the root app."""
    app.add_typer(losses_app, name="losses")
