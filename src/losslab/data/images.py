"""Reading images as they come: JPEG, PNG, TIFF, BMP, WebP; any mode; any bit depth; EXIF orientation.

Every image becomes 8-bit RGB ``(H, W, 3)``:

- **Decoding.** Pillow decodes first (its TIFF reader is quiet about unknown tags such as GeoTIFF's);
  OpenCV decodes what Pillow cannot open, and 16-bit RGB(A) PNG/TIFF, which Pillow would cut to
  8 bits. What either library warns (Python warnings, OpenCV's libtiff messages on stderr) is kept
  out of the terminal and returned as ``library warning`` notes, which ``losslab data check`` counts.
- **Modes.** Grayscale is repeated into three channels; palette images are expanded through their
  palette; the alpha channel of RGBA, LA and palette-with-transparency images is dropped, as Pillow's
  ``convert("RGB")`` (and so detectron2's ``read_image``) does; CMYK and YCbCr are converted to RGB.
- **Bit depth.** 8-bit images are kept as they are. Any other depth (16-bit, 32-bit integer, float)
  is scaled to 8 bit per image by its own minimum and maximum over all channels:
  ``v8 = round((v - min) * 255 / (max - min))``; NaN and infinite pixels become 0, and a constant
  image becomes all 0. The image's range, not the type's, is used because 16-bit files rarely
  fill it (a 12-bit sensor, a GeoTIFF band, a fluorescence image with values 0..235).
- **Orientation.** The EXIF orientation tag (0x0112) is applied as Pillow's
  ``ImageOps.exif_transpose`` applies it, which is what detectron2's ``read_image`` does.
  :func:`fit_to_annotation` then brings the pixels into the frame the annotations were drawn in.

Not thread-safe while OpenCV decodes (stderr is redirected for that moment); DataLoader workers are
processes, so training is unaffected.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = [
    "BIT_DEPTH",
    "EXIF_ORIENTATION",
    "LIBRARY_WARNING",
    "SIZE_MISMATCH",
    "LoadedImage",
    "apply_orientation",
    "fit_to_annotation",
    "load_image",
    "read_image",
    "to_rgb8",
]

# Kinds of note (counted by kind in `losslab data check`).
LIBRARY_WARNING = "library warning"
EXIF_ORIENTATION = "EXIF orientation"
BIT_DEPTH = "scaled to 8 bit"
SIZE_MISMATCH = "size mismatch"

_ORIENTATION_TAG = 0x0112
_ASPECT_TOLERANCE = 0.01  # a resized copy keeps its aspect ratio to within rounding
_OPENCV_PREFIX = re.compile(r"^\[\s*\w+:[\d@.]+\]\s*(global\s+\S+\s+)?")  # "[ WARN:0@0.05] global x.cpp:12 "
_PILLOW_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError)
Note = tuple[str, str]  # (kind, message)


@dataclass
class LoadedImage:
    """An image as stored (8-bit RGB) and its EXIF orientation, not yet applied.

    Shape:
        stored: ``(h, w, 3)`` uint8, the pixels as the file stores them.
    """

    path: Path
    stored: np.ndarray
    orientation: int = 1  # EXIF orientation tag, 1 = as stored
    notes: list[Note] = field(default_factory=list)

    @property
    def pixels(self) -> np.ndarray:
        """The pixels with the EXIF orientation applied (as a viewer shows them)."""
        return apply_orientation(self.stored, self.orientation)


def apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """The EXIF orientation transform, as ``PIL.ImageOps.exif_transpose`` does it.

    Shape:
        ``array`` ``(h, w, ...)`` -> ``(h, w, ...)`` or ``(w, h, ...)`` for orientations 5 to 8.
    """
    a = array
    match orientation:
        case 2:  # mirrored left-right
            a = a[:, ::-1]
        case 3:
            a = a[::-1, ::-1]
        case 4:
            a = a[::-1]
        case 5:  # transpose
            a = a.swapaxes(0, 1)
        case 6:  # rotated 90 degrees clockwise to be upright
            a = a.swapaxes(0, 1)[:, ::-1]
        case 7:  # transverse
            a = a[::-1, ::-1].swapaxes(0, 1)
        case 8:
            a = a.swapaxes(0, 1)[::-1]
    return np.ascontiguousarray(a)


def to_rgb8(array: np.ndarray) -> tuple[np.ndarray, Note | None]:
    """8-bit RGB of a decoded array of any depth (see the module docstring for the scaling).

    Shape:
        ``array`` ``(h, w)``, ``(h, w, 1)`` or ``(h, w, 3)`` RGB -> ``(h, w, 3)`` uint8.
    """
    note = None
    if array.dtype != np.uint8:
        x = array.astype(np.float64)
        finite = np.isfinite(x)
        lo, hi = (float(x[finite].min()), float(x[finite].max())) if finite.any() else (0.0, 0.0)
        scaled = np.zeros_like(x)
        if hi > lo:
            scaled = np.rint((np.where(finite, x, lo) - lo) * (255.0 / (hi - lo)))
        note = (BIT_DEPTH, f"{array.dtype.name} image scaled to 8 bit by its range {lo:g}..{hi:g}")
        array = scaled.astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return np.ascontiguousarray(array), note


def _pillow_array(im: Image.Image, deep: bool) -> np.ndarray | None:
    """The pixels of an open Pillow image as RGB uint8 or a single band of its own depth; None when
    Pillow would lose bits (``deep``: 16-bit RGB(A), which it reads as 8-bit)."""
    if deep:
        return None
    if im.mode.startswith("I") or im.mode == "F":  # I;16, I;16B, I (32-bit), F (float): one band
        return np.asarray(im)
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")  # Pillow warns when a transparent palette goes straight to RGB
    return np.asarray(im if im.mode == "RGB" else im.convert("RGB"))


def _read_pillow(path: Path) -> tuple[np.ndarray | None, int]:
    """Pillow's pixels (or None when OpenCV must decode) and the EXIF orientation."""
    with Image.open(path) as im:
        # before getexif(), which may decode the image (PNG) and so clear the tile list
        deep = im.mode in ("RGB", "RGBA") and any(";16" in str(t.args) for t in im.tile)
        orientation = int(im.getexif().get(_ORIENTATION_TAG, 1) or 1)
        return _pillow_array(im, deep), orientation if 1 <= orientation <= 8 else 1


@contextlib.contextmanager
def _captured_stderr() -> Iterator[list[str]]:
    """Collect what C libraries write to file descriptor 2 (OpenCV's libtiff warnings)."""
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(line.strip() for line in tmp.read().decode(errors="replace").splitlines() if line.strip())


def _read_opencv(path: Path) -> tuple[np.ndarray | None, list[str]]:
    """OpenCV's pixels at their own depth (RGB, alpha dropped, no orientation) and what it printed."""
    data = np.fromfile(str(path), np.uint8)
    with _captured_stderr() as printed:
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION) if data.size else None
    if img is not None and img.ndim == 3:
        img = img[:, :, :3]
        img = img[:, :, ::-1] if img.shape[2] == 3 else img[:, :, 0]  # BGR -> RGB
    return img, printed


def load_image(path: str | Path) -> LoadedImage:
    """Decode one image file as it is stored (see the module docstring).

    Raises:
        ValueError: the file does not exist or neither Pillow nor OpenCV can decode it.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"image file {path} does not exist")
    notes: list[Note] = []
    array, orientation = None, 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with contextlib.suppress(*_PILLOW_ERRORS):
            array, orientation = _read_pillow(path)
    notes += [(LIBRARY_WARNING, f"Pillow: {w.message}") for w in caught]
    if array is None:
        array, printed = _read_opencv(path)
        notes += [(LIBRARY_WARNING, f"OpenCV: {_OPENCV_PREFIX.sub('', line)}") for line in printed]
    if array is None or array.size == 0:
        raise ValueError(f"image file {path} is not a readable image (corrupt or unsupported)")
    rgb, depth_note = to_rgb8(array)
    notes += [depth_note] if depth_note else []
    return LoadedImage(path, rgb, orientation, notes)


def read_image(path: str | Path, where: str = "") -> np.ndarray:
    """An image file as float32 RGB ``(H, W, 3)`` in [0, 255], EXIF orientation applied.

    Raises:
        ValueError: unreadable, prefixed with ``where``.
    """
    try:
        return load_image(path).pixels.astype(np.float32)
    except ValueError as exc:
        raise ValueError(f"{where}{exc}") from None


def fit_to_annotation(image: LoadedImage, height: int, width: int) -> tuple[np.ndarray, list[Note]]:
    """The pixels in the frame the annotations were drawn in: the json's ``height`` x ``width``.

    pycocotools decodes every mask at the json's size, so the json is followed: the EXIF orientation
    is applied unless only the stored pixels have the json's size (the annotation tool ignored the
    tag: then it is not applied); a file of another size but the same aspect ratio (a resized copy)
    is resized to the json's size. Both cases are returned as notes.

    Raises:
        ValueError: the file's size and the json's differ in aspect ratio; names both sizes.

    Shape:
        returns ``(height, width, 3)`` uint8.
    """
    notes = list(image.notes)
    pixels, o = image.pixels, image.orientation
    sh, sw = image.stored.shape[:2]
    if pixels.shape[:2] == (height, width):
        if o != 1:
            notes.append((EXIF_ORIENTATION, f"EXIF orientation {o} applied (stored as {sw}x{sh})"))
        return pixels, notes
    if o != 1 and (sh, sw) == (height, width):
        notes.append(
            (EXIF_ORIENTATION, f"EXIF orientation {o} not applied: the json's {width}x{height} is the stored size")
        )
        return image.stored, notes
    fh, fw = pixels.shape[:2]
    if abs(fw * height - fh * width) > _ASPECT_TOLERANCE * fh * width:
        raise ValueError(
            f"image file {image.path} is {fw}x{fh} but the json says {width}x{height}, another aspect ratio "
            "(not a resized copy); fix width/height in the json or the file"
        )
    interpolation = cv2.INTER_AREA if fw > width else cv2.INTER_LINEAR
    notes.append((SIZE_MISMATCH, f"file is {fw}x{fh}, json says {width}x{height}: resized to the json's size"))
    return cv2.resize(pixels, (width, height), interpolation=interpolation), notes
