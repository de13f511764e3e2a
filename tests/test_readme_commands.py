"""The cheap commands of README.md and docs/getting-started.md run and exit 0, so a renamed command,
flag or key in the docs fails here.

A fenced block is marked by an HTML comment on the line before its fence (GitHub does not show it):

- ``<!-- cheap -->``: a ```bash block runs in bash (``set -e``), a ```python block in this interpreter;
- ``<!-- file: NAME -->``: the block is written to ``NAME`` (a study YAML that a later block reads).

A document's marked blocks run in order in one temporary folder, with this interpreter's ``bin`` folder
(``.venv/bin`` under ``make test``) first on ``PATH``. Training and full studies stay unmarked.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DOCUMENTS = ("README.md", "docs/getting-started.md")
_FENCE = re.compile(r"^```(\w*)")
_MARK = re.compile(r"^<!--\s*(cheap|file:\s*(\S+))\s*-->\s*$")


@dataclass
class Block:
    """One marked fenced block: where it starts, its language, its text, and the file it goes to."""

    line: int
    lang: str
    text: str
    file: str | None = None


def marked_blocks(path: Path) -> list[Block]:
    """The blocks of ``path`` marked ``cheap`` or ``file: NAME``, in document order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        assert end is not None, f"{path.name}:{i + 1}: a fence that is never closed"
        mark = _MARK.match(lines[i - 1]) if i else None
        if mark:
            text = "\n".join(lines[i + 1 : end]) + "\n"
            blocks.append(Block(i + 1, fence.group(1), text, mark.group(2)))
        i = end + 1
    return blocks


def _run(block: Block, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    if block.lang in ("bash", "sh", "shell"):
        cmd = ["bash", "-e", "-o", "pipefail", "-c", block.text]
    elif block.lang == "python":
        cmd = [sys.executable, "-c", block.text]
    else:
        raise AssertionError(f"line {block.line}: a cheap block must be bash or python, not {block.lang!r}")
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("document", DOCUMENTS)
def test_cheap_commands_run(document, tmp_path):
    blocks = marked_blocks(ROOT / document)
    assert any(b.file is None for b in blocks), f"{document} marks no block <!-- cheap -->"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("PYTHONPATH", None)
    for block in blocks:
        if block.file is not None:
            (tmp_path / block.file).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / block.file).write_text(block.text, encoding="utf-8")
            continue
        done = _run(block, tmp_path, env)
        assert done.returncode == 0, (
            f"{document}:{block.line}: the block exited {done.returncode}\n{block.text}\n"
            f"--- stdout (end)\n{done.stdout[-3000:]}\n--- stderr (end)\n{done.stderr[-3000:]}"
        )


def test_marked_blocks_are_found(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text(
        "text\n<!-- cheap -->\n```bash\nlosslab --help\n```\n```bash\nmake study\n```\n"
        "<!-- file: my.yaml -->\n```yaml\nname: x\n```\n<!-- cheap -->\n```python\nprint(1)\n```\n"
    )
    blocks = marked_blocks(doc)
    found = [(b.line, b.lang, b.file) for b in blocks]
    assert found == [(3, "bash", None), (10, "yaml", "my.yaml"), (14, "python", None)]
    assert blocks[0].text == "losslab --help\n"
