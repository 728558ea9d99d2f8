"""Photos the page reads: folders, labelled sets, and files it must refuse with a message."""

from __future__ import annotations

import struct
import zlib

import pytest
from PIL import Image

from anomaly_vit.data.image_io import BadImageError
from anomaly_vit.ui.photos import PhotoSetError, folder_photos, labelled_photos, open_photo


def _png(path, size=(8, 6), value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", size, value).save(path)
    return path


def _png_header_only(path, width, height):
    """A PNG whose header claims width x height but holds no pixels (a decompression bomb's
    header: Pillow reads the size without decoding)."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def test_folder_lists_images_recursively_and_skips_other_files(tmp_path):
    _png(tmp_path / "b.png")
    _png(tmp_path / "sub" / "a.jpg")
    (tmp_path / "notes.txt").write_text("not a photo")
    assert [p.name for p in folder_photos(tmp_path)] == ["b.png", "sub/a.jpg"]


def test_folder_problems_name_the_folder(tmp_path):
    with pytest.raises(PhotoSetError, match=f"folder '{tmp_path / 'nope'}' does not exist"):
        folder_photos(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PhotoSetError, match="holds no image files"):
        folder_photos(tmp_path / "empty")


def test_labelled_folder_takes_the_bundle_classes_as_subfolders(tmp_path):
    _png(tmp_path / "good" / "1.png")
    _png(tmp_path / "crack" / "2.png")
    _png(tmp_path / "other" / "3.png")  # not a class of the bundle: not part of the set
    photos = labelled_photos(tmp_path, ["good", "crack", "stain"])
    assert [(p.name, p.label) for p in photos] == [("good/1.png", "good"), ("crack/2.png", "crack")]
    with pytest.raises(PhotoSetError, match=r"sub-folders named \['ok', 'ng'\]"):
        labelled_photos(tmp_path, ["ok", "ng"])


def test_labelled_manifest_resolves_paths_and_checks_labels(tmp_path):
    _png(tmp_path / "img" / "1.png")
    manifest = tmp_path / "set.csv"
    manifest.write_text("path,label,item_id\nimg/1.png,defect,1\n/abs/2.png,good,2\n")
    photos = labelled_photos(manifest, ["good", "defect"])
    assert [(p.path, p.label) for p in photos] == [
        (str(tmp_path / "img" / "1.png"), "defect"),
        ("/abs/2.png", "good"),
    ]
    manifest.write_text("path,label\nimg/1.png,scratch\n")
    with pytest.raises(PhotoSetError, match="line 2: label 'scratch' is not one of"):
        labelled_photos(manifest, ["good", "defect"])
    manifest.write_text("file,label\nimg/1.png,good\n")
    with pytest.raises(PhotoSetError, match=r"lacks column\(s\) \['path'\]"):
        labelled_photos(manifest, ["good", "defect"])


def test_a_photo_over_the_pixel_limit_is_refused_before_decoding(tmp_path):
    huge = _png_header_only(tmp_path / "huge.png", 8000, 6000)
    with pytest.raises(BadImageError, match=r"8000 x 6000 px \(48 Mpx\) is over the page's limit of 40 Mpx"):  # fmt: skip
        open_photo(huge, max_pixels=40_000_000)
    bomb = _png_header_only(tmp_path / "bomb.png", 30000, 30000)  # over Pillow's own limit
    with pytest.raises(BadImageError, match=r"decompression bomb.* over the page's limit of 40 Mpx; downscale it"):  # fmt: skip
        open_photo(bomb, max_pixels=40_000_000)
    small = _png(tmp_path / "small.png", size=(100, 50))
    assert open_photo(small, max_pixels=5000).size == (100, 50)
    with pytest.raises(BadImageError, match="100 x 50 px"):
        open_photo(small, max_pixels=4999)


def test_empty_and_non_image_files_get_a_reason(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(BadImageError, match=r"empty \(0 bytes\)"):
        open_photo(tmp_path / "empty.png", max_pixels=10**6)
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(BadImageError, match="not a recognised image"):
        open_photo(tmp_path / "notes.png", max_pixels=10**6)
