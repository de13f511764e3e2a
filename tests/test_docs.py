"""docs/architecture.md names every module of the package, so the layout it shows stays the real one."""

from __future__ import annotations

from pathlib import Path

import losslab

ROOT = Path(losslab.__file__).parent
DOC = Path(__file__).parents[1] / "docs" / "architecture.md"


def test_architecture_names_every_module():
    text = DOC.read_text()
    modules = sorted(p.relative_to(ROOT) for p in ROOT.rglob("*.py") if p.name != "__init__.py")
    missing = [str(m) for m in modules if m.name not in text]
    assert modules and not missing, f"docs/architecture.md does not name {missing}"
    packages = {m.parts[0] for m in modules if len(m.parts) > 1}
    assert all(f"{p}/" in text for p in packages)
