"""The docs stay true to the code: docs/architecture.md names every module of the package, docs/losses.md
is what `losslab losses doc` writes from the registry, and every relative link in the docs resolves."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

import losslab
from losslab.cli import app
from losslab.cli.losses import catalogue_markdown

ROOT = Path(losslab.__file__).parent
REPO = Path(__file__).parents[1]
DOC = REPO / "docs" / "architecture.md"
REGENERATE = "`make catalogue` (or `losslab losses doc --out docs/losses.md`)"


def test_architecture_names_every_module():
    text = DOC.read_text()
    modules = sorted(p.relative_to(ROOT) for p in ROOT.rglob("*.py") if p.name != "__init__.py")
    missing = [str(m) for m in modules if m.name not in text]
    assert modules and not missing, f"docs/architecture.md does not name {missing}"
    packages = {m.parts[0] for m in modules if len(m.parts) > 1}
    assert all(f"{p}/" in text for p in packages)


def test_losses_page_is_what_the_command_writes():
    page = (REPO / "docs" / "losses.md").read_text(encoding="utf-8")
    assert page == catalogue_markdown(), f"docs/losses.md is out of date with the loss registry: run {REGENERATE}"


def test_losses_doc_command_writes_the_page(tmp_path):
    out = tmp_path / "losses.md"
    result = CliRunner().invoke(app, ["losses", "doc", "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert text == catalogue_markdown()
    assert "| `bce` |" in text and "ramp(start, end" in text and "uncropped(TERM)" in text


def test_relative_links_resolve():
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            path = target.split("#", 1)[0]
            if path and not re.match(r"[a-z]+:", path) and not (page.parent / path).exists():
                broken.append(f"{page.relative_to(REPO)} -> {target}")
    assert not broken, f"links to files that do not exist: {broken}"
