"""A torch-free snapshot of the loss and model registries, so that a bad loss spec is refused
before torch loads (``losslab train mask_loss=bogus`` answers in the time Python takes to start,
instead of the seconds ``import torch`` takes).

``catalogue.json`` beside this module holds, for every built-in loss, what the spec check
(``losses.check.check_spec``) reads, and for every model preset, its loss fields (``loss_field``:
contract). It also holds a digest of the registries' sources: when the sources differ from the
snapshot (a developer added a loss and has not run ``make catalogue``), ``precheck_losses`` does
nothing and the full check under the model's config resolution (``ModelInfo.config``) decides
alone. That check, against the live registry, is the same function with the same messages.

Regenerate with ``make catalogue`` (``python -m losslab.catalogue --write``); a test fails when the
file differs from the registries.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from losslab.losses.check import LossEntry, check_spec

__all__ = ["CATALOGUE", "check_with_snapshot", "precheck_losses", "read_catalogue", "snapshot", "source_digest"]

CATALOGUE = Path(__file__).with_name("catalogue.json")
_PACKAGE = Path(__file__).parent
#: The packages whose sources define the registries' contents.
_SOURCES = ("losses", "models")


def source_digest() -> str:
    """SHA-256 over the Python sources of ``losslab.losses`` and ``losslab.models`` (paths and bytes)."""
    digest = hashlib.sha256()
    for folder in _SOURCES:
        for path in sorted((_PACKAGE / folder).rglob("*.py")):
            digest.update(path.relative_to(_PACKAGE).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def snapshot() -> dict[str, Any]:
    """The registries as the snapshot stores them (imports every loss and model: torch loads)."""
    from losslab.losses.fields import loss_fields
    from losslab.losses.registry import loss_entries
    from losslab.models.registry import get_model_info, list_models

    losses = {
        n: {"contracts": list(e.contracts), "params": e.params, "per_pixel": e.per_pixel}
        for n, e in loss_entries().items()
    }
    models = {n: {f: m["contract"] for f, m in loss_fields(get_model_info(n).defaults).items()} for n in list_models()}
    return {"source": source_digest(), "losses": losses, "models": models}


@functools.cache
def read_catalogue() -> dict[str, Any] | None:
    """The shipped snapshot, or ``None`` when it is missing or older than the sources."""
    try:
        data = json.loads(CATALOGUE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if data.get("source") == source_digest() else None


def check_with_snapshot(model: str, settings: Mapping[str, Any]) -> None:
    """Check the loss specs among a run's ``settings`` against the snapshot, without torch.

    Only keys that are loss fields of the built-in preset ``model`` are checked; anything the
    snapshot does not know (a plugin's model, a stale snapshot) is left to the full check.

    Raises:
        ValueError: ``mask_loss='bogus': unknown loss 'bogus'. ...`` with the position and the
            closest names, as the full check words it.
    """
    data = read_catalogue()
    if data is None or not isinstance(model, str) or model not in data["models"]:
        return
    entries = {
        n: LossEntry(n, tuple(e["contracts"]), dict(e["params"]), bool(e["per_pixel"]))
        for n, e in data["losses"].items()
    }
    for key, contract in data["models"][model].items():
        spec = settings.get(key)
        if not isinstance(spec, str):
            continue  # absent (the preset's default), or a type the config's own check refuses
        try:
            check_spec(spec, contract, entries)
        except ValueError as exc:
            raise ValueError(f"{key}={spec!r}: {exc}") from None


def precheck_losses(model: str, settings: Mapping[str, Any]) -> None:
    """``check_with_snapshot`` in a process that has not loaded the live registries yet.

    Once the loss registry is imported (a plugin, a script's own ``register_loss``, an earlier
    run) or a model is registered, the registries may hold what the snapshot lacks, and torch is
    loaded anyway: the full check under the model's config decides alone.
    """
    from losslab.models import registry

    if "losslab.losses.registry" in sys.modules or registry.registered():
        return
    check_with_snapshot(model, settings)


def main(argv: list[str] | None = None) -> int:
    """``python -m losslab.catalogue --write`` rewrites the snapshot; ``--check`` says whether it is current."""
    parser = argparse.ArgumentParser(prog="python -m losslab.catalogue", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite {CATALOGUE.name} from the registries")
    args = parser.parse_args(argv)
    text = json.dumps(snapshot(), indent=1, sort_keys=True) + "\n"
    if args.write:
        CATALOGUE.write_text(text, encoding="utf-8")
        print(f"wrote {CATALOGUE}")
        return 0
    current = CATALOGUE.is_file() and CATALOGUE.read_text(encoding="utf-8") == text
    print(f"{CATALOGUE} is {'current' if current else 'stale: run make catalogue'}")
    return 0 if current else 1


if __name__ == "__main__":
    sys.exit(main())
