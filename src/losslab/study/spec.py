"""Study specs: a YAML grid over losses (and any other key) expanded into one flat config per run.

A spec (YAML or the same dict in Python)::

    name: my-study
    description: Dice against BCE on the synthetic data.
    dataset: {synthetic: {train: 48, val: 12, size: 128, seed: 0}}   # or {path: data/cig_butts}
    model: yolact_tiny
    config: {max_iter: 300, batch_size: 4}          # trainer keys and model keys, for every run
    grid:                                           # the cartesian product of the axes
      mask_loss: {BCE: bce, Dice Loss: dice}        # label -> value, or a plain list of values
      batch_size: [2, 8]
      variants:                                     # label -> several keys that vary together
        RMSE + BCE: {depth_loss: 2*rmse, mask_loss: bce}
    seeds: 3                                        # or an explicit list [0, 1, 2]
    baseline: BCE                                   # a value label of one axis (BCE by default)
    tune: {grid: {lr: [5.0e-4, 1.0e-3, 2.0e-3]}, seeds: 1}   # optional: a tuning stage (study.tuning)
    margin: 2.0                                     # verdicts' equivalence margin (study.verdicts)
    published: yolact_loss_survey                   # optional: shipped results the report reads it against
    plugins: [my_losses.py]                         # optional: user code registering losses / models

Every run is the flat dict ``{"model": ..., "data": ..., **config, **axis values, "seed": s}`` (the
trainer's keys plus the model's; a synthetic dataset becomes ``data: synthetic`` and ``synth_train``,
``synth_val``, ``synth_size``, ``synth_seed``); its ``run_id`` is a stable hash of that dict (canonical
JSON), so the same run has the same id in every study folder. A study with a ``tune`` section
(``losslab.study.tuning``) has *tune* runs (``tune_runs()``: every configuration at every grid point,
on the tuning split, with the tuning seeds) and *verdict* runs (``runs(chosen)``: every configuration at
its chosen values, over ``seeds``). Loss specs (keys ending in ``_loss``)
are checked with ``create_loss`` when the spec is loaded, so a typo fails before hours of training;
every other value is checked by ``validate_keys`` (the trainer's and the model's own checks, with
the key and the value) before anything is written.

**Threads.** A run's numbers depend on its torch thread count (the order of float sums), so the
count is part of the run config: the trainer key ``threads``. A spec that does not set it gets
``threads: 1`` (``DEFAULT_THREADS``) in its ``config`` when it is loaded, so every run id and
``config.yaml`` records it, and running, resuming or re-running the study with another
``--workers`` can never change a run. ``--workers N`` runs N runs at once, each with its own
``threads``: keep N x threads within the machine's cores. (With one thread per run, parallel
runs are also the faster use of the cores for small models.)

**Size.** A study makes at most ``MAX_RUNS`` (10,000) runs; a larger grid is refused when it is
loaded, with the number of runs it would make, before anything is written.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from losslab.config import read_yaml, suggest
from losslab.engine.config import SYNTH_KEYS, resolve_run_config
from losslab.study.tuning import TUNE_RUN_CONFIG, TuneSpec, parse_tune

__all__ = [
    "RunSpec",
    "StudySpec",
    "canonical_json",
    "config_hash",
    "dataset_keys",
    "load_study",
    "parse_study",
    "validate_keys",
]

#: Top-level keys of a study spec.
STUDY_KEYS = (
    "name", "description", "dataset", "model", "config", "grid", "seeds", "baseline", "tune", "margin", "notes",
    "published", "plugins",
)  # fmt: skip
#: Keys of ``dataset``.
DATASET_KEYS = ("synthetic", "path")
#: Which loss contract a ``*_loss`` key is checked against (others default to ``mask``).
#: The grid axis whose values are mappings of several keys that vary together.
VARIANTS = "variants"
#: The torch threads of each run of a spec that does not set ``threads`` (see the module doc).
DEFAULT_THREADS = 1
#: The most runs a study may make (configurations x seeds).
MAX_RUNS = 10_000
#: The verdicts' equivalence margin when a spec sets none (metric points; ``losslab.report.verdicts``).
DEFAULT_MARGIN = 2.0

_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _normalize(value: Any) -> Any:
    """Make equal values hash equally: YAML's ``1e-4`` string becomes a float, ``8.0`` becomes ``8``."""
    if isinstance(value, Mapping):
        return {str(k): _normalize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalize(v) for v in value]
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        value = float(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and not isinstance(value, bool):
        return int(value)
    return value


def canonical_json(obj: Any) -> str:
    """Sorted keys, no spaces, numbers normalised: the same content gives the same text."""
    return json.dumps(_normalize(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def config_hash(config: Mapping[str, Any]) -> str:
    """The 12-hex-digit run id of a resolved config."""
    return hashlib.sha256(canonical_json(dict(config)).encode()).hexdigest()[:12]


def dataset_keys(dataset: Mapping[str, Any]) -> dict[str, Any]:
    """The trainer keys of a study's dataset: ``data`` and the synthetic generator's ``synth_*``."""
    if "path" in dataset:
        return {"data": str(dataset["path"])}
    args = dict(dataset.get("synthetic") or {})
    return {"data": "synthetic", **{SYNTH_KEYS[k]: v for k, v in args.items()}}


@dataclass(frozen=True)
class RunSpec:
    """One training run of a study.

    Attributes:
        run_id: stable hash of ``config`` and the dataset.
        label: the configuration's label (``"Huber Loss + BCE"``, ``"BCE / batch_size=8"``).
        seed: the training seed (also in ``config``).
        config: the flat, resolved config: trainer keys plus model keys, without the data path.
        axes: axis name -> value label, for pairing a configuration with its baseline.
        stage: ``"verdict"`` (its numbers enter the verdict tables) or ``"tune"`` (a tuning run).
        tuned: the tuned keys' values this run trains with (empty in a study without tuning).
    """

    run_id: str
    label: str
    seed: int
    config: dict[str, Any]
    axes: dict[str, str]
    stage: str = "verdict"
    tuned: dict[str, Any] = field(default_factory=dict)


@dataclass
class StudySpec:
    """A parsed, validated study. ``runs()`` expands it; ``to_dict()`` gives back the YAML form."""

    name: str
    description: str
    dataset: dict[str, Any]
    model: str | None
    config: dict[str, Any]
    grid: dict[str, dict[str, Any]]
    seeds: list[int]
    baseline: str
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    tune: TuneSpec | None = None
    margin: float = DEFAULT_MARGIN
    published: str | None = None
    plugins: list[str] = field(default_factory=list)

    def configurations(self) -> list[tuple[str, dict[str, str], dict[str, Any]]]:
        """Every grid point as ``(label, axes, overrides)``, in grid order."""
        axes = list(self.grid)
        out = []
        for combo in itertools.product(*(list(self.grid[a].items()) for a in axes)):
            overrides: dict[str, Any] = {}
            names: dict[str, str] = {}
            for axis, (label, value) in zip(axes, combo, strict=True):
                names[axis] = label
                overrides.update(value if axis == VARIANTS else {axis: value})
            shown = [names[a] for a in axes if len(self.grid[a]) > 1] or [names[a] for a in axes[:1]]
            out.append((" / ".join(shown) or self.name, names, overrides))
        return out

    def _plugins(self) -> dict[str, Any]:
        """``{"plugins": ["PATH#HASH", ...]}`` for every run config (empty without plugins): a plugin's
        source hash is part of every run id."""
        if not self.plugins:
            return {}
        from losslab.plugins import plugin_entry

        return {"plugins": [plugin_entry(p) for p in self.plugins]}

    def _run(self, label: str, axes: dict[str, str], cfg: dict[str, Any], stage: str, tuned: dict) -> RunSpec:
        cfg = _normalize({k: v for k, v in cfg.items() if v is not None or k != "model"})
        return RunSpec(config_hash(cfg), label, int(cfg["seed"]), cfg, axes, stage, dict(tuned))

    def runs(self, chosen: Mapping[str, Mapping[str, Any]] | None = None) -> list[RunSpec]:
        """The verdict runs, seed by seed (every configuration's first seed comes first).

        Args:
            chosen: a tuned study's chosen values per configuration label (``tuning.choose``); a
                configuration without a choice yet has no verdict runs. Ignored without tuning.
        """
        out = []
        for seed in self.seeds:
            for label, axes, overrides in self.configurations():
                tuned: dict[str, Any] = {}
                if self.tune is not None:
                    if chosen is None or chosen.get(label) is None:
                        continue
                    tuned = dict(chosen[label])
                cfg = {"model": self.model, **dataset_keys(self.dataset), **self._plugins(), **self.config}
                cfg.update({**overrides, **tuned})
                out.append(self._run(label, axes, {**cfg, "seed": seed}, "verdict", tuned))
        return out

    def tune_runs(self) -> list[RunSpec]:
        """The tuning runs (none without a ``tune`` section): seed by seed, configuration by
        configuration, grid point by grid point, on the tuning split."""
        if self.tune is None:
            return []
        out = []
        data = dataset_keys(self.tune.dataset)
        for seed in self.tune.seeds:
            for label, axes, overrides in self.configurations():
                for point in self.tune.points():
                    cfg = {"model": self.model, **data, **self._plugins(), **self.config, **overrides, **point}
                    cfg.update(TUNE_RUN_CONFIG)
                    out.append(self._run(label, axes, {**cfg, "seed": seed}, "tune", point))
        return out

    def first_choices(self) -> dict[str, dict[str, Any]] | None:
        """Every configuration at its first tuning grid point: stand-in choices for checking or showing
        verdict runs before tuning has chosen (``None`` without tuning)."""
        return {label: self.tune.points()[0] for label in self.labels()} if self.tune is not None else None

    def aliases(self) -> dict[str, str]:
        """Configurations whose runs are identical to an earlier one's: label -> earlier label.

        The survey's "MSE" row, for one, trained plain BCE; its runs are the BCE runs.
        """
        first: dict[str, str] = {}
        out: dict[str, str] = {}
        for label, _, overrides in self.configurations():
            key = canonical_json({"model": self.model, **self.config, **overrides})
            if key not in first:
                first[key] = label
            elif first[key] != label:
                out[label] = first[key]
        return out

    def unique_runs(self, chosen: Mapping[str, Mapping[str, Any]] | None = None) -> list[RunSpec]:
        """``tune_runs() + runs(chosen)`` without the runs of aliased configurations (each run id once)."""
        seen: set[str] = set()
        out = []
        for run in self.tune_runs() + self.runs(chosen):
            if run.run_id not in seen:
                seen.add(run.run_id)
                out.append(run)
        return out

    def run_count(self) -> int:
        """How many runs the study makes: its tuning runs and a verdict run per seed of each
        configuration that is not an alias of another."""
        aliased = self.aliases()
        verdict = sum(1 for label in self.labels() if label not in aliased) * len(self.seeds)
        return len({r.run_id for r in self.tune_runs()}) + verdict

    def labels(self) -> list[str]:
        """Configuration labels in grid order."""
        return [label for label, _, _ in self.configurations()]

    def baseline_of(self, axes: Mapping[str, str]) -> str | None:
        """The label of the configuration a configuration is compared with: the same values on every
        axis except the baseline's axis, which takes the baseline value."""
        axis = self.baseline_axis()
        if axis is None:
            return None
        want = {**axes, axis: self.baseline}
        for label, names, _ in self.configurations():
            if names == want:
                return label
        return None

    def baseline_axis(self) -> str | None:
        """The axis that has a value labelled ``baseline`` (the first such axis)."""
        for axis, values in self.grid.items():
            if self.baseline in values:
                return axis
        return None

    def to_dict(self) -> dict[str, Any]:
        """The spec as a plain dict (what ``parse_study`` reads back)."""
        return {
            "name": self.name,
            "description": self.description,
            "dataset": copy.deepcopy(self.dataset),
            "model": self.model,
            "config": copy.deepcopy(self.config),
            "grid": copy.deepcopy(self.grid),
            "seeds": list(self.seeds),
            "baseline": self.baseline,
            **({"tune": self.tune.to_dict()} if self.tune is not None else {}),
            "margin": self.margin,
            "notes": list(self.notes),
            **({"published": self.published} if self.published else {}),
            **({"plugins": list(self.plugins)} if self.plugins else {}),
        }

    def to_yaml(self) -> str:
        """The spec as YAML text."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


def _check_keys(data: Mapping[str, Any], valid: tuple[str, ...], where: str) -> None:
    for key in data:
        if key not in valid:
            raise ValueError(f"{where}: unknown key {key!r}.{suggest(str(key), valid)} Valid keys: {', '.join(valid)}")


def _axis_values(axis: str, values: Any, where: str) -> dict[str, Any]:
    """An axis as ``{label: value}``; a list gets labels from its values."""
    if isinstance(values, Mapping):
        if not values:
            raise ValueError(f"{where}: grid axis {axis!r} has no values")
        out = {str(k): v for k, v in values.items()}
    elif isinstance(values, (list, tuple)):
        if not values:
            raise ValueError(f"{where}: grid axis {axis!r} has no values")
        if axis == VARIANTS:
            raise ValueError(f"{where}: grid axis 'variants' must map labels to dicts of keys")
        show = axis in ("mask_loss", "model")
        out = {(str(v) if show else f"{axis}={v}"): v for v in values}
        if len(out) != len(values):
            raise ValueError(f"{where}: grid axis {axis!r} repeats a value: {list(values)}")
    else:
        raise ValueError(f"{where}: grid axis {axis!r} must be a list or a mapping label -> value, got {values!r}")
    if axis == VARIANTS:
        for label, value in out.items():
            if not isinstance(value, Mapping) or not value:
                raise ValueError(f"{where}: variant {label!r} must be a non-empty mapping of keys, got {value!r}")
    return out


def _check_losses(keys_values: list[tuple[str, Any]], where: str) -> list[str]:
    """Build every loss spec once; return the catalogue's equivalence warnings as notes."""
    from losslab.losses import create_loss
    from losslab.losses.fields import loss_contracts
    from losslab.models import get_model_info, list_models

    contracts = loss_contracts([get_model_info(n).defaults for n in list_models()])  # as the models declare
    notes = []
    for key, spec in keys_values:
        if not key.endswith("_loss") or spec is None:
            continue
        if not isinstance(spec, str):
            raise ValueError(f"{where}: {key} must be a loss spec string such as 'bce + 0.5*dice', got {spec!r}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                create_loss(spec, contract=contracts.get(key, "mask"))
            except ValueError as exc:
                raise ValueError(f"{where}: bad {key} {spec!r}: {exc}") from None
        notes.extend(f"{key} {spec!r}: {w.message}" for w in caught)
    return notes


def _seeds(value: Any, where: str) -> list[int]:
    if isinstance(value, bool):
        raise ValueError(f"{where}: seeds must be a count or a list of integers, got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"{where}: seeds must be at least 1, got {value}")
        if value > MAX_RUNS:  # before the list is made: seeds: 1e11 must not fill the memory
            raise ValueError(
                f"{where}: seeds: {value:,} would make at least {value:,} runs; a study makes at most {MAX_RUNS:,}"
            )
        return list(range(value))
    ints = isinstance(value, (list, tuple)) and all(isinstance(s, int) and not isinstance(s, bool) for s in value)
    if ints and value:
        if len(set(value)) != len(value):
            raise ValueError(f"{where}: seeds repeat a value: {list(value)}")
        return [int(s) for s in value]
    raise ValueError(f"{where}: seeds must be a count or a non-empty list of integers, got {value!r}")


def parse_study(data: Mapping[str, Any], where: str = "study", seeds: int | None = None) -> StudySpec:
    """Validate a spec dict and return the ``StudySpec``.

    Args:
        data: the spec (see the module docstring).
        where: names the source in error messages (a file path or a built-in name).
        seeds: if given, replaces the spec's seeds with ``range(seeds)``.

    Raises:
        ValueError: an unknown key (with the closest valid key), an empty axis, a bad seed list, a
            baseline that no axis has, or a loss spec that ``create_loss`` rejects.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: a study spec must be a mapping, got {type(data).__name__}")
    _check_keys(data, STUDY_KEYS, where)
    plugins = _load_plugins(data.get("plugins"), where)  # first: the grid may name their losses and models
    name = str(data.get("name") or Path(where).stem)
    dataset = dict(data.get("dataset") or {"synthetic": {}})
    _check_keys(dataset, DATASET_KEYS, f"{where}: dataset")
    if len(dataset) != 1:
        raise ValueError(f"{where}: dataset needs exactly one of 'synthetic' or 'path', got {sorted(dataset)}")
    if "synthetic" in dataset and not isinstance(dataset["synthetic"] or {}, Mapping):
        raise ValueError(f"{where}: dataset.synthetic must map generator arguments, got {dataset['synthetic']!r}")
    if "synthetic" in dataset:
        dataset = {"synthetic": dict(dataset["synthetic"] or {})}
        _check_keys(dataset["synthetic"], tuple(SYNTH_KEYS), f"{where}: dataset.synthetic")
    config = dict(data.get("config") or {})
    for key in ("seed", "data", *SYNTH_KEYS.values()):
        if key in config:
            raise ValueError(f"{where}: config.{key} is set by the study (use 'seeds' / 'dataset')")
    grid_in = data.get("grid") or {}
    if not isinstance(grid_in, Mapping) or not grid_in:
        raise ValueError(f"{where}: grid must map at least one axis (e.g. mask_loss) to its values")
    grid = {str(axis): _axis_values(str(axis), values, where) for axis, values in grid_in.items()}
    for axis in grid:
        if axis in ("seed", "seeds", "data", *SYNTH_KEYS.values()):
            raise ValueError(f"{where}: {axis!r} cannot be a grid axis (use the top-level 'seeds' / 'dataset')")
    seed_list = _seeds(seeds if seeds is not None else data.get("seeds", 1), where)
    _check_size(grid, len(seed_list), where)
    config.setdefault("threads", DEFAULT_THREADS)
    model = data.get("model")
    if model is None and "model" not in grid and not any("model" in v for v in grid.get(VARIANTS, {}).values()):
        raise ValueError(f"{where}: no model: set 'model: yolact_tiny' or make 'model' a grid axis")
    baseline = str(data.get("baseline") or "BCE")
    study = StudySpec(
        name=name,
        description=str(data.get("description") or ""),
        dataset=dataset,
        model=model,
        config=config,
        grid=grid,
        seeds=seed_list,
        baseline=baseline,
        notes=[str(n) for n in data.get("notes") or []],
    )
    if data.get("baseline") is not None and study.baseline_axis() is None:
        labels = [label for values in grid.values() for label in values]
        raise ValueError(f"{where}: baseline {baseline!r} is no grid value.{suggest(baseline, labels)}")
    if study.baseline_axis() is None:
        study.baseline = _default_baseline(grid)
    items = list(config.items())
    for axis, values in grid.items():
        for value in values.values():
            items.extend(value.items() if axis == VARIANTS else [(axis, value)])
    study.tune = parse_tune(data.get("tune"), where, dataset, seed_list, list(grid))
    study.margin = _margin(data.get("margin", DEFAULT_MARGIN), where)
    study.published = _published(data.get("published"), where)
    study.plugins = plugins
    if study.tune is not None:
        _check_size(grid, len(seed_list) + len(study.tune.points()) * len(study.tune.seeds), where)
        items.extend((k, v) for k, values in study.tune.grid.items() for v in values)
    study.warnings = _check_losses(items, where)
    from losslab.data.noise_spec import check_label_noise  # a typo in a noise level fails here, too

    check_label_noise(items, where)
    return study


def _load_plugins(value: Any, where: str) -> list[str]:
    """Import the spec's ``plugins`` (files, relative to the working folder or to the spec's own
    folder, or module names); returns each one's resolved file."""
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValueError(f"{where}: plugins must be a list of Python files or modules, e.g. [my_losses.py]")
    from losslab.plugins import load_plugins, split_entry

    here = Path(where).parent if Path(where).is_file() else None
    paths = []
    for item in value:
        text = str(item)
        if here is not None and not Path(text).is_absolute() and not Path(text).exists() and (here / text).exists():
            text = str(here / text)
        paths.append(text)
    try:
        entries = load_plugins(paths)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    return [split_entry(e)[0] for e in entries]


def _published(value: Any, where: str) -> str | None:
    """A shipped result table's name (``losslab.report.published``), or ``None``."""
    if value is None:
        return None
    from losslab.report.published import published_names

    names = published_names()
    if value not in names:
        raise ValueError(
            f"{where}: published {value!r} is no shipped result table.{suggest(str(value), names)} "
            f"Shipped: {', '.join(names)}"
        )
    return str(value)


def _margin(value: Any, where: str) -> float:
    """The equivalence margin: a positive finite number (metric points)."""
    try:
        margin = float(value)
    except (TypeError, ValueError):
        margin = math.nan
    if isinstance(value, bool) or not math.isfinite(margin) or margin <= 0:
        raise ValueError(f"{where}: margin must be a positive number of metric points (e.g. 2.0), got {value!r}")
    return margin


def _check_size(grid: Mapping[str, Mapping[str, Any]], n_seeds: int, where: str) -> None:
    """Refuse a grid of more than ``MAX_RUNS`` runs, saying how many it would make."""
    configs = math.prod(len(values) for values in grid.values())
    if configs * n_seeds > MAX_RUNS:
        sizes = " x ".join(f"{len(values)} {axis}" for axis, values in grid.items())
        raise ValueError(
            f"{where}: the grid makes {configs * n_seeds:,} runs ({sizes} x {n_seeds} seeds), more than the "
            f"{MAX_RUNS:,} a study may make; split it into smaller studies or use fewer values"
        )


def _default_baseline(grid: Mapping[str, Mapping[str, Any]]) -> str:
    """Without an explicit baseline: the plain BCE value of the loss axis, else the first value."""
    for values in grid.get("mask_loss", {}), *grid.values():
        for label, value in values.items():
            if isinstance(value, str) and value.replace(" ", "").lower() == "bce":
                return label
    return next(iter(next(iter(grid.values()))))


def load_study(name_or_path: str | Path, seeds: int | None = None) -> StudySpec:
    """A built-in study by name (``quick``) or a YAML file.

    Raises:
        ValueError: neither a built-in name nor a readable file (with the closest names), or a bad spec.
    """
    from losslab.study.builtin import BUILTIN_STUDIES

    text = str(name_or_path)
    if text in BUILTIN_STUDIES:
        return parse_study(BUILTIN_STUDIES[text], where=f"built-in study {text!r}", seeds=seeds)
    path = Path(text)
    if not path.is_file():
        raise ValueError(
            f"no built-in study or YAML file {text!r}.{suggest(text, BUILTIN_STUDIES)} "
            f"Built-in studies: {', '.join(BUILTIN_STUDIES)}"
        )
    return parse_study(read_yaml(path) or {}, where=str(path), seeds=seeds)


def validate_keys(study: StudySpec) -> None:
    """Check every run's keys and values against the trainer (``TrainConfig``) and its model's config.

    Goes through the run-config seam (``engine.config.resolve_run_config``), so a spec is checked
    exactly as ``losslab train`` checks a run, without building any network.

    Raises:
        ValueError: an unknown model, a key that is neither a trainer key nor one of the model's
            (with the closest names), or a value a check refuses; naming the configuration.
    """
    checked: set[str] = set()
    for run in study.tune_runs() + study.runs(study.first_choices()):
        key = canonical_json({k: v for k, v in run.config.items() if k != "seed"})
        if key in checked:
            continue
        checked.add(key)
        try:
            resolve_run_config(run.config)
        except ValueError as exc:
            raise ValueError(f"study {study.name!r}, configuration {run.label!r} ({run.stage} run): {exc}") from None
