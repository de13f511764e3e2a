"""Two studies' verdicts side by side (``losslab study compare A B``): does a verdict of one contradict
the other? Read from each folder's ``verdicts.csv`` (``losslab.report.tuning_report``).

A contradiction is a verdict that one study calls better and the other worse or equivalent (or worse
against equivalent): the same configuration and metric cannot be all of these. ``undecided`` contradicts
nothing: it is the absence of a finding. Rerunning a study under other numerics (``--set amp=false``,
another CPU) and finding no contradiction is the check that its verdicts are findings, not noise.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from losslab.report.stats import BETTER, EQUIVALENT, UNDECIDED, WORSE

__all__ = ["VerdictPair", "compare_verdicts", "contradicts", "read_verdicts"]


@dataclass(frozen=True)
class VerdictPair:
    """One configuration and metric in both studies (a verdict is ``""`` where a study has none)."""

    config: str
    metric: str
    first: str
    second: str
    delta_first: str = ""
    delta_second: str = ""

    @property
    def contradiction(self) -> bool:
        return contradicts(self.first, self.second)


def contradicts(a: str, b: str) -> bool:
    """Whether two verdicts cannot both hold: better against worse or equivalent, worse against equivalent."""
    decided = {BETTER, WORSE, EQUIVALENT}
    return a in decided and b in decided and a != b


def read_verdicts(path: str | Path) -> dict[tuple[str, str], dict[str, str]]:
    """``{(config, metric): row}`` of a study folder's (or a file's) ``verdicts.csv``.

    Raises:
        ValueError: no such file (with the command that writes it), or a file without the columns.
    """
    path = Path(path)
    file = path / "verdicts.csv" if path.is_dir() else path
    if not file.is_file():
        raise ValueError(f"{file} does not exist; `losslab study report {path}` writes it")
    with file.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    missing = {"config", "metric", "verdict"} - set(rows[0] if rows else {"config", "metric", "verdict"})
    if missing:
        raise ValueError(f"{file} has no column {sorted(missing)}: is it a losslab verdicts.csv?")
    for row in rows:
        if row["verdict"] not in (BETTER, WORSE, EQUIVALENT, UNDECIDED):
            raise ValueError(f"{file}: unknown verdict {row['verdict']!r} for {row['config']} / {row['metric']}")
    return {(r["config"], r["metric"]): r for r in rows}


def compare_verdicts(first: str | Path, second: str | Path, metric: str | None = None) -> list[VerdictPair]:
    """Every (configuration, metric) of either study, in the first study's order, with both verdicts.

    Args:
        first, second: study folders (or ``verdicts.csv`` files).
        metric: keep this metric only (e.g. ``segm.AP``); None keeps all.
    """
    a, b = read_verdicts(first), read_verdicts(second)
    keys = list(a) + [k for k in b if k not in a]
    out = []
    for key in keys:
        if metric is not None and key[1] != metric:
            continue
        ra, rb = a.get(key, {}), b.get(key, {})
        out.append(VerdictPair(key[0], key[1], ra.get("verdict", ""), rb.get("verdict", ""),
                               ra.get("delta", ""), rb.get("delta", "")))  # fmt: skip
    return out
