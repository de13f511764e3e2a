"""Images as they come: formats, modes, bit depths, EXIF orientation, library warnings, sizes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps, TiffImagePlugin

from losslab.data.images import (
    BIT_DEPTH,
    EXIF_ORIENTATION,
    LIBRARY_WARNING,
    SIZE_MISMATCH,
    apply_orientation,
    fit_to_annotation,
    load_image,
    read_image,
    to_rgb8,
)

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (12, 20, 3), dtype=np.uint8)


def _kinds(notes) -> list[str]:
    return [kind for kind, _ in notes]


@pytest.mark.parametrize("ext", ["png", "tif", "bmp", "webp", "jpg"])
def test_every_format_reads_as_rgb8(tmp_path, ext):
    path = tmp_path / f"a.{ext}"
    options = {"lossless": True} if ext == "webp" else {"quality": 98} if ext == "jpg" else {}
    Image.fromarray(RGB).save(path, **options)
    img = load_image(path)
    assert img.stored.shape == (12, 20, 3) and img.stored.dtype == np.uint8 and img.notes == []
    with Image.open(path) as im:
        decoded = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(img.stored, RGB if ext != "jpg" else decoded)


@pytest.mark.parametrize("mode", ["L", "1", "LA", "RGBA", "CMYK"])
def test_modes_become_rgb_as_pillow_converts_them(tmp_path, mode):
    im = Image.fromarray(RGB).convert(mode)
    path = tmp_path / ("a.tif" if mode == "CMYK" else "a.png")
    im.save(path)
    got = load_image(path).stored
    assert got.shape == (12, 20, 3)
    np.testing.assert_array_equal(got, np.asarray(im.convert("RGB")))  # alpha dropped, gray repeated


def test_palette_with_and_without_transparency(tmp_path):
    im = Image.fromarray(RGB).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    im.save(tmp_path / "p.png")
    np.testing.assert_array_equal(load_image(tmp_path / "p.png").stored, np.asarray(im.convert("RGB")))
    im.info["transparency"] = 0
    im.save(tmp_path / "pt.png", transparency=0)
    got = load_image(tmp_path / "pt.png")
    assert got.notes == []  # no "palette with transparency" warning from Pillow
    np.testing.assert_array_equal(got.stored, np.asarray(im.convert("RGBA"))[:, :, :3])


def test_16bit_single_band_is_scaled_by_its_own_range(tmp_path):
    a = np.array([[100, 200, 300], [400, 500, 4100]], np.uint16)
    Image.fromarray(a).save(tmp_path / "a.tif")
    img = load_image(tmp_path / "a.tif")
    expected = np.rint((a - 100.0) * 255 / 4000).astype(np.uint8)
    np.testing.assert_array_equal(img.stored[:, :, 0], expected)
    assert (img.stored[:, :, 0] == img.stored[:, :, 2]).all()
    assert _kinds(img.notes) == [BIT_DEPTH] and "100..4100" in img.notes[0][1]


def test_16bit_rgb_keeps_all_its_bits_through_opencv(tmp_path):
    a = np.zeros((4, 5, 3), np.uint16)
    a[0, 0] = (1000, 2000, 3000)  # R, G, B
    a[1, 1] = (0, 0, 3000)
    import cv2

    cv2.imwrite(str(tmp_path / "a.png"), a[:, :, ::-1])  # OpenCV writes BGR
    img = load_image(tmp_path / "a.png")
    assert img.stored[0, 0].tolist() == [85, 170, 255] and img.stored[1, 1].tolist() == [0, 0, 255]


def test_float_nan_and_constant_images():
    x = np.array([[0.0, np.nan], [0.5, 1.0]], np.float32)
    out, note = to_rgb8(x)
    assert out[:, :, 0].tolist() == [[0, 0], [128, 255]] and note[0] == BIT_DEPTH
    flat, _ = to_rgb8(np.full((2, 2), 7, np.uint16))
    assert not flat.any()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow_exif_transpose(tmp_path, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "a.jpg"
    Image.fromarray(RGB).save(path, exif=exif, quality=95)
    img = load_image(path)
    with Image.open(path) as im:
        expected = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert img.orientation == orientation
    np.testing.assert_array_equal(img.pixels, expected)
    np.testing.assert_array_equal(read_image(path), expected.astype(np.float32))


def test_apply_orientation_moves_a_marked_corner():
    a = np.zeros((2, 3), np.uint8)
    a[0, 0] = 1  # top-left
    corners = {o: tuple(np.argwhere(apply_orientation(a, o))[0]) for o in range(1, 9)}
    assert corners == {1: (0, 0), 2: (0, 2), 3: (1, 2), 4: (1, 0), 5: (0, 0), 6: (0, 1), 7: (2, 1), 8: (2, 0)}


def test_opencv_tiff_warnings_are_counted_not_printed(tmp_path, capfd):
    tifffile = pytest.importorskip("tifffile")
    a = RNG.integers(0, 4000, (6, 7, 3)).astype(np.uint16)
    geotiff = [(33550, 12, 3, (0.5, 0.5, 0.0), False), (34735, 3, 4, (1, 1, 0, 0), False)]
    tifffile.imwrite(tmp_path / "geo.tif", a, photometric="rgb", extratags=geotiff)
    img = load_image(tmp_path / "geo.tif")
    out, err = capfd.readouterr()
    assert err == "" and out == ""
    warnings = [m for k, m in img.notes if k == LIBRARY_WARNING]
    assert len(warnings) == 2 and "33550" in warnings[0]
    assert img.stored.shape == (6, 7, 3)


def test_single_band_geotiff_reads_quietly(tmp_path, capfd):
    ifd = TiffImagePlugin.ImageFileDirectory_v2()
    ifd[33550] = (0.5, 0.5, 0.0)
    ifd.tagtype[33550] = 12
    Image.fromarray(RNG.integers(0, 4000, (6, 7)).astype(np.uint16)).save(tmp_path / "g.tif", tiffinfo=ifd)
    img = load_image(tmp_path / "g.tif")
    assert capfd.readouterr().err == ""
    assert _kinds(img.notes) == [BIT_DEPTH]


def test_unreadable_and_missing(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"bad\.png is not a readable image"):
        load_image(tmp_path / "bad.png")
    with pytest.raises(ValueError, match="does not exist"):
        load_image(tmp_path / "none.png")
    with pytest.raises(ValueError, match=r"^item 3: image file"):
        read_image(tmp_path / "none.png", "item 3: ")


def _rotated_jpeg(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 20 wide x 12 high, shown 12 wide x 20 high
    Image.fromarray(RGB).save(tmp_path / "r.jpg", exif=exif, quality=95)
    return load_image(tmp_path / "r.jpg")


def test_fit_applies_exif_when_the_json_has_the_shown_size(tmp_path):
    pixels, notes = fit_to_annotation(_rotated_jpeg(tmp_path), 20, 12)
    assert pixels.shape == (20, 12, 3)
    assert _kinds(notes) == [EXIF_ORIENTATION] and "applied" in notes[0][1]


def test_fit_skips_exif_when_the_json_has_the_stored_size(tmp_path):
    img = _rotated_jpeg(tmp_path)
    pixels, notes = fit_to_annotation(img, 12, 20)
    np.testing.assert_array_equal(pixels, img.stored)
    assert _kinds(notes) == [EXIF_ORIENTATION] and "not applied" in notes[0][1]


def test_fit_resizes_a_resized_copy_and_refuses_another_aspect(tmp_path):
    Image.fromarray(RGB).save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    pixels, notes = fit_to_annotation(img, 24, 40)  # the json was made on a 2x copy
    assert pixels.shape == (24, 40, 3) and _kinds(notes) == [SIZE_MISMATCH]
    assert "20x12" in notes[0][1] and "40x24" in notes[0][1]
    with pytest.raises(ValueError, match=r"is 20x12 but the json says 21x12"):
        fit_to_annotation(img, 12, 21)
