"""Plugins: user code that registers losses or models (``register_loss``, ``register_model``),
imported before anything is resolved, as mmengine's ``custom_imports``.

A plugin is a Python file or an importable module. ``load_plugins`` imports each once per process
and returns its *entry* ``"PATH#HASH"``: the file (or the module's file) and a hash of its source
(every ``.py`` file of a package). Run configs carry the entries (the trainer key ``plugins``), so

- a run's id and ``config.yaml`` change when a plugin's source changes: a resumed study never mixes
  two versions of a loss;
- every process that trains a run (local workers, Ray tasks) imports the same plugins first, and
  refuses a plugin whose source changed since the run was planned.

A plugin that fails to import is refused with its file and line, before anything is trained.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import traceback
import warnings
from collections.abc import Iterable
from pathlib import Path

__all__ = ["PluginError", "load_plugins", "plugin_entry", "split_entry"]

_SEP = "#"
#: resolved file -> (hash, module) of the plugins imported in this process.
_LOADED: dict[str, tuple[str, str]] = {}


class PluginError(ValueError):
    """A plugin that cannot be used: missing, failing to import (with file and line), or changed."""


def _source_hash(path: Path) -> str:
    files = sorted(path.parent.rglob("*.py")) if path.name == "__init__.py" else [path]
    h = hashlib.blake2b(digest_size=8)
    for f in files:
        h.update(f.relative_to(path.parent).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def split_entry(entry: str) -> tuple[str, str | None]:
    """``"PATH#HASH"`` -> ``(PATH, HASH)``; a plain path or module name -> ``(it, None)``."""
    path, sep, digest = entry.rpartition(_SEP)
    return (path, digest) if sep and path else (entry, None)


def _where(exc: BaseException, path: Path) -> str:
    """``file:line`` of the deepest frame inside the plugin (the syntax error's own line)."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve() == path]
    frame = frames[-1] if frames else traceback.extract_tb(exc.__traceback__)[-1]
    return f"{frame.filename}:{frame.lineno}"


def _locate(spec: str) -> tuple[Path, str | None]:
    """The file of a plugin given as a path or a module name, and the module name (None for a file)."""
    candidate = Path(spec).expanduser()
    if candidate.suffix == ".py" or candidate.exists() or "/" in spec:
        if not candidate.is_file():
            raise PluginError(f"plugin {spec!r}: no such file (give a .py file or an importable module name)")
        return candidate.resolve(), None
    try:
        found = importlib.util.find_spec(spec)
    except (ImportError, ValueError) as exc:
        raise PluginError(f"plugin {spec!r}: no such module ({exc})") from None
    if found is None or not found.origin or not Path(found.origin).is_file():
        raise PluginError(f"plugin {spec!r}: no file and no importable module of that name")
    return Path(found.origin).resolve(), spec


def plugin_entry(spec: str) -> str:
    """The ``"PATH#HASH"`` entry of a plugin file or module, without importing it."""
    path, _ = _locate(split_entry(spec)[0])
    return f"{path}{_SEP}{_source_hash(path)}"


def _import(path: Path, module: str | None) -> str:
    name = module or f"losslab_plugin_{path.stem}_{hashlib.blake2b(str(path).encode(), digest_size=4).hexdigest()}"
    try:
        if module is not None:
            importlib.import_module(module)
        else:
            spec = importlib.util.spec_from_file_location(name, path)
            assert spec is not None and spec.loader is not None
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod
            try:
                spec.loader.exec_module(mod)
            except BaseException:
                sys.modules.pop(name, None)
                raise
    except Exception as exc:
        raise PluginError(
            f"plugin {path} failed to import at {_where(exc, path)}: {type(exc).__name__}: {exc}"
        ) from None
    return name


def _stand_in(digest: str) -> str | None:
    """A plugin imported in this process (``--plugin``) whose source has the hash ``digest``."""
    return next((path for path, (loaded, _) in _LOADED.items() if loaded == digest), None)


def load_plugins(specs: Iterable[str], strict: bool = True) -> tuple[str, ...]:
    """Import each plugin (a ``.py`` file, a module name, or a ``"PATH#HASH"`` entry) once per process.

    Args:
        specs: the plugins.
        strict: refuse an entry whose source changed since its hash was taken (training); with
            ``False`` load the current source and warn (evaluating a finished run's checkpoint), and
            take an entry whose file is gone from a plugin already imported with the same source
            (a run copied from another machine, its plugin given with ``--plugin``).

    Returns:
        Their ``"PATH#HASH"`` entries (the current hashes), in order, for the run config.

    Raises:
        PluginError: a missing plugin, one that fails to import (file and line), or (strict) an
            entry whose source has changed since its hash was taken.
    """
    entries = []
    for spec in specs:
        given, want = split_entry(str(spec))
        try:
            path, module = _locate(given)
        except PluginError as exc:
            stand_in = None if strict or want is None else _stand_in(want)
            if stand_in is None:
                hint = ""
                if want and not strict:
                    hint = " (a run from another machine? pass its plugin file, same name and source, with --plugin)"
                elif want:
                    hint = " (a run trains with the plugin it was planned with: put that file back at that path)"
                raise PluginError(f"{exc}{hint}") from None
            warnings.warn(f"plugin {given} is not there; using {stand_in}, which has its source", stacklevel=2)
            path, module = Path(stand_in), None
        digest = _source_hash(path)
        if want is not None and want != digest:
            message = (
                f"plugin {path} changed since this run was planned (source hash {digest}, the run recorded {want})"
            )
            if strict:
                raise PluginError(
                    f"{message}: a run trains with the plugin it was planned with; restore that source, or plan "
                    "the study again (its changed runs get new ids)"
                )
            warnings.warn(f"{message}; loading it as it is now", stacklevel=2)
        key = str(path)
        if _LOADED.get(key, ("", ""))[0] != digest:
            _LOADED[key] = (digest, _import(path, module))
        entries.append(f"{path}{_SEP}{digest}")
    return tuple(entries)
