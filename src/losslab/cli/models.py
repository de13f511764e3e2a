"""`losslab models` commands: list the presets, show one preset's resolved config."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

models_app = typer.Typer(
    help=(
        "Model presets by name (yolact_tiny, yolact_plus_base, ...). Every preset takes key=value "
        "overrides of its config, e.g. `losslab models show yolact_tiny mask_loss='0.5*mse + bce'`."
    ),
    no_args_is_help=True,
)


@models_app.command("list")
def list_cmd(
    pattern: str = typer.Argument("*", help="Glob on the preset name, e.g. 'yolact*'."),
    family: str | None = typer.Option(None, "--family", "-f", help="Only this family, e.g. yolact or maskrcnn."),
    params: bool = typer.Option(
        True, "--params/--no-params", help="Count parameters (builds each model once, a few seconds)."
    ),
) -> None:
    """Print the presets as a table: name, family, task, input size, parameters, description."""
    from losslab.models import create_model, get_model_info, list_models

    names = list_models(pattern, family=family)
    table = Table(title=f"losslab model presets ({len(names)})")
    for col in ("name", "family", "task", "input", "params (M)", "description"):
        table.add_column(col, style="bold cyan" if col == "name" else None, no_wrap=col == "name")
    for name in names:
        info = get_model_info(name)
        size = str(getattr(info.config(), "input_size", "-"))
        count = f"{sum(p.numel() for p in create_model(name).parameters()) / 1e6:.2f}" if params else "-"
        table.add_row(name, info.family, info.task, size, count, info.description)
    Console().print(table)


@models_app.command("show")
def show_cmd(
    name: str = typer.Argument(..., help="Preset name (see `losslab models list`)."),
    overrides: list[str] = typer.Argument(None, help="key=value overrides of the preset's config."),
    params: bool = typer.Option(False, "--params", help="Also build the model and count its parameters."),
) -> None:
    """Print a preset's resolved config (after overrides) as YAML: what a run with it would save."""
    import yaml

    from losslab.config import config_to_dict, parse_kv
    from losslab.models import create_model, get_model_info, model_config

    try:
        info = get_model_info(name)
        kv = parse_kv(overrides or [])
        cfg = model_config(name, **kv)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"# {name}: {info.description} (family {info.family}, task {info.task})")
    if params:
        model = create_model(name, **kv)
        typer.echo(f"# parameters: {sum(p.numel() for p in model.parameters()):,}")
    typer.echo(yaml.safe_dump(config_to_dict(cfg), sort_keys=False).rstrip())


def register(app: typer.Typer) -> None:
    """Add the `models` command group to the root app."""
    app.add_typer(models_app, name="models")
