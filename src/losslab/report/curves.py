"""What the report's figures draw, read from the store and the run folders: loss curves averaged over
seeds, validation AP over iterations, precision-recall curves and sample predictions per configuration.

Run results may carry PR curves as ``result["pr"] = {"segm": {"recall": [...], "precision": [...]}}``
(``precision`` may also map IoU thresholds such as ``"0.5"`` to lists); sample predictions are the
run folder's ``samples/*.png`` (the same validation images in every run); intermediate evaluations
are its ``eval_history.jsonl`` (one ``{"iteration", "metrics"}`` line each, with ``eval_every > 0``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from losslab.report.tables import StudyResults
from losslab.study.flags import TOTAL_TERMS

__all__ = ["EVAL_METRICS", "TOTAL_TERMS", "eval_curves", "loss_panels", "mean_curve", "pr_curves", "sample_images"]

#: The validation metric drawn over iterations: (group, name, label), the first the runs have.
EVAL_METRICS = (("segm", "AP", "mask AP"), ("mask", "IoU", "mask IoU"))


def mean_curve(curves: Sequence[Sequence[tuple[int, float | None]]]) -> list[tuple[float, float]]:
    """The mean over runs at each step that every run logged (seeds log at the same steps)."""
    maps = [{s: v for s, v in c if v is not None} for c in curves if c]
    if not maps:
        return []
    steps = sorted(set.intersection(*(set(m) for m in maps)))
    return [(float(s), float(np.mean([m[s] for m in maps]))) for s in steps]


def _mask_term(terms: Sequence[str]) -> str | None:
    candidates = [t for t in terms if "mask" in t.lower() and "loss" in t.lower()]
    candidates += [t for t in terms if "mask" in t.lower() and t not in candidates]
    return candidates[0] if candidates else None


def loss_panels(results: StudyResults) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """``{"total loss": {config: curve}, "<mask term>": {config: curve}}`` averaged over seeds."""
    panels: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for cfg in results.configs:
        if cfg.alias_of:
            continue
        logs = [results.store.losses(cfg.run_ids[s]) for s in sorted(cfg.metrics)]
        logs = [lg for lg in logs if lg]
        if not logs:
            continue
        terms = list(logs[0])
        total = next((t for t in TOTAL_TERMS if t in terms), None)
        if total:
            panels.setdefault("total loss", {})[cfg.label] = mean_curve([lg.get(total, []) for lg in logs])
        mask = _mask_term(terms)
        if mask:
            panels.setdefault(f"mask loss ({mask})", {})[cfg.label] = mean_curve([lg.get(mask, []) for lg in logs])
    return panels


def _history(run_dir: Path) -> list[tuple[int, dict[str, Any]]]:
    path = run_dir / "eval_history.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
            out.append((int(entry["iteration"]), dict(entry["metrics"])))
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by a kill: the others still count
    return out


def eval_curves(
    results: StudyResults, run_dir: Callable[[str], Path]
) -> tuple[str, dict[str, list[tuple[float, float]]]]:
    """``(metric label, {config: [(iteration, value)]})``: the runs' intermediate evaluations and their
    final one, mean over seeds; empty where no run evaluated before its end."""
    for group, name, label in EVAL_METRICS:
        out = {}
        for cfg in results.configs:
            if cfg.alias_of or not cfg.metrics:
                continue
            curves = []
            for seed, metrics in sorted(cfg.metrics.items()):
                points = [(it, m.get(group, {}).get(name)) for it, m in _history(run_dir(cfg.run_ids[seed]))]
                points = [(it, v) for it, v in points if isinstance(v, (int, float))]
                final, last = metrics.get(f"{group}.{name}"), metrics.get("iterations")
                if points and final is not None and last:
                    points.append((int(last), final))
                curves.append(points)
            curve = mean_curve(curves)
            if len(curve) >= 2:
                out[cfg.label] = curve
        if out:
            return label, out
    return "", {}


def _pr_of(result: dict[str, Any]) -> dict[str, list[float]] | None:
    pr = result.get("pr")
    if not isinstance(pr, dict):
        return None
    block = pr.get("segm", pr.get("mask", pr))
    if not isinstance(block, dict) or "recall" not in block:
        return None
    # The engine's evaluator stores {"recall", "iou50", "iou75", "mean"}; other runners may store
    # {"recall", "precision": [...] or {iou: [...]}}.
    precision = block.get("precision", block.get("iou50"))
    if isinstance(precision, dict):
        key = next((k for k in ("0.5", "50", "0.50", 0.5) if k in precision), next(iter(precision), None))
        precision = precision.get(key) if key is not None else None
    if not isinstance(precision, list):
        return None
    return {"recall": list(block["recall"]), "precision": precision}


def pr_curves(results: StudyResults) -> dict[str, dict[str, list[float]]]:
    """Each configuration's mask PR curve (of its first done seed), where its runs stored one."""
    out = {}
    for cfg in results.configs:
        if cfg.alias_of or not cfg.metrics:
            continue
        result = results.store.result(cfg.run_ids[min(cfg.metrics)]) or {}
        curve = _pr_of(result)
        if curve:
            out[cfg.label] = curve
    return out


def sample_images(results: StudyResults, run_dir: Callable[[str], Path], max_images: int = 4) -> dict[str, list[Path]]:
    """Per configuration, its first done run's sample PNGs of the validation images every
    configuration has (the same images across the grid)."""
    found: dict[str, dict[str, Path]] = {}
    for cfg in results.configs:
        if cfg.alias_of or not cfg.metrics:
            continue
        folder = run_dir(cfg.run_ids[min(cfg.metrics)]) / "samples"
        pngs = {p.name: p for p in sorted(folder.glob("*.png"))} if folder.is_dir() else {}
        if pngs:
            found[cfg.label] = pngs
    if not found:
        return {}
    common = sorted(set.intersection(*(set(v) for v in found.values())), key=_natural)[:max_images]
    return {label: [pngs[n] for n in common] for label, pngs in found.items()} if common else {}


def _natural(name: str) -> tuple[int, str]:
    stem = Path(name).stem
    return (int(stem), name) if stem.isdigit() else (1 << 62, name)
