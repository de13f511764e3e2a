"""`losslab losses` commands: list the catalogue, show one loss, plot losses, write the catalogue page."""

from __future__ import annotations

import inspect
import re
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


#: What ``losslab losses doc`` writes above the generated parts of docs/losses.md.
_DOC_INTRO = """\
# Losses

<!-- Written by `losslab losses doc --out docs/losses.md` from the loss registry and the spec grammar.
     Do not edit by hand: change the code, then run that command (tests/test_docs.py checks it). -->

A loss is a string spec that every model, the trainer, the study grid and the report read: one name
(`bce`), a weighted sum (`0.5*mse + bce`), parameters (`huber(delta=2) + 0.5*dice(squared=true)`),
operators (`bce + 0.5*uncropped(mse)`) and weight schedules (`bce + ramp(0, 1)*boundary`). A spec is
checked when a run config is resolved, before any data is read: an unknown name is refused with the
closest names, a malformed spec with the position of the error, and a spec that is mathematically a
simpler one warns and names it (Huber on probabilities with `delta` >= 1 is `0.5*mse`).

`losslab losses list` prints the table below, `losslab losses show NAME` one loss or operator with its
docstring, `losslab losses plot SPEC...` each spec's loss and gradient against the predicted probability.
Your own losses register into the same catalogue from a file: see [plugins](plugins.md).
"""


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _markdown(doc: str) -> str:
    """A docstring's reST as Markdown: ``code`` becomes `code`."""
    return inspect.cleandoc(doc).replace("``", "`")


def _bullets(doc: str) -> str:
    """The bullet list of a module docstring (``- item`` lines and their continuations), as Markdown."""
    lines = inspect.cleandoc(doc).splitlines()
    out: list[str] = []
    for line in lines:
        if line.startswith("- "):
            out.append(line)
        elif out and line.startswith("  ") and line.strip():
            out[-1] += " " + line.strip()
        elif out and not line.strip():
            break
    return _markdown("\n".join(out))


def _grammar_block(doc: str) -> str:
    """The indented block after ``Grammar ...::`` in ``losslab.grammar``'s docstring."""
    match = re.search(r"::\n\n((?:    .*\n|\n)+)", inspect.cleandoc(doc) + "\n")
    if match is None:
        raise ValueError("losslab.grammar's docstring has no grammar block")
    return inspect.cleandoc(match.group(1))


def catalogue_markdown() -> str:
    """docs/losses.md: the built-in losses as a table, then the spec grammar (weights, operators,
    schedules), read from the registry and from the modules that define them."""
    import losslab.grammar as grammar
    import losslab.losses.operators as operators
    import losslab.losses.schedules as schedules
    from losslab.losses.registry import get_loss_info, list_losses

    # Built-ins only: a plugin imported earlier in this process registers into the same registry.
    names = [n for n in list_losses() if get_loss_info(n).cls.__module__.startswith("losslab.")]
    parts = [_DOC_INTRO, f"## The catalogue ({len(names)} losses)", ""]
    parts.append(
        "p = sigmoid(logits), g = target; sums and means run over each instance's valid pixels. A spec sums "
        "losses of one contract: `mask` (instance or dense masks), `regression` (dense values such as depth), "
        "`box` or `class`."
    )
    parts += [
        "",
        "| name | kind | acts on | contracts | parameters | what it is | source |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in names:
        info = get_loss_info(name)
        params = ", ".join(f"`{k}={v}`" for k, v in info.params.items()) or "—"
        row = [f"`{name}`", info.kind, info.acts_on, ", ".join(info.contracts), params, info.description, info.source]
        parts.append("| " + " | ".join(_cell(c) for c in row) + " |")
    parts += ["", "## Specs: hybrids and weights", ""]
    parts.append("The grammar (whitespace is free):")
    parts += ["", "```text", _grammar_block(grammar.__doc__ or ""), "```", ""]
    parts.append(
        "A term is a loss name with optional parameters, `dice(smooth=0.5, squared=true)`; a weighted sum of "
        "terms is a hybrid, `0.5*mse + bce` or `bce + 2*dice`. Each term of a hybrid is logged on its own "
        "(`mask/bce`, `mask/0.5*mse` in a run's `metrics.csv`)."
    )
    parts += ["", "## Operators", "", "An operator wraps one term, `NAME(TERM)`:", ""]
    parts += ["| operator | what it does |", "|---|---|"]
    parts += [f"| `{op}(TERM)` | {_cell(what)} |" for op, (_, what) in operators.OPERATORS.items()]
    parts += ["", _bullets(operators.__doc__ or "")]
    parts += ["", "## Weight schedules", ""]
    parts.append(
        "A weight may follow training progress t, 0 at the first step and 1 at the last: `SCHEDULE*TERM`. "
        "`bce + ramp(0, 1)*boundary` ramps the boundary loss in; `ramp(1, 0.1)*bce + dice` decays cross-entropy "
        "against Dice. A weight stays >= 0 (a loss cannot be subtracted). Each scheduled weight is logged per "
        "step (`weight/ramp(0, 1)*boundary` in `metrics.csv`) and is part of the spec, so of the run id."
    )
    parts += ["", _bullets(schedules.__doc__ or ""), ""]
    return "\n".join(parts)


@losses_app.command("doc")
def doc_cmd(
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Write the page to this file (docs/losses.md) instead of printing it."
    ),
) -> None:
    """Write the catalogue page, docs/losses.md, from the registry: every loss with its kind, contracts,
    parameters and source, then the spec grammar (hybrids, weights, operators, schedules).

    Regenerate it with `losslab losses doc --out docs/losses.md` after adding or changing a loss."""
    text = catalogue_markdown()
    if out is None:
        typer.echo(text, nl=False)
        return
    out.write_text(text, encoding="utf-8")
    typer.echo(str(out))


def register(app: typer.Typer) -> None:
    """Add ``losslab losses ...`` to the root app."""
    app.add_typer(losses_app, name="losses")
