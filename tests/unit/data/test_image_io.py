"""Tests for image_io: every PIL mode becomes the expected RGB, bad files raise BadImageError."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anomaly_vit.data.image_io import (
    IMAGE_EXTENSIONS,
    BadImageError,
    is_image_file,
    load_mask,
    load_rgb,
)


def _save(img: Image.Image, path: Path) -> Path:
    img.save(path)
    return path


def test_extensions() -> None:
    assert {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"} == set(IMAGE_EXTENSIONS)
    assert is_image_file("a/B.PNG")
    assert not is_image_file("a/._b.png")  # macOS resource fork
    assert not is_image_file("a/notes.txt")


def test_rgb_and_gray(tmp_path: Path) -> None:
    rgb = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    out = load_rgb(_save(Image.fromarray(rgb), tmp_path / "rgb.png"))
    assert out.dtype == np.uint8 and out.shape == (4, 4, 3)
    np.testing.assert_array_equal(out, rgb)

    gray = np.array([[0, 10], [200, 255]], dtype=np.uint8)
    out = load_rgb(_save(Image.fromarray(gray, "L"), tmp_path / "gray.png"))
    np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, axis=2))


def test_bilevel(tmp_path: Path) -> None:
    img = Image.new("1", (2, 1), 0)
    img.putpixel((1, 0), 1)
    out = load_rgb(_save(img, tmp_path / "bits.png"))
    np.testing.assert_array_equal(out[0, :, 0], [0, 255])


@pytest.mark.parametrize("mode", ["I;16", "I;16B"])
def test_16_bit_scaled_by_depth(tmp_path: Path, mode: str) -> None:
    values = np.array([[0, 65535, 257, 32896]], dtype=np.uint16)
    dtype = ">u2" if mode == "I;16B" else "<u2"
    img = Image.frombytes(mode, (4, 1), values.astype(dtype).tobytes())
    # I;16B is written as is to TIFF; round-trip through a TIFF file
    out = load_rgb(_save(img, tmp_path / "deep.tif"))
    np.testing.assert_array_equal(out[0, :, 1], [0, 255, 1, 128])


def test_16_bit_png(tmp_path: Path) -> None:
    values = np.array([[1000, 65535]], dtype=np.uint16)
    out = load_rgb(_save(Image.fromarray(values), tmp_path / "deep.png"))
    np.testing.assert_array_equal(out[0, :, 0], [4, 255])  # 1000/257 = 3.89 -> 4, not clipped


def test_int32_mode_declared_depth(tmp_path: Path) -> None:
    # Pillow's "I" saved to TIFF declares 32 bits: full scale 2**31 - 1; negatives -> 0
    img = Image.fromarray(np.array([[-5, 0, 2**30, 2**31 - 1]], dtype=np.int32))
    assert img.mode == "I"
    out = load_rgb(_save(img, tmp_path / "int.tif"))
    np.testing.assert_array_equal(out[0, :, 0], [0, 0, 128, 255])


def test_int_mode_in_memory_defaults_to_16_bit() -> None:
    from anomaly_vit.data.image_io import to_rgb_array

    img = Image.fromarray(np.array([[65535, 257, 70000]], dtype=np.int32))
    np.testing.assert_array_equal(to_rgb_array(img)[0, :, 2], [255, 1, 255])


def test_float(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    img = Image.fromarray(np.array([[0.4, 100.6, 300.0, -3.0]], dtype=np.float32))
    out = load_rgb(_save(img, tmp_path / "float.tif"))
    np.testing.assert_array_equal(out[0, :, 0], [0, 101, 255, 0])
    with caplog.at_level(logging.WARNING):
        load_rgb(_save(Image.fromarray(np.full((2, 2), 0.5, np.float32)), tmp_path / "unit.tif"))
    assert "unit.tif" in caplog.text and "0..1" in caplog.text


def test_rgba_composited_on_black(tmp_path: Path) -> None:
    rgba = np.array([[[200, 100, 50, 255], [200, 100, 50, 0], [200, 100, 50, 128]]], np.uint8)
    out = load_rgb(_save(Image.fromarray(rgba, "RGBA"), tmp_path / "rgba.png"))
    np.testing.assert_array_equal(out[0], [[200, 100, 50], [0, 0, 0], [100, 50, 25]])


def test_la_composited_on_black(tmp_path: Path) -> None:
    la = np.array([[[200, 255], [200, 0], [200, 51]]], np.uint8)
    out = load_rgb(_save(Image.fromarray(la, "LA"), tmp_path / "la.png"))
    np.testing.assert_array_equal(out[0, :, 0], [200, 0, 40])


def test_palette_with_and_without_transparency(tmp_path: Path) -> None:
    img = Image.new("P", (2, 1), 0)
    img.putpalette([10, 20, 30, 40, 50, 60] + [0] * (256 * 3 - 6))
    img.putpixel((1, 0), 1)
    out = load_rgb(_save(img, tmp_path / "pal.png"))
    np.testing.assert_array_equal(out[0], [[10, 20, 30], [40, 50, 60]])

    img.info["transparency"] = 0
    out = load_rgb(_save(img, tmp_path / "pal_t.png"))
    np.testing.assert_array_equal(out[0], [[0, 0, 0], [40, 50, 60]])


def test_cmyk(tmp_path: Path) -> None:
    img = Image.new("CMYK", (1, 1), (0, 255, 0, 0))  # full magenta
    out = load_rgb(_save(img, tmp_path / "cmyk.tif"))
    np.testing.assert_array_equal(out[0, 0], [255, 0, 255])


def test_multiple_formats_roundtrip(tmp_path: Path) -> None:
    rgb = np.full((8, 8, 3), 120, np.uint8)
    for ext in sorted(IMAGE_EXTENSIONS):
        out = load_rgb(_save(Image.fromarray(rgb), tmp_path / f"img{ext}"))
        assert out.shape == (8, 8, 3)
        assert abs(int(out.mean()) - 120) <= 2, ext  # jpeg/webp are lossy


def test_mask_nonzero_and_resize(tmp_path: Path) -> None:
    mask = np.zeros((4, 4), np.uint8)
    mask[1, 2] = 1  # a value of 1 counts as defect
    out = load_mask(_save(Image.fromarray(mask), tmp_path / "m.png"))
    assert out.dtype == bool and out.sum() == 1 and out[1, 2]

    big = load_mask(tmp_path / "m.png", size=(8, 6))  # (height, width)
    assert big.shape == (8, 6) and big.any()

    deep = np.zeros((2, 2), np.uint16)
    deep[0, 0] = 1
    assert load_mask(_save(Image.fromarray(deep), tmp_path / "deep.png")).sum() == 1

    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[0, 0, 3] = 255  # only the opaque pixel is a defect
    assert load_mask(_save(Image.fromarray(rgba, "RGBA"), tmp_path / "a.png")).sum() == 1


def _good_png(path: Path) -> bytes:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(path)
    return path.read_bytes()


@pytest.mark.parametrize("loader", [load_rgb, load_mask])
def test_bad_files(tmp_path: Path, loader) -> None:
    cases: dict[str, Path] = {}
    cases["does not exist"] = tmp_path / "missing.png"
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    cases["empty"] = empty
    text = tmp_path / "notes.jpg"
    text.write_text("this is not an image\n")
    cases["not a recognised image"] = text
    folder = tmp_path / "folder.png"
    folder.mkdir()
    cases["directory"] = folder
    data = _good_png(tmp_path / "good.png")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(data[: len(data) // 2])
    cases["truncated"] = truncated
    buffer = tmp_path / "cut.jpg"
    Image.open(tmp_path / "good.png").save(buffer, quality=95)
    jpeg = buffer.read_bytes()
    buffer.write_bytes(jpeg[: len(jpeg) // 2])
    cases["truncated "] = buffer

    for expected, path in cases.items():
        with pytest.raises(BadImageError) as info:
            loader(path)
        assert path.name in str(info.value), expected
        assert expected.strip() in str(info.value), str(info.value)
        assert isinstance(info.value, ValueError)


def test_decompression_bomb(tmp_path: Path, monkeypatch, caplog: pytest.LogCaptureFixture) -> None:
    path = _save(Image.new("RGB", (32, 32)), tmp_path / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 1024 > 2 * 100: refused
    with pytest.raises(BadImageError) as info:
        load_rgb(path)
    assert "huge.png" in str(info.value) and "MAX_IMAGE_PIXELS" in str(info.value)

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1000 < 1024 < 2000: warning only
    with caplog.at_level(logging.WARNING):
        out = load_rgb(path)
    assert out.shape == (32, 32, 3)
    assert "huge.png" in caplog.text and "MAX_IMAGE_PIXELS" in caplog.text
