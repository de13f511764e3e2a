"""The layering the architecture promises, read from the source: the spec grammar is pure Python
below data/ and losses/, and data/ does not reach up into losses/."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "losslab"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_data_does_not_import_the_losses():
    for path in sorted((SRC / "data").rglob("*.py")):
        bad = {n for n in _imports(path) if n == "losslab.losses" or n.startswith("losslab.losses.")}
        assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}"


def test_the_grammar_is_pure_python():
    imported = _imports(SRC / "grammar.py")
    outside = {n for n in imported if n.split(".")[0] not in sys.stdlib_module_names and n != "__future__"}
    assert not outside, f"grammar.py imports {sorted(outside)}"


def test_the_report_reads_the_store_and_never_imports_the_runner():
    for path in sorted((SRC / "report").rglob("*.py")):
        bad = {n for n in _imports(path) if n in ("losslab.study.runner", "losslab.study.executors")}
        assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}"


def test_the_study_package_runs_and_stores_in_at_most_12_modules_and_imports_no_report_module_at_load():
    modules = sorted((SRC / "study").glob("*.py"))
    assert len(modules) <= 12, [p.name for p in modules]
    for path in modules:
        top_level = {
            n.module
            for n in ast.parse(path.read_text(encoding="utf-8")).body
            if isinstance(n, ast.ImportFrom) and n.module
        }
        assert not {n for n in top_level if n.startswith("losslab.report")}, path.name


def test_the_study_runner_and_the_run_config_seam_import_no_torch():
    from tests._torchless import run_without_torch

    code = "import losslab.study.runner, losslab.study.executors, losslab.engine.config, losslab.catalogue\n"
    code += "assert 'torch' not in sys.modules\n"
    proc = run_without_torch(code)
    assert proc.returncode == 0, proc.stderr
