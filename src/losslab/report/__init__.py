"""Reports of a study: they read its store (``losslab.study.store``) and write tables, statistics,
verdicts, plots, the HTML page, the noise section, the summary and TensorBoard files. Nothing here
imports the runner: the store is the seam.

>>> write_report("studies/quick")  # report.md, report.html, table.tex, results.csv, verdicts.csv, plots/
"""

from __future__ import annotations

from losslab.report.write import print_tables, write_report

__all__ = ["print_tables", "write_report"]
