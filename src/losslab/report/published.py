"""Published results a study can be read against, shipped as data (``report/published/NAME.json``),
and what those numbers say on their own.

``yolact_loss_survey``: the README table and Tables I-III of "Using Different Loss Functions with
YOLACT++ for Real-Time Instance Segmentation" (Koles, Karakas, Ndigande, Ozer), each row with the loss
its code trained (``as_run``, in losslab's grammar) and the loss its text names (``meant``). A number
printed in several tables is one run (the same value to every digit): ``runs()`` keeps it once.

Several rows trained the same loss: the survey's "MSE" trained BCE, its Huber δ = 1, 2, 3 are one
loss on probabilities, and HL + BCE at α is MSE + BCE at α/2 as its code ran. Their spread is the
survey's own run-to-run noise, against which ``own_numbers()`` sets its claimed improvement.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

__all__ = [
    "OwnNumbers",
    "OwnNumbersText",
    "load_published",
    "own_numbers",
    "own_numbers_text",
    "published_names",
    "runs",
]


def published_names() -> list[str]:
    """The names of the shipped result tables."""
    folder = resources.files("losslab.report") / "published"
    return sorted(p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json"))


@cache
def load_published(name: str) -> dict[str, Any]:
    """The shipped tables of ``name``.

    Raises:
        ValueError: an unknown name, with the known ones.
    """
    if name not in published_names():
        raise ValueError(f"no published results named {name!r}; shipped: {', '.join(published_names())}")
    text = (resources.files("losslab.report") / "published" / f"{name}.json").read_text(encoding="utf-8")
    return json.loads(text)


def runs(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Every distinct mask (segmentation) run: ``{"table", "row", "as_run", "batch", "AP"}``, a number
    printed in several tables once (same loss, batch and AP), in table order."""
    seen: set[tuple[str, int, float]] = set()
    out = []
    for table, body in data["tables"].items():
        for row in body["rows"]:
            if row.get("task", "segmentation") != "segmentation":
                continue
            batch = int(row.get("batch", body.get("batch", 0)))
            key = (row["as_run"], batch, float(row["AP"]))
            if key in seen:
                continue
            seen.add(key)
            out.append({"table": table, "row": row["row"], "as_run": row["as_run"], "batch": batch, "AP": row["AP"]})
    return out


class OwnNumbers:
    """What the published runs say on their own.

    Attributes:
        groups: loss (as run) and batch -> the runs that trained it, for those trained more than once.
        sd: the pooled run-to-run standard deviation within those groups (mask AP points).
        df: its degrees of freedom.
        spread: the largest difference between two runs of one configuration.
        best: the best run; ``baseline`` the run it was claimed against.
    """

    def __init__(self, data: dict[str, Any], claimed: str, baseline: str):
        self.runs = runs(data)
        groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for run in self.runs:
            groups.setdefault((run["as_run"], run["batch"]), []).append(run)
        self.groups = {k: v for k, v in groups.items() if len(v) > 1}
        ss = sum(sum((r["AP"] - _mean(g)) ** 2 for r in g) for g in self.groups.values())
        self.df = sum(len(g) - 1 for g in self.groups.values())
        self.sd = math.sqrt(ss / self.df) if self.df else math.nan
        self.spread = max(
            (max(r["AP"] for r in g) - min(r["AP"] for r in g) for g in self.groups.values()), default=0.0
        )
        self.best = max(self.runs, key=lambda r: r["AP"])
        self.claimed = _find(self.runs, claimed)
        self.baseline = _find(self.runs, baseline)

    def runs_needed(self, difference: float, z_alpha: float = 1.959964, z_power: float = 0.841621) -> int:
        """Runs per loss for a two-sided test at 5 % to detect ``difference`` with 80 % power, at this
        run-to-run SD (normal approximation): ``2·(z_α + z_β)²·sd² / δ²``."""
        return math.ceil(2 * (z_alpha + z_power) ** 2 * self.sd**2 / difference**2)


def _mean(group: list[dict[str, Any]]) -> float:
    return sum(r["AP"] for r in group) / len(group)


def _find(rows: list[dict[str, Any]], label: str) -> dict[str, Any]:
    for r in rows:
        if f"{r['table']}: {r['row']}" == label:
            return r
    raise ValueError(f"no published run {label!r}")


def own_numbers(name: str) -> OwnNumbers:
    """``OwnNumbers`` of the shipped tables ``name`` with the claim its text makes."""
    data = load_published(name)
    claim = data.get("claim", {})
    return OwnNumbers(data, claim["claimed"], claim["baseline"])


def _fmt_run(r: dict[str, Any]) -> str:
    return f"{r['AP']:.2f} ({r['table']}: {r['row']})"


@dataclass
class OwnNumbersText:
    """The "what the published numbers say" section: an intro, a table of the runs that trained the
    same loss (``header``, ``rows``), and the conclusions (``bullets``)."""

    intro: str
    header: list[str]
    rows: list[list[str]]
    bullets: list[str]

    def markdown(self) -> str:
        """The section as Markdown (a paragraph, a table and a list)."""
        table = ["| " + " | ".join(self.header) + " |", "|---|---:|---|---:|"]
        table += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join([self.intro, "", *table, "", *(f"- {b}" for b in self.bullets)]) + "\n"


def own_numbers_text(name: str) -> OwnNumbersText:
    """The published runs of ``name`` that trained the same loss, their pooled run-to-run spread,
    and the claimed improvement set against it."""
    data = load_published(name)
    own = own_numbers(name)
    gain = own.claimed["AP"] - own.baseline["AP"]
    rows = []
    for (loss, batch), group in own.groups.items():
        spread = max(r["AP"] for r in group) - min(r["AP"] for r in group)
        rows.append([f"`{loss}`", str(batch), "; ".join(_fmt_run(r) for r in group), f"{spread:.2f}"])
    d_sd = own.sd * math.sqrt(2)
    best = f"Its best number is {_fmt_run(own.best)}"
    if own.best is not own.claimed and own.best["AP"] > own.claimed["AP"]:
        best += f", above the claimed winner: `{own.best['as_run']}` at batch {own.best['batch']}."
    bullets = [
        f"Identical configurations differed by up to **{own.spread:.2f}** points between single runs; the "
        f"pooled run-to-run SD is **{own.sd:.2f}** ({own.df} df), so two single runs of one configuration "
        f"differ with an SD of {d_sd:.2f} points.",
        f"The claimed improvement, {_fmt_run(own.claimed)} against {_fmt_run(own.baseline)}, is "
        f"**{gain:+.2f}**, {abs(gain) / d_sd:.2f} SDs of that difference. Telling {abs(gain):.2f} points "
        f"apart at this noise (5 % two-sided, power 0.8) takes about **{own.runs_needed(abs(gain))} runs per "
        "loss**; the survey ran one.",
        best,
    ]
    intro = (
        f"Published in *{data['title']}* ({data['authors']}; code: {data['code']}; data: {data['dataset']}), "
        f"{data['metric']}. Rows that trained the same loss, by the loss its code ran (in losslab's grammar):"
    )
    return OwnNumbersText(intro, ["loss as run", "batch", "runs (mask AP)", "spread"], rows, bullets)
