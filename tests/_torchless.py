"""Run Python code in a fresh interpreter where ``import torch`` fails, to prove a path never loads it."""

from __future__ import annotations

import subprocess
import sys

#: Prepended to the code: any import of torch (or a submodule) raises ImportError.
BLOCK_TORCH = """
import sys

class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"{name} is blocked: this path must not load torch")

sys.meta_path.insert(0, _NoTorch())
"""


def run_without_torch(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -c BLOCK_TORCH + code args...``; returns the finished process (text output)."""
    return subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH + code, *args], capture_output=True, text=True, timeout=timeout
    )
