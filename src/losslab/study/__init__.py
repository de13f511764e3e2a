"""Studies: a grid of training runs over losses (and any other key), a resumable runner and the SQLite
results store; ``losslab.report`` reads the store and writes the report.

>>> study = load_study("quick")                 # or a YAML file
>>> run_study(study, "studies/quick")           # resumable; results in studies/quick/study.db
>>> write_report("studies/quick")  # report.md, report.html, table.tex, results.csv, verdicts.csv, plots/

Names are imported on first use, so that worker processes that only execute runs stay light.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "RunSpec",
    "StudySpec",
    "StudyStore",
    "load_study",
    "parse_study",
    "run_study",
    "validate_keys",
    "write_report",
]

_WHERE = {
    "RunSpec": "spec",
    "StudySpec": "spec",
    "load_study": "spec",
    "parse_study": "spec",
    "validate_keys": "spec",
    "StudyStore": "store",
    "run_study": "runner",
    "write_report": "losslab.report.write",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'losslab.study' has no attribute {name!r}")
    module = _WHERE[name] if "." in _WHERE[name] else f"losslab.study.{_WHERE[name]}"
    return getattr(importlib.import_module(module), name)
