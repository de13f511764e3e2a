"""`losslab train`, `losslab eval`, `losslab predict` and `losslab fps`."""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import typer

from losslab.engine.metric_keys import PAPER_COLUMNS


def _fail(message: str, code: int = 2) -> None:
    """Print ``error: message`` and exit: 2 for bad input, 1 for a run that failed."""
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(code)


def _load_yaml(path: Path) -> dict[str, Any]:
    from losslab.config import read_yaml

    if not path.is_file():
        _fail(f"--config {path} does not exist")
    try:
        data = read_yaml(path) or {}
    except ValueError as exc:
        _fail(str(exc))
    if not isinstance(data, dict):
        _fail(f"{path} must hold a mapping of key: value, not a {type(data).__name__}")
    return data


class _StderrHandler(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is at each message (a test runner swaps it per command)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _show_run_notes() -> None:
    """Print the engine's notes on stderr (where a run resumes from, the data it found, each
    evaluation's headline), not only its warnings."""
    logger = logging.getLogger("losslab")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


#: How an undefined metric (NaN: no ground truth) is shown.
UNDEFINED = "—"


def _cell(value: float, digits: int = 2) -> str:
    return UNDEFINED if math.isnan(value) else f"{value:.{digits}f}"


def _paper_table(metrics: dict[str, dict[str, float]], title: str) -> Any:
    """The paper's row per IoU type (all, AP50 ... AP95) or, for dense models, every metric."""
    from rich.table import Table

    table = Table(title=title)
    instance = any(k in metrics for k in ("segm", "bbox", "boundary"))
    if instance:
        table.add_column("")
        for col in PAPER_COLUMNS:
            table.add_column("all" if col == "AP" else col, justify="right")
        for iou_type, label in (("segm", "mask"), ("bbox", "box"), ("boundary", "boundary")):
            if iou_type in metrics:
                table.add_row(label, *(_cell(metrics[iou_type].get(c, math.nan)) for c in PAPER_COLUMNS))
        return table
    table.add_column("metric")
    table.add_column("value", justify="right")
    for task, values in metrics.items():
        for key, value in values.items():
            table.add_row(f"{task}.{key}", _cell(value, 4))
    return table


def _undefined_note(metrics: dict[str, dict[str, float]]) -> str | None:
    """A line explaining the undefined cells of ``_paper_table``, if it shows any."""
    instance = any(k in metrics for k in ("segm", "bbox", "boundary"))
    shown = [v for values in metrics.values() for k, v in values.items() if not instance or k in PAPER_COLUMNS]
    if not any(math.isnan(v) for v in shown):
        return None
    return f"{UNDEFINED} = undefined: there was no ground truth to score against (a split without annotations)"


def _print(obj: Any) -> None:
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # pipes and logs: wide enough for the 12 columns of the paper's row
        console = Console(width=140)
    console.print(obj)


def _plugin_option() -> Any:
    return typer.Option(
        [],
        "--plugin",
        help="Import this Python file or module first (repeatable): user code that calls register_loss / "
        "register_model, so its names work like built-ins. Recorded with a hash of its source in the run config.",
    )


def _load_plugins(plugins: list[str]) -> tuple[str, ...]:
    from losslab.plugins import load_plugins

    try:
        return load_plugins(plugins)
    except ValueError as exc:
        _fail(str(exc))
        raise  # unreachable: _fail exits


def train(
    overrides: list[str] = typer.Argument(
        None, help="key=value settings: trainer keys (max_iter, lr, batch_size, ...) or model keys (mask_loss, ...)."
    ),
    config: Path = typer.Option(None, "--config", "-c", help="YAML file of settings (flat, or a run's config.yaml)."),
    out: Path = typer.Option(None, "--out", "-o", help="Run folder (default: runs/<model>-<time>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the progress bar."),
    plugin: list[str] = _plugin_option(),
) -> None:
    """Train one model and evaluate it: checkpoints, metrics.csv, eval.json and result.json in --out.

    Example: `losslab train model=yolact_tiny mask_loss="0.5*mse + bce" max_iter=200 --out runs/x`.
    Settings come from --config, then key=value; keys are TrainConfig's (see `losslab.engine.config`)
    and the preset's config keys. With --resume and no --config, the run's own config.yaml is reused.
    Under torchrun every process runs this command; rank 0 logs and writes.
    """
    from losslab.config import parse_kv
    from losslab.engine.config import resolve_run_config

    _show_run_notes()
    try:
        kv = parse_kv(overrides or [])
    except ValueError as exc:
        _fail(str(exc))
    if plugin:
        kv["plugins"] = list(_load_plugins(plugin))
    base: dict[str, Any] = _load_yaml(config) if config else {}
    if out is None:
        if resume:
            _fail("--resume needs --out RUN_DIR: the run to continue")
        model = kv.get("model") or base.get("model") or "yolact_tiny"
        out = Path("runs") / f"{model if isinstance(model, str) else 'run'}-{time.strftime('%Y%m%d-%H%M%S')}"
    last = out / "checkpoints" / "last.pt"
    if last.is_file() and not resume:
        _fail(f"{out} already holds a run ({last}); pass --resume to continue it or choose another --out")
    if resume and not config and (out / "config.yaml").is_file():
        base = _load_yaml(out / "config.yaml")
    try:
        run = resolve_run_config(base, kv)  # a bad setting is refused here, before torch loads
    except ValueError as exc:
        _fail(str(exc))
    from losslab.engine.run import run_experiment
    from losslab.engine.train import NonFiniteLossError

    try:
        result = run_experiment(run, out, progress=progress)
    except ValueError as exc:
        _fail(str(exc))
    except NonFiniteLossError as exc:  # the run diverged: it failed, and says why
        _fail(f"the run in {out} failed: {exc}", code=1)
    from losslab.engine.distributed import is_main_process

    if result is None or not is_main_process():  # the other processes of a torchrun launch stay quiet
        return
    _print(_paper_table(result["metrics"], f"{out} after {result['iterations']} iterations"))
    note = _undefined_note(result["metrics"])
    if note:
        typer.echo(note)
    typer.echo(
        f"fps {result['fps']:.1f} · train {result['train_seconds']:.0f} s · skipped steps "
        f"{result['skipped_steps']} · results in {out / 'result.json'}"
    )


def evaluate(
    checkpoint: Path = typer.Argument(..., help="A checkpoint written by `losslab train` (checkpoints/last.pt)."),
    data: str = typer.Option(
        "", "--data", "-d", help="Dataset folder (any layout), 'synthetic', or nothing for the run's own data."
    ),
    split: str = typer.Option("val", help="Which split of the dataset to evaluate."),
    out: Path = typer.Option(None, "--out", "-o", help="Where to write eval.json (default: next to CHECKPOINT)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    batch_size: int = typer.Option(8, help="Images per forward pass."),
    skip_bad: bool = typer.Option(
        False, "--skip-bad", help="Leave out the dataset entries that cannot be used (`losslab data check` lists them)."
    ),
    plugin: list[str] = _plugin_option(),
) -> None:
    """Evaluate a checkpoint: prints the paper's row (all, AP50 ... AP95) for masks and boxes.

    The model is rebuilt from the config stored in the checkpoint. Instance models get COCO mask,
    box and boundary AP; dense models IoU, Dice, Boundary IoU (and depth errors).
    """
    from losslab.engine.checkpoint import atomic_write_json
    from losslab.engine.distributed import resolve_device
    from losslab.engine.inference import evaluate_checkpoint

    _load_plugins(plugin)
    try:
        metrics = evaluate_checkpoint(checkpoint, data, split, resolve_device(device), batch_size, skip_bad)
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    out = out or checkpoint.parent / "eval.json"
    atomic_write_json(out, metrics)
    _print(_paper_table(metrics, f"{checkpoint} on {data or 'its own data'} ({split})"))
    note = _undefined_note(metrics)
    if note:
        typer.echo(note)
    typer.echo(f"written to {out}")


def predict(
    checkpoint: Path = typer.Argument(..., help="A checkpoint written by `losslab train`."),
    images: list[Path] = typer.Argument(..., help="Image files (PNG, JPEG, ...)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the overlay PNGs (<image stem>.png)."),
    score_threshold: float = typer.Option(0.3, help="Draw detections scoring at least this."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    plugin: list[str] = _plugin_option(),
) -> None:
    """Draw the model's predictions over images: masks, boxes, classes and scores, at full size."""
    from losslab.engine.distributed import resolve_device
    from losslab.engine.inference import predict_files

    _load_plugins(plugin)
    try:
        for written in predict_files(checkpoint, images, out, score_threshold, resolve_device(device)):
            typer.echo(str(written))
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))


def fps(
    checkpoint_or_preset: str = typer.Argument(..., help="A checkpoint file or a preset name (yolact_tiny, ...)."),
    overrides: list[str] = typer.Argument(
        None, help="key=value model-config overrides, e.g. num_classes=1 (a preset's default is COCO's 80)."
    ),
    size: int = typer.Option(None, "--size", help="Input size in pixels (default: the model's)."),
    images: int = typer.Option(100, "--images", help="How many images to time (after the warm-up)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    as_json: bool = typer.Option(False, "--json", help='Print {"fps", "ms_median", "size", "device", "threads"}.'),
    fast: bool = typer.Option(
        False,
        "--fast",
        help="YOLACT only: batch norms folded into the convs, channels-last, and fp16 autocast on CUDA / bf16 on "
        "CPUs with native bf16 (float32 on other CPUs, where emulated bf16 is slower; amp=bf16 forces it).",
    ),
    plugin: list[str] = _plugin_option(),
) -> None:
    """Inference speed as YOLACT measures it: batch 1, warm-up excluded, median over many images,
    forward + NMS + mask assembly included, data loading excluded."""
    from losslab.config import parse_kv
    from losslab.engine.distributed import resolve_device
    from losslab.engine.fps import measure_fps
    from losslab.engine.inference import model_from_checkpoint
    from losslab.models import create_model

    _load_plugins(plugin)

    def load(overrides: dict) -> Any:
        path = Path(checkpoint_or_preset)
        if path.is_file():
            return model_from_checkpoint(checkpoint_or_preset, dev, **overrides)[0]
        if path.suffix in (".pt", ".pth") or len(path.parts) > 1:
            raise ValueError(f"no checkpoint at {checkpoint_or_preset} (fps takes a checkpoint file or a preset name)")
        return create_model(checkpoint_or_preset, **overrides).to(dev).eval()

    try:
        dev = resolve_device(device)
        extra: dict[str, Any] = {**parse_kv(overrides or []), **({"input_size": size} if size else {})}
        model = load(extra)
        if fast:
            if not hasattr(model, "fuse_for_inference"):
                raise ValueError(f"--fast: {checkpoint_or_preset} has no fast inference path (YOLACT presets do)")
            model = load({"channels_last": True, "amp": True, **extra}).fuse_for_inference()
        result = measure_fps(model, int(size or model.config.input_size), dev, n=images)
        how = f", --fast in {_fast_precision(model.config.amp, dev)}" if fast else ""
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps({k: result[k] for k in ("fps", "ms_median", "size", "device", "threads")}))
    else:
        typer.echo(
            f"{checkpoint_or_preset}: {result['fps']:.1f} FPS (median {result['ms_median']:.2f} ms) at "
            f"{result['size']} px on {result['device']} with {result['threads']} thread(s){how}"
        )


def _fast_precision(amp: bool | str, device: Any) -> str:
    """What ``--fast`` computed in: ``"bf16"``, ``"fp16"`` or ``"fp32"`` (and why, for the fallback)."""
    from losslab.precision import autocast_dtype

    dtype = autocast_dtype(amp, device)
    if dtype is None:
        return "fp32 (no native bf16 on this CPU)" if amp is True else "fp32"
    return str(dtype).removeprefix("torch.").replace("bfloat16", "bf16").replace("float16", "fp16")


def register(app: typer.Typer) -> None:
    """Add `train`, `eval`, `predict` and `fps` to the root app."""
    app.command("train")(train)
    app.command("eval")(evaluate)
    app.command("predict")(predict)
    app.command("fps")(fps)
