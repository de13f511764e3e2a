"""Finding the layout of a dataset root: which json and which image folder each split has.

``resolve_splits(ROOT)`` recognises, in this order:

=============  ============================================  ==========================
layout         annotation file                               image folder
=============  ============================================  ==========================
``losslab``    ``ROOT/annotations/instances_{split}.json``   ``ROOT/{split}/``
``cig_butts``  ``ROOT/{split}/coco_annotations.json``        ``ROOT/{split}/images/``
``roboflow``   ``ROOT/{split}/_annotations.coco.json``       ``ROOT/{split}/`` (beside it)
``coco2017``   ``ROOT/annotations/instances_{split}2017.json``  ``ROOT/{split}2017/``
=============  ============================================  ==========================

``split`` is ``train``, ``val`` (also spelled ``valid``, as Roboflow does) or ``test``. The first
layout that has any split wins; a later layout in the same folder that has a split the winner lacks
is named in ``describe()`` and in the missing split's error, never used silently. A root holding a
single folder (an unpacked archive, ``ROOT/cig_butts/...``) is looked into. The explicit keys
``train_json``, ``train_images``, ``val_json``, ``val_images`` replace what the layout says for their
split (or stand alone), as YOLACT's ``train_images`` / ``train_info`` and detectron2's ``register_coco_instances`` do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["LAYOUTS", "DatasetSplits", "Layout", "SplitFiles", "canonical_split", "resolve_splits"]

#: Spellings of each split's folder, the first being the one a writer uses.
_SPELLINGS = {"train": ("train",), "val": ("val", "valid"), "test": ("test",)}
_ALIASES = {"valid": "val", "validation": "val"}
EXPLICIT_KEYS = ("train_json", "train_images", "val_json", "val_images")


@dataclass(frozen=True)
class Layout:
    """Where one dataset layout keeps each split, as templates over the split's folder name ``{s}``."""

    name: str
    title: str  # "the Cigarette Butts layout"
    json: str  # relative to the root, e.g. "{s}/coco_annotations.json"
    images: str  # e.g. "{s}/images"
    spellings: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(_SPELLINGS))

    def paths(self, root: Path, folder: str) -> tuple[Path, Path]:
        """The json and image folder of the split spelled ``folder``."""
        return root / self.json.format(s=folder), root / self.images.format(s=folder)

    def write_paths(self, root: Path, split: str) -> tuple[Path, Path]:
        """Where a writer (``losslab data synth --layout``) puts ``split``: the first spelling."""
        return self.paths(root, self.spellings[split][0])


LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout("losslab", "losslab's own layout", "annotations/instances_{s}.json", "{s}"),
        Layout("cig_butts", "the Cigarette Butts layout", "{s}/coco_annotations.json", "{s}/images"),
        Layout(
            "roboflow",
            "the Roboflow COCO export layout",
            "{s}/_annotations.coco.json",
            "{s}",
            {"train": ("train",), "val": ("valid", "val"), "test": ("test",)},
        ),
        Layout(
            "coco2017",
            "the COCO 2017 layout",
            "annotations/instances_{s}2017.json",
            "{s}2017",
            {"train": ("train",), "val": ("val",), "test": ("test",)},
        ),
    )
}


def canonical_split(name: str) -> str:
    """``"valid"`` and ``"validation"`` are ``"val"``; other names stay as they are."""
    return _ALIASES.get(name, name)


@dataclass(frozen=True)
class SplitFiles:
    """One split: its COCO json and the folder its ``file_name`` are relative to."""

    json: Path
    images: Path


@dataclass(frozen=True)
class DatasetSplits:
    """The splits found in a dataset root (``resolve_splits``)."""

    root: Path | None
    layout: str  # a key of LAYOUTS, or "explicit" when only explicit keys gave the splits
    splits: dict[str, SplitFiles]
    explicit: tuple[str, ...] = ()  # the explicit keys that were set
    #: Later layouts in the same folder with a split this one lacks: ``(layout name, (splits, ...))``.
    passed_over: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def split(self, name: str) -> SplitFiles:
        """The files of split ``name`` (``"valid"`` = ``"val"``).

        Raises:
            ValueError: the dataset has no such split; names the ones it has and the keys to set.
        """
        key = canonical_split(name)
        if key in self.splits:
            return self.splits[key]
        have = ", ".join(sorted(self.splits)) or "none"
        where = f"the explicit keys give {have}"
        if self.layout in LAYOUTS and self.root is not None:
            layout = LAYOUTS[self.layout]
            looked = [str(layout.paths(self.root, s)[0]) for s in layout.spellings.get(key, (name,))]
            where = f"{layout.title} in {self.root} has {have} (no {' or '.join(looked)})"
        hint = f"; set {key}_json and {key}_images" if key in ("train", "val") else ""
        others = [LAYOUTS[n] for n, splits in self.passed_over if key in splits]
        if others and self.root is not None and hint:
            ann, images = others[0].paths(self.root, others[0].spellings[key][0])
            hint = (
                f"; {others[0].title} beside it has one, not used because {self.title()} comes first: "
                f"set {key}_json={ann} {key}_images={images} to use it"
            )
        raise ValueError(f"no {name!r} split: {where}{hint}")

    def title(self) -> str:
        """``"the Cigarette Butts layout"``, or ``"explicit keys"``."""
        return LAYOUTS[self.layout].title if self.layout in LAYOUTS else "explicit keys"

    def describe(self) -> str:
        """One line for the user: which layout was found where, and which keys replaced parts of it."""
        names = ", ".join(sorted(self.splits))
        text = f"found {self.title()} in {self.root} ({names})" if self.layout in LAYOUTS else f"splits {names}"
        if self.explicit:
            text += f"; set explicitly: {', '.join(self.explicit)}"
        for name, splits in self.passed_over:
            text += f"; not used: {LAYOUTS[name].title} beside it ({', '.join(splits)})"
        return text


def _find(root: Path, layout: Layout) -> tuple[dict[str, SplitFiles], list[Path]]:
    """The splits ``layout`` finds under ``root``, and every json path it looked at."""
    found: dict[str, SplitFiles] = {}
    tried: list[Path] = []
    for split, spellings in layout.spellings.items():
        for folder in spellings:
            ann, images = layout.paths(root, folder)
            tried.append(ann)
            if ann.is_file():
                if not images.is_dir():
                    raise ValueError(f"{ann} is there ({layout.title}) but its image folder {images} is not")
                found[split] = SplitFiles(ann, images)
                break
    return found, tried


def _passed_over(where: Path, winner: str, found: dict[str, SplitFiles]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The layouts after ``winner`` that find, in ``where``, a split ``found`` lacks."""
    later = list(LAYOUTS)[list(LAYOUTS).index(winner) + 1 :]
    out = []
    for name in later:
        try:
            splits = tuple(sorted(_find(where, LAYOUTS[name])[0]))
        except ValueError:  # a json without its image folder: not a usable layout
            continue
        if set(splits) - set(found):
            out.append((name, splits))
    return tuple(out)


def _detect(root: Path) -> tuple[str, Path, dict[str, SplitFiles]]:
    """The first layout that finds a split in ``root`` (or its only sub-folder).

    Raises:
        ValueError: none does; lists every path looked at.
    """
    candidates = [root]
    subdirs = [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    if len(subdirs) == 1:
        candidates.append(subdirs[0])
    tried: list[Path] = []
    for where in candidates:
        for layout in LAYOUTS.values():
            found, looked = _find(where, layout)
            if found:
                return layout.name, where, found
            tried += looked
    listing = "\n  ".join(str(p) for p in tried)
    raise ValueError(
        f"no dataset layout found in {root}: no annotation file at any of\n  {listing}\n"
        "Point data= at the folder that holds them, or set train_json, train_images, val_json and "
        "val_images to the files (see README, 'Data')."
    )


def _explicit(found: dict[str, SplitFiles], keys: dict[str, str]) -> dict[str, SplitFiles]:
    """``found`` with the explicit ``{split}_json`` / ``{split}_images`` keys applied."""
    out = dict(found)
    for split in ("train", "val"):
        ann, images = keys.get(f"{split}_json", ""), keys.get(f"{split}_images", "")
        if not ann and not images:
            continue
        base = found.get(split)
        if not ann and base is None:
            raise ValueError(f"{split}_images={images!r} needs {split}_json too (no {split} split in a layout)")
        if not images and base is None:
            raise ValueError(f"{split}_json={ann!r} needs {split}_images: the folder its file_name are relative to")
        path = Path(ann).expanduser() if ann else base.json  # type: ignore[union-attr]
        folder = Path(images).expanduser() if images else base.images  # type: ignore[union-attr]
        if not path.is_file():
            raise ValueError(f"{split}_json={ann!r}: no such file")
        if not folder.is_dir():
            raise ValueError(f"{split}_images={images!r}: no such folder")
        out[split] = SplitFiles(path, folder)
    return out


def resolve_splits(
    data: str | Path, *, train_json: str = "", train_images: str = "", val_json: str = "", val_images: str = ""
) -> DatasetSplits:
    """The json and image folder of every split of a dataset (see the module docstring).

    Args:
        data: the dataset root; may be empty when the explicit keys give both train and val.
        train_json, train_images, val_json, val_images: explicit files, replacing the layout's for
            their split. A json without its image folder takes the layout's folder for that split.

    Raises:
        ValueError: no layout fits (the message lists every path looked at), a path does not exist,
            or an explicit key lacks its partner.
    """
    keys = {"train_json": train_json, "train_images": train_images, "val_json": val_json, "val_images": val_images}
    given = tuple(k for k in EXPLICIT_KEYS if keys[k])
    full = bool(train_json and train_images and val_json and val_images)
    if not str(data):
        if not full:
            raise ValueError("no dataset: set data=ROOT, or all of train_json, train_images, val_json, val_images")
        return DatasetSplits(None, "explicit", _explicit({}, keys), given)
    root = Path(data).expanduser()
    if root.is_file():
        raise ValueError(f"data={str(data)!r} is a file; data= takes a dataset folder (one json: train_json= ...)")
    if not root.is_dir():
        raise ValueError(f"data={str(data)!r} is neither 'synthetic' nor an existing dataset folder")
    try:
        layout, where, found = _detect(root)
    except ValueError:
        if not full:
            raise
        return DatasetSplits(root, "explicit", _explicit({}, keys), given)
    return DatasetSplits(where, layout, _explicit(found, keys), given, _passed_over(where, layout, found))
